/// Who is on the other end of a connection, as the host kernel reports it.
///
/// Every value here comes from the kernel (`getpeername`/`SO_PEERNAME` for
/// vsock and IP, `SO_PEERCRED` for Unix sockets, the listener's configuration
/// for hybrid vsock), never from bytes a client sent. Exports and the auth
/// table key access on this value.
public enum PeerIdentity: Hashable, Sendable, CustomStringConvertible {
    /// An AF_VSOCK peer: its context ID, assigned by the hypervisor.
    case vsock(cid: UInt32, port: UInt32)
    /// A TCP peer.
    case inet(IPAddress, port: UInt16)
    /// A Unix-socket peer, with the credentials the kernel recorded at connect time.
    case unix(uid: UInt32, gid: UInt32, pid: Int32)

    public var description: String {
        switch self {
        case .vsock(let cid, let port): return "vsock:\(cid):\(port)"
        case .inet(let address, let port):
            if case .v6 = address { return "tcp:[\(address)]:\(port)" }
            return "tcp:\(address):\(port)"
        case .unix(let uid, let gid, let pid): return "unix:uid=\(uid),gid=\(gid),pid=\(pid)"
        }
    }

    /// The transport this peer arrived on.
    public var transport: TransportKind {
        switch self {
        case .vsock: return .vsock
        case .inet: return .tcp
        case .unix: return .unix
        }
    }
}

extension PeerIdentity {
    /// The peer without what changes from one connection to the next (the
    /// port; a Unix peer's pid): the machine or user a client runs as. State a
    /// server keeps across connections (MOUNT's list, NFSv4 client records) is
    /// keyed by it.
    public var host: PeerHost {
        switch self {
        case .vsock(let cid, _): return .vsock(cid: cid)
        case .inet(let address, _): return .inet(address.unmapped)
        case .unix(let uid, _, _): return .unix(uid: uid)
        }
    }
}

/// A peer's host part (see `PeerIdentity.host`).
public enum PeerHost: Hashable, Sendable, CustomStringConvertible {
    case vsock(cid: UInt32)
    case inet(IPAddress)
    case unix(uid: UInt32)

    /// `vsock:3`, `127.0.0.1`, `unix`: as MOUNT DUMP names clients.
    public var description: String {
        switch self {
        case .vsock(let cid): return "vsock:\(cid)"
        case .inet(let address): return address.description
        case .unix: return "unix"
        }
    }
}

public enum TransportKind: String, Hashable, Sendable {
    case vsock, tcp, unix
}

/// An IPv4 or IPv6 address held as bits, so CIDR matching is arithmetic.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    /// 128 bits, most significant first.
    case v6(UInt64, UInt64)

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an
    /// embedded dotted quad). Returns nil for anything else.
    public init?(_ text: String) {
        if let v4 = IPAddress.parseV4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = IPAddress.parseV6(text) {
            self = .v6(v6.0, v6.1)
        } else {
            return nil
        }
    }

    /// IPv4 addresses mapped into IPv6 (`::ffff:a.b.c.d`) are reported as
    /// IPv4, so one exports rule covers a dual-stack listener.
    public var unmapped: IPAddress {
        if case .v6(let hi, let lo) = self, hi == 0, lo >> 32 == 0xffff {
            return .v4(UInt32(truncatingIfNeeded: lo))
        }
        return self
    }

    /// Bit width of this address family.
    public var bitWidth: Int {
        if case .v4 = self { return 32 }
        return 128
    }

    /// True if `self` lies in `network/prefix`. Families must match.
    public func isIn(network: IPAddress, prefix: Int) -> Bool {
        switch (self, network) {
        case (.v4(let a), .v4(let n)):
            guard prefix > 0 else { return true }
            let mask: UInt32 = prefix >= 32 ? ~0 : ~(UInt32.max >> UInt32(prefix))
            return a & mask == n & mask
        case (.v6(let ah, let al), .v6(let nh, let nl)):
            func masked(_ hi: UInt64, _ lo: UInt64) -> (UInt64, UInt64) {
                let hiMask: UInt64 = prefix >= 64 ? ~0 : (prefix <= 0 ? 0 : ~(UInt64.max >> UInt64(prefix)))
                let loBits = prefix - 64
                let loMask: UInt64 = loBits >= 64 ? ~0 : (loBits <= 0 ? 0 : ~(UInt64.max >> UInt64(loBits)))
                return (hi & hiMask, lo & loMask)
            }
            return masked(ah, al) == masked(nh, nl)
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .v4(let a):
            return "\(a >> 24).\((a >> 16) & 0xff).\((a >> 8) & 0xff).\(a & 0xff)"
        case .v6(let hi, let lo):
            var groups: [UInt16] = []
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: hi >> UInt64(48 - 16 * i))) }
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: lo >> UInt64(48 - 16 * i))) }
            // Longest run of zero groups (length >= 2) becomes "::".
            var bestStart = -1, bestLen = 0, i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8 && groups[j] == 0 { j += 1 }
                    if j - i > bestLen { bestStart = i; bestLen = j - i }
                    i = j
                } else { i += 1 }
            }
            func hex(_ g: ArraySlice<UInt16>) -> String { g.map { String($0, radix: 16) }.joined(separator: ":") }
            if bestLen < 2 { return hex(groups[...]) }
            return hex(groups[0..<bestStart]) + "::" + hex(groups[(bestStart + bestLen)...])
        }
    }

    static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseV6(_ text: String) -> (UInt64, UInt64)? {
        guard text.contains(":") else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var halves: [String] = []
        var rest = Substring(text)
        while let r = rest.firstRange(of: "::") {
            halves.append(String(rest[..<r.lowerBound])); rest = rest[r.upperBound...]
        }
        halves.append(String(rest))
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String, allowV4Tail: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            for (index, part) in parts.enumerated() {
                if allowV4Tail, index == parts.count - 1, part.contains(".") {
                    guard let v4 = parseV4(part) else { return nil }
                    out.append(UInt16(v4 >> 16)); out.append(UInt16(v4 & 0xffff))
                    continue
                }
                guard (1...4).contains(part.count), let g = UInt16(part, radix: 16) else { return nil }
                out.append(g)
            }
            return out
        }
        if halves.count == 2 {
            guard let h = groups(halves[0], allowV4Tail: false), let t = groups(halves[1], allowV4Tail: true),
                  h.count + t.count <= 7 else { return nil }
            head = h; tail = t
        } else {
            guard let all = groups(halves[0], allowV4Tail: true), all.count == 8 else { return nil }
            head = all
        }
        let all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(all[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(all[i]) }
        return (hi, lo)
    }
}
