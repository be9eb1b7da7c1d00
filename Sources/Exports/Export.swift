import Transport

/// Who a client rule applies to. Names are never resolved: identity comes from
/// the kernel (see `PeerIdentity`), so rules name CIDs, addresses and networks.
public enum ClientSpec: Hashable, Sendable, CustomStringConvertible {
    /// `vsock:CID`: one guest.
    case vsockCID(UInt32)
    /// `vsock:LOW-HIGH`: guests whose CID lies in `LOW...HIGH` (inclusive).
    case vsockRange(UInt32, UInt32)
    /// `vsock:*`: any vsock peer (including hybrid-vsock listeners).
    case vsockAny
    /// An exact IPv4 or IPv6 address (IPv4-mapped IPv6 is held as IPv4).
    case address(IPAddress)
    /// `ADDRESS/PREFIX`; host bits are zero (the parser clears them).
    case network(IPAddress, prefix: Int)
    /// `unix`: any peer on a local Unix socket.
    case unix
    /// `*`: anyone, on any transport.
    case anyone

    /// The rule in exports-file spelling.
    public var description: String {
        switch self {
        case .vsockCID(let cid): return "vsock:\(cid)"
        case .vsockRange(let low, let high): return "vsock:\(low)-\(high)"
        case .vsockAny: return "vsock:*"
        case .address(let address): return address.description
        case .network(let address, let prefix): return "\(address)/\(prefix)"
        case .unix: return "unix"
        case .anyone: return "*"
        }
    }

    /// True if this rule covers `peer` (ignoring precedence between rules).
    public func matches(_ peer: PeerIdentity) -> Bool {
        switch (self, peer) {
        case (.anyone, _): return true
        case (.vsockAny, .vsock): return true
        case (.vsockCID(let c), .vsock(let cid, _)): return c == cid
        case (.vsockRange(let low, let high), .vsock(let cid, _)): return low <= cid && cid <= high
        case (.address(let a), .inet(let address, _)): return a.unmapped == address.unmapped
        case (.network(let n, let p), .inet(let address, _)):
            let a = address.unmapped
            switch ClientSpec.normalizedNetwork(n, prefix: p) {
            case .address(let exact): return a == exact
            case .network(let network, let prefix):
                return a.bitWidth == network.bitWidth && a.isIn(network: network, prefix: prefix)
            default: return false
            }
        case (.unix, .unix): return true
        default: return false
        }
    }
}

/// One client entry of an export: a client spec and its resolved options.
public struct ClientRule: Hashable, Sendable {
    public var client: ClientSpec
    public var options: ExportOptions

    public init(client: ClientSpec, options: ExportOptions = .defaults) {
        self.client = client
        self.options = options
    }
}

/// One exported directory.
public struct Export: Hashable, Sendable {
    /// The directory on the host.
    public var hostPath: String
    /// The path clients name when mounting (MOUNT v3 dirpath, NFSv4 pseudo-fs
    /// path). For an exports file this equals `hostPath`.
    public var mountPath: String
    /// `fsid=N` (`fsid=root` is 0), if given.
    public var fsid: UInt32?
    /// Client rules in file order. Precedence between them is `AuthTable`'s job.
    public var clients: [ClientRule]

    public init(hostPath: String, mountPath: String? = nil, fsid: UInt32? = nil, clients: [ClientRule]) {
        self.hostPath = hostPath
        self.mountPath = mountPath ?? hostPath
        self.fsid = fsid
        self.clients = clients
    }

    /// `vsnfs serve DIR`: `directory` exported read-write with root_squash
    /// (and the other defaults) to `*`, mounted by clients as `/`.
    ///
    /// `directory` is used as given (the caller resolves it to an absolute
    /// path); trailing slashes are removed.
    public init(serving directory: String) {
        var path = directory
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        self.init(hostPath: path,
                  mountPath: "/",
                  fsid: nil,
                  clients: [ClientRule(client: .anyone,
                                       options: ExportOptions(readOnly: false, squash: .rootSquash))])
    }
}

extension Export {
    /// The id that goes into every file handle of this export: `fsid=N` if
    /// given, else a hash of the host path with the top bit set (so it never
    /// meets an explicit fsid below 2^31). Stable across restarts and reloads
    /// while the exports file names the same directory, so an export removed
    /// by a reload and added back takes its old handles again.
    public var handleID: UInt32 {
        if let fsid { return fsid }
        var hash: UInt32 = 2_166_136_261  // FNV-1a
        for byte in hostPath.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash | 0x8000_0000
    }
}
