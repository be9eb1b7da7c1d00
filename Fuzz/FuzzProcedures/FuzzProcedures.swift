// libFuzzer target: the arguments of every NFSv3 and MOUNT v3 procedure,
// through the server's real path. The target starts a vsnfs server in this
// process (VSNFSServer, as `vsnfs serve` does) on a Unix socket with two
// exports, one read-write and one read-only, and sends each input to it as a
// call on one connection that stays open: record marking, RPC header, credential check,
// dispatch, argument decoding, handle check and the HostFS call all run as
// for a real client.
//
// Input:
//   byte 0  the procedure: bit 7 set: MOUNT, procedure (byte & 0x7f) % 6;
//           else NFSv3, procedure byte % 22
//   byte 1  the credential: % 4 = 0: AUTH_NONE; 1: AUTH_SYS root; 2: uid 1000;
//           3: uid 65534 (squashing applies: the exports keep root_squash)
//   rest    the arguments. A 4-byte opaque handle "RWFH", "ROFH" or "FIFH"
//           (00 00 00 04 + the name) is replaced by the real handle of the
//           read-write export's root, the read-only export's root or a file
//           in the read-write export: the fuzzer cannot forge a handle's tag.
//
// Checked beyond "no crash": every call gets a reply that decodes as an RPC
// reply to its XID, on a connection that stays open (the connection closes
// only on a record that is not an RPC message, which this target never sends).
//
// VSNFS_FUZZ_WRITE_SEEDS=DIR writes seed inputs for this target and for
// FuzzRPCMessage and FuzzRecordMarking, each made by the product's encoders
// (the arguments types' encode, BlockingRPCClient.encodeCall), then exits.
import FuzzDriver
import Exports
import Foundation
import HostFS
import Logging
import Mount3
import NFS3
import NFSCore
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import Server
import Transport
import XDR

let placeholderNames = ["RWFH", "ROFH", "FIFH"]

func placeholder(_ name: String) -> NFS3FileHandle { NFS3FileHandle(Array(name.utf8)) }

final class Fixture: Sendable {
    let work: String
    let socketPath: String
    let server: VSNFSServer
    /// The XDR encoding of each placeholder handle's real handle, by placeholder.
    let handles: [(placeholder: [UInt8], real: [UInt8])]

    init() {
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        work = NSTemporaryDirectory() + "vsnfs-fuzz-procedures-\(getpid())"
        socketPath = work + "/sock"
        let fm = FileManager.default
        try? fm.removeItem(atPath: work)
        let rw = work + "/rw", ro = work + "/ro"
        for dir in [work + "/state", rw + "/dir", ro + "/dir"] {
            try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        // Squashed callers (nobody) may create in the read-write export.
        chmod(rw, 0o777)
        precondition(fm.createFile(atPath: rw + "/file", contents: Data("data\n".utf8)))
        precondition(fm.createFile(atPath: ro + "/file", contents: Data("data\n".utf8)))
        let exportsPath = work + "/exports"
        precondition(fm.createFile(atPath: exportsPath, contents: Data("\(rw) unix(rw)\n\(ro) unix(ro)\n".utf8)))

        let configuration = VSNFSServer.Configuration(
            exports: .file(exportsPath),
            rpc: .init(listen: [try! ListenSpec(parsing: "unix:" + socketPath)],
                       // One call at a time, so the NULL call sent after the input's call
                       // is answered only once that call has finished.
                       maximumCallsInFlight: 1),
            stateDirectory: work + "/state", threads: 2)
        server = blocking { try await VSNFSServer.start(configuration: configuration, logger: Logger(label: "fuzz")) }

        let fs = server.context.hostFS
        let exports = try! ExportsFile.load(path: exportsPath)
        let rwRoot = try! fs.rootHandle(exportID: exports[0].handleID)
        let roRoot = try! fs.rootHandle(exportID: exports[1].handleID)
        let file = try! fs.lookup(rwRoot, Array("file".utf8), as: .root).handle
        func xdr(_ handle: NFS3FileHandle) -> [UInt8] {
            var buffer = ByteBuffer()
            handle.encode(xdr: &buffer)
            return Array(buffer.readableBytesView)
        }
        handles = zip(placeholderNames, [rwRoot, roRoot, file]).map { name, real in
            (xdr(placeholder(name)), xdr(NFS3FileHandle(real.bytes)))
        }
        atexit { try? FileManager.default.removeItem(atPath: fixture.work) }
    }

    func substituteHandles(_ arguments: [UInt8]) -> [UInt8] {
        var out = arguments
        for (pattern, real) in handles {
            var i = 0
            while i + pattern.count <= out.count {
                if out[i..<i + pattern.count].elementsEqual(pattern) {
                    out.replaceSubrange(i..<i + pattern.count, with: real)
                    i += real.count
                } else {
                    i += 1
                }
            }
        }
        return out
    }
}

/// Runs async work to completion from synchronous code (the fuzzer's callbacks).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> T {
    let result = NIOLockedValueBox<Result<T, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let r: Result<T, Error>
        do { r = .success(try await body()) } catch { r = .failure(error) }
        result.withLockedValue { $0 = r }
        done.signal()
    }
    done.wait()
    return try! result.withLockedValue { $0! }.get()
}

let fixture = Fixture()

func credential(_ selector: UInt8) -> RPCOpaqueAuth {
    switch selector % 4 {
    case 0: return .none
    case 1: return AuthSysParameters(machineName: Array("fuzz".utf8), uid: 0, gid: 0).opaqueAuth
    case 2: return AuthSysParameters(machineName: Array("fuzz".utf8), uid: 1000, gid: 1000, gids: [1000, 27]).opaqueAuth
    default: return AuthSysParameters(uid: 65534, gid: 65534).opaqueAuth
    }
}

let callXID: UInt32 = 0x1234_5678
let barrierXID: UInt32 = 0x8765_4321

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProcedures(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count)
    guard input.count >= 2 else { return 0 }
    let isMount = input[0] & 0x80 != 0
    let program = isMount ? NFSProgramNumber.mount : NFSProgramNumber.nfs
    let procedure = isMount ? UInt32(input[0] & 0x7f) % 6 : UInt32(input[0]) % 22
    let arguments = ByteBuffer(bytes: fixture.substituteHandles(Array(input.dropFirst(2))))

    if connection == nil { connection = try! BlockingRPCClient(unixPath: fixture.socketPath) }
    call(connection!, program: program, procedure: procedure, credential: credential(input[1]), arguments: arguments)
    return 0
}

/// One connection for every input, as a client's: accepting one per input
/// cost more than most calls. `nonisolated(unsafe)`: libFuzzer calls the entry
/// point from its one thread, the only one that touches this.
nonisolated(unsafe) var connection: BlockingRPCClient?

/// Sends the call and a NULL call behind it; the server runs one call at a time,
/// so the NULL's reply means the call has finished.
func call(_ client: BlockingRPCClient, program: UInt32, procedure: UInt32, credential: RPCOpaqueAuth, arguments: ByteBuffer) {
    try! client.send(BlockingRPCClient.encodeCall(xid: callXID, program: program, version: 3, procedure: procedure,
                                                  credential: credential, arguments: arguments)
                     + BlockingRPCClient.encodeCall(xid: barrierXID, program: NFSProgramNumber.nfs, version: 3,
                                                    procedure: 0, credential: .none, arguments: ByteBuffer()))
    var answered: Set<UInt32> = []
    while !answered.contains(barrierXID) {
        let record: ByteBuffer
        do {
            record = try client.receiveRecord()
        } catch {
            preconditionFailure("no reply to procedure \(procedure) of program \(program): \(error)")
        }
        guard case .reply(let xid, _, _) = try? RPCMessage(record: record), xid == callXID || xid == barrierXID else {
            preconditionFailure("a reply that is not an RPC reply to our calls: \(record.readableBytesView.map { $0 })")
        }
        answered.insert(xid)
    }
    precondition(answered.contains(callXID), "procedure \(procedure) of program \(program) was not answered")
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> CInt {
    if let dir = ProcessInfo.processInfo.environment["VSNFS_FUZZ_WRITE_SEEDS"] {
        writeSeeds(to: dir)
        exit(0)
    }
    _ = fixture
    return 0
}

// MARK: - Seeds

func encode(_ value: some XDREncodable) -> [UInt8] {
    var buffer = ByteBuffer()
    value.encode(xdr: &buffer)
    return Array(buffer.readableBytesView)
}

func encode(_ message: RPCMessage) -> [UInt8] {
    var buffer = ByteBuffer()
    message.encode(xdr: &buffer)
    return Array(buffer.readableBytesView)
}

/// One valid call of every procedure, as (name, program selector byte, arguments).
func seedCalls() -> [(name: String, selector: UInt8, arguments: [UInt8])] {
    let rw = placeholder("RWFH"), ro = placeholder("ROFH"), file = placeholder("FIFH")
    let attributes = NFS3SetAttributes(mode: 0o644, size: 3, mtime: .serverTime)
    var pathArgs = ByteBuffer()
    MountPathArgs(path: "/").encode(xdr: &pathArgs)
    let calls: [(String, NFS3Procedure, [UInt8])] = [
        ("null", .null, []),
        ("getattr", .getattr, encode(NFS3GetAttrArgs(object: rw))),
        ("setattr", .setattr, encode(NFS3SetAttrArgs(object: file, newAttributes: attributes,
                                                     guardCtime: NFS3Time(seconds: 1, nseconds: 2)))),
        ("lookup", .lookup, encode(NFS3LookupArgs(directory: rw, name: "file"))),
        ("access", .access, encode(NFS3AccessArgs(object: ro, access: 0x3f))),
        ("readlink", .readlink, encode(NFS3ReadlinkArgs(object: file))),
        ("read", .read, encode(NFS3ReadArgs(file: file, offset: 1, count: 4096))),
        ("write", .write, encode(NFS3WriteArgs(file: file, offset: 2, count: 5, stable: .fileSync,
                                               data: ByteBuffer(string: "hello")))),
        ("create", .create, encode(NFS3CreateArgs(whereTo: NFS3DirOpArgs(directory: rw, name: "new"),
                                                  how: .guarded(attributes)))),
        ("create-exclusive", .create, encode(NFS3CreateArgs(whereTo: NFS3DirOpArgs(directory: rw, name: "excl"),
                                                            how: .exclusive(NFS3Verifier(42))))),
        ("mkdir", .mkdir, encode(NFS3MkdirArgs(whereTo: NFS3DirOpArgs(directory: rw, name: "sub"),
                                               attributes: NFS3SetAttributes(mode: 0o755)))),
        ("symlink", .symlink, encode(NFS3SymlinkArgs(whereTo: NFS3DirOpArgs(directory: rw, name: "link"),
                                                     attributes: .none, target: "file"))),
        ("mknod", .mknod, encode(NFS3MknodArgs(whereTo: NFS3DirOpArgs(directory: rw, name: "fifo"),
                                               what: .fifo(NFS3SetAttributes(mode: 0o600))))),
        ("mknod-chr", .mknod, encode(NFS3MknodArgs(whereTo: NFS3DirOpArgs(directory: rw, name: "chr"),
                                                   what: .characterDevice(.none, NFS3SpecData(major: 1, minor: 3))))),
        ("remove", .remove, encode(NFS3RemoveArgs(directory: rw, name: "new"))),
        ("rmdir", .rmdir, encode(NFS3RmdirArgs(directory: rw, name: "sub"))),
        ("rename", .rename, encode(NFS3RenameArgs(from: NFS3DirOpArgs(directory: rw, name: "link"),
                                                  to: NFS3DirOpArgs(directory: rw, name: "link2")))),
        ("link", .link, encode(NFS3LinkArgs(file: file, link: NFS3DirOpArgs(directory: rw, name: "hard")))),
        ("readdir", .readdir, encode(NFS3ReaddirArgs(directory: rw, cookie: 0, cookieVerifier: .zero, count: 4096))),
        ("readdirplus", .readdirplus, encode(NFS3ReaddirPlusArgs(directory: ro, cookie: 0, cookieVerifier: .zero,
                                                                  dirCount: 512, maxCount: 4096))),
        ("fsstat", .fsstat, encode(NFS3FSStatArgs(object: rw))),
        ("fsinfo", .fsinfo, encode(NFS3FSInfoArgs(object: ro))),
        ("pathconf", .pathconf, encode(NFS3PathConfArgs(object: rw))),
        ("commit", .commit, encode(NFS3CommitArgs(file: file, offset: 0, count: 0))),
    ]
    var seeds = calls.map { ("nfs3-" + $0.0, UInt8($0.1.rawValue), $0.2) }
    for procedure in MountProcedure.allCases {
        let takesPath = procedure == .mnt || procedure == .umnt
        seeds.append(("mount-\(procedure)", 0x80 | UInt8(procedure.rawValue),
                      takesPath ? Array(pathArgs.readableBytesView) : []))
    }
    return seeds
}

func writeSeeds(to dir: String) {
    let fm = FileManager.default
    func write(_ target: String, _ name: String, _ bytes: [UInt8]) {
        let path = "\(dir)/\(target)"
        try! fm.createDirectory(atPath: path, withIntermediateDirectories: true)
        precondition(fm.createFile(atPath: "\(path)/\(name)", contents: Data(bytes)), "cannot write \(path)/\(name)")
    }
    for (index, call) in seedCalls().enumerated() {
        // Alternate the credentials so that each appears.
        write("FuzzProcedures", call.name, [call.selector, UInt8(1 + index % 3)] + call.arguments)
        let program = call.selector & 0x80 != 0 ? NFSProgramNumber.mount : NFSProgramNumber.nfs
        let record = BlockingRPCClient.encodeCall(xid: UInt32(index), program: program, version: 3,
                                                  procedure: UInt32(call.selector & 0x7f),
                                                  credential: credential(UInt8(index)),
                                                  arguments: ByteBuffer(bytes: call.arguments))
        write("FuzzRPCMessage", call.name, Array(record.dropFirst(4)))
        if index % 4 == 0 {
            // Whole records in one chunk, and in chunks of 1...7 bytes.
            write("FuzzRecordMarking", call.name, [0] + record)
            write("FuzzRecordMarking", call.name + "-chunked", [7] + record)
        }
    }
    // Replies, as the server sends them.
    for (name, body) in [("success", RPCReplyBody.success(results: ByteBuffer(bytes: [0, 0, 0, 0]))),
                         ("mismatch", .programMismatch(low: 3, high: 3)), ("auth", .authError(.tooWeak)),
                         ("rpc-mismatch", .rpcMismatch(low: 2, high: 2))] {
        write("FuzzRPCMessage", "reply-" + name, encode(RPCMessage.reply(xid: 9, body: body, verifier: .none)))
    }
    // A record in three fragments, and two records back to back.
    let call = BlockingRPCClient.encodeCall(xid: 5, program: NFSProgramNumber.nfs, version: 3, procedure: 0,
                                            credential: credential(1), arguments: ByteBuffer())
    let body = Array(call.dropFirst(4))
    var fragmented: [UInt8] = [3]
    for (i, piece) in [body[0..<8], body[8..<20], body[20...]].enumerated() {
        let mark = UInt32(piece.count) | (i == 2 ? RecordMarking.lastFragmentBit : 0)
        fragmented += [UInt8(mark >> 24), UInt8(truncatingIfNeeded: mark >> 16), UInt8(truncatingIfNeeded: mark >> 8),
                       UInt8(truncatingIfNeeded: mark)] + piece
    }
    write("FuzzRecordMarking", "fragments", fragmented)
    write("FuzzRecordMarking", "two-records", [0] + call + call)
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzProcedures_main")
public func fuzzProceduresMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzProcedures)
}
