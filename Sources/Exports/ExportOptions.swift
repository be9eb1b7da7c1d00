/// How client credentials are squashed before the host kernel checks them.
public enum SquashMode: String, Hashable, Sendable, CaseIterable {
    /// `no_root_squash`: credentials pass through unchanged.
    case noRootSquash = "no_root_squash"
    /// `root_squash` (the default): uid 0 becomes anonuid, gid 0 becomes anongid.
    case rootSquash = "root_squash"
    /// `all_squash`: every caller becomes anonuid/anongid with no supplementary groups.
    case allSquash = "all_squash"
}

/// The fully resolved options of one client rule: the built-in defaults, then
/// the line's `-DEFAULTOPTS`, then the client's own `(OPTS)`.
///
/// The defaults are knfsd's: `ro,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check`
/// and weak-cache-consistency data on (no `nowcc`).
public struct ExportOptions: Hashable, Sendable {
    /// `ro` (true, the default) or `rw` (false).
    public var readOnly: Bool
    /// `root_squash` (default), `no_root_squash` or `all_squash`.
    public var squash: SquashMode
    /// `anonuid=N` (default 65534): the uid squashed callers become.
    public var anonUID: UInt32
    /// `anongid=N` (default 65534): the gid squashed callers become.
    public var anonGID: UInt32
    /// `sync` (true, the default): writes reach stable storage before the reply. `async`: false.
    public var sync: Bool
    /// `subtree_check` (true) or `no_subtree_check` (false, the default).
    public var subtreeCheck: Bool
    /// `nowcc` (true): leave NFSv3 weak-cache-consistency data out of replies. Default false.
    public var noWCC: Bool
    /// `map_uid=GUEST:HOST:COUNT` ranges (default: none, the identity).
    public var uidMap: IDMap
    /// `map_gid=GUEST:HOST:COUNT` ranges (default: none, the identity).
    public var gidMap: IDMap

    /// The nobody uid/gid knfsd uses when none is configured.
    public static let defaultAnonID: UInt32 = 65534

    /// The built-in defaults (see the type's documentation).
    public static let defaults = ExportOptions()

    public init(readOnly: Bool = true,
                squash: SquashMode = .rootSquash,
                anonUID: UInt32 = ExportOptions.defaultAnonID,
                anonGID: UInt32 = ExportOptions.defaultAnonID,
                sync: Bool = true,
                subtreeCheck: Bool = false,
                noWCC: Bool = false,
                uidMap: IDMap = .identity,
                gidMap: IDMap = .identity) {
        self.readOnly = readOnly
        self.squash = squash
        self.anonUID = anonUID
        self.anonGID = anonGID
        self.sync = sync
        self.subtreeCheck = subtreeCheck
        self.noWCC = noWCC
        self.uidMap = uidMap
        self.gidMap = gidMap
    }

    /// True for `rw`.
    public var readWrite: Bool { !readOnly }

    /// The identity the host kernel should check for a caller presenting
    /// `uid`, `gid` and supplementary `gids` (AUTH_SYS): the one place
    /// credentials come in. First `map_uid`/`map_gid` turn guest ids into host
    /// ids (an id with no host id, see `IDMap`, becomes `anonUID`/`anonGID`);
    /// then squashing judges the *host* ids:
    ///
    /// - `no_root_squash`: unchanged.
    /// - `root_squash`: host uid 0 becomes `anonUID`; host gid 0 becomes
    ///   `anonGID`, both as the primary gid and wherever it appears in `gids`
    ///   (as knfsd does; other entries keep their order). So the guest's root
    ///   is squashed unless a map sends guest 0 elsewhere, and a map that
    ///   sends a guest id to host 0 is squashed too: under root_squash no
    ///   caller ever acts as host root.
    /// - `all_squash`: `anonUID`/`anonGID` with no supplementary groups.
    public func map(uid: UInt32, gid: UInt32, gids: [UInt32]) -> MappedIdentity {
        if squash == .allSquash { return MappedIdentity(uid: anonUID, gid: anonGID, gids: []) }
        var uid = uidMap.host(forGuest: uid) ?? anonUID
        var gid = gidMap.host(forGuest: gid) ?? anonGID
        var gids = gids
        if !gidMap.isIdentity {
            for i in gids.indices { gids[i] = gidMap.host(forGuest: gids[i]) ?? anonGID }
        }
        if squash == .rootSquash {
            if uid == 0 { uid = anonUID }
            if gid == 0 { gid = anonGID }
            if gids.contains(0) { gids = gids.map { $0 == 0 ? anonGID : $0 } }
        }
        return MappedIdentity(uid: uid, gid: gid, gids: gids)
    }

    /// The owner a guest sees for host uid `uid`: the one place owners go out
    /// (every fattr3). A host uid with no guest uid (see `IDMap`) shows as `anonUID`.
    @inline(__always)
    public func guestUID(_ uid: UInt32) -> UInt32 {
        uidMap.guest(forHost: uid) ?? anonUID
    }

    /// The group a guest sees for host gid `gid` (see `guestUID`).
    @inline(__always)
    public func guestGID(_ gid: UInt32) -> UInt32 {
        gidMap.guest(forHost: gid) ?? anonGID
    }

    /// The host uid for an owner the guest sets (SETATTR, CREATE, MKDIR, ...):
    /// mapped like a credential but never squashed (the host kernel decides
    /// whether the caller may give the file away). nil for a guest uid with no
    /// host uid: the caller refuses it (EINVAL, as chown(2) in a user namespace).
    public func hostOwnerUID(_ uid: UInt32) -> UInt32? {
        uidMap.host(forGuest: uid)
    }

    /// The host gid for a group the guest sets (see `hostOwnerUID`).
    public func hostOwnerGID(_ gid: UInt32) -> UInt32? {
        gidMap.host(forGuest: gid)
    }

    /// The options in exports(5) spelling, every one stated, in a fixed order:
    /// `rw|ro,SQUASH,anonuid=N,anongid=N,sync|async,subtree_check|no_subtree_check[,nowcc]`,
    /// then each `map_uid=G:H:C` and `map_gid=G:H:C` range in file order.
    public var resolvedDescription: String {
        var parts = [readOnly ? "ro" : "rw",
                     squash.rawValue,
                     "anonuid=\(anonUID)",
                     "anongid=\(anonGID)",
                     sync ? "sync" : "async",
                     subtreeCheck ? "subtree_check" : "no_subtree_check"]
        if noWCC { parts.append("nowcc") }
        parts += uidMap.ranges.map { "map_uid=\($0)" }
        parts += gidMap.ranges.map { "map_gid=\($0)" }
        return parts.joined(separator: ",")
    }
}

/// A caller's identity after squashing: what the host kernel checks.
public struct MappedIdentity: Hashable, Sendable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups.
    public var gids: [UInt32]

    public init(uid: UInt32, gid: UInt32, gids: [UInt32]) {
        self.uid = uid
        self.gid = gid
        self.gids = gids
    }

    public var description: String {
        "uid=\(uid) gid=\(gid) groups=[\(gids.map(String.init).joined(separator: ","))]"
    }
}
