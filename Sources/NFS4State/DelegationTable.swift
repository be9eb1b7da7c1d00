import NFS4Wire

/// One read delegation (RFC 8881 §10.2): a client may cache a file and open
/// it for reading without asking, until the server recalls it.
public struct Delegation: Sendable, Hashable {
    public let stateID: StateID
    public let clientID: ClientID
    public let file: FileKey
    /// The NFSv4 filehandle CB_RECALL names the file by.
    public let fileHandle: [UInt8]
    /// When CB_RECALL was first sent; nil while the delegation is not recalled.
    public var recalledAt: ContinuousClock.Instant?
    /// Revoked (§10.2.1): not returned within the lease after its recall. Kept
    /// until the client frees it, so TEST_STATEID and DELEGRETURN say so.
    public var revoked: Bool
}

/// Read delegations by stateid and file (RFC 8881 §10.2, §10.4, §18.49
/// DELEGRETURN, §8.2.4). A value type with no locks and no clock of its own:
/// the server holds it under its tables' lock; the kernel leases that stand
/// behind each delegation are the server's (see `Delegations` in NFS4).
public struct DelegationTable: Sendable {
    /// Set in the `other` of every delegation stateid: told apart from open
    /// stateids (no bit) and lock stateids (`LockStateTable.lockBit`).
    public static let delegationBit: UInt64 = 1 << 62

    public let epoch: UInt32
    private var next: UInt64 = 1
    private var delegations: [UInt64: Delegation] = [:]
    private var byFile: [FileKey: Set<UInt64>] = [:]

    public init(epoch: UInt32) {
        self.epoch = epoch
    }

    public static func isDelegationStateID(_ stateID: StateID) -> Bool {
        stateID.otherLow & LockStateTable.lockBit == 0 && stateID.otherLow & delegationBit != 0
    }

    public var isEmpty: Bool { delegations.isEmpty }
    public var count: Int { delegations.count }

    /// Whether `clientID` may be given a read delegation of `file` now: it
    /// holds none yet, and no other client's delegation of it is being recalled.
    public func mayGrant(_ file: FileKey, to clientID: ClientID) -> Bool {
        for id in byFile[file] ?? [] {
            guard let d = delegations[id] else { continue }
            if d.clientID == clientID || d.recalledAt != nil || d.revoked { return false }
        }
        return true
    }

    /// A new read delegation of `file` to `clientID`.
    public mutating func grant(_ file: FileKey, fileHandle: [UInt8], to clientID: ClientID) -> Delegation {
        let other = Self.delegationBit | (next & 0x3fff_ffff_ffff_ffff)
        next += 1
        let d = Delegation(stateID: StateID(seqid: 1, otherHigh: epoch, otherLow: other), clientID: clientID, file: file,
                           fileHandle: fileHandle, recalledAt: nil, revoked: false)
        delegations[other] = d
        byFile[file, default: []].insert(other)
        return d
    }

    /// Delegations of `file` held by clients other than `except` (revoked ones aside).
    public func conflicting(_ file: FileKey, except: ClientID?) -> [Delegation] {
        (byFile[file] ?? []).compactMap { delegations[$0] }
            .filter { !$0.revoked && $0.clientID != except }
            .sorted { $0.stateID.otherLow < $1.stateID.otherLow }
    }

    public func delegation(other: UInt64) -> Delegation? { delegations[other] }

    /// Marks a delegation recalled at `now`; false if it already was (or is gone).
    public mutating func markRecalled(_ other: UInt64, now: ContinuousClock.Instant) -> Bool {
        guard var d = delegations[other], d.recalledAt == nil, !d.revoked else { return false }
        d.recalledAt = now
        delegations[other] = d
        return true
    }

    /// The delegation a stateid names for `clientID`, by the rules of §8.2.4
    /// (STALE_STATEID from another server instance, BAD_STATEID when unknown
    /// or another client's, DELEG_REVOKED once revoked).
    public func validate(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) -> Delegation {
        let d = try OpenTable.validate(stateID, epoch: epoch, clientID: clientID, in: delegations,
                                       client: \.clientID, current: \.stateID)
        if d.revoked { throw .delegRevoked }
        return d
    }

    /// DELEGRETURN (§18.6): ends the delegation. A revoked one is refused
    /// (DELEG_REVOKED); FREE_STATEID ends that.
    public mutating func giveBack(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) -> Delegation {
        let d = try validate(stateID, clientID: clientID)
        remove(d)
        return d
    }

    /// FREE_STATEID (§18.38) of a revoked delegation; a live one is LOCKS_HELD
    /// (DELEGRETURN gives it back).
    public mutating func free(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) {
        let d = try OpenTable.validate(stateID, epoch: epoch, clientID: clientID, in: delegations,
                                       client: \.clientID, current: \.stateID)
        guard d.revoked else { throw .locksHeld }
        remove(d)
    }

    /// Whether `revokeRecalled(before:)` would revoke any.
    public func hasRecalled(before deadline: ContinuousClock.Instant) -> Bool {
        delegations.values.contains { d in !d.revoked && d.recalledAt.map { $0 < deadline } == true }
    }

    /// Revokes the delegations recalled before `deadline` that were not
    /// returned (§10.4.6, after a lease period) and returns them.
    public mutating func revokeRecalled(before deadline: ContinuousClock.Instant) -> [Delegation] {
        let overdue = delegations.values.filter { d in !d.revoked && d.recalledAt.map { $0 < deadline } == true }
        return overdue.map(\.stateID.otherLow).sorted().compactMap { revoke($0) }
    }

    /// Revokes one live delegation (§10.4.6: its recall cannot succeed, or
    /// it was not returned in time) and returns it; nil if it is gone or
    /// revoked already. Kept, revoked, until the client frees it.
    public mutating func revoke(_ other: UInt64) -> Delegation? {
        guard var d = delegations[other], !d.revoked else { return nil }
        d.revoked = true
        delegations[other] = d
        return d
    }

    /// Whether the delegation is recalled and neither returned nor revoked yet.
    public func isBeingRecalled(_ other: UInt64) -> Bool {
        guard let d = delegations[other] else { return false }
        return d.recalledAt != nil && !d.revoked
    }

    /// Whether `clientID` has a revoked delegation it has not freed yet
    /// (SEQ4_STATUS_RECALLABLE_STATE_REVOKED, §18.46.3).
    public func hasRevoked(_ clientID: ClientID) -> Bool {
        delegations.values.contains { $0.clientID == clientID && $0.revoked }
    }

    /// Drops every delegation of a client (lease expired, client gone) and
    /// returns the live ones, whose kernel leases must be released.
    public mutating func releaseClient(_ clientID: ClientID) -> [Delegation] {
        let gone = delegations.values.filter { $0.clientID == clientID }
        for d in gone { remove(d) }
        return gone.filter { !$0.revoked }
    }

    private mutating func remove(_ d: Delegation) {
        let other = d.stateID.otherLow
        delegations.removeValue(forKey: other)
        byFile[d.file]?.remove(other)
        if byFile[d.file]?.isEmpty == true { byFile.removeValue(forKey: d.file) }
    }
}
