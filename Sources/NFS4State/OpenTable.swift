import NFS4Wire
import Synchronization

/// An `OpenTable`'s count of denying opens, read with one atomic load.
public final class DenyingOpensGauge: Sendable {
    fileprivate let value = Atomic<Int>(0)
    public init() {}
    public var anyDenial: Bool { value.load(ordering: .acquiring) > 0 }
}

/// A file as the state layer knows it (the export's fsid and the file's id).
public struct FileKey: Hashable, Sendable {
    public var fsid: UInt64
    public var fileid: UInt64
    public init(fsid: UInt64, fileid: UInt64) {
        self.fsid = fsid
        self.fileid = fileid
    }
}

/// OPEN4_SHARE_ACCESS_* / OPEN4_SHARE_DENY_* bits (RFC 8881 §18.16.3).
public struct ShareBits: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = ShareBits(rawValue: 1)
    public static let write = ShareBits(rawValue: 2)
    public static let both: ShareBits = [.read, .write]
}

/// An open-owner (RFC 8881 §2.4): a client and the opaque owner it named.
public struct OpenOwner: Hashable, Sendable {
    public var clientID: ClientID
    public var owner: [UInt8]
    public init(clientID: ClientID, owner: [UInt8]) {
        self.clientID = clientID
        self.owner = owner
    }
}

/// One open-owner's open of one file: its stateid and share reservation.
public struct OpenState: Sendable, Hashable {
    public var stateID: StateID
    public let owner: OpenOwner
    public let file: FileKey
    public var access: ShareBits
    public var deny: ShareBits
    /// Every access and deny mode this state has held (OPEN_DOWNGRADE may only
    /// go back to modes it had, §18.18.3).
    public var accessHistory: Set<UInt32>
    public var denyHistory: Set<UInt32>
}

/// Open stateids and share reservations (RFC 8881 §8.2, §9.7, §18.16,
/// §18.18, §18.2). Share reservations are the server's: Linux has none, so
/// this table is what makes OPEN's deny modes mean anything, also against
/// NFSv3 READs, WRITEs and truncations (`deniesRead`, `deniesWrite`).
public struct OpenTable: Sendable {
    /// The high 4 bytes of every stateid's `other`: differs per server start,
    /// so a stateid from before a restart is STALE_STATEID, not another open.
    public let epoch: UInt32
    private var nextOther: UInt64 = 1
    private var opens: [UInt64: OpenState] = [:]
    private var byFile: [FileKey: Set<UInt64>] = [:]
    private var byOwnerAndFile: [OpenOwnerFile: UInt64] = [:]
    /// How many opens deny anything: while none does, other protocols need not look.
    public private(set) var denyingOpens = 0 {
        didSet { denyingOpensGauge?.value.store(denyingOpens, ordering: .releasing) }
    }
    /// Where `denyingOpens` is published, for readers that do not take the lock
    /// the table lives under (NFSv3 asks on every READ and WRITE).
    private let denyingOpensGauge: DenyingOpensGauge?

    struct OpenOwnerFile: Hashable {
        var owner: OpenOwner
        var file: FileKey
    }

    public init(epoch: UInt32, publishingTo denyingOpensGauge: DenyingOpensGauge? = nil) {
        self.epoch = epoch
        self.denyingOpensGauge = denyingOpensGauge
    }

    /// OPEN's share check and state (§18.16.4, §9.7): a new open conflicts
    /// with another open-owner's when one's access meets the other's deny. The
    /// same owner opening the same file again upgrades its one stateid (seqid + 1).
    public mutating func open(owner: OpenOwner, file: FileKey, access: ShareBits,
                              deny: ShareBits) throws(NFS4Status) -> OpenState {
        guard !access.isEmpty, access.rawValue & ~ShareBits.both.rawValue == 0,
              deny.rawValue & ~ShareBits.both.rawValue == 0 else { throw .inval }
        for other in byFile[file] ?? [] {
            guard let state = opens[other], state.owner != owner else { continue }
            if !state.deny.intersection(access).isEmpty || !state.access.intersection(deny).isEmpty {
                throw .shareDenied
            }
        }
        let key = OpenOwnerFile(owner: owner, file: file)
        if let existing = byOwnerAndFile[key], var state = opens[existing] {
            state.access.formUnion(access)
            state.deny.formUnion(deny)
            state.accessHistory.insert(state.access.rawValue)
            state.denyHistory.insert(state.deny.rawValue)
            state.stateID.seqid = Self.nextSeqid(state.stateID.seqid)
            store(state)
            return state
        }
        let other = nextOther
        nextOther += 1
        let state = OpenState(stateID: StateID(seqid: 1, otherHigh: epoch, otherLow: other), owner: owner, file: file,
                              access: access, deny: deny, accessHistory: [access.rawValue],
                              denyHistory: [deny.rawValue])
        store(state)
        byFile[file, default: []].insert(other)
        byOwnerAndFile[key] = other
        return state
    }

    /// The open a stateid names, for `clientID` (§8.2.2, §8.2.4): a stateid
    /// of an earlier server instance is STALE_STATEID; one this server never
    /// issued, or issued to another client, BAD_STATEID; an earlier seqid of a
    /// live open, OLD_STATEID; a later one, BAD_STATEID. Seqid 0 means "the
    /// current one" (§8.2.2).
    public func validate(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) -> OpenState {
        try Self.validate(stateID, epoch: epoch, clientID: clientID, in: opens, client: \.owner.clientID,
                          current: \.stateID)
    }

    /// The state `stateID` names in `table` (keyed by the low half of `other`),
    /// judged for `clientID` by §8.2.2 and §8.2.4: the rules open and lock
    /// stateids share. Seqids wrap past 2^32 - 1 to 1: "older" is within half
    /// the range behind.
    static func validate<State>(_ stateID: StateID, epoch: UInt32, clientID: ClientID, in table: [UInt64: State],
                                client: KeyPath<State, ClientID>,
                                current: KeyPath<State, StateID>) throws(NFS4Status) -> State {
        if stateID.special != nil { throw .badStateid }
        guard stateID.otherHigh == epoch else { throw .staleStateid }
        guard let state = table[stateID.otherLow], state[keyPath: client] == clientID else { throw .badStateid }
        let sent = stateID.seqid, now = state[keyPath: current].seqid
        if sent == 0 || sent == now { return state }
        if now &- sent < 0x8000_0000 { throw .oldStateid }
        throw .badStateid
    }

    /// OPEN_DOWNGRADE (§18.18.3): to modes this open has held.
    public mutating func downgrade(_ stateID: StateID, clientID: ClientID, access: ShareBits,
                                   deny: ShareBits) throws(NFS4Status) -> OpenState {
        var state = try validate(stateID, clientID: clientID)
        guard !access.isEmpty, state.access.isSuperset(of: access), state.deny.isSuperset(of: deny),
              state.accessHistory.contains(access.rawValue), state.denyHistory.contains(deny.rawValue) else {
            throw .inval
        }
        state.access = access
        state.deny = deny
        state.stateID.seqid = Self.nextSeqid(state.stateID.seqid)
        store(state)
        return state
    }

    /// CLOSE (§18.2): ends the open and its share reservation.
    public mutating func close(_ stateID: StateID, clientID: ClientID) throws(NFS4Status) {
        let state = try validate(stateID, clientID: clientID)
        remove(state)
    }

    /// Drops every open of a client (lease expired, client replaced or destroyed).
    public mutating func releaseClient(_ clientID: ClientID) {
        for state in opens.values where state.owner.clientID == clientID { remove(state) }
    }

    /// Whether an open denies writing `file` to anyone but `except` (an NFSv3
    /// WRITE has no open-owner: `except` nil, any deny-write open refuses it).
    public func deniesWrite(_ file: FileKey, except: OpenOwner? = nil) -> Bool {
        (byFile[file] ?? []).contains { opens[$0].map { $0.deny.contains(.write) && $0.owner != except } ?? false }
    }

    /// Whether an open denies reading `file` (to an NFSv3 READ, or a READ under a special stateid).
    public func deniesRead(_ file: FileKey) -> Bool {
        (byFile[file] ?? []).contains { opens[$0]?.deny.contains(.read) ?? false }
    }

    public func opens(of file: FileKey) -> [OpenState] {
        (byFile[file] ?? []).compactMap { opens[$0] }.sorted { $0.stateID.otherLow < $1.stateID.otherLow }
    }

    public var count: Int { opens.count }

    private mutating func remove(_ state: OpenState) {
        let other = state.stateID.otherLow
        if let old = opens.removeValue(forKey: other), !old.deny.isEmpty { denyingOpens -= 1 }
        byFile[state.file]?.remove(other)
        if byFile[state.file]?.isEmpty == true { byFile.removeValue(forKey: state.file) }
        byOwnerAndFile.removeValue(forKey: OpenOwnerFile(owner: state.owner, file: state.file))
    }

    /// Puts `state` in the table, keeping `denyingOpens`.
    private mutating func store(_ state: OpenState) {
        let old = opens.updateValue(state, forKey: state.stateID.otherLow)
        if let old, !old.deny.isEmpty { denyingOpens -= 1 }
        if !state.deny.isEmpty { denyingOpens += 1 }
    }

    /// Seqids skip 0 when they wrap (0 means "current", §8.2.2).
    public static func nextSeqid(_ seqid: UInt32) -> UInt32 {
        seqid == .max ? 1 : seqid + 1
    }
}
