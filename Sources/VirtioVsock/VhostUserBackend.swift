import CSupport
import Glibc

/// One vring's setup as the front-end gives it, and its queue while started.
struct Vring {
    var size: UInt32 = 0
    var descriptorTable: UInt64?
    var usedRing: UInt64 = 0
    var availRing: UInt64 = 0
    var base: UInt16 = 0
    var kickFD: Int32 = -1
    var callFD: Int32 = -1
    var errFD: Int32 = -1
    var enabled = false
    /// Non-nil while the ring is started (from SET_VRING_KICK to GET_VRING_BASE).
    var queue: SplitVirtqueue?

    mutating func closeFDs() {
        for fd in [kickFD, callFD, errFD] where fd >= 0 { close(fd) }
        kickFD = -1
        callFD = -1
        errFD = -1
    }
}

/// The vhost-user back-end's protocol state for a virtio device with two
/// queues (vsock's rx 0 and tx 1; QEMU keeps the event queue itself):
/// features, memory table, vrings, config space. Pure message handling, no
/// socket I/O, so tests and the event loop drive it the same way.
///
/// Not Sendable: owned by one device's event-loop thread.
final class VhostUserBackend {
    static let queueCount = 2
    static let offeredFeatures = VirtioFeature.version1 | VirtioFeature.protocolFeatures
    static let offeredProtocolFeatures = VhostUserProtocolFeature.replyAck | VhostUserProtocolFeature.config

    /// The device's config space (virtio_vsock_config: le64 guest_cid).
    let configSpace: [UInt8]
    private(set) var features: UInt64 = 0
    private(set) var protocolFeatures: UInt64 = 0
    private(set) var hasOwner = false
    private(set) var memory: GuestMemory?
    var vrings = [Vring](repeating: Vring(), count: VhostUserBackend.queueCount)

    /// What a handled message did besides its reply, for the device to act on.
    enum Effect: Equatable {
        case none
        /// Ring `index` stopped (GET_VRING_BASE) or the whole device reset.
        case ringStopped(Int)
        case reset
    }

    init(guestCID: UInt64) {
        var w = LittleEndianWriter()
        w.u64(guestCID)
        configSpace = w.bytes
    }

    deinit { reset() }

    /// Back to the state of a new front-end connection (RESET_OWNER, or the
    /// front-end went away): rings stopped, fds closed, memory unmapped.
    func reset() {
        for i in vrings.indices { vrings[i].closeFDs() }
        vrings = [Vring](repeating: Vring(), count: Self.queueCount)
        memory = nil
        features = 0
        protocolFeatures = 0
        hasOwner = false
    }

    var protocolFeaturesNegotiated: Bool { features & VirtioFeature.protocolFeatures != 0 }

    /// A started, enabled queue with index `index`, or nil.
    func activeQueue(_ index: Int) -> SplitVirtqueue? {
        let v = vrings[index]
        return v.enabled ? v.queue : nil
    }

    /// Requests whose reply is their answer; REPLY_ACK does not apply to them.
    static func hasOwnReply(_ request: UInt32) -> Bool {
        switch VhostUserRequest(rawValue: request) {
        case .getFeatures, .getProtocolFeatures, .getVringBase, .getQueueNum, .getConfig: return true
        default: return false
        }
    }

    /// Handles one message. Takes ownership of `fds` (each is kept or closed).
    /// Returns the reply payload for requests that have one (nil otherwise).
    /// Throws for a message this back-end refuses; the caller acks a failure
    /// (when REPLY_ACK applies) and logs.
    func handle(request rawRequest: UInt32, payload: [UInt8], fds: [Int32]) throws -> (reply: [UInt8]?, effect: Effect) {
        var fds = fds
        defer { for fd in fds { close(fd) } }
        func takeFDs() -> [Int32] {
            defer { fds = [] }
            return fds
        }
        guard let request = VhostUserRequest(rawValue: rawRequest) else {
            throw VirtioVsockError.badMessage("unknown request \(rawRequest)")
        }
        var r = LittleEndianReader(bytes: payload)
        func u64() throws -> UInt64 {
            guard let v = r.u64() else { throw VirtioVsockError.badMessage("\(request): payload too short") }
            return v
        }
        func u32() throws -> UInt32 {
            guard let v = r.u32() else { throw VirtioVsockError.badMessage("\(request): payload too short") }
            return v
        }
        func queueIndex(_ raw: UInt32) throws -> Int {
            guard raw < Self.queueCount else {
                throw VirtioVsockError.badMessage("\(request): queue \(raw) (this device has \(Self.queueCount))")
            }
            return Int(raw)
        }
        func u64Reply(_ v: UInt64) -> [UInt8] {
            var w = LittleEndianWriter()
            w.u64(v)
            return w.bytes
        }

        switch request {
        case .getFeatures:
            return (u64Reply(Self.offeredFeatures), .none)
        case .setFeatures:
            let f = try u64()
            guard f & ~Self.offeredFeatures == 0 else {
                throw VirtioVsockError.badMessage("SET_FEATURES with bits not offered: 0x\(String(f & ~Self.offeredFeatures, radix: 16))")
            }
            features = f
            // Without protocol features a ring is enabled as soon as it starts.
            if !protocolFeaturesNegotiated {
                for i in vrings.indices { vrings[i].enabled = true }
            }
            return (nil, .none)
        case .getProtocolFeatures:
            return (u64Reply(Self.offeredProtocolFeatures), .none)
        case .setProtocolFeatures:
            let f = try u64()
            guard f & ~Self.offeredProtocolFeatures == 0 else {
                throw VirtioVsockError.badMessage("SET_PROTOCOL_FEATURES with bits not offered")
            }
            protocolFeatures = f
            return (nil, .none)
        case .setOwner:
            hasOwner = true
            return (nil, .none)
        case .resetOwner:
            reset()
            return (nil, .reset)
        case .setMemTable:
            let count = try u32()
            _ = try u32()  // padding
            guard count >= 1, count <= UInt32(GuestMemory.maximumRegions) else {
                throw VirtioVsockError.badMemoryTable("\(count) regions")
            }
            var regions: [VhostUserMemoryRegion] = []
            for _ in 0..<count {
                regions.append(VhostUserMemoryRegion(guestPhysicalAddress: try u64(), size: try u64(),
                                                     userAddress: try u64(), mmapOffset: try u64()))
            }
            let newMemory = try GuestMemory(regions: regions, fds: fds)
            // Started rings point into the old mapping: translate them again.
            for i in vrings.indices where vrings[i].queue != nil {
                let old = vrings[i].queue!
                vrings[i].base = old.nextAvail
                vrings[i].queue = try makeQueue(i, memory: newMemory, base: old.nextAvail)
            }
            memory = newMemory
            return (nil, .none)
        case .setVringNum:
            let i = try queueIndex(try u32())
            let num = try u32()
            guard num > 0, num <= SplitVirtqueue.maximumSize, num & (num - 1) == 0 else {
                throw VirtioVsockError.badRing("queue size \(num) is not a power of two up to \(SplitVirtqueue.maximumSize)")
            }
            vrings[i].size = num
            return (nil, .none)
        case .setVringAddr:
            let i = try queueIndex(try u32())
            let flags = try u32()
            guard flags == 0 else { throw VirtioVsockError.badMessage("SET_VRING_ADDR with logging flags (not offered)") }
            vrings[i].descriptorTable = try u64()
            vrings[i].usedRing = try u64()
            vrings[i].availRing = try u64()
            return (nil, .none)
        case .setVringBase:
            let i = try queueIndex(try u32())
            let num = try u32()
            guard num <= UInt32(UInt16.max) else { throw VirtioVsockError.badRing("vring base \(num) is past 65535") }
            vrings[i].base = UInt16(num)
            return (nil, .none)
        case .getVringBase:
            let i = try queueIndex(try u32())
            let base = vrings[i].queue?.nextAvail ?? vrings[i].base
            vrings[i].queue = nil
            vrings[i].base = base
            if vrings[i].kickFD >= 0 {
                close(vrings[i].kickFD)
                vrings[i].kickFD = -1
            }
            var w = LittleEndianWriter()
            w.u32(UInt32(i))
            w.u32(UInt32(base))
            return (w.bytes, .ringStopped(i))
        case .setVringKick, .setVringCall, .setVringErr:
            let value = try u64()
            let i = try queueIndex(UInt32(value & 0xff))
            let noFD = value & 0x100 != 0
            let passed = takeFDs()
            guard passed.count == (noFD ? 0 : 1) else {
                for fd in passed { close(fd) }
                throw VirtioVsockError.badMessage("\(request) with \(passed.count) file descriptors")
            }
            let fd = passed.first ?? -1
            switch request {
            case .setVringKick:
                if vrings[i].kickFD >= 0 { close(vrings[i].kickFD) }
                vrings[i].kickFD = fd
                // A ring starts when its kick arrives.
                guard let memory else { throw VirtioVsockError.badRing("SET_VRING_KICK before SET_MEM_TABLE") }
                vrings[i].queue = try makeQueue(i, memory: memory, base: vrings[i].base)
            case .setVringCall:
                if vrings[i].callFD >= 0 { close(vrings[i].callFD) }
                vrings[i].callFD = fd
            default:
                if vrings[i].errFD >= 0 { close(vrings[i].errFD) }
                vrings[i].errFD = fd
            }
            return (nil, .none)
        case .setVringEnable:
            let i = try queueIndex(try u32())
            let num = try u32()
            guard protocolFeaturesNegotiated else {
                throw VirtioVsockError.badMessage("SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES")
            }
            guard num <= 1 else { throw VirtioVsockError.badMessage("SET_VRING_ENABLE \(num)") }
            vrings[i].enabled = num == 1
            return (nil, .none)
        case .getQueueNum:
            return (u64Reply(UInt64(Self.queueCount)), .none)
        case .getConfig:
            let offset = try u32()
            let size = try u32()
            let flags = try u32()
            var w = LittleEndianWriter()
            w.u32(offset)
            w.u32(size)
            w.u32(flags)
            guard protocolFeatures & VhostUserProtocolFeature.config != 0 else {
                throw VirtioVsockError.badMessage("GET_CONFIG without the CONFIG protocol feature")
            }
            guard offset <= UInt32(configSpace.count), size <= UInt32(configSpace.count) - offset else {
                throw VirtioVsockError.badMessage("GET_CONFIG of \(size) bytes at \(offset) (config space is \(configSpace.count))")
            }
            w.append(Array(configSpace[Int(offset)..<Int(offset + size)]))
            return (w.bytes, .none)
        case .setConfig:
            throw VirtioVsockError.badMessage("SET_CONFIG: the vsock config space is read-only")
        case .setLogBase, .setLogFD:
            throw VirtioVsockError.badMessage("\(request): logging was not offered")
        }
    }

    private func makeQueue(_ i: Int, memory: GuestMemory, base: UInt16) throws -> SplitVirtqueue {
        guard let desc = vrings[i].descriptorTable, vrings[i].size > 0 else {
            throw VirtioVsockError.badRing("queue \(i) started before its size and addresses were set")
        }
        return try SplitVirtqueue(memory: memory, size: vrings[i].size, descriptorTable: desc,
                                  availRing: vrings[i].availRing, usedRing: vrings[i].usedRing, base: base,
                                  direction: i == 0 ? .deviceWritable : .deviceReadable)
    }
}
