import NFS4State
import NFS4Wire

// The grace period and reclaims after a restart (RFC 8881 §8.4.2, §9.11,
// §18.51), over the GraceTable in NFS4Tables; the records' file is written
// here, after the tables' lock is released.
extension NFS4ServerState {
    /// The stable record of `clientID` (its owner, host and principal).
    private static func stableClient(_ clientID: ClientID, in t: NFS4Tables) throws(NFS4Status) -> StableClient {
        guard let record = t.clients.clients[clientID] else { throw .staleClientid }
        return StableClient(key: record.key, principal: record.principal)
    }

    /// An OPEN (CLAIM_NULL, CLAIM_FH), LOCK or LOCKT that is not a reclaim: NFS4ERR_GRACE in grace.
    func checkNotReclaim() throws {
        try tables.withLockedValue { t in try t.grace.checkNotReclaim(now: .now) }
    }

    /// OPEN CLAIM_PREVIOUS or LOCK with reclaim: NO_GRACE outside grace, RECLAIM_BAD from a client not recorded.
    func checkReclaim(_ clientID: ClientID) throws {
        try tables.withLockedValue { t in
            try t.grace.checkReclaim(clientID: clientID, client: try Self.stableClient(clientID, in: t), now: .now)
        }
    }

    /// RECLAIM_COMPLETE (§18.51): ends this client's reclaims, and grace once every recorded client sent it.
    func reclaimComplete(_ clientID: ClientID, oneFS: Bool) throws {
        try tables.withLockedValue { t in
            let client = try Self.stableClient(clientID, in: t)
            try t.grace.reclaimComplete(clientID: clientID, key: client.key, oneFS: oneFS, now: .now)
        }
        persistClientRecords()   // grace may have ended, dropping the records nobody reclaimed
    }

    /// A client's open succeeded: its record is kept in the state directory
    /// before the reply, so a restart right after still knows it.
    func recordOpen(_ clientID: ClientID) {
        tables.withLockedValue { t in
            guard let client = try? Self.stableClient(clientID, in: t) else { return }
            t.grace.recordOpen(clientID: clientID, client: client)
        }
        persistClientRecords()
    }

    /// Writes the records if they changed (outside the tables' lock).
    func persistClientRecords() {
        let (records, generation) = tables.withLockedValue { t in
            _ = t.grace.inGrace(now: .now)   // a grace period whose time is up ends here
            return (t.grace.records, t.grace.generation)
        }
        guard generation > 0 else { return }
        do {
            try clientRecords.store(records, generation: generation)
        } catch {
            logger.error("NFSv4 client records: \(error); clients cannot reclaim after a restart")
        }
    }
}
