import CSupport

/// A descriptor chain popped from the available ring, translated into host
/// pointers that each lie inside one guest memory region.
public struct DescriptorChain {
    public let head: UInt16
    /// Device-readable buffers (the driver's data), in chain order.
    public var readable: [UnsafeMutableRawBufferPointer] = []
    /// Device-writable buffers, in chain order; they all follow the readable ones.
    public var writable: [UnsafeMutableRawBufferPointer] = []

    public var readableLength: Int { readable.reduce(0) { $0 + $1.count } }
    public var writableLength: Int { writable.reduce(0) { $0 + $1.count } }

    /// Copies up to `limit` readable bytes out of guest memory, in order.
    public func gatherReadable(limit: Int = .max) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(limit, readableLength))
        for buffer in readable {
            let n = min(buffer.count, limit - out.count)
            if n <= 0 { break }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return out
    }

    /// Copies `parts` into the writable buffers, in order; returns the bytes
    /// written (less than the total only if the buffers are too small).
    @discardableResult
    public func scatterWritable(_ parts: [UnsafeRawBufferPointer]) -> Int {
        var bufferIndex = 0
        var bufferOffset = 0
        var written = 0
        for part in parts {
            var partOffset = 0
            while partOffset < part.count, bufferIndex < writable.count {
                let buffer = writable[bufferIndex]
                let n = min(buffer.count - bufferOffset, part.count - partOffset)
                if n > 0 {
                    (buffer.baseAddress! + bufferOffset).copyMemory(
                        from: part.baseAddress! + partOffset, byteCount: n)
                }
                bufferOffset += n
                partOffset += n
                written += n
                if bufferOffset == buffer.count {
                    bufferIndex += 1
                    bufferOffset = 0
                }
            }
        }
        return written
    }
}

/// Which kind of buffers a queue's chains may hold: the transmit queue
/// carries only device-readable buffers, the receive queue only writable ones.
public enum ChainDirection: Sendable {
    case deviceReadable
    case deviceWritable
}

/// A split virtqueue (virtio 1.x, "Split Virtqueues") as the device sees it.
///
/// The guest owns the descriptor table and the available ring and can change
/// them at any time, so every field is read once into a local before it is
/// checked and used. Features: no indirect descriptors, no event index (both
/// are left out of the offered features, so a descriptor flagged INDIRECT is
/// a driver error here).
///
/// Not Sendable: owned by one device's event-loop thread.
public final class SplitVirtqueue {
    static let descriptorNext: UInt16 = 1
    static let descriptorWrite: UInt16 = 2
    static let descriptorIndirect: UInt16 = 4
    static let availNoInterrupt: UInt16 = 1
    /// The largest queue size the split ring format allows.
    public static let maximumSize: UInt32 = 32768

    public let size: UInt16
    public let direction: ChainDirection
    /// Keeps the mapping alive while these pointers are in use.
    private let memory: GuestMemory
    private let descriptors: UnsafeMutableRawPointer
    private let avail: UnsafeMutableRawPointer
    private let used: UnsafeMutableRawPointer

    /// The next available-ring entry to consume (vhost-user's "vring base").
    public private(set) var nextAvail: UInt16
    /// Our copy of used->idx (the device is its only writer).
    public private(set) var nextUsed: UInt16

    /// - Parameters: ring addresses in the front-end's address space (as
    ///   SET_VRING_ADDR gives them); `base` from SET_VRING_BASE.
    public init(memory: GuestMemory, size: UInt32, descriptorTable: UInt64, availRing: UInt64, usedRing: UInt64,
                base: UInt16, direction: ChainDirection) throws {
        guard size > 0, size <= Self.maximumSize, size & (size - 1) == 0 else {
            throw VirtioVsockError.badRing("queue size \(size) is not a power of two up to \(Self.maximumSize)")
        }
        let n = UInt64(size)
        guard let d = memory.user(descriptorTable, length: 16 * n),
              let a = memory.user(availRing, length: 6 + 2 * n),
              let u = memory.user(usedRing, length: 6 + 8 * n) else {
            throw VirtioVsockError.badRing("a ring is not inside the guest's memory regions")
        }
        guard UInt(bitPattern: d) % 16 == 0, UInt(bitPattern: a) % 2 == 0, UInt(bitPattern: u) % 4 == 0 else {
            throw VirtioVsockError.badRing("a ring is misaligned")
        }
        self.memory = memory
        self.size = UInt16(size)
        self.direction = direction
        descriptors = d
        avail = a
        used = u
        nextAvail = base
        // The used index lives in guest memory; after a stop and restart it
        // continues from there (the driver saw every completion up to it).
        nextUsed = vsnfs_load_acquire_u16(u + 2)
    }

    private var sizeAsInt: Int { Int(size) }

    /// Chains the driver has made available and the device has not taken.
    public func pendingCount() throws -> Int {
        let availIndex = vsnfs_load_acquire_u16(avail + 2)
        let pending = Int(availIndex &- nextAvail)
        guard pending <= sizeAsInt else {
            throw VirtioVsockError.badRing("available index moved \(pending) entries past the device, more than the queue size \(sizeAsInt)")
        }
        return pending
    }

    /// Takes the next available chain, validated, or nil if none is available.
    /// Throws (and consumes nothing) for a chain that breaks the rules; the
    /// caller then treats the queue as broken.
    public func pop() throws -> DescriptorChain? {
        guard try pendingCount() > 0 else { return nil }
        // The acquire load of avail->idx orders the reads below after it.
        let slot = Int(nextAvail) % sizeAsInt
        let head = (avail + 4 + 2 * slot).loadUnaligned(as: UInt16.self).littleEndian
        let chain = try walk(head: head)
        nextAvail &+= 1
        return chain
    }

    private func walk(head: UInt16) throws -> DescriptorChain {
        var chain = DescriptorChain(head: head)
        var index = head
        var count = 0
        while true {
            guard Int(index) < sizeAsInt else {
                throw VirtioVsockError.badDescriptor("index \(index) is outside a queue of \(sizeAsInt)")
            }
            count += 1
            // A chain may use each descriptor once; more links than the queue
            // has descriptors means it loops.
            guard count <= sizeAsInt else {
                throw VirtioVsockError.badDescriptor("chain from \(head) is longer than the queue (\(sizeAsInt)); it loops")
            }
            let entry = descriptors + 16 * Int(index)
            let address = entry.loadUnaligned(as: UInt64.self).littleEndian
            let length = entry.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
            let flags = entry.loadUnaligned(fromByteOffset: 12, as: UInt16.self).littleEndian
            let next = entry.loadUnaligned(fromByteOffset: 14, as: UInt16.self).littleEndian
            guard flags & Self.descriptorIndirect == 0 else {
                throw VirtioVsockError.badDescriptor("descriptor \(index) is indirect, which was not negotiated")
            }
            let writable = flags & Self.descriptorWrite != 0
            switch (direction, writable) {
            case (.deviceReadable, true):
                throw VirtioVsockError.badDescriptor("descriptor \(index) is device-writable in a transmit queue")
            case (.deviceWritable, false):
                throw VirtioVsockError.badDescriptor("descriptor \(index) is device-readable in a receive queue")
            default:
                break
            }
            if length > 0 {
                guard let p = memory.guest(address, length: UInt64(length)) else {
                    throw VirtioVsockError.badDescriptor(
                        "descriptor \(index): 0x\(String(address, radix: 16)) length \(length) is outside the guest's memory")
                }
                let buffer = UnsafeMutableRawBufferPointer(start: p, count: Int(length))
                if writable { chain.writable.append(buffer) } else { chain.readable.append(buffer) }
            }
            guard flags & Self.descriptorNext != 0 else { break }
            index = next
        }
        return chain
    }

    /// Returns a chain to the driver with `length` bytes written into it.
    /// The entry is written before the index is published (release order).
    public func push(head: UInt16, length: UInt32) {
        let slot = Int(nextUsed) % sizeAsInt
        let entry = used + 4 + 8 * slot
        entry.storeBytes(of: UInt32(head).littleEndian, as: UInt32.self)
        entry.storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt32.self)
        nextUsed &+= 1
        vsnfs_store_release_u16(used + 2, nextUsed.littleEndian)
    }

    /// Whether the driver wants an interrupt now (VIRTQ_AVAIL_F_NO_INTERRUPT
    /// clear). The full fence orders our used->idx store before this load.
    public func driverWantsInterrupt() -> Bool {
        vsnfs_fence_seq_cst()
        let flags = vsnfs_load_acquire_u16(avail).littleEndian
        return flags & Self.availNoInterrupt == 0
    }
}
