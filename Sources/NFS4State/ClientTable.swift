import NFS4Wire
import NIOCore
import Transport

/// Who a client record belongs to: the client's owner string **and** the
/// host it connects from (its vsock CID, address or Unix uid, from the
/// kernel). Two guests cloned from one image send the same owner string; keyed
/// by the owner alone, each EXCHANGE_ID would evict the other's state.
public struct ClientOwnerKey: Hashable, Sendable {
    public var owner: [UInt8]
    public var host: PeerHost

    public init(owner: [UInt8], host: PeerHost) {
        self.owner = owner
        self.host = host
    }
}

/// The limits this server offers a session's fore channel; CREATE_SESSION
/// gives the client the smaller of these and what it asked for.
public struct ServerChannelLimits: Sendable, Hashable {
    public var maxRequestSize: UInt32
    public var maxResponseSize: UInt32
    public var maxResponseSizeCached: UInt32
    public var maxOperations: UInt32
    public var maxRequests: UInt32

    /// 1 MiB of READ or WRITE data plus headers; 16 operations; 64 slots.
    public static let standard = ServerChannelLimits(
        maxRequestSize: 1024 * 1024 + 64 * 1024, maxResponseSize: 1024 * 1024 + 64 * 1024,
        maxResponseSizeCached: 64 * 1024, maxOperations: 16, maxRequests: 64)

    public init(maxRequestSize: UInt32, maxResponseSize: UInt32, maxResponseSizeCached: UInt32,
                maxOperations: UInt32, maxRequests: UInt32) {
        self.maxRequestSize = maxRequestSize
        self.maxResponseSize = maxResponseSize
        self.maxResponseSizeCached = maxResponseSizeCached
        self.maxOperations = maxOperations
        self.maxRequests = maxRequests
    }

    /// The fore channel's attributes (RFC 8881 §18.36.3): each the smaller of
    /// the client's and the server's; no header padding; no RDMA.
    public func negotiateFore(_ asked: ChannelAttrs) -> ChannelAttrs {
        ChannelAttrs(headerPadSize: 0,
                     maxRequestSize: min(asked.maxRequestSize, maxRequestSize),
                     maxResponseSize: min(asked.maxResponseSize, maxResponseSize),
                     maxResponseSizeCached: min(asked.maxResponseSizeCached, maxResponseSizeCached),
                     maxOperations: min(asked.maxOperations, maxOperations),
                     maxRequests: max(1, min(asked.maxRequests, maxRequests)),
                     rdmaIRD: nil)
    }
}

/// An identifier the RPC layer gives each connection, so sessions know which
/// connections are bound to them (fore channel, back channel).
public typealias ConnectionID = UInt64

/// One session (RFC 8881 §2.10).
public struct Session: Sendable {
    public let id: SessionID
    public let clientID: ClientID
    public let foreChannel: ChannelAttrs
    /// The back channel's attributes, echoed as the client asked (as knfsd does).
    public let backChannel: ChannelAttrs
    public var callbackProgram: UInt32
    /// The client asked for a back channel (CREATE_SESSION4_FLAG_CONN_BACK_CHAN
    /// or BIND_CONN_TO_SESSION with the back direction).
    public var wantsBackChannel: Bool
    /// The connection callbacks go out on; nil while the client has bound none
    /// (SEQ4_STATUS_CB_PATH_DOWN).
    public var backChannelConnection: ConnectionID?
    public var foreConnections: Set<ConnectionID>
    public var slots: SlotTable
}

/// One client record (RFC 8881 §2.4, §18.35).
public struct ClientRecord: Sendable {
    public let clientID: ClientID
    public let key: ClientOwnerKey
    public let verifier: Verifier4
    /// The AUTH_SYS uid of the EXCHANGE_ID that made it (§2.4.3's principal).
    public let principal: UInt32?
    public var confirmed: Bool
    /// The csa_sequence the next CREATE_SESSION must carry.
    public var createSessionSequence: UInt32
    /// The last CREATE_SESSION's result, for its retransmission (§18.36.4).
    var lastCreateSession: Session?
    public var lastRenewal: ContinuousClock.Instant
    public var sessions: Set<SessionID>
}

/// Client records and their sessions (RFC 8881 §18.35 EXCHANGE_ID,
/// §18.36 CREATE_SESSION, §18.46 SEQUENCE, §18.37 DESTROY_SESSION,
/// §18.50 DESTROY_CLIENTID, and leases, §8.3). A value type with no locks:
/// the server wraps it in one lock; tests drive it directly with their own clock.
public struct ClientTable: Sendable {
    public let limits: ServerChannelLimits
    public let leaseTime: Duration
    /// Differs from one server start to the next: the high half of every
    /// client ID and session ID, so IDs from before a restart are told apart.
    public let epoch: UInt32
    private var nextID: UInt64 = 1
    public private(set) var clients: [ClientID: ClientRecord] = [:]
    public private(set) var sessions: [SessionID: Session] = [:]

    public init(limits: ServerChannelLimits = .standard, leaseTime: Duration = .seconds(90), epoch: UInt32) {
        self.limits = limits
        self.leaseTime = leaseTime
        self.epoch = epoch
    }

    private mutating func makeID() -> UInt64 {
        defer { nextID += 1 }
        return UInt64(epoch) << 32 | (nextID & 0xffff_ffff)
    }

    // MARK: EXCHANGE_ID

    public struct Exchange: Sendable, Equatable {
        public var clientID: ClientID
        /// eir_sequenceid: the csa_sequence the client's CREATE_SESSION must carry.
        public var sequenceID: UInt32
        /// EXCHGID4_FLAG_CONFIRMED_R.
        public var confirmed: Bool
    }

    /// EXCHANGE_ID (§18.35.5), for a client `owner` with `verifier`
    /// connecting from `host`. `update`: EXCHGID4_FLAG_UPD_CONFIRMED_REC_A.
    public mutating func exchangeID(owner: [UInt8], verifier: Verifier4, host: PeerHost, principal: UInt32?,
                                    update: Bool, now: ContinuousClock.Instant) throws(NFS4Status) -> Exchange {
        let key = ClientOwnerKey(owner: owner, host: host)
        let confirmed = clients.values.first { $0.key == key && $0.confirmed }
        let unconfirmed = clients.values.first { $0.key == key && !$0.confirmed }
        if update {
            guard let confirmed else { throw .noent }
            guard confirmed.verifier == verifier else { throw .notSame }
            guard confirmed.principal == principal else { throw .perm }
            return Exchange(clientID: confirmed.clientID, sequenceID: confirmed.createSessionSequence, confirmed: true)
        }
        if let confirmed {
            if confirmed.verifier == verifier {
                if confirmed.principal == principal {
                    // Case 2: the same client again (a new connection, a retry).
                    return Exchange(clientID: confirmed.clientID, sequenceID: confirmed.createSessionSequence,
                                    confirmed: true)
                }
                // Case 3: another principal claims a client with state.
                if !confirmed.sessions.isEmpty { throw .clidInuse }
            }
            // Case 5 (client restarted: a new verifier): a new unconfirmed
            // record; the old one goes when the new one is confirmed.
        }
        if let unconfirmed { removeClient(unconfirmed.clientID) }
        let record = ClientRecord(clientID: makeID(), key: key, verifier: verifier, principal: principal,
                                  confirmed: false, createSessionSequence: 1, lastCreateSession: nil,
                                  lastRenewal: now, sessions: [])
        clients[record.clientID] = record
        return Exchange(clientID: record.clientID, sequenceID: 1, confirmed: false)
    }

    // MARK: CREATE_SESSION

    public struct Creation: Sendable {
        public var session: Session
        /// Client records this confirmation replaced (the same owner's earlier
        /// incarnation): their opens, locks and delegations must be released.
        public var replacedClients: [ClientID]
        /// A retransmitted CREATE_SESSION answered from the cache.
        public var isReplay: Bool
    }

    /// CREATE_SESSION (§18.36.4).
    public mutating func createSession(clientID: ClientID, sequence: UInt32, fore: ChannelAttrs, back: ChannelAttrs,
                                       callbackProgram: UInt32, backChannelOnThisConnection: Bool,
                                       connection: ConnectionID, principal: UInt32?,
                                       now: ContinuousClock.Instant) throws(NFS4Status) -> Creation {
        guard var record = clients[clientID] else { throw .staleClientid }
        if sequence == record.createSessionSequence &- 1, let cached = record.lastCreateSession {
            return Creation(session: cached, replacedClients: [], isReplay: true)
        }
        guard sequence == record.createSessionSequence else { throw .seqMisordered }
        if !record.confirmed && record.principal != principal { throw .clidInuse }
        guard fore.maxOperations >= 2, fore.maxRequests >= 1 else { throw .toosmall }
        var replaced: [ClientID] = []
        if !record.confirmed {
            for other in clients.values where other.key == record.key && other.confirmed {
                replaced.append(other.clientID)
                removeClient(other.clientID)
            }
            record.confirmed = true
        }
        let negotiated = limits.negotiateFore(fore)
        let id = SessionID(high: UInt64(epoch) << 32 | (clientID & 0xffff_ffff), low: makeID())
        let session = Session(id: id, clientID: clientID, foreChannel: negotiated, backChannel: back,
                              callbackProgram: callbackProgram, wantsBackChannel: backChannelOnThisConnection,
                              backChannelConnection: backChannelOnThisConnection ? connection : nil,
                              foreConnections: [connection], slots: SlotTable(count: Int(negotiated.maxRequests)))
        record.createSessionSequence &+= 1
        record.lastCreateSession = session
        record.lastRenewal = now
        record.sessions.insert(id)
        clients[clientID] = record
        sessions[id] = session
        return Creation(session: session, replacedClients: replaced, isReplay: false)
    }

    // MARK: SEQUENCE

    /// SEQ4_STATUS_* flags (§18.46.3) the server reports.
    public struct StatusFlags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let callbackPathDown = StatusFlags(rawValue: 0x0000_0001)
        public static let expiredAllStateRevoked = StatusFlags(rawValue: 0x0000_0004)
        public static let recallableStateRevoked = StatusFlags(rawValue: 0x0000_0040)
        public static let callbackPathDownSession = StatusFlags(rawValue: 0x0000_0200)
    }

    public struct Sequenced: Sendable {
        public var verdict: SlotTable.Verdict
        public var clientID: ClientID
        public var highestSlotID: UInt32
        public var targetHighestSlotID: UInt32
        public var statusFlags: StatusFlags
    }

    /// SEQUENCE (§18.46.4): finds the session, binds `connection` to its fore
    /// channel (a client that reconnects sends SEQUENCE on the new connection,
    /// §2.10.3.1), judges the slot, and renews the client's lease.
    public mutating func sequence(sessionID: SessionID, slotID: UInt32, sequenceID: UInt32, highestSlotID: UInt32,
                                  requestDigest: UInt64, connection: ConnectionID,
                                  now: ContinuousClock.Instant) throws(NFS4Status) -> Sequenced {
        guard var session = sessions[sessionID] else { throw .badsession }
        guard highestSlotID < UInt32(session.slots.count) else { throw .badHighSlot }
        let verdict = session.slots.begin(slotID: slotID, sequenceID: sequenceID, requestDigest: requestDigest)
        session.foreConnections.insert(connection)
        sessions[sessionID] = session
        clients[session.clientID]?.lastRenewal = now
        var flags: StatusFlags = []
        if session.wantsBackChannel && session.backChannelConnection == nil {
            flags.insert([.callbackPathDown, .callbackPathDownSession])
        }
        let top = UInt32(session.slots.count - 1)
        return Sequenced(verdict: verdict, clientID: session.clientID, highestSlotID: top, targetHighestSlotID: top,
                         statusFlags: flags)
    }

    /// Ends a SEQUENCE'd request (see `SlotTable.complete`).
    public mutating func complete(sessionID: SessionID, slotID: UInt32, reply: ByteBuffer?, cache: Bool) {
        sessions[sessionID]?.slots.complete(slotID: slotID, reply: reply, cache: cache)
    }

    // MARK: Connections

    /// BIND_CONN_TO_SESSION (§18.34) and BACKCHANNEL_CTL's connection part:
    /// binds `connection` for the fore channel, the back channel, or both.
    public mutating func bind(connection: ConnectionID, to sessionID: SessionID, fore: Bool,
                              back: Bool) throws(NFS4Status) {
        guard var session = sessions[sessionID] else { throw .badsession }
        if fore { session.foreConnections.insert(connection) }
        if back {
            session.wantsBackChannel = true
            session.backChannelConnection = connection
        }
        sessions[sessionID] = session
    }

    /// The back channel on `connection` failed (no answer to a callback, or
    /// no credential to call with): the session's callback path is down
    /// until the client binds a connection again. A newer binding stays.
    public mutating func backChannelLost(_ sessionID: SessionID, connection: ConnectionID) {
        guard sessions[sessionID]?.backChannelConnection == connection else { return }
        sessions[sessionID]?.backChannelConnection = nil
    }

    /// A connection closed: it no longer carries any session's channels.
    /// Returns the sessions that lost their back channel (their callback path
    /// is down until the client binds another connection).
    @discardableResult
    public mutating func connectionClosed(_ connection: ConnectionID) -> [SessionID] {
        var lost: [SessionID] = []
        for (id, var session) in sessions where session.foreConnections.contains(connection)
            || session.backChannelConnection == connection {
            session.foreConnections.remove(connection)
            if session.backChannelConnection == connection {
                session.backChannelConnection = nil
                lost.append(id)
            }
            sessions[id] = session
        }
        return lost
    }

    // MARK: Ending

    /// DESTROY_SESSION (§18.37).
    public mutating func destroySession(_ sessionID: SessionID) throws(NFS4Status) {
        guard let session = sessions.removeValue(forKey: sessionID) else { throw .badsession }
        clients[session.clientID]?.sessions.remove(sessionID)
    }

    /// DESTROY_CLIENTID (§18.50): refused while the client has sessions.
    public mutating func destroyClient(_ clientID: ClientID) throws(NFS4Status) {
        guard let record = clients[clientID] else { throw .staleClientid }
        guard record.sessions.isEmpty else { throw .clientidBusy }
        removeClient(clientID)
    }

    private mutating func removeClient(_ clientID: ClientID) {
        guard let record = clients.removeValue(forKey: clientID) else { return }
        for id in record.sessions { sessions.removeValue(forKey: id) }
    }

    /// Whether `expireLeases(now:)` would end any lease (no allocation: asked per COMPOUND).
    public func hasExpiredLease(now: ContinuousClock.Instant) -> Bool {
        clients.values.contains { now - $0.lastRenewal > leaseTime }
    }

    /// Removes every client whose lease ran out by `now` (§8.3) and returns
    /// them: their state must be released.
    public mutating func expireLeases(now: ContinuousClock.Instant) -> [ClientID] {
        let expired = clients.values.filter { now - $0.lastRenewal > leaseTime }.map(\.clientID)
        for id in expired { removeClient(id) }
        return expired.sorted()
    }

    /// Whether `clientID` names a client of this server instance (a client ID
    /// from before a restart is STALE_CLIENTID, §18.35).
    public func knows(_ clientID: ClientID) -> Bool { clients[clientID] != nil }
}
