import Exports
import HostFS
import NFS4State
import NFS4Wire
import NFSCore
import NIOCore
import ONCRPC
import Transport
import XDR

/// NFS (program 100003) version 4, minor versions 1 and 2 (RFC 8881, RFC 7862),
/// over HostFS. Minor version 0 (RFC 7530) is not served: its COMPOUNDs are
/// answered NFS4ERR_MINOR_VERS_MISMATCH.
///
/// Each COMPOUND is decoded on the event loop (an unreadable header:
/// GARBAGE_ARGS), then run: SEQUENCE against the session's slot (a retry is
/// answered from the reply cache without running again), then the operations
/// in order until one fails. It runs on the event loop as long as each
/// operation can complete without blocking, and from the first that cannot,
/// on the thread pool (NFS4CompoundRunner's `runWithoutBlocking`).
public struct NFS4Program: RPCProgram {
    public let program: UInt32 = NFSProgramNumber.nfs
    public let versions: ClosedRange<UInt32> = 4...4
    public let server: NFSServerContext
    let state: NFS4ServerState

    /// `delegations`: offer read delegations (RFC 8881 §10.2) to clients with
    /// a back channel. `timers`: the event loop that runs the server's own
    /// timers (a recalled delegation's revocation one lease later).
    public init(server: NFSServerContext, limits: ServerChannelLimits = .standard, leaseTime: Duration = .seconds(90),
                delegations: Bool = true, timers: any EventLoop) {
        self.server = server
        self.state = NFS4ServerState(fs: server.hostFS, limits: limits, leaseTime: leaseTime, logger: server.logger,
                                     timers: timers, threadPool: server.threadPool, delegations: delegations)
        server.shareReservations.install(state)
        server.fileChanges.install(state.delegations)
    }

    public func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        self.answer(call, context: context).future(on: context.eventLoop)
    }

    public func answer(_ call: RPCCall, context: RPCCallContext) -> RPCAnswer {
        switch call.procedure {
        case 0:
            return .now(.success(results: ByteBuffer()))
        case 1:
            return compound(call, context)
        default:
            return .now(.procedureUnavailable)
        }
    }

    /// The bytes of an RPC call header before the arguments when the credential
    /// is AUTH_SYS with no groups: what ca_maxrequestsize counts besides them.
    static let estimatedCallHeaderSize = 40 + 20

    private func compound(_ call: RPCCall, _ context: RPCCallContext) -> RPCAnswer {
        let request: NFS4CompoundRequest
        do {
            request = try NFS4CompoundRequest(decoding: call.arguments, limits: .server,
                                              rpcHeaderSize: Self.estimatedCallHeaderSize)
        } catch {
            server.logger.debug("NFSv4 COMPOUND from \(context.peer): \(error)")
            return .now(.garbageArguments)
        }
        if request.minorVersionMismatch {
            var out = context.allocator.buffer(capacity: 16 + request.tag.count)
            NFS4CompoundResponse.minorVersionMismatch(tag: request.tag).encode(xdr: &out)
            return .now(.success(results: out))
        }
        let arguments = call.arguments
        var runner = NFS4CompoundRunner(server: server, state: state, peer: context.peer, credential: call.credential,
                                        connection: context.connection.id, allocator: context.allocator)
        runner.rpcConnection = context.connection
        // On the event loop while every operation can complete without blocking
        // (no thread hop: a READ from the page cache, a WRITE to tmpfs, ...).
        let (reply, started) = runner.runWithoutBlocking(request, arguments: arguments)
        if let reply { return .now(.success(results: reply)) }
        // The rest on the pool, from the operation that would block: what ran
        // before (SEQUENCE's slot, filehandles, results) is kept, not run again.
        let begun = runner
        return .later(server.threadPool.runIfActive(eventLoop: context.eventLoop) {
            var runner = begun
            return .success(results: started ? runner.proceed(request, blocking: true)! : runner.run(request, arguments: arguments))
        })
    }
}
