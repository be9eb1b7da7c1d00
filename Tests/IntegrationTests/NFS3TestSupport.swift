import Exports
import Foundation
import HostFS
import Logging
import Mount3
import NFS3
import NFSCore
import NIOCore
import NIOPosix
import ONCRPC
import NIOConcurrencyHelpers
import Transport
import XDR

// In-process NFSv3/MOUNT test harness: the real RPC stack (record marking,
// RPCConnectionHandler, RPCDispatcher) on TCP loopback, with the peer
// identity the handler reports chosen per listener (so CID rules can be
// exercised without vsock), and a small blocking client.

/// A temporary directory holding export directories and the HostFS state directory.
final class NFS3Sandbox: Sendable {
    let dir: String
    var statePath: String { dir + "/state" }

    init() {
        var template = Array("/tmp/nfs3-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        dir = String(cString: p!)
        chmod(dir, 0o755)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// A new export directory (mode 0777 so squashed callers may write).
    func exportDirectory(_ name: String, mode: mode_t = 0o777) -> String {
        let path = dir + "/" + name
        mkdir(path, 0o755)
        chmod(path, mode)
        return path
    }
}

/// Servers (one listener per peer identity) over one NFSServerContext.
final class NFS3TestServer: Sendable {
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let context: NFSServerContext
    let sandbox: NFS3Sandbox
    private let listeners = NIOLockedValueBox<[PeerIdentity: (channel: Channel, port: Int)]>([:])

    init(exports: [Export], sandbox: NFS3Sandbox) throws {
        self.sandbox = sandbox
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        let fs = try HostFileSystem(exports: AuthTable(exports: exports),
                                    options: HostFSOptions(stateDirectory: sandbox.statePath))
        context = NFSServerContext(hostFS: fs, threadPool: pool)
    }

    /// A convenience server with one export at `/export`, for `clients`.
    convenience init(clients: [ClientRule], sandbox: NFS3Sandbox = NFS3Sandbox()) throws {
        let path = sandbox.exportDirectory("export")
        try self.init(exports: [Export(hostPath: path, mountPath: "/export", clients: clients)], sandbox: sandbox)
    }

    deinit {
        for (_, l) in listeners.withLockedValue({ $0 }) { try? l.channel.close().wait() }
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }

    var dispatcher: RPCDispatcher {
        RPCDispatcher(programs: [MountProgram(server: context), NFS3Program(server: context)])
    }

    /// The port of a listener whose connections all present `peer`.
    func port(for peer: PeerIdentity) throws -> Int {
        try listeners.withLockedValue { listeners in
            if let l = listeners[peer] { return l.port }
            let dispatcher = self.dispatcher
            let channel = try ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
                        try channel.pipeline.syncOperations.addHandler(
                            RPCConnectionHandler(peer: peer, dispatcher: dispatcher, logger: Logger(label: "nfs3-test")))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).wait()
            let port = channel.localAddress!.port!
            listeners[peer] = (channel, port)
            return port
        }
    }

    func client(_ peer: PeerIdentity = .vsock(cid: 3, port: 1000), uid: UInt32 = 0, gid: UInt32 = 0,
                gids: [UInt32] = []) throws -> NFS3TestClient {
        let c = try NFS3TestClient(port: port(for: peer))
        c.credential = AuthSysParameters(machineName: Array("test".utf8), uid: uid, gid: gid, gids: gids).opaqueAuth
        return c
    }
}

enum NFS3TestError: Error {
    case connectionClosed
    case unexpectedReply(RPCReplyBody)
}

/// A blocking RPC client over TCP loopback, with NFSv3 and MOUNT helpers.
final class NFS3TestClient {
    private let rpc: BlockingRPCClient
    var credential: RPCOpaqueAuth = .none

    init(port: Int) throws {
        rpc = try BlockingRPCClient(ipv4: "127.0.0.1", port: port, timeoutSeconds: 60)
    }

    init(unixPath: String) throws {
        rpc = try BlockingRPCClient(unixPath: unixPath, timeoutSeconds: 60)
    }

    /// A client over a connection of its own making (another source address, a shorter timeout).
    init(_ rpc: BlockingRPCClient) {
        self.rpc = rpc
    }

    /// One call; returns the reply body as the RPC layer decoded it.
    func rawCall(program: UInt32, version: UInt32, procedure: UInt32, arguments: ByteBuffer) throws -> RPCReplyBody {
        try rpc.call(program: program, version: version, procedure: procedure, credential: credential, arguments: arguments)
    }

    /// A call whose reply must be accepted with SUCCESS; decodes the results as `R`.
    func call<A: XDREncodable, R: XDRDecodable>(_ program: UInt32, version: UInt32 = 3, _ procedure: UInt32, _ args: A,
                                                  as: R.Type = R.self) throws -> R {
        var buffer = ByteBuffer()
        args.encode(xdr: &buffer)
        let reply = try rawCall(program: program, version: version, procedure: procedure, arguments: buffer)
        guard case .success(var results) = reply else { throw NFS3TestError.unexpectedReply(reply) }
        let value = try R(xdr: &results)
        precondition(results.readableBytes == 0, "trailing bytes in results of procedure \(procedure)")
        return value
    }

    func nfs<A: XDREncodable, R: XDRDecodable>(_ procedure: NFS3Procedure, _ args: A, as: R.Type = R.self) throws -> R {
        try call(NFSProgramNumber.nfs, procedure.rawValue, args, as: R.self)
    }

    // MARK: conveniences

    func mount(_ path: String) throws -> MountMntResult {
        try call(NFSProgramNumber.mount, MountProcedure.mnt.rawValue, MountPathArgs(path: NFS3Name(path)))
    }

    func rootHandle(_ path: String = "/export") throws -> NFS3FileHandle {
        guard case .ok(let handle, _) = try mount(path) else { throw NFS3TestError.connectionClosed }
        return handle
    }

    func lookup(_ dir: NFS3FileHandle, _ name: String) throws -> NFS3LookupResult {
        try nfs(.lookup, NFS3DirOpArgs(directory: dir, name: NFS3Name(name)))
    }

    func getattr(_ fh: NFS3FileHandle) throws -> NFS3GetAttrResult {
        try nfs(.getattr, NFS3HandleArgs(object: fh))
    }

    func create(_ dir: NFS3FileHandle, _ name: String, mode: UInt32 = 0o644) throws -> NFS3CreateResult {
        try nfs(.create, NFS3CreateArgs(whereTo: NFS3DirOpArgs(directory: dir, name: NFS3Name(name)),
                                        how: .unchecked(NFS3SetAttributes(mode: mode))))
    }

    func mkdir(_ dir: NFS3FileHandle, _ name: String) throws -> NFS3MkdirResult {
        try nfs(.mkdir, NFS3MkdirArgs(whereTo: NFS3DirOpArgs(directory: dir, name: NFS3Name(name)),
                                      attributes: NFS3SetAttributes(mode: 0o755)))
    }

    func write(_ fh: NFS3FileHandle, offset: UInt64 = 0, _ data: [UInt8], stable: NFS3StableHow = .fileSync) throws -> NFS3WriteResult {
        try nfs(.write, NFS3WriteArgs(file: fh, offset: offset, count: UInt32(data.count), stable: stable,
                                      data: ByteBuffer(bytes: data)))
    }

    func read(_ fh: NFS3FileHandle, offset: UInt64 = 0, count: UInt32) throws -> NFS3ReadResult {
        try nfs(.read, NFS3ReadArgs(file: fh, offset: offset, count: count))
    }

    /// The handle of a newly created object, or a failure.
    func createdHandle(_ r: NFS3Result<NFS3NewObjectOK, NFS3WccData>) throws -> NFS3FileHandle {
        guard case .ok(let ok) = r, let fh = ok.object else { throw NFS3TestError.connectionClosed }
        return fh
    }
}

extension NFS3Result {
    var ok: OK? {
        if case .ok(let v) = self { return v }
        return nil
    }
}

/// Export rules for tests.
func rwRule(_ client: ClientSpec = .vsockCID(3), squash: SquashMode = .rootSquash, anon: UInt32 = 65534,
            sync: Bool = true, noWCC: Bool = false) -> ClientRule {
    ClientRule(client: client, options: ExportOptions(readOnly: false, squash: squash, anonUID: anon, anonGID: anon,
                                                      sync: sync, noWCC: noWCC))
}

func roRule(_ client: ClientSpec = .vsockCID(3)) -> ClientRule {
    ClientRule(client: client, options: ExportOptions(readOnly: true))
}
