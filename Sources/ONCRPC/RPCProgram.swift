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
    /// The call's XID (for `successRecord`).
    public let xid: UInt32

    public init(peer: PeerIdentity, eventLoop: EventLoop, allocator: ByteBufferAllocator, connection: RPCConnection,
                xid: UInt32 = 0) {
        self.peer = peer
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.connection = connection
        self.xid = xid
    }
}

extension RPCCallContext {
    /// Record mark and accepted-success reply header (xid, REPLY, MSG_ACCEPTED,
    /// AUTH_NONE verifier, SUCCESS): the bytes the connection puts before the results.
    public static let successReplyHeadroom = 4 + 24

    /// An empty buffer for a call's results, with room reserved before its
    /// reader index for the record mark and reply header: the connection then
    /// writes them there and sends the reply as one buffer, instead of
    /// allocating a header buffer and copying the results behind it.
    /// `capacity` is for the results alone.
    public func makeResultsBuffer(capacity: Int) -> ByteBuffer {
        Self.makeResultsBuffer(capacity: capacity, allocator: self.allocator)
    }

    public static func makeResultsBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: successReplyHeadroom + capacity)
        buffer.moveWriterIndex(forwardBy: successReplyHeadroom)
        buffer.moveReaderIndex(forwardBy: successReplyHeadroom)
        return buffer
    }

    /// The answer `.now(.success(results:))`, as a whole reply record when `results`
    /// has the headroom (`makeResultsBuffer`): the record mark and header are written
    /// there, in the caller's own buffer (no copy while nobody else holds it), and the
    /// connection sends the record as it is.
    public func successRecord(_ results: inout ByteBuffer) -> RPCAnswer {
        let headroom = Self.successReplyHeadroom
        guard results.readerIndex >= headroom,
              let mark = RecordMarking.singleFragmentHeader(length: results.readableBytes + headroom - 4) else {
            return .now(.success(results: results))
        }
        let end = results.writerIndex
        let start = results.readerIndex - headroom
        results.moveReaderIndex(to: start)
        results.moveWriterIndex(to: start)
        results.writeInteger(mark, endianness: .big)
        RPCMessage.encodeReplyHeader(xid: self.xid, body: .success(results: ByteBuffer()), into: &results)
        assert(results.writerIndex == start + headroom)
        results.moveWriterIndex(to: end)
        return .record(results)
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
    /// The same answer as `handle`, but a call answered on the event loop at once
    /// comes back as `.now` or `.record`, without a future (`.record`: the reply
    /// goes out as one buffer, see `RPCCallContext.successRecord`). The default
    /// wraps `handle`.
    func answer(_ call: RPCCall, context: RPCCallContext) -> RPCAnswer
    /// The program's name for people (`NFS`, `MOUNT`); the default is its number.
    var name: String { get }
    /// A procedure's name for people (`READ`), or nil for one the program does not know.
    func procedureName(_ procedure: UInt32, version: UInt32) -> String?
}

/// A program's answer to a call: ready now, or later.
public enum RPCAnswer: Sendable {
    case now(RPCReplyBody)
    /// A successful reply, ready: the whole record (record mark, reply header, results),
    /// as `RPCCallContext.successRecord` makes it.
    case record(ByteBuffer)
    case later(EventLoopFuture<RPCReplyBody>)

    /// As a future (on `eventLoop` for `.now` and `.record`).
    public func future(on eventLoop: EventLoop) -> EventLoopFuture<RPCReplyBody> {
        switch self {
        case .now(let body): return eventLoop.makeSucceededFuture(body)
        case .record(var record):
            record.moveReaderIndex(forwardBy: RPCCallContext.successReplyHeadroom)
            return eventLoop.makeSucceededFuture(.success(results: record))
        case .later(let future): return future
        }
    }
}

extension RPCProgram {
    public var name: String { "\(self.program)" }
    public func procedureName(_ procedure: UInt32, version: UInt32) -> String? { nil }

    public func answer(_ call: RPCCall, context: RPCCallContext) -> RPCAnswer {
        .later(self.handle(call, context: context))
    }
}

/// The programs served on a set of connections, keyed by (program, version),
/// and the checks every call passes before a program sees it (RFC 5531 §9, in
/// the order knfsd uses: RPC version, credential, program, version).
///
/// Each version of a program may be served by its own implementation (NFSv3
/// and NFSv4 are different protocols under program 100003); a call for a
/// version nobody serves is answered PROG_MISMATCH with the lowest and highest
/// versions served for that program.
public struct RPCDispatcher: Sendable {
    public static let rpcVersion: UInt32 = 2

    struct ProgramVersion: Hashable, Sendable {
        var program: UInt32
        var version: UInt32
    }

    /// In registration order. A server serves a handful of (program, version)
    /// pairs: scanning them costs less per call than hashing a key.
    private var handlers: [Handler] = []
    struct Handler: Sendable {
        var key: ProgramVersion
        var program: any RPCProgram
    }
    /// Per program: the lowest and highest version served (PROG_MISMATCH's answer).
    private var versionRanges: [UInt32: ClosedRange<UInt32>] = [:]

    public init(programs: [any RPCProgram] = []) {
        for program in programs { self.register(program) }
    }

    /// Serves every version in `program.versions` with `program`. Two
    /// implementations for one (program, version) are a programming error.
    public mutating func register(_ program: any RPCProgram) {
        for version in program.versions {
            let key = ProgramVersion(program: program.program, version: version)
            precondition(self.handler(key) == nil, "program \(program.program) version \(version) registered twice")
            self.handlers.append(Handler(key: key, program: program))
        }
        let served = self.versionRanges[program.program]
        let low = min(served?.lowerBound ?? program.versions.lowerBound, program.versions.lowerBound)
        let high = max(served?.upperBound ?? program.versions.upperBound, program.versions.upperBound)
        self.versionRanges[program.program] = low...high
    }

    private func handler(_ key: ProgramVersion) -> (any RPCProgram)? {
        for index in self.handlers.indices where self.handlers[index].key == key { return self.handlers[index].program }
        return nil
    }

    /// Every (program, version) served, in order (for rpcbind registration).
    public var registeredVersions: [(program: UInt32, version: UInt32)] {
        self.handlers.map { ($0.key.program, $0.key.version) }.sorted { ($0.program, $0.version) < ($1.program, $1.version) }
    }

    /// `operation`'s program and procedure as their programs name them, else as numbers.
    public func names(of operation: RPCOperation) -> (program: String, procedure: String) {
        guard let handler = self.handler(ProgramVersion(program: operation.program, version: operation.version)) else {
            // A version nobody serves: the program's name if another version has one.
            let name = self.handlers.first { $0.key.program == operation.program }?.program.name
            return (name ?? "\(operation.program)", "\(operation.procedure)")
        }
        return (handler.name,
                handler.procedureName(operation.procedure, version: operation.version) ?? "\(operation.procedure)")
    }

    /// Checks the call header and hands the call to its program.
    public func dispatch(xid: UInt32, rpcVersion: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
                         credential: RPCOpaqueAuth, verifier: RPCOpaqueAuth, arguments: ByteBuffer,
                         context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        self.answer(xid: xid, rpcVersion: rpcVersion, program: program, version: version, procedure: procedure,
                    credential: credential, verifier: verifier, arguments: arguments, context: context)
            .future(on: context.eventLoop)
    }

    /// `dispatch`, with answers that are ready at once (header errors, and the
    /// program's `.now` answers) given without a future.
    public func answer(xid: UInt32, rpcVersion: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
                       credential: RPCOpaqueAuth, verifier: RPCOpaqueAuth, arguments: ByteBuffer,
                       context: RPCCallContext) -> RPCAnswer {
        guard rpcVersion == Self.rpcVersion else {
            return .now(.rpcMismatch(low: Self.rpcVersion, high: Self.rpcVersion))
        }
        let checkedCredential: RPCCredential
        switch Self.checkCredential(credential, verifier: verifier) {
        case .success(let c): checkedCredential = c
        case .failure(let status): return .now(.authError(status))
        }
        guard let handler = self.handler(ProgramVersion(program: program, version: version)) else {
            guard let served = self.versionRanges[program] else { return .now(.programUnavailable) }
            return .now(.programMismatch(low: served.lowerBound, high: served.upperBound))
        }
        let call = RPCCall(xid: xid, program: program, version: version, procedure: procedure,
                           credential: checkedCredential, arguments: arguments)
        return handler.answer(call, context: context)
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
