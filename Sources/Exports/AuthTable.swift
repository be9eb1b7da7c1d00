import Transport

/// What one peer may do with one export: the options of the client rule that
/// won (see `AuthTable` for precedence) and which rule that was.
///
/// Options read through: `access.readOnly`, `access.squash`, `access.sync`, ...
@dynamicMemberLookup
public struct ExportAccess: Hashable, Sendable {
    /// The rule that granted access.
    public let client: ClientSpec
    /// That rule's resolved options.
    public let options: ExportOptions

    public init(client: ClientSpec, options: ExportOptions) {
        self.client = client
        self.options = options
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<ExportOptions, T>) -> T {
        options[keyPath: keyPath]
    }

    /// The identity the host kernel should check for this caller, after
    /// `map_uid`/`map_gid` and squashing. See `ExportOptions.map(uid:gid:gids:)`.
    public func map(uid: UInt32, gid: UInt32, gids: [UInt32]) -> MappedIdentity {
        options.map(uid: uid, gid: gid, gids: gids)
    }
}

/// The immutable (peer identity, export) -> access table, built from exports.
///
/// ## Precedence: the most specific matching rule wins
/// Within one export, a peer gets the options of exactly one rule:
///
/// - **vsock peers** (`.vsock(cid:port:)`): an exact `vsock:CID`; else the
///   narrowest `vsock:LOW-HIGH` range containing the CID (among ranges of
///   equal width, the one earlier on the line); else `vsock:*`; else `*`.
/// - **TCP peers** (`.inet`): an exact address; else the matching network
///   with the longest prefix; else `*`. An IPv4-mapped IPv6 peer
///   (`::ffff:a.b.c.d`) is matched as the IPv4 address `a.b.c.d`, against
///   IPv4 rules only.
/// - **Unix-socket peers** (`.unix`): `unix`; else `*`.
///
/// vsock rules never match TCP or Unix peers, address rules never match
/// vsock or Unix peers, and `unix` matches Unix peers only; `*` matches
/// everyone. No matching rule: no access (`nil`). Rule order in the file
/// matters only for equal-width vsock ranges.
///
/// Lookups are a dictionary probe for exact CIDs and addresses, then a short
/// scan of pre-sorted ranges/networks; the table is a value, so a reload
/// builds a new one and swaps it in.
public struct AuthTable: Sendable {
    /// The exports, in the order given.
    public let exports: [Export]
    /// `ids[i]` is `exports[i].handleID`.
    public let ids: [UInt32]
    private let rules: [CompiledRules]
    private let indexByMountPath: [String: Int]
    private let indexByID: [UInt32: Int]

    /// Builds the table. If two exports share a mount path, lookups by mount
    /// path find the first (the exports-file parser rejects duplicates).
    public init(exports: [Export]) {
        self.exports = exports
        self.rules = exports.map(CompiledRules.init)
        var byPath: [String: Int] = [:]
        for (index, export) in exports.enumerated() where byPath[export.mountPath] == nil {
            byPath[export.mountPath] = index
        }
        self.indexByMountPath = byPath
        self.ids = exports.map(\.handleID)
        var byID: [UInt32: Int] = [:]
        for (index, id) in ids.enumerated() where byID[id] == nil { byID[id] = index }
        self.indexByID = byID
    }

    /// The index in `exports` of the export whose handles carry `id`
    /// (`Export.handleID`): nil once a reload removed it.
    public func exportIndex(id: UInt32) -> Int? {
        indexByID[id]
    }

    /// The index in `exports` of the export mounted as `mountPath`.
    public func exportIndex(mountPath: String) -> Int? {
        indexByMountPath[mountPath]
    }

    /// The access `peer` has to `exports[index]`, or nil for none (or an index out of range).
    public func access(for peer: PeerIdentity, exportAt index: Int) -> ExportAccess? {
        guard rules.indices.contains(index) else { return nil }
        return rules[index].lookup(peer)
    }

    /// The access `peer` has to the export mounted as `mountPath`, or nil.
    public func access(for peer: PeerIdentity, mountPath: String) -> ExportAccess? {
        guard let index = indexByMountPath[mountPath] else { return nil }
        return rules[index].lookup(peer)
    }

    /// The access `peer` has to this table's export with `export`'s mount
    /// path (so an `Export` kept from before a reload is judged by the new
    /// rules), or nil if there is none or the peer has no access.
    public func access(for peer: PeerIdentity, to export: Export) -> ExportAccess? {
        access(for: peer, mountPath: export.mountPath)
    }

    /// The exports `peer` has any access to, in table order (MOUNT EXPORT,
    /// the NFSv4 pseudo-root).
    public func exports(visibleTo peer: PeerIdentity) -> [Export] {
        exports.indices.filter { rules[$0].lookup(peer) != nil }.map { exports[$0] }
    }

    /// `formatExportsTable(exports)`.
    public func formatted() -> String {
        formatExportsTable(exports)
    }
}

/// One export's rules, arranged for lookup in precedence order.
private struct CompiledRules: Sendable {
    var exactCIDs: [UInt32: ExportAccess] = [:]
    /// Narrowest first; equal widths in file order.
    var cidRanges: [(low: UInt32, high: UInt32, access: ExportAccess)] = []
    var anyVsock: ExportAccess?
    var exactAddresses: [IPAddress: ExportAccess] = [:]
    /// Longest prefix first; equal prefixes in file order.
    var networks: [(network: IPAddress, prefix: Int, access: ExportAccess)] = []
    var unix: ExportAccess?
    var anyone: ExportAccess?

    init(_ export: Export) {
        var ranges: [(offset: Int, low: UInt32, high: UInt32, access: ExportAccess)] = []
        var nets: [(offset: Int, network: IPAddress, prefix: Int, access: ExportAccess)] = []
        // The first rule for a given spec wins, as for everything else.
        for (offset, rule) in export.clients.enumerated() {
            let access = ExportAccess(client: rule.client, options: rule.options)
            switch rule.client {
            case .vsockCID(let cid):
                if exactCIDs[cid] == nil { exactCIDs[cid] = access }
            case .vsockRange(let low, let high):
                ranges.append((offset, low, high, access))
            case .vsockAny:
                if anyVsock == nil { anyVsock = access }
            case .address(let address):
                let key = address.unmapped
                if exactAddresses[key] == nil { exactAddresses[key] = access }
            case .network(let network, let prefix):
                let normalized = ClientSpec.normalizedNetwork(network, prefix: prefix)
                switch normalized {
                case .address(let address):
                    if exactAddresses[address] == nil { exactAddresses[address] = access }
                case .network(let network, let prefix):
                    nets.append((offset, network, prefix, access))
                default:
                    break
                }
            case .unix:
                if unix == nil { unix = access }
            case .anyone:
                if anyone == nil { anyone = access }
            }
        }
        cidRanges = ranges.sorted {
            let a = UInt64($0.high - $0.low), b = UInt64($1.high - $1.low)
            return a != b ? a < b : $0.offset < $1.offset
        }.map { ($0.low, $0.high, $0.access) }
        networks = nets.sorted {
            $0.prefix != $1.prefix ? $0.prefix > $1.prefix : $0.offset < $1.offset
        }.map { ($0.network, $0.prefix, $0.access) }
    }

    func lookup(_ peer: PeerIdentity) -> ExportAccess? {
        switch peer {
        case .vsock(let cid, _):
            if let access = exactCIDs[cid] { return access }
            for range in cidRanges where range.low <= cid && cid <= range.high { return range.access }
            if let anyVsock { return anyVsock }
        case .inet(let peerAddress, _):
            let address = peerAddress.unmapped
            if let access = exactAddresses[address] { return access }
            for entry in networks
            where entry.network.bitWidth == address.bitWidth && address.isIn(network: entry.network, prefix: entry.prefix) {
                return entry.access
            }
        case .unix:
            if let unix { return unix }
        }
        return anyone
    }
}

// MARK: - Printing

/// The resolved table as text, for `vsnfs exports check`: each export's host
/// path, mount path and fsid, then each client rule in file order with every
/// option stated. Stable: the same exports always print the same text.
///
///     /srv/src (mounted as /srv/src, fsid=7)
///       vsock:3        rw,no_root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check
///       vsock:*        ro,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check
///
/// Exports are separated by a blank line; the text ends with a newline.
public func formatExportsTable(_ exports: [Export]) -> String {
    if exports.isEmpty { return "no exports\n" }
    let longestClient = exports.flatMap(\.clients).map { $0.client.description.count }.max() ?? 0
    let clientWidth = max(15, longestClient + 2)
    var blocks: [String] = []
    for export in exports {
        var header = "\(quotedPath(export.hostPath)) (mounted as \(quotedPath(export.mountPath))"
        if let fsid = export.fsid { header += ", fsid=\(fsid)" }
        header += ")"
        var lines = [header]
        if export.clients.isEmpty { lines.append("  (no clients: nobody has access)") }
        for rule in export.clients {
            let name = rule.client.description
            let padding = String(repeating: " ", count: clientWidth - name.count)
            lines.append("  " + name + padding + rule.options.resolvedDescription)
        }
        blocks.append(lines.joined(separator: "\n"))
    }
    return blocks.joined(separator: "\n\n") + "\n"
}

/// A path as the exports file would accept it: `"`, `\` and control bytes as
/// `\ooo`, and double quotes around it if it holds blanks.
func quotedPath(_ path: String) -> String {
    var out = ""
    var needsQuotes = false
    for scalar in path.unicodeScalars {
        let value = scalar.value
        if value < 0x20 || value == 0x7f || scalar == "\"" || scalar == "\\" {
            let octal = String(value, radix: 8)
            out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
        } else {
            if scalar == " " { needsQuotes = true }
            out.unicodeScalars.append(scalar)
        }
    }
    return needsQuotes ? "\"" + out + "\"" : out
}
