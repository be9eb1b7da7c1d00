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
import FuzzServer
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

func placeholder(_ name: String) -> NFS3FileHandle { NFS3FileHandle(Array(name.utf8)) }

let fixture = FuzzServer(name: "procedures")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProcedures(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count)
    guard input.count >= 2 else { return 0 }
    let isMount = input[0] & 0x80 != 0
    let program = isMount ? NFSProgramNumber.mount : NFSProgramNumber.nfs
    let procedure = isMount ? UInt32(input[0] & 0x7f) % 6 : UInt32(input[0]) % 22
    let arguments = ByteBuffer(bytes: fixture.substituteHandles(Array(input.dropFirst(2))))

    if connection == nil { connection = try! BlockingRPCClient(unixPath: fixture.socketPath) }
    callAndWait(connection!, program: program, version: 3, procedure: procedure, credential: fuzzCredential(input[1]),
                arguments: arguments)
    return 0
}

/// One connection for every input, as a client's: accepting one per input
/// cost more than most calls. `nonisolated(unsafe)`: libFuzzer calls the entry
/// point from its one thread, the only one that touches this.
nonisolated(unsafe) var connection: BlockingRPCClient?

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
                                                  credential: fuzzCredential(UInt8(index)),
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
                                            credential: fuzzCredential(1), arguments: ByteBuffer())
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
