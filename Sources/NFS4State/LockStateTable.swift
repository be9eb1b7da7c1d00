import NFS4Wire

/// A lock-owner (RFC 8881 §2.4): like an open-owner, a client and the opaque owner it named.
public typealias LockOwner = OpenOwner

/// One lock-owner's locks on one file, as a stateid (RFC 8881 §8.2, §9.5).
/// The locks themselves are the kernel's (HostFS.ByteRangeLocks); this is
/// their stateid and the open they came from.
public struct LockState: Sendable, Hashable {
    public var stateID: StateID
    public let owner: LockOwner
    public let file: FileKey
    /// The open stateid's `other` the lock-owner started from (open-to-lock-owner).
    public let openOther: UInt64
    /// The file's handle as the server gave it (to release the locks at FREE_STATEID).
    public let handle: [UInt8]
}

/// Lock stateids (RFC 8881 §18.10 LOCK, §18.12 LOCKU, §18.38 FREE_STATEID).
/// Their `other` comes from the OpenTable's counter space by a flag bit, so
/// an open stateid and a lock stateid never share one.
public struct LockStateTable: Sendable {
    public let epoch: UInt32
    private var next: UInt64 = 1
    private var locks: [UInt64: LockState] = [:]
    private var byOwnerAndFile: [Key: UInt64] = [:]

    struct Key: Hashable {
        var owner: LockOwner
        var file: FileKey
    }

    /// Set in every lock stateid's `other` (low half).
    public static let lockBit: UInt64 = 1 << 63

    public init(epoch: UInt32) {
        self.epoch = epoch
    }

    /// LOCK with open_to_lock_owner4: the owner's stateid for the file (a new
    /// one, or the existing one when the owner already has locks there).
    public mutating func begin(owner: LockOwner, file: FileKey, openOther: UInt64, handle: [UInt8]) -> LockState {
        let key = Key(owner: owner, file: file)
        if let other = byOwnerAndFile[key], let state = locks[other] { return state }
        let other = Self.lockBit | next
        next += 1
        let state = LockState(stateID: StateID(seqid: 0, otherHigh: epoch, otherLow: other), owner: owner, file: file,
                              openOther: openOther, handle: handle)
        locks[other] = state
        byOwnerAndFile[key] = other
        return state
    }

    /// The lock state a stateid names, for `clientID` (same rules as open stateids, §8.2.4).
    public func validate(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) -> LockState {
        try OpenTable.validate(stateID, epoch: epoch, clientID: clientID, in: locks, client: \.owner.clientID,
                               current: \.stateID)
    }

    /// A granted LOCK or LOCKU: the stateid's seqid advances.
    public mutating func advance(_ other: UInt64) -> StateID? {
        guard var state = locks[other] else { return nil }
        state.stateID.seqid = OpenTable.nextSeqid(state.stateID.seqid)
        locks[other] = state
        return state.stateID
    }

    /// Whether `stateID` names a lock stateid of this table (for routing).
    public static func isLockStateID(_ stateID: StateID) -> Bool { stateID.otherLow & lockBit != 0 }

    /// FREE_STATEID of a lock stateid: the caller releases the kernel locks.
    public mutating func free(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) -> LockState {
        let state = try validate(StateID(seqid: 0, otherHigh: stateID.otherHigh, otherLow: stateID.otherLow),
                                 clientID: clientID)
        remove(state)
        return state
    }

    /// The lock states that came from an open (CLOSE with locks held is NFS4ERR_LOCKS_HELD).
    public func states(fromOpen openOther: UInt64) -> [LockState] {
        locks.values.filter { $0.openOther == openOther }
    }

    public func state(_ other: UInt64) -> LockState? { locks[other] }

    /// Drops every lock state of a client.
    public mutating func releaseClient(_ clientID: ClientID) {
        for state in locks.values where state.owner.clientID == clientID { remove(state) }
    }

    public mutating func remove(_ state: LockState) {
        let other = state.stateID.otherLow
        locks.removeValue(forKey: other)
        byOwnerAndFile.removeValue(forKey: Key(owner: state.owner, file: state.file))
    }

    public var count: Int { locks.count }
}
