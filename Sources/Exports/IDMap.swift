/// One `map_uid=GUEST:HOST:COUNT` (or `map_gid=...`) range: guest ids
/// `GUEST ..< GUEST+COUNT` are host ids `HOST ..< HOST+COUNT`, in order.
public struct IDRange: Hashable, Sendable, CustomStringConvertible {
    public var guest: UInt32
    public var host: UInt32
    /// At least 1; neither side runs past 4294967295.
    public var count: UInt32

    public init(guest: UInt32, host: UInt32, count: UInt32) {
        precondition(count >= 1 && UInt64(guest) + UInt64(count) <= 1 << 32 && UInt64(host) + UInt64(count) <= 1 << 32,
                     "IDRange \(guest):\(host):\(count) is empty or runs past 2^32")
        self.guest = guest
        self.host = host
        self.count = count
    }

    /// `GUEST:HOST:COUNT`, as written in an exports file.
    public var description: String { "\(guest):\(host):\(count)" }

    var lastGuest: UInt32 { guest + (count - 1) }
    var lastHost: UInt32 { host + (count - 1) }
    func containsGuest(_ id: UInt32) -> Bool { id >= guest && id - guest < count }
    func containsHost(_ id: UInt32) -> Bool { id >= host && id - host < count }

    /// True when the two ranges share a guest id or a host id.
    func overlaps(_ other: IDRange) -> Bool {
        (guest <= other.lastGuest && other.guest <= lastGuest) || (host <= other.lastHost && other.host <= lastHost)
    }
}

/// The uid (or gid) map of one client: its ranges, applied both ways.
///
/// Ids inside a range map to their counterpart. Ids outside every range pass
/// through unchanged, except where that would make two ids look like one:
///
/// - in (guest -> host): a guest id outside every guest range that is itself
///   a mapped host id (with `1000:501:1`, guest 501) has no host id (`nil`):
///   passing it through would let guest 501 act as the host user guest 1000
///   becomes.
/// - out (host -> guest): a host id outside every host range that is itself a
///   mapped guest id (with `1000:501:1`, host 1000) has no guest id (`nil`):
///   shown as itself, the guest could not tell it from host 501's files.
///
/// So the map is one-to-one both ways; callers choose what `nil` becomes
/// (the export's anonuid/anongid). An empty map is the identity and costs one
/// branch. Lookups scan the ranges (a client has a handful) and never allocate.
public struct IDMap: Hashable, Sendable {
    /// In the order written. No two share a guest id or a host id.
    public let ranges: [IDRange]

    public static let identity = IDMap(validRanges: [])

    /// `ranges` must not overlap (the exports parser reports overlaps first).
    public init(validRanges ranges: [IDRange]) {
        precondition(IDMap.firstOverlap(in: ranges) == nil, "IDMap: overlapping ranges \(ranges)")
        self.ranges = ranges
    }

    public var isIdentity: Bool { ranges.isEmpty }

    /// The host id for guest id `id`, or nil when it has none (see the type).
    @inline(__always)
    public func host(forGuest id: UInt32) -> UInt32? {
        if ranges.isEmpty { return id }
        return mapped(id, fromGuest: true)
    }

    /// The guest id for host id `id`, or nil when it has none (see the type).
    @inline(__always)
    public func guest(forHost id: UInt32) -> UInt32? {
        if ranges.isEmpty { return id }
        return mapped(id, fromGuest: false)
    }

    private func mapped(_ id: UInt32, fromGuest: Bool) -> UInt32? {
        var collides = false
        for r in ranges {
            if fromGuest {
                if r.containsGuest(id) { return r.host + (id - r.guest) }
                if r.containsHost(id) { collides = true }
            } else {
                if r.containsHost(id) { return r.guest + (id - r.host) }
                if r.containsGuest(id) { collides = true }
            }
        }
        return collides ? nil : id
    }

    /// The first pair (earlier, later) of ranges that share a guest or a host id.
    public static func firstOverlap(in ranges: [IDRange]) -> (IDRange, IDRange)? {
        for (i, later) in ranges.enumerated() {
            for earlier in ranges[..<i] where earlier.overlaps(later) { return (earlier, later) }
        }
        return nil
    }
}
