import CSupport
import Glibc
import NIOConcurrencyHelpers
import Testing
@testable import VirtioVsock

// A front-end of our own: guest memory in a memfd, a driver's side of split
// virtqueues, and a vhost-user client, so the device is tested the way QEMU
// and a guest kernel drive it.

/// Guest RAM: one memfd, two regions with a hole between them in guest
/// physical addresses, each at its own offset in the file, mapped here too
/// (this mapping's addresses are the "front-end user addresses").
final class GuestRAM {
    static let regionSize: UInt64 = 0x80000
    /// Region 0: guest 0x0..<0x80000 at file offset 0.
    /// Region 1: guest 0x200000..<0x280000 at file offset 0x80000.
    static let region1Guest: UInt64 = 0x200000
    let fd: Int32
    let base: UnsafeMutableRawPointer
    let fileSize = Int(2 * regionSize)
    private var nextFree: UInt64 = 0x10000

    init() {
        fd = vsnfs_memfd_create("guest-ram")
        precondition(fd >= 0)
        precondition(ftruncate(fd, off_t(fileSize)) == 0)
        base = mmap(nil, fileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)!
        precondition(base != MAP_FAILED)
    }

    deinit {
        munmap(base, fileSize)
        close(fd)
    }

    var regions: [VhostUserMemoryRegion] {
        [VhostUserMemoryRegion(guestPhysicalAddress: 0, size: Self.regionSize, userAddress: userAddress(ofFileOffset: 0),
                               mmapOffset: 0),
         VhostUserMemoryRegion(guestPhysicalAddress: Self.region1Guest, size: Self.regionSize,
                               userAddress: userAddress(ofFileOffset: Self.regionSize), mmapOffset: Self.regionSize)]
    }

    func userAddress(ofFileOffset offset: UInt64) -> UInt64 { UInt64(UInt(bitPattern: base)) + offset }

    func fileOffset(ofGuest gpa: UInt64) -> Int {
        if gpa < Self.regionSize { return Int(gpa) }
        precondition(gpa >= Self.region1Guest && gpa < Self.region1Guest + Self.regionSize)
        return Int(gpa - Self.region1Guest + Self.regionSize)
    }

    func pointer(_ gpa: UInt64) -> UnsafeMutableRawPointer { base + fileOffset(ofGuest: gpa) }
    func userAddress(ofGuest gpa: UInt64) -> UInt64 { userAddress(ofFileOffset: UInt64(fileOffset(ofGuest: gpa))) }

    /// Allocates `size` bytes in region 0 (aligned to 16).
    func allocate(_ size: Int) -> UInt64 {
        let address = nextFree
        nextFree += UInt64((size + 15) & ~15)
        precondition(nextFree <= Self.regionSize)
        return address
    }

    private var nextScratch: UInt64 = 0
    /// Allocates `size` bytes in region 1, wrapping around: for packets the
    /// device consumes before the area is reused.
    func allocateScratch(_ size: Int) -> UInt64 {
        let rounded = UInt64((size + 15) & ~15)
        precondition(rounded <= Self.regionSize)
        if nextScratch + rounded > Self.regionSize { nextScratch = 0 }
        defer { nextScratch += rounded }
        return Self.region1Guest + nextScratch
    }

    func write(_ bytes: [UInt8], at gpa: UInt64) {
        bytes.withUnsafeBytes { pointer(gpa).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }

    func read(_ gpa: UInt64, count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: pointer(gpa), count: count))
    }
}

/// The driver's side of one split virtqueue in GuestRAM.
final class DriverQueue {
    let ram: GuestRAM
    let size: UInt16
    let descriptors: UInt64
    let avail: UInt64
    let used: UInt64
    private var nextDescriptor: UInt16 = 0
    private var availIndex: UInt16 = 0
    private(set) var lastSeenUsed: UInt16 = 0

    init(ram: GuestRAM, size: UInt16 = 16) {
        self.ram = ram
        self.size = size
        descriptors = ram.allocate(16 * Int(size))
        avail = ram.allocate(6 + 2 * Int(size))
        used = ram.allocate(6 + 8 * Int(size))
    }

    var userAddresses: (descriptors: UInt64, avail: UInt64, used: UInt64) {
        (ram.userAddress(ofGuest: descriptors), ram.userAddress(ofGuest: avail), ram.userAddress(ofGuest: used))
    }

    /// Writes descriptor `index` as given, whatever it says.
    func writeDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        var w = LittleEndianWriter()
        w.u64(address)
        w.u32(length)
        w.u16(flags)
        w.u16(next)
        ram.write(w.bytes, at: descriptors + 16 * UInt64(index))
    }

    /// Adds a chain of buffers (guest address, length, device-writable) and
    /// makes it available. Returns its head.
    @discardableResult
    func addChain(_ buffers: [(address: UInt64, length: UInt32, writable: Bool)]) -> UInt16 {
        let head = nextDescriptor
        for (i, b) in buffers.enumerated() {
            let index = nextDescriptor
            nextDescriptor = (nextDescriptor + 1) % size
            let last = i == buffers.count - 1
            writeDescriptor(index, address: b.address, length: b.length,
                            flags: (last ? 0 : 1) | (b.writable ? 2 : 0), next: last ? 0 : nextDescriptor)
        }
        makeAvailable(head)
        return head
    }

    func makeAvailable(_ head: UInt16) {
        var w = LittleEndianWriter()
        w.u16(head)
        ram.write(w.bytes, at: avail + 4 + 2 * UInt64(availIndex % size))
        availIndex &+= 1
        vsnfs_fence_seq_cst()
        vsnfs_store_release_u16(ram.pointer(avail + 2), availIndex)
    }

    /// Sets the avail index as given (to test bogus indices).
    func setAvailIndex(_ value: UInt16) {
        availIndex = value
        vsnfs_store_release_u16(ram.pointer(avail + 2), value)
    }

    var usedIndex: UInt16 { vsnfs_load_acquire_u16(ram.pointer(used + 2)) }

    /// The next used entry not yet seen (id, length), or nil.
    func nextUsed() -> (id: UInt32, length: UInt32)? {
        guard usedIndex != lastSeenUsed else { return nil }
        let entry = ram.read(used + 4 + 8 * UInt64(lastSeenUsed % size), count: 8)
        var r = LittleEndianReader(bytes: entry)
        lastSeenUsed &+= 1
        return (r.u32()!, r.u32()!)
    }
}

/// Waits up to `seconds` for `condition`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    // A short spin first: the device usually answers within microseconds.
    for _ in 0..<200 {
        if condition() { return true }
        sched_yield()
    }
    var waited = 0.0
    while waited < seconds {
        if condition() { return true }
        usleep(2000)
        waited += 0.002
    }
    return condition()
}

func temporarySocketPath(_ name: String) -> String {
    "/tmp/vsnfs-vu-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max)).sock"
}

enum FrontEndError: Error { case closed, system(Int32) }

/// The vhost-user front-end double.
final class FrontEnd {
    let sock: Int32

    init(path: String) throws {
        sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = unixAddress(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { throw FrontEndError.system(errno) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(sock) }

    func send(_ request: UInt32, _ payload: [UInt8] = [], fds: [Int32] = [], needReply: Bool = false) {
        let header = VhostUserHeader(request: request, flags: 1 | (needReply ? VhostUserHeader.needReplyFlag : 0),
                                     payloadSize: UInt32(payload.count))
        let bytes = header.bytes + payload
        // A refused front-end sees EPIPE here; its next receive reports the close.
        _ = bytes.withUnsafeBytes { vsnfs_send_with_fds(sock, $0.baseAddress!, bytes.count, fds, Int32(fds.count)) }
    }

    func send(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [Int32] = [], needReply: Bool = false) {
        send(request.rawValue, payload, fds: fds, needReply: needReply)
    }

    func receive() throws -> (header: VhostUserHeader, payload: [UInt8]) {
        let header = VhostUserHeader(bytes: try readExactly(VhostUserHeader.size))
        return (header, try readExactly(Int(header.payloadSize)))
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { read(sock, $0.baseAddress! + done, count - done) }
            if n <= 0 { throw FrontEndError.closed }
            done += n
        }
        return buffer
    }

    /// Sends a request that has a reply of its own and returns the reply payload.
    func call(_ request: VhostUserRequest, _ payload: [UInt8] = []) throws -> [UInt8] {
        send(request, payload)
        let (header, reply) = try receive()
        #expect(header.request == request.rawValue)
        #expect(header.flags & VhostUserHeader.replyFlag != 0)
        return reply
    }

    /// Sends a request with NEED_REPLY and returns the ack: true for success.
    func acked(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [Int32] = []) throws -> Bool {
        send(request, payload, fds: fds, needReply: true)
        let (header, reply) = try receive()
        #expect(header.request == request.rawValue)
        var r = LittleEndianReader(bytes: reply)
        return r.u64() == 0
    }

    func u64(_ v: UInt64) -> [UInt8] {
        var w = LittleEndianWriter()
        w.u64(v)
        return w.bytes
    }

    func state(_ index: UInt32, _ num: UInt32) -> [UInt8] {
        var w = LittleEndianWriter()
        w.u32(index)
        w.u32(num)
        return w.bytes
    }

    func memTable(_ regions: [VhostUserMemoryRegion]) -> [UInt8] {
        var w = LittleEndianWriter()
        w.u32(UInt32(regions.count))
        w.u32(0)
        for r in regions {
            w.u64(r.guestPhysicalAddress)
            w.u64(r.size)
            w.u64(r.userAddress)
            w.u64(r.mmapOffset)
        }
        return w.bytes
    }

    /// Negotiates the way QEMU does: features, protocol features (REPLY_ACK, CONFIG), owner.
    func negotiate() throws {
        var r = LittleEndianReader(bytes: try call(.getFeatures))
        let offered = r.u64()!
        send(.setFeatures, u64(offered & (VirtioFeature.version1 | VirtioFeature.protocolFeatures)))
        r = LittleEndianReader(bytes: try call(.getProtocolFeatures))
        let protocolOffered = r.u64()!
        send(.setProtocolFeatures, u64(protocolOffered & (VhostUserProtocolFeature.replyAck | VhostUserProtocolFeature.config)))
        #expect(try acked(.setOwner))
    }

    func setMemTable(_ ram: GuestRAM) throws -> Bool {
        try acked(.setMemTable, memTable(ram.regions), fds: [ram.fd, ram.fd])
    }

    /// Sets up and starts queue `index`; returns its kick and call eventfds.
    func startQueue(_ index: UInt32, _ q: DriverQueue, enable: Bool = true) throws -> (kick: Int32, call: Int32) {
        #expect(try acked(.setVringNum, state(index, UInt32(q.size))))
        var w = LittleEndianWriter()
        w.u32(index)
        w.u32(0)
        let a = q.userAddresses
        w.u64(a.descriptors)
        w.u64(a.used)
        w.u64(a.avail)
        w.u64(0)
        #expect(try acked(.setVringAddr, w.bytes))
        #expect(try acked(.setVringBase, state(index, 0)))
        let call = vsnfs_eventfd()
        let kick = vsnfs_eventfd()
        #expect(try acked(.setVringCall, u64(UInt64(index)), fds: [call]))
        #expect(try acked(.setVringKick, u64(UInt64(index)), fds: [kick]))
        if enable { #expect(try acked(.setVringEnable, state(index, 1))) }
        return (kick, call)
    }
}

/// The guest's virtio-vsock driver double: rx and tx queues, packets in and out.
final class GuestVsock {
    let ram = GuestRAM()
    let rx: DriverQueue
    let tx: DriverQueue
    let frontEnd: FrontEnd
    var rxFDs: (kick: Int32, call: Int32) = (-1, -1)
    var txFDs: (kick: Int32, call: Int32) = (-1, -1)
    let cid: UInt64
    /// Receive buffers posted and not yet returned: head -> guest address.
    private var rxBuffers: [UInt16: UInt64] = [:]
    static let rxBufferSize = 4096 + VsockHeader.size

    init(path: String, cid: UInt64, queueSize: UInt16 = 64) throws {
        self.cid = cid
        rx = DriverQueue(ram: ram, size: queueSize)
        tx = DriverQueue(ram: ram, size: queueSize)
        frontEnd = try FrontEnd(path: path)
    }

    deinit {
        for fd in [rxFDs.kick, rxFDs.call, txFDs.kick, txFDs.call] where fd >= 0 { close(fd) }
    }

    /// Negotiation, memory table, both queues started; `rxBuffers` buffers posted.
    func start(rxBuffers count: Int = 32) throws {
        try frontEnd.negotiate()
        #expect(try frontEnd.setMemTable(ram))
        rxFDs = try frontEnd.startQueue(0, rx)
        txFDs = try frontEnd.startQueue(1, tx)
        postReceiveBuffers(count)
    }

    func postReceiveBuffers(_ count: Int) {
        for _ in 0..<count {
            let address = ram.allocate(Self.rxBufferSize)
            let head = rx.addChain([(address, UInt32(Self.rxBufferSize), true)])
            rxBuffers[head] = address
        }
        _ = vsnfs_eventfd_signal(rxFDs.kick)
    }

    /// Puts a packet in the tx queue (header and payload in separate
    /// descriptors, as Linux sends them) and kicks.
    func send(_ header: VsockHeader, payload: [UInt8] = [], kick: Bool = true) {
        var h = header
        h.length = UInt32(payload.count)
        let headerAddress = ram.allocateScratch(VsockHeader.size)
        ram.write(h.bytes, at: headerAddress)
        var chain: [(UInt64, UInt32, Bool)] = [(headerAddress, UInt32(VsockHeader.size), false)]
        if !payload.isEmpty {
            let dataAddress = ram.allocateScratch(payload.count)
            ram.write(payload, at: dataAddress)
            chain.append((dataAddress, UInt32(payload.count), false))
        }
        tx.addChain(chain)
        if kick { _ = vsnfs_eventfd_signal(txFDs.kick) }
    }

    func packet(op: VsockHeader.Op, srcPort: UInt32 = 5000, dstPort: UInt32 = 2049, flags: UInt32 = 0,
                bufAlloc: UInt32 = 256 * 1024, fwdCount: UInt32 = 0, srcCID: UInt64? = nil) -> VsockHeader {
        VsockHeader(srcCID: srcCID ?? cid, dstCID: 2, srcPort: srcPort, dstPort: dstPort, op: op, flags: flags,
                    bufAlloc: bufAlloc, fwdCount: fwdCount)
    }

    /// The next packet the device put in the rx queue, within `seconds`.
    func receive(within seconds: Double = 5) -> (header: VsockHeader, payload: [UInt8])? {
        var found: (UInt32, UInt32)?
        _ = eventually(seconds) {
            found = rx.nextUsed()
            return found != nil
        }
        guard let (id, length) = found, let address = rxBuffers[UInt16(id)] else { return nil }
        rxBuffers[UInt16(id)] = nil
        let bytes = ram.read(address, count: Int(length))
        guard let header = VsockHeader(bytes: bytes) else { return nil }
        // Give the buffer back, as the driver does.
        let head = rx.addChain([(address, UInt32(Self.rxBufferSize), true)])
        rxBuffers[head] = address
        _ = vsnfs_eventfd_signal(rxFDs.kick)
        return (header, Array(bytes[VsockHeader.size...]))
    }

    /// Waits until the device has consumed every tx chain sent so far.
    func waitForTransmitted() -> Bool {
        eventually { tx.usedIndex == vsnfs_load_acquire_u16(ram.pointer(tx.avail + 2)) }
    }
}

/// A device on a fresh socket whose accepted connections are collected.
final class DeviceUnderTest {
    let path: String
    let device: VhostUserVsockDevice
    let accepted = AcceptedConnections()

    init(cid: UInt64 = 3, ports: Set<UInt32> = [2049], bufferSize: UInt32 = 256 * 1024, forwardBase: String? = nil,
         timeouts: Double = 10, admit: @escaping @Sendable () -> Bool = { true }, name: String = #function) throws {
        path = temporarySocketPath(String(name.prefix(20).filter { $0.isLetter }))
        let sink = accepted
        device = try VhostUserVsockDevice(
            configuration: VhostUserVsockConfiguration(socketPath: path, guestCID: cid, ports: ports, bufferSize: bufferSize,
                                                       forwardBase: forwardBase, connectTimeout: timeouts,
                                                       closeTimeout: timeouts),
            logger: .init(label: "test"), admit: admit, onConnection: { sink.add($0) })
    }

    deinit { device.shutdown() }
}

final class AcceptedConnections: Sendable {
    private let list = NIOLockedValueBox<[VsockGuestConnection]>([])
    func add(_ c: VsockGuestConnection) { list.withLockedValue { $0.append(c) } }
    var all: [VsockGuestConnection] { list.withLockedValue { $0 } }
}

/// Reads whatever arrives on a blocking socket within `seconds`, up to `count` bytes.
func readSocket(_ fd: Int32, count: Int, within seconds: Double = 5) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: count)
    _ = eventually(seconds) {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, count - out.count, Int32(MSG_DONTWAIT)) }
        if n > 0 { out += buffer[0..<n] }
        return out.count >= count || n == 0
    }
    return out
}

/// A listening Unix socket at `path` (removed at deinit).
final class UnixListener {
    let fd: Int32
    let path: String
    init(path: String) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = unixAddress(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(rc == 0 && listen(fd, 4) == 0)
    }
    deinit {
        close(fd)
        unlink(path)
    }
    /// The next connection, within `seconds`.
    func accept(within seconds: Double = 5) -> Int32? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(seconds * 1000)) == 1 else { return nil }
        let c = Glibc.accept(fd, nil, nil)
        return c >= 0 ? c : nil
    }
}

/// A sockaddr_un for `path` (test paths are short: no length check needed here).
func unixAddress(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: path.utf8)
        raw[path.utf8.count] = 0
    }
    return address
}
