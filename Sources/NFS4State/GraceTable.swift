import NFS4Wire
import Transport

/// A client as the server's stable storage keeps it (RFC 8881 §8.4.2.1): its
/// owner string, the host it connects from (from the kernel) and the AUTH_SYS
/// uid of its EXCHANGE_ID. After a restart, a client with the same owner and
/// host (and principal) may reclaim what it held.
public struct StableClient: Hashable, Sendable {
    public var key: ClientOwnerKey
    public var principal: UInt32?

    public init(key: ClientOwnerKey, principal: UInt32?) {
        self.key = key
        self.principal = principal
    }
}

/// The stable client records of this server and the grace period after a
/// restart (RFC 8881 §8.4.2, §9.11, §18.51). A value with no I/O: the server
/// writes `records` to its state directory whenever `generation` moves.
///
/// - A client is recorded when its first open succeeds, and dropped when it is
///   destroyed (DESTROY_CLIENTID) or its lease expires.
/// - A server that starts with records from its previous instance is in grace
///   for one lease time: only reclaims (OPEN CLAIM_PREVIOUS, LOCK reclaim) by
///   those clients succeed; other OPENs and LOCKs get NFS4ERR_GRACE.
/// - A reclaim outside grace, or after the client's RECLAIM_COMPLETE, is
///   NFS4ERR_NO_GRACE; by a client not recorded, NFS4ERR_RECLAIM_BAD.
/// - Grace ends early once every recorded client sent RECLAIM_COMPLETE; when
///   it ends, records of the previous instance nobody reclaimed are dropped.
public struct GraceTable: Sendable {
    public private(set) var records: Set<StableClient>
    /// Moves whenever `records` changes.
    public private(set) var generation: UInt64 = 0
    /// When grace ends; nil: not in grace (or it ended).
    public private(set) var graceEnd: ContinuousClock.Instant?
    /// The previous instance's clients that may still reclaim.
    private var previous: Set<StableClient>
    /// Previous clients that sent RECLAIM_COMPLETE (or whose records a current client took over).
    private var recovered: Set<ClientOwnerKey> = []
    /// Clients of this instance that sent RECLAIM_COMPLETE.
    private var completed: Set<ClientID> = []
    /// Clients of this instance recorded, and under which record.
    private var recordedBy: [ClientID: StableClient] = [:]

    /// `previous`: the records the last instance left; grace lasts `graceTime` from `start` when there are any.
    public init(previous: [StableClient], start: ContinuousClock.Instant, graceTime: Duration) {
        self.previous = Set(previous)
        self.records = Set(previous)
        self.graceEnd = previous.isEmpty ? nil : start + graceTime
    }

    /// Whether grace lasts at `now` (without ending it; see `inGrace`).
    public func isInGrace(at now: ContinuousClock.Instant) -> Bool {
        graceEnd.map { now < $0 } ?? false
    }

    /// Whether the server is in its grace period at `now` (ending it when its time is up).
    public mutating func inGrace(now: ContinuousClock.Instant) -> Bool {
        guard let end = graceEnd else { return false }
        if now < end { return true }
        endGrace()
        return false
    }

    /// An OPEN or LOCK that is not a reclaim (§8.4.2.1): refused while in grace,
    /// since it might take what a client is about to reclaim.
    public mutating func checkNotReclaim(now: ContinuousClock.Instant) throws(NFS4Status) {
        if inGrace(now: now) { throw .grace }
    }

    /// A reclaim by client `clientID` (`client`: its owner, host and principal).
    public mutating func checkReclaim(clientID: ClientID, client: StableClient,
                                      now: ContinuousClock.Instant) throws(NFS4Status) {
        guard inGrace(now: now), !completed.contains(clientID) else { throw .noGrace }
        guard previous.contains(client), !recovered.contains(client.key) else { throw .reclaimBad }
    }

    /// RECLAIM_COMPLETE (§18.51.4) from `clientID`; `oneFS`: for one file system only,
    /// which ends no client's recovery here.
    public mutating func reclaimComplete(clientID: ClientID, key: ClientOwnerKey, oneFS: Bool,
                                         now: ContinuousClock.Instant) throws(NFS4Status) {
        if oneFS { return }
        guard completed.insert(clientID).inserted else { throw .completeAlready }
        guard inGrace(now: now) else { return }
        if previous.contains(where: { $0.key == key }) { recovered.insert(key) }
        if previous.allSatisfy({ recovered.contains($0.key) }) { endGrace() }
    }

    /// `clientID` opened a file: its record goes to stable storage (once).
    public mutating func recordOpen(clientID: ClientID, client: StableClient) {
        guard recordedBy[clientID] != client else { return }
        recordedBy[clientID] = client
        if records.insert(client).inserted { generation += 1 }
    }

    /// Clients that are gone (destroyed, lease expired, replaced): their records go.
    public mutating func forget(_ clientIDs: [ClientID]) {
        for id in clientIDs {
            completed.remove(id)
            guard let client = recordedBy.removeValue(forKey: id) else { continue }
            // A previous instance's record that is still reclaimable stays until grace ends.
            if previous.contains(client) && graceEnd != nil && !recovered.contains(client.key) { continue }
            if !recordedBy.values.contains(client), records.remove(client) != nil { generation += 1 }
        }
    }

    private mutating func endGrace() {
        graceEnd = nil
        let current = Set(recordedBy.values)
        let stale = previous.subtracting(current)
        previous = []
        recovered = []
        if !stale.isEmpty {
            records.subtract(stale)
            generation += 1
        }
    }
}
