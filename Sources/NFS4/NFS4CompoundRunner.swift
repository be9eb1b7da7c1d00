import Exports
import HostFS
import NFS4State
import NFS4Wire
import NFSCore
import NIOCore
import ONCRPC
import Transport
import XDR

/// One COMPOUND's run (RFC 8881 §16.2.3): the operations in order, each
/// with the current and saved filehandles the ones before it left, until one
/// fails. Runs on the event loop while each operation can complete without
/// blocking, then on the thread pool from the first that cannot (see
/// `runWithoutBlocking`); the state tables are locked only around their own
/// reads and changes.
struct NFS4CompoundRunner {
    let server: NFSServerContext
    let state: NFS4ServerState
    let peer: PeerIdentity
    let credential: RPCCredential
    let connection: ConnectionID
    let allocator: ByteBufferAllocator
    /// The connection itself, for a back channel bound on it (Callbacks.swift).
    var rpcConnection: RPCConnection?

    var current: NFS4Node?
    var saved: NFS4Node?
    /// The current stateid (RFC 8881 §16.2.3.1.2), for the special stateid that names it.
    var currentStateID: StateID?
    /// The session's client, from SEQUENCE.
    var clientID: ClientID?
    /// This COMPOUND's minor version (1 or 2).
    var minorVersion: UInt32 = 1
    /// The session SEQUENCE named.
    var sessionID: SessionID?
    var pseudoFS: NFS4PseudoFS?

    // Progress, kept here so that a COMPOUND begun on the event loop goes on on the pool.
    /// The results of the operations run so far (SEQUENCE's first).
    var results: [NFS4Result] = []
    /// The index of the next operation to run (1 after SEQUENCE).
    var next = 0
    /// The slot SEQUENCE took, to complete with the reply.
    var sequenced: (session: SessionID, slot: UInt32, cache: Bool)?
    /// The session's ca_maxresponsesize_cached.
    var cacheLimit = 0

    init(server: NFSServerContext, state: NFS4ServerState, peer: PeerIdentity, credential: RPCCredential,
         connection: ConnectionID, allocator: ByteBufferAllocator) {
        self.server = server
        self.state = state
        self.peer = peer
        self.credential = credential
        self.connection = connection
        self.allocator = allocator
    }

    var fs: HostFileSystem { server.hostFS }

    /// The AUTH_SYS uid as sent (EXCHANGE_ID's principal, §2.4.3).
    var principal: UInt32? {
        if case .sys(let p) = credential { return p.uid }
        return nil
    }

    /// Operations that may begin a COMPOUND without SEQUENCE, each only alone (§2.10.6.2 ... §18.x.3).
    static let sessionless: Set<NFS4Opcode> = [.exchangeID, .createSession, .destroySession, .destroyClientid,
                                               .bindConnToSession]

    /// Runs `request` and returns the COMPOUND4res bytes (on the thread pool).
    mutating func run(_ request: NFS4CompoundRequest, arguments: ByteBuffer) -> ByteBuffer {
        state.expireLeases(now: .now)
        if let reply = begin(request, arguments: arguments) { return reply }
        return proceed(request, blocking: true)!
    }

    /// Runs `request` on the event loop as far as it can without blocking: the
    /// reply, or nil when an operation would block (or leases need work first);
    /// then `proceed(request, blocking: true)` on the pool runs the rest from
    /// `next`, with what the operations before left (filehandles, stateid,
    /// results, the slot). `started` says whether `begin` ran: if not (the
    /// COMPOUND is too large, holds an operation the event loop never runs, or
    /// leases need work), the pool runs the whole COMPOUND with `run`.
    mutating func runWithoutBlocking(_ request: NFS4CompoundRequest, arguments: ByteBuffer) -> (reply: ByteBuffer?, started: Bool) {
        guard arguments.readableBytes <= EventLoopLimits.maximumCompound,
              request.operations.allSatisfy(Self.mayRunWithoutBlocking),
              state.leasesNeedNoWork(now: .now) else {
            return (nil, false)
        }
        if let reply = begin(request, arguments: arguments) { return (reply, true) }
        return (proceed(request, blocking: false), true)
    }

    /// The first operation decides whether the COMPOUND runs in a session:
    /// SEQUENCE against its slot (only tables, no system calls). Returns the
    /// reply when the COMPOUND ends here (a replay from the cache, an error);
    /// otherwise the operations from `next` are to run.
    mutating func begin(_ request: NFS4CompoundRequest, arguments: ByteBuffer) -> ByteBuffer? {
        minorVersion = request.minorVersion
        let operations = request.operations
        guard let first = operations.first else { return nil }
        if case .sequence(let args) = first {
            let totalOps = Int(request.declaredOperationCount)
            let size = arguments.readableBytes + NFS4Program.estimatedCallHeaderSize
            let digest = requestDigest(arguments.readableBytesView)
            let now = ContinuousClock.now
            let connection = self.connection
            let host = peer.host
            let outcome: Result<(ClientTable.Sequenced, cacheLimit: Int), NFS4Status> = state.tables.withLockedValue { t in
                guard let session = t.clients.sessions[args.sessionID], t.owns(session.clientID, host: host) else {
                    return .failure(.badsession)
                }
                if totalOps > Int(session.foreChannel.maxOperations) { return .failure(.tooManyOps) }
                if size > Int(session.foreChannel.maxRequestSize) { return .failure(.reqTooBig) }
                do {
                    return .success((try t.clients.sequence(sessionID: args.sessionID, slotID: args.slotID,
                                                            sequenceID: args.sequenceID,
                                                            highestSlotID: args.highestSlotID, requestDigest: digest,
                                                            connection: connection, now: now),
                                     Int(session.foreChannel.maxResponseSizeCached)))
                } catch {
                    return .failure(error as? NFS4Status ?? .serverfault)
                }
            }
            switch outcome {
            case .failure(let status):
                return encode(NFS4CompoundResponse(tag: request.tag, results: [.sequence(.error(status))]))
            case .success(let (s, limit)):
                cacheLimit = limit
                switch s.verdict {
                case .replay(let reply):
                    return reply
                case .error(let status):
                    return encode(NFS4CompoundResponse(tag: request.tag, results: [.sequence(.error(status))]))
                case .execute:
                    clientID = s.clientID
                    sessionID = args.sessionID
                    sequenced = (args.sessionID, args.slotID, args.cacheThis)
                    results.append(.sequence(.ok(NFS4SequenceResOK(
                        sessionID: args.sessionID, sequenceID: args.sequenceID, slotID: args.slotID,
                        highestSlotID: s.highestSlotID, targetHighestSlotID: s.targetHighestSlotID,
                        statusFlags: s.statusFlags.rawValue | delegationStatusFlags(s.clientID)))))
                    next = 1
                }
            }
        } else if Self.sessionless.contains(first.opcode) {
            if operations.count > 1 || request.failure != nil {
                return encode(NFS4CompoundResponse(tag: request.tag, results: [.failed(first.opcode, .notOnlyOp)]))
            }
        } else {
            return encode(NFS4CompoundResponse(tag: request.tag, results: [.failed(first.opcode, .opNotInSession)]))
        }
        return nil
    }

    /// Runs the operations from `next` until one fails, then encodes the reply
    /// and completes the slot. `blocking` false (the event loop): each operation
    /// only as `performWithoutBlocking` can; at the first it declines, returns
    /// nil with `next` at that operation and nothing of it done.
    mutating func proceed(_ request: NFS4CompoundRequest, blocking: Bool) -> ByteBuffer? {
        let operations = request.operations
        var failed = false
        while next < operations.count {
            let operation = operations[next]
            if case .sequence = operation {
                results.append(.failed(.sequence, .sequencePos))
                failed = true
                break
            }
            let result: NFS4Result
            if blocking {
                result = perform(operation)
            } else {
                guard let r = performWithoutBlocking(operation) else { return nil }
                result = r
            }
            results.append(result)
            next += 1
            if result.status != .ok {
                failed = true
                break
            }
        }
        if !failed, let failure = request.failure {
            // The operation the decoder stopped at (BADXDR, OP_ILLEGAL, NOTSUPP, ...).
            results.append(failure.result)
        }
        let reply = encode(NFS4CompoundResponse(tag: request.tag, results: results))
        if let sequenced {
            // A reply larger than ca_maxresponsesize_cached is not kept (a retry of it is
            // RETRY_UNCACHED_REP): the cache holds at most that much per slot.
            let cache = sequenced.cache && reply.readableBytes <= cacheLimit
            let client = clientID
            let results = self.results
            state.tables.withLockedValue { t in
                t.clients.complete(sessionID: sequenced.session, slotID: sequenced.slot, reply: reply, cache: cache)
                if let client, t.clients.clients[client] != nil {
                    for result in results { t.operationCounts[client, default: [:]][result.opcode, default: 0] += 1 }
                }
            }
        }
        return reply
    }

    func encode(_ response: NFS4CompoundResponse) -> ByteBuffer {
        var out = allocator.buffer(capacity: 512)
        response.encode(xdr: &out)
        return out
    }

    /// One operation; a thrown status becomes its error result.
    mutating func perform(_ operation: NFS4Operation) -> NFS4Result {
        do {
            return try execute(operation)
        } catch {
            let status = NFS4ErrorMapping.status(for: error)
            if status == .serverfault || status == .io {
                server.logger.warning("NFSv4 \(operation.opcode) from \(peer): \(error)")
            } else {
                server.logger.debug("NFSv4 \(operation.opcode) from \(peer): \(status.rfcName) (\(error))")
            }
            return .failed(operation.opcode, status == .ok ? .serverfault : status)
        }
    }

    // MARK: Filehandles and authorization

    mutating func pseudo() -> NFS4PseudoFS {
        if let pseudoFS { return pseudoFS }
        let made = NFS4PseudoFS(server: server, peer: peer)
        pseudoFS = made
        return made
    }

    func currentNode() throws -> NFS4Node {
        guard let current else { throw NFS4Status.nofilehandle }
        return current
    }

    /// The current filehandle as an export's object, authorized for this call.
    func object(modifies: Bool = false) throws -> (ObjectHandle, CallAuthorization) {
        switch try currentNode() {
        case .pseudo: throw modifies ? NFS4Status.rofs : NFS4Status.inval
        case .object(let h): return (h, try authorize(h, modifies: modifies))
        }
    }

    func authorize(_ h: ObjectHandle, modifies: Bool) throws -> CallAuthorization {
        try CallAuthorization.authorize(h, modifies: modifies, table: server.authTable, peer: peer, credential: credential)
    }

    /// The saved filehandle as an object of the same export as `first` (RENAME, LINK).
    func savedObject(sameExportAs first: ObjectHandle) throws -> ObjectHandle {
        guard let saved else { throw NFS4Status.nofilehandle }
        guard case .object(let h) = saved else { throw NFS4Status.xdev }
        guard h.exportID == first.exportID else { throw NFS4Status.xdev }
        return h
    }

    func requireSession() throws -> ClientID {
        guard let clientID else { throw NFS4Status.opNotInSession }
        return clientID
    }

    /// A stateid as sent, with the current-stateid special value replaced.
    func resolve(_ stateID: StateID) throws -> StateID {
        if stateID.special == .current {
            guard let currentStateID else { throw NFS4Status.badStateid }
            return currentStateID
        }
        return stateID
    }

    static func fileKey(_ a: FileAttributes) -> FileKey { FileKey(fsid: a.fsid, fileid: a.fileid) }
}
