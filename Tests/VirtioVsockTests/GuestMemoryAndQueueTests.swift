import CSupport
import Glibc
import Testing
@testable import VirtioVsock

/// Guest memory translation and split-virtqueue descriptor validation
/// (virtio 1.2 §2.7 "Split Virtqueues"), without threads or sockets.
@Suite struct GuestMemoryTests {
    @Test func translatesInsideRegionsWithOffsetsAndRefusesEverythingElse() throws {
        let ram = GuestRAM()
        let memory = try GuestMemory(regions: ram.regions, fds: [ram.fd, ram.fd])
        // Region 1 starts at file offset 0x80000: the device must see what we wrote there.
        ram.write([1, 2, 3, 4], at: GuestRAM.region1Guest + 0x100)
        let p = try #require(memory.guest(GuestRAM.region1Guest + 0x100, length: 4))
        #expect(Array(UnsafeRawBufferPointer(start: p, count: 4)) == [1, 2, 3, 4])
        // The whole of a region, and its last byte.
        #expect(memory.guest(0, length: GuestRAM.regionSize) != nil)
        #expect(memory.guest(GuestRAM.regionSize - 1, length: 1) != nil)
        // One byte past a region's end; the hole between regions; past everything.
        #expect(memory.guest(GuestRAM.regionSize - 1, length: 2) == nil)
        #expect(memory.guest(GuestRAM.regionSize, length: 1) == nil)
        #expect(memory.guest(0x100000, length: 16) == nil)
        #expect(memory.guest(GuestRAM.region1Guest + GuestRAM.regionSize, length: 1) == nil)
        // Sums that overflow 64 bits.
        #expect(memory.guest(UInt64.max - 1, length: 4) == nil)
        #expect(memory.guest(0x10, length: UInt64.max) == nil)
        #expect(memory.guest(GuestRAM.region1Guest, length: UInt64.max - GuestRAM.region1Guest + 2) == nil)
        // Front-end user addresses map to the same bytes.
        let u = try #require(memory.user(ram.userAddress(ofGuest: GuestRAM.region1Guest + 0x100), length: 4))
        #expect(u == p)
        #expect(memory.user(ram.userAddress(ofFileOffset: 0) &- 1, length: 1) == nil)
    }

    @Test func refusesBadMemoryTables() {
        let ram = GuestRAM()
        func refused(_ regions: [VhostUserMemoryRegion], fds: [Int32]? = nil) -> Bool {
            do {
                _ = try GuestMemory(regions: regions, fds: fds ?? regions.map { _ in ram.fd })
                return false
            } catch { return true }
        }
        let good = ram.regions[0]
        var empty = good
        empty.size = 0
        #expect(refused([empty]))
        var wraps = good
        wraps.guestPhysicalAddress = UInt64.max - 0x1000
        #expect(refused([wraps]))
        var pastFile = good
        pastFile.mmapOffset = 0x80000 + 0x1000
        #expect(refused([pastFile]))
        var overlapping = ram.regions[1]
        overlapping.guestPhysicalAddress = 0x40000
        #expect(refused([good, overlapping]))
        #expect(refused([good], fds: []))
        #expect(refused([good], fds: [ram.fd, ram.fd]))
        #expect(refused([]))
        #expect(refused(Array(repeating: good, count: 9)))
        #expect(!refused(ram.regions))
    }
}

@Suite struct SplitVirtqueueTests {
    let ram = GuestRAM()
    let memory: GuestMemory

    init() throws { memory = try GuestMemory(regions: ram.regions, fds: [ram.fd, ram.fd]) }

    func queue(_ q: DriverQueue, _ direction: ChainDirection) throws -> SplitVirtqueue {
        let a = q.userAddresses
        return try SplitVirtqueue(memory: memory, size: UInt32(q.size), descriptorTable: a.descriptors,
                                  availRing: a.avail, usedRing: a.used, base: 0, direction: direction)
    }

    func popError(_ device: SplitVirtqueue) -> String? {
        do {
            _ = try device.pop()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func popsAChainAcrossRegionsAndPublishesUsed() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        #expect(try device.pop() == nil)
        ram.write(Array(repeating: 7, count: 44), at: 0x30000)
        ram.write([9, 9, 9], at: GuestRAM.region1Guest + 0x10)
        q.addChain([(0x30000, 44, false), (GuestRAM.region1Guest + 0x10, 3, false)])
        let chain = try #require(try device.pop())
        #expect(chain.head == 0)
        #expect(chain.readableLength == 47)
        #expect(chain.gatherReadable().suffix(3) == [9, 9, 9])
        #expect(try device.pop() == nil)
        device.push(head: chain.head, length: 0)
        #expect(q.usedIndex == 1)
        let used = try #require(q.nextUsed())
        #expect(used.id == 0 && used.length == 0)
        #expect(device.nextAvail == 1)
    }

    @Test func scattersIntoWritableChains() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceWritable)
        q.addChain([(0x30000, 4, true), (GuestRAM.region1Guest, 8, true)])
        let chain = try #require(try device.pop())
        let data: [UInt8] = Array(1...10)
        let written = data.withUnsafeBytes { chain.scatterWritable([$0]) }
        #expect(written == 10)
        #expect(ram.read(0x30000, count: 4) == [1, 2, 3, 4])
        #expect(ram.read(GuestRAM.region1Guest, count: 6) == [5, 6, 7, 8, 9, 10])
    }

    @Test func refusesAddressOutsideRegions() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.addChain([(0x100000, 16, false)])  // the hole between the regions
        #expect(popError(device)?.contains("outside the guest's memory") == true)
        #expect(device.nextAvail == 0)
    }

    @Test func refusesLengthPastARegion() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.addChain([(GuestRAM.regionSize - 8, 16, false)])
        #expect(popError(device)?.contains("outside the guest's memory") == true)
    }

    @Test func refusesAnAddressThatWrapsAround() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.addChain([(UInt64.max - 7, 16, false)])
        #expect(popError(device) != nil)
    }

    @Test func refusesALoopingChain() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.writeDescriptor(0, address: 0x30000, length: 8, flags: 1, next: 0)  // points at itself
        q.makeAvailable(0)
        #expect(popError(device)?.contains("loops") == true)
    }

    @Test func refusesAChainLongerThanTheQueue() throws {
        let q = DriverQueue(ram: ram, size: 4)
        let device = try queue(q, .deviceReadable)
        // 0 -> 1 -> 2 -> 3 -> 0 -> ...: every link valid, the chain endless.
        for i: UInt16 in 0..<4 { q.writeDescriptor(i, address: 0x30000, length: 8, flags: 1, next: (i + 1) % 4) }
        q.makeAvailable(0)
        #expect(popError(device)?.contains("longer than the queue") == true)
    }

    @Test func refusesOutOfRangeIndices() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.makeAvailable(8)  // head one past the table
        #expect(popError(device)?.contains("outside a queue") == true)

        let q2 = DriverQueue(ram: ram, size: 8)
        let device2 = try queue(q2, .deviceReadable)
        q2.writeDescriptor(0, address: 0x30000, length: 8, flags: 1, next: 200)
        q2.makeAvailable(0)
        #expect(popError(device2)?.contains("outside a queue") == true)
    }

    @Test func refusesAnAvailIndexRunningAhead() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.setAvailIndex(9)
        #expect(popError(device)?.contains("more than the queue size") == true)
    }

    @Test func refusesWritableBuffersInTransmitAndReadableInReceive() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let tx = try queue(q, .deviceReadable)
        q.addChain([(0x30000, 44, false), (0x31000, 8, true)])
        #expect(popError(tx)?.contains("device-writable in a transmit queue") == true)

        let q2 = DriverQueue(ram: ram, size: 8)
        let rx = try queue(q2, .deviceWritable)
        q2.addChain([(0x30000, 44, false)])
        #expect(popError(rx)?.contains("device-readable in a receive queue") == true)
    }

    @Test func refusesIndirectDescriptors() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        q.writeDescriptor(0, address: 0x30000, length: 32, flags: 4, next: 0)
        q.makeAvailable(0)
        #expect(popError(device)?.contains("indirect") == true)
    }

    @Test func refusesRingsOutsideMemoryMisalignedOrBadlySized() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let a = q.userAddresses
        #expect(throws: VirtioVsockError.self) {
            try SplitVirtqueue(memory: memory, size: 6, descriptorTable: a.descriptors, availRing: a.avail,
                               usedRing: a.used, base: 0, direction: .deviceReadable)
        }
        #expect(throws: VirtioVsockError.self) {
            try SplitVirtqueue(memory: memory, size: 8, descriptorTable: a.descriptors + 8, availRing: a.avail,
                               usedRing: a.used, base: 0, direction: .deviceReadable)
        }
        #expect(throws: VirtioVsockError.self) {
            try SplitVirtqueue(memory: memory, size: 8, descriptorTable: ram.userAddress(ofFileOffset: GuestRAM.regionSize - 64),
                               availRing: a.avail, usedRing: a.used, base: 0, direction: .deviceReadable)
        }
        #expect(throws: VirtioVsockError.self) {
            try SplitVirtqueue(memory: memory, size: 8, descriptorTable: 0x1000, availRing: a.avail,
                               usedRing: a.used, base: 0, direction: .deviceReadable)
        }
    }

    @Test func honoursNoInterrupt() throws {
        let q = DriverQueue(ram: ram, size: 8)
        let device = try queue(q, .deviceReadable)
        #expect(device.driverWantsInterrupt())
        ram.write([1, 0], at: q.avail)  // VIRTQ_AVAIL_F_NO_INTERRUPT
        #expect(!device.driverWantsInterrupt())
    }
}

@Suite struct VsockCreditTests {
    @Test func sendWindowIsBufAllocMinusInFlight() {
        var c = VsockCredit(ourBufferSize: 4096, peerBufferSize: 1000, peerForwarded: 0)
        #expect(c.sendWindow == 1000)
        c.send(600)
        #expect(c.sendWindow == 400)
        c.send(400)
        #expect(c.sendWindow == 0)
        c.peerAdvertised(bufAlloc: 1000, fwdCount: 700)
        #expect(c.sendWindow == 700)
        // A guest that shrinks its buffer below what is in flight gets nothing, not a wrap.
        c.peerAdvertised(bufAlloc: 100, fwdCount: 700)
        #expect(c.sendWindow == 0)
    }

    @Test func countersWrapAroundTheirThirtyTwoBits() {
        var c = VsockCredit(ourBufferSize: 4096, peerBufferSize: 1000, peerForwarded: UInt32.max - 99)
        // tx_cnt 0 minus fwd_cnt 2^32 - 100 is 100 bytes in flight, modulo 2^32.
        #expect(c.sendWindow == 900)
        c.send(900)
        c.peerAdvertised(bufAlloc: 1000, fwdCount: 900)  // the guest's counter wrapped past zero too
        #expect(c.sendWindow == 1000)
    }

    @Test func receiveIsBoundedByOurBufferAndConsumptionFreesIt() {
        var c = VsockCredit(ourBufferSize: 4096, peerBufferSize: 0, peerForwarded: 0)
        let first = c.receive(4000)
        #expect(first)
        let tooMuch = c.receive(100)
        #expect(!tooMuch)  // past our credit: refused, not recorded
        #expect(c.unconsumed == 4000)
        let rest = c.receive(96)
        #expect(rest)
        #expect(c.ourFreeSpace == 0)
        c.consume(1000)
        #expect(c.ourFreeSpace == 1000)
        #expect(c.creditUpdateNeeded)  // the guest thinks we are full
        let (bufAlloc, fwd) = c.advertised()
        #expect(bufAlloc == 4096 && fwd == 1000)
        #expect(!c.creditUpdateNeeded)
    }

    @Test func noCreditUpdateWhileTheGuestStillSeesPlentyOfRoom() {
        var c = VsockCredit(ourBufferSize: 4096, peerBufferSize: 0, peerForwarded: 0)
        let ok = c.receive(1000)
        #expect(ok)
        c.consume(1000)
        #expect(!c.creditUpdateNeeded)
    }
}
