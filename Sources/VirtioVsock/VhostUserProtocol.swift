// The vhost-user protocol's wire format (QEMU docs/interop/vhost-user.rst):
// every message is a 12-byte header (request, flags, payload size; all
// little-endian u32) followed by `size` bytes of payload; file descriptors
// ride along as SCM_RIGHTS ancillary data.

/// Front-end requests this back-end knows by name.
public enum VhostUserRequest: UInt32, Sendable, CaseIterable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFD = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case getConfig = 24
    case setConfig = 25
}

/// Feature bits (virtio and vhost-user) this device deals with.
public enum VirtioFeature {
    /// VIRTIO_RING_F_INDIRECT_DESC: not offered (indirect tables are refused).
    public static let indirectDescriptors: UInt64 = 1 << 28
    /// VIRTIO_RING_F_EVENT_IDX: not offered (flags-based notification only).
    public static let eventIndex: UInt64 = 1 << 29
    /// VHOST_USER_F_PROTOCOL_FEATURES.
    public static let protocolFeatures: UInt64 = 1 << 30
    /// VIRTIO_F_VERSION_1: little-endian rings and headers, any descriptor layout.
    public static let version1: UInt64 = 1 << 32
}

/// vhost-user protocol feature bits.
public enum VhostUserProtocolFeature {
    public static let multiQueue: UInt64 = 1 << 0
    public static let replyAck: UInt64 = 1 << 3
    public static let config: UInt64 = 1 << 9
}

/// The 12-byte message header.
public struct VhostUserHeader: Equatable, Sendable {
    /// Version 1 in bits 0-1, reply in bit 2, need-reply in bit 3.
    public static let version: UInt32 = 0x1
    public static let replyFlag: UInt32 = 1 << 2
    public static let needReplyFlag: UInt32 = 1 << 3
    public static let size = 12
    /// Larger than any payload this device accepts (the memory table with 8
    /// regions is 8 + 8 * 32 bytes; config space reads are capped too).
    public static let maximumPayload: UInt32 = 4096

    public var request: UInt32
    public var flags: UInt32
    public var payloadSize: UInt32

    public init(request: UInt32, flags: UInt32, payloadSize: UInt32) {
        self.request = request
        self.flags = flags
        self.payloadSize = payloadSize
    }

    public init(bytes: some Collection<UInt8>) {
        var reader = LittleEndianReader(bytes: Array(bytes))
        request = reader.u32() ?? 0
        flags = reader.u32() ?? 0
        payloadSize = reader.u32() ?? 0
    }

    public var bytes: [UInt8] {
        var w = LittleEndianWriter()
        w.u32(request)
        w.u32(flags)
        w.u32(payloadSize)
        return w.bytes
    }

    public var needsReply: Bool { flags & Self.needReplyFlag != 0 }
}

/// One region of a SET_MEM_TABLE payload.
public struct VhostUserMemoryRegion: Equatable, Sendable {
    public var guestPhysicalAddress: UInt64
    public var size: UInt64
    /// Where the front-end has the region mapped in its own address space:
    /// SET_VRING_ADDR gives ring addresses in this space.
    public var userAddress: UInt64
    /// Offset of the region in the passed file.
    public var mmapOffset: UInt64

    public init(guestPhysicalAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
    }
}

/// Little-endian decoding of a payload; every read is bounds-checked.
public struct LittleEndianReader {
    public private(set) var bytes: [UInt8]
    public private(set) var offset = 0
    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        let width = MemoryLayout<T>.size
        guard remaining >= width else { return nil }
        var value: T = 0
        for i in 0..<width { value |= T(bytes[offset + i]) << (8 * i) }
        offset += width
        return value
    }
    public mutating func u16() -> UInt16? { integer(UInt16.self) }
    public mutating func u32() -> UInt32? { integer(UInt32.self) }
    public mutating func u64() -> UInt64? { integer(UInt64.self) }
}

public struct LittleEndianWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }
    public mutating func u16(_ v: UInt16) { integer(v) }
    public mutating func u32(_ v: UInt32) { integer(v) }
    public mutating func u64(_ v: UInt64) { integer(v) }
    public mutating func append(_ other: [UInt8]) { bytes += other }
}
