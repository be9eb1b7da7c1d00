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
                noWCC: Bool = false) {
        self.readOnly = readOnly
        self.squash = squash
        self.anonUID = anonUID
        self.anonGID = anonGID
        self.sync = sync
        self.subtreeCheck = subtreeCheck
        self.noWCC = noWCC
    }

    /// True for `rw`.
    public var readWrite: Bool { !readOnly }

    /// The identity the host kernel should check for a caller presenting
    /// `uid`, `gid` and supplementary `gids` (AUTH_SYS), after squashing:
    ///
    /// - `no_root_squash`: unchanged.
    /// - `root_squash`: uid 0 becomes `anonUID`; gid 0 becomes `anonGID`, both
    ///   as the primary gid and wherever it appears in `gids` (as knfsd does;
    ///   other entries keep their order).
    /// - `all_squash`: `anonUID`/`anonGID` with no supplementary groups.
    public func map(uid: UInt32, gid: UInt32, gids: [UInt32]) -> MappedIdentity {
        switch squash {
        case .noRootSquash:
            return MappedIdentity(uid: uid, gid: gid, gids: gids)
        case .rootSquash:
            return MappedIdentity(uid: uid == 0 ? anonUID : uid,
                                  gid: gid == 0 ? anonGID : gid,
                                  gids: gids.map { $0 == 0 ? anonGID : $0 })
        case .allSquash:
            return MappedIdentity(uid: anonUID, gid: anonGID, gids: [])
        }
    }

    /// The options in exports(5) spelling, every one stated, in a fixed order:
    /// `rw|ro,SQUASH,anonuid=N,anongid=N,sync|async,subtree_check|no_subtree_check[,nowcc]`.
    public var resolvedDescription: String {
        var parts = [readOnly ? "ro" : "rw",
                     squash.rawValue,
                     "anonuid=\(anonUID)",
                     "anongid=\(anonGID)",
                     sync ? "sync" : "async",
                     subtreeCheck ? "subtree_check" : "no_subtree_check"]
        if noWCC { parts.append("nowcc") }
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
