// What the libFuzzer targets that drive a whole server share (FuzzProcedures,
// FuzzNFS4): a vsnfs server started in the fuzzer's process, as `vsnfs serve`
// starts it, on a Unix socket with two exports (one read-write, one
// read-only); placeholder handles the inputs name and the target replaces by
// real ones; and a call that waits until the server has finished it.
import Exports
import Foundation
import HostFS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import Server
import Transport
import XDR

/// The placeholders an input may carry where a filehandle goes: a 4-byte opaque
/// (`00 00 00 04` + the name), replaced by the XDR of the read-write export's
/// root, the read-only export's root, or a file in the read-write export. The
/// fuzzer cannot forge a handle's tag; this is how its inputs reach real objects.
public let placeholderNames = ["RWFH", "ROFH", "FIFH"]

public final class FuzzServer: Sendable {
    public let work: String
    public let socketPath: String
    public let server: VSNFSServer
    /// The XDR encoding of each placeholder handle's real handle, by placeholder.
    let handles: [(placeholder: [UInt8], real: [UInt8])]

    /// `name` names the scratch directory (with the process ID).
    public init(name: String) {
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        let work = NSTemporaryDirectory() + "vsnfs-fuzz-\(name)-\(getpid())"
        self.work = work
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
        handles = zip(placeholderNames, [rwRoot, roRoot, file]).map { name, real in
            (opaqueXDR(Array(name.utf8)), opaqueXDR(real.bytes))
        }
        atexit { fuzzServerCleanup() }
        cleanupPath.withLockedValue { $0 = work }
    }

    /// `arguments` with every placeholder handle replaced by its real handle.
    public func substituteHandles(_ arguments: [UInt8]) -> [UInt8] {
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

private let cleanupPath = NIOLockedValueBox<String?>(nil)
private func fuzzServerCleanup() {
    if let path = cleanupPath.withLockedValue({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
}

/// XDR variable-length opaque: length, bytes, padding.
public func opaqueXDR(_ bytes: [UInt8]) -> [UInt8] {
    var buffer = ByteBuffer()
    buffer.writeXDRVariableOpaque(bytes)
    return Array(buffer.readableBytesView)
}

/// Runs async work to completion from synchronous code (the fuzzer's callbacks).
public func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> T {
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

/// The credential an input's selector byte picks: % 4 = 0: AUTH_NONE; 1:
/// AUTH_SYS root; 2: uid 1000; 3: uid 65534 (the exports keep root_squash).
public func fuzzCredential(_ selector: UInt8) -> RPCOpaqueAuth {
    switch selector % 4 {
    case 0: return .none
    case 1: return AuthSysParameters(machineName: Array("fuzz".utf8), uid: 0, gid: 0).opaqueAuth
    case 2: return AuthSysParameters(machineName: Array("fuzz".utf8), uid: 1000, gid: 1000, gids: [1000, 27]).opaqueAuth
    default: return AuthSysParameters(uid: 65534, gid: 65534).opaqueAuth
    }
}

let callXID: UInt32 = 0x1234_5678
let barrierXID: UInt32 = 0x8765_4321

/// Sends the call and a NULL call of the same program behind it; the server
/// runs one call at a time, so the NULL's reply means the call has finished.
/// Every reply must be an RPC reply to one of the two; the call's reply body
/// is returned. A missing or foreign reply stops the fuzzer (a finding).
@discardableResult
public func callAndWait(_ client: BlockingRPCClient, program: UInt32, version: UInt32, procedure: UInt32,
                        credential: RPCOpaqueAuth, arguments: ByteBuffer) -> RPCReplyBody {
    try! client.send(BlockingRPCClient.encodeCall(xid: callXID, program: program, version: version, procedure: procedure,
                                                  credential: credential, arguments: arguments)
                     + BlockingRPCClient.encodeCall(xid: barrierXID, program: program, version: version,
                                                    procedure: 0, credential: .none, arguments: ByteBuffer()))
    var reply: RPCReplyBody?
    var barrier = false
    while !barrier {
        let record: ByteBuffer
        do {
            record = try client.receiveRecord()
        } catch {
            preconditionFailure("no reply to procedure \(procedure) of program \(program) v\(version): \(error)")
        }
        guard case .reply(let xid, let body, _) = try? RPCMessage(record: record), xid == callXID || xid == barrierXID else {
            preconditionFailure("a reply that is not an RPC reply to our calls: \(record.readableBytesView.map { $0 })")
        }
        if xid == callXID { reply = body } else { barrier = true }
    }
    guard let reply else { preconditionFailure("procedure \(procedure) of program \(program) v\(version) was not answered") }
    return reply
}
