/// The virtio-vsock packet header (virtio 1.2, "Socket Device", struct
/// virtio_vsock_hdr): 44 bytes, all fields little-endian.
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44
    /// VIRTIO_VSOCK_TYPE_STREAM, the only socket type this device offers.
    public static let typeStream: UInt16 = 1
    /// The host's CID (VMADDR_CID_HOST) as guests address it.
    public static let hostCID: UInt64 = 2

    public enum Op: UInt16, Sendable {
        case request = 1
        case response = 2
        case reset = 3
        case shutdown = 4
        case readWrite = 5
        case creditUpdate = 6
        case creditRequest = 7
    }

    /// SHUTDOWN flags: the sender will receive no more / send no more.
    public static let shutdownReceive: UInt32 = 1
    public static let shutdownSend: UInt32 = 2

    public var srcCID: UInt64
    public var dstCID: UInt64
    public var srcPort: UInt32
    public var dstPort: UInt32
    public var length: UInt32
    public var type: UInt16
    public var op: UInt16
    public var flags: UInt32
    public var bufAlloc: UInt32
    public var fwdCount: UInt32

    public init(srcCID: UInt64, dstCID: UInt64, srcPort: UInt32, dstPort: UInt32, length: UInt32 = 0,
                type: UInt16 = VsockHeader.typeStream, op: Op, flags: UInt32 = 0, bufAlloc: UInt32 = 0,
                fwdCount: UInt32 = 0) {
        self.init(srcCID: srcCID, dstCID: dstCID, srcPort: srcPort, dstPort: dstPort, length: length, type: type,
                  rawOp: op.rawValue, flags: flags, bufAlloc: bufAlloc, fwdCount: fwdCount)
    }

    public init(srcCID: UInt64, dstCID: UInt64, srcPort: UInt32, dstPort: UInt32, length: UInt32, type: UInt16,
                rawOp: UInt16, flags: UInt32, bufAlloc: UInt32, fwdCount: UInt32) {
        self.srcCID = srcCID
        self.dstCID = dstCID
        self.srcPort = srcPort
        self.dstPort = dstPort
        self.length = length
        self.type = type
        self.op = rawOp
        self.flags = flags
        self.bufAlloc = bufAlloc
        self.fwdCount = fwdCount
    }

    /// Decodes the first 44 bytes; nil if there are fewer.
    public init?(bytes: [UInt8]) {
        guard bytes.count >= Self.size else { return nil }
        var r = LittleEndianReader(bytes: Array(bytes[0..<Self.size]))
        self.init(srcCID: r.u64()!, dstCID: r.u64()!, srcPort: r.u32()!, dstPort: r.u32()!, length: r.u32()!,
                  type: r.u16()!, rawOp: r.u16()!, flags: r.u32()!, bufAlloc: r.u32()!, fwdCount: r.u32()!)
    }

    public var bytes: [UInt8] {
        var w = LittleEndianWriter()
        w.u64(srcCID)
        w.u64(dstCID)
        w.u32(srcPort)
        w.u32(dstPort)
        w.u32(length)
        w.u16(type)
        w.u16(op)
        w.u32(flags)
        w.u32(bufAlloc)
        w.u32(fwdCount)
        return w.bytes
    }

    public var knownOp: Op? { Op(rawValue: op) }
}

/// Credit-based flow control of one stream (virtio 1.2, "Device Operation:
/// Flow Control"), both directions, as pure arithmetic. Counters are the
/// spec's free-running u32s, so differences use wrapping arithmetic.
public struct VsockCredit: Equatable, Sendable {
    // Guest to host: what we advertise and have consumed.
    /// Our receive buffer (buf_alloc we advertise).
    public let ourBufferSize: UInt32
    /// Bytes received from the guest, in total.
    public private(set) var received: UInt32 = 0
    /// Bytes consumed by our side (our fwd_cnt).
    public private(set) var forwarded: UInt32 = 0
    /// The fwd_cnt the guest last heard from us.
    public private(set) var advertisedForwarded: UInt32 = 0

    // Host to guest: the guest's buffer and what it has consumed.
    public private(set) var peerBufferSize: UInt32
    public private(set) var peerForwarded: UInt32
    /// Bytes sent to the guest, in total (tx_cnt).
    public private(set) var sent: UInt32 = 0

    public init(ourBufferSize: UInt32, peerBufferSize: UInt32, peerForwarded: UInt32) {
        self.ourBufferSize = ourBufferSize
        self.peerBufferSize = peerBufferSize
        self.peerForwarded = peerForwarded
    }

    /// Bytes received and not yet consumed.
    public var unconsumed: UInt32 { received &- forwarded }

    /// How many bytes the guest may still send us without overrunning our buffer.
    public var ourFreeSpace: UInt32 { ourBufferSize &- min(ourBufferSize, unconsumed) }

    /// How many bytes we may send the guest now:
    /// buf_alloc - (tx_cnt - fwd_cnt), never negative (a guest may shrink buf_alloc).
    public var sendWindow: UInt32 {
        let inFlight = sent &- peerForwarded
        return peerBufferSize >= inFlight ? peerBufferSize - inFlight : 0
    }

    /// Records the credit fields of any packet from the guest.
    public mutating func peerAdvertised(bufAlloc: UInt32, fwdCount: UInt32) {
        peerBufferSize = bufAlloc
        peerForwarded = fwdCount
    }

    /// Accounts for `count` payload bytes from the guest. False if they exceed
    /// the credit we gave (the guest broke flow control; nothing is recorded).
    public mutating func receive(_ count: UInt32) -> Bool {
        guard count <= ourFreeSpace else { return false }
        received &+= count
        return true
    }

    /// Our consumer took `count` bytes.
    public mutating func consume(_ count: UInt32) {
        precondition(count <= unconsumed, "consumed more than was received")
        forwarded &+= count
    }

    /// Accounts for `count` payload bytes sent to the guest (at most sendWindow).
    public mutating func send(_ count: UInt32) {
        precondition(count <= sendWindow, "sent past the guest's credit")
        sent &+= count
    }

    /// Every packet to the guest carries buf_alloc and fwd_cnt: call when one
    /// is sent, so `creditUpdateNeeded` knows what the guest has heard.
    public mutating func advertised() -> (bufAlloc: UInt32, fwdCount: UInt32) {
        advertisedForwarded = forwarded
        return (ourBufferSize, forwarded)
    }

    /// The guest's view of our free space has fallen below half the buffer and
    /// we have freed space it has not heard about: a guest that waits for
    /// credit must get an update, or both sides stall.
    public var creditUpdateNeeded: Bool {
        guard forwarded != advertisedForwarded else { return false }
        let guestViewFree = ourBufferSize &- min(ourBufferSize, received &- advertisedForwarded)
        return guestViewFree < ourBufferSize / 2
    }
}
