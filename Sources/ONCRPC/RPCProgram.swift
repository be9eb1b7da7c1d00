import NIOCore
import Transport

/// What a program's handler knows about the call beyond its arguments.
public struct RPCCallContext: Sendable {
    /// Who the kernel says is on the other end of this connection.
    public let peer: PeerIdentity
    public let eventLoop: EventLoop
    public let allocator: ByteBufferAllocator
    /// The connection itself, for calls back to the client (NFSv4.1 backchannel).
    public let connection: RPCConnection

    public init(peer: PeerIdentity, eventLoop: EventLoop, allocator: ByteBufferAllocator, connection: RPCConnection) {
        self.peer = peer
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.connection = connection
    }
}

/// One RPC program (for example NFS, 100003) with a range of versions.
public protocol RPCProgram: Sendable {
    var program: UInt32 { get }
    var versions: ClosedRange<UInt32> { get }
    /// Handles a call whose program and version are in range and whose
    /// credential has been checked. Returns `.procedureUnavailable` for an
    /// unknown procedure and `.garbageArguments` for undecodable arguments.
    /// The future must complete on `context.eventLoop`.
    func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody>
}

/// The programs served on a set of connections, and the checks every call
/// passes before a program sees it (RFC 5531 §9, in the order knfsd uses:
/// RPC version, credential, program, version).
public struct RPCDispatcher: Sendable {
    public static let rpcVersion: UInt32 = 2
    private var programs: [UInt32: any RPCProgram] = [:]

    public init(programs: [any RPCProgram] = []) {
        for program in programs { self.register(program) }
    }

    public mutating func register(_ program: any RPCProgram) {
        self.programs[program.program] = program
    }

    public var registeredPrograms: [(program: UInt32, versions: ClosedRange<UInt32>)] {
        self.programs.values.map { ($0.program, $0.versions) }.sorted { $0.program < $1.program }
    }

    /// Checks the call header and hands the call to its program.
    public func dispatch(xid: UInt32, rpcVersion: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
                         credential: RPCOpaqueAuth, verifier: RPCOpaqueAuth, arguments: ByteBuffer,
                         context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        guard rpcVersion == Self.rpcVersion else {
            return context.eventLoop.makeSucceededFuture(.rpcMismatch(low: Self.rpcVersion, high: Self.rpcVersion))
        }
        let checkedCredential: RPCCredential
        switch Self.checkCredential(credential, verifier: verifier) {
        case .success(let c): checkedCredential = c
        case .failure(let status): return context.eventLoop.makeSucceededFuture(.authError(status))
        }
        guard let handler = self.programs[program] else {
            return context.eventLoop.makeSucceededFuture(.programUnavailable)
        }
        guard handler.versions.contains(version) else {
            return context.eventLoop.makeSucceededFuture(
                .programMismatch(low: handler.versions.lowerBound, high: handler.versions.upperBound))
        }
        let call = RPCCall(xid: xid, program: program, version: version, procedure: procedure,
                           credential: checkedCredential, arguments: arguments)
        return handler.handle(call, context: context)
    }

    /// AUTH_NONE and AUTH_SYS are accepted, each with an AUTH_NONE verifier;
    /// any other flavor is answered AUTH_BADCRED, as knfsd does for a flavor
    /// it does not speak.
    public static func checkCredential(_ credential: RPCOpaqueAuth, verifier: RPCOpaqueAuth) -> Result<RPCCredential, RPCAuthStatus> {
        switch credential.flavor {
        case RPCAuthFlavor.none:
            guard credential.body.readableBytes == 0 else { return .failure(.badCredential) }
            guard verifier.flavor == RPCAuthFlavor.none, verifier.body.readableBytes == 0 else {
                return .failure(.badVerifier)
            }
            return .success(.none)
        case RPCAuthFlavor.sys:
            guard let parameters = try? AuthSysParameters(credentialBody: credential.body) else {
                return .failure(.badCredential)
            }
            guard verifier.flavor == RPCAuthFlavor.none, verifier.body.readableBytes == 0 else {
                return .failure(.badVerifier)
            }
            return .success(.sys(parameters))
        default:
            return .failure(.badCredential)
        }
    }
}
