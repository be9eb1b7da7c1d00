import CSupport
import Glibc
import NIOConcurrencyHelpers
import Testing
@testable import VirtioVsock

func littleEndian64(_ bytes: [UInt8]) -> UInt64 {
    var r = LittleEndianReader(bytes: bytes)
    return r.u64() ?? 0xdead
}

/// The vhost-user back-end over its socket (QEMU docs/interop/vhost-user.rst),
/// driven by the front-end double.
@Suite(.serialized) struct VhostUserNegotiationTests {
    @Test func offersVersion1AndProtocolFeaturesOnlyAndRefusesOthers() throws {
        let d = try DeviceUnderTest()
        let fe = try FrontEnd(path: d.path)
        let features = littleEndian64(try fe.call(.getFeatures))
        #expect(features == VirtioFeature.version1 | VirtioFeature.protocolFeatures)
        #expect(features & VirtioFeature.indirectDescriptors == 0)
        #expect(features & VirtioFeature.eventIndex == 0)
        let offeredProtocol = littleEndian64(try fe.call(.getProtocolFeatures))
        #expect(offeredProtocol == VhostUserProtocolFeature.replyAck | VhostUserProtocolFeature.config)
        fe.send(.setProtocolFeatures, fe.u64(offeredProtocol))
        // Acked from here on: a feature not offered is refused.
        #expect(try !fe.acked(.setFeatures, fe.u64(features | VirtioFeature.eventIndex)))
        #expect(try fe.acked(.setFeatures, fe.u64(features)))
        #expect(try fe.acked(.setOwner))
        #expect(try !fe.acked(.setProtocolFeatures, fe.u64(VhostUserProtocolFeature.multiQueue)))
        #expect(littleEndian64(try fe.call(.getQueueNum)) == 2)
    }

    @Test func configSpaceIsTheGuestCIDLittleEndian() throws {
        let d = try DeviceUnderTest(cid: 0x1_0000_0042)
        let fe = try FrontEnd(path: d.path)
        try fe.negotiate()
        var w = LittleEndianWriter()
        w.u32(0)
        w.u32(8)
        w.u32(0)
        let reply = try fe.call(.getConfig, w.bytes + [UInt8](repeating: 0, count: 8))
        #expect(reply.count == 20)
        #expect(Array(reply.suffix(8)) == [0x42, 0, 0, 0, 1, 0, 0, 0])
        // Four bytes at offset 4: the high half.
        w = LittleEndianWriter()
        w.u32(4)
        w.u32(4)
        w.u32(0)
        #expect(Array(try fe.call(.getConfig, w.bytes + [0, 0, 0, 0]).suffix(4)) == [1, 0, 0, 0])
        // Past the 8-byte config space: an empty answer, not other memory.
        w = LittleEndianWriter()
        w.u32(4)
        w.u32(8)
        w.u32(0)
        #expect(try fe.call(.getConfig, w.bytes + [UInt8](repeating: 0, count: 8)).count == 12)
        #expect(try !fe.acked(.setConfig, w.bytes + [UInt8](repeating: 0, count: 8)))
    }

    @Test func memoryTableIsValidatedThroughTheSocket() throws {
        let d = try DeviceUnderTest()
        let fe = try FrontEnd(path: d.path)
        try fe.negotiate()
        let ram = GuestRAM()
        // One fd for two regions.
        #expect(try !fe.acked(.setMemTable, fe.memTable(ram.regions), fds: [ram.fd]))
        // A region past the end of its file.
        var regions = ram.regions
        regions[1].mmapOffset = 0x90000
        #expect(try !fe.acked(.setMemTable, fe.memTable(regions), fds: [ram.fd, ram.fd]))
        #expect(try fe.setMemTable(ram))
        // The device is still there after the refusals.
        #expect(d.device.status.frontEndConnected)
    }

    @Test func vringSetupIsValidatedAndGetVringBaseStopsTheRing() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        let fe = guest.frontEnd
        try fe.negotiate()
        // A kick before the memory table cannot start a ring.
        #expect(try !fe.acked(.setVringNum, fe.state(0, 100)))  // not a power of two
        #expect(try !fe.acked(.setVringNum, fe.state(2, 64)))   // QEMU keeps the event queue
        #expect(try fe.setMemTable(guest.ram))
        guest.rxFDs = try fe.startQueue(0, guest.rx)
        guest.txFDs = try fe.startQueue(1, guest.tx)
        guest.postReceiveBuffers(4)
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.knownOp == .response)
        // Stop tx: the reply is the next avail index the device would take.
        #expect(try fe.call(.getVringBase, fe.state(1, 0)) == fe.state(1, 1))
        // Its connections went with it.
        #expect(eventually { d.device.status.connections == 0 })
        let conn = try #require(d.accepted.all.first)
        #expect(readSocket(conn.fd, count: 1).isEmpty)  // end of file
        close(conn.fd)
        // A stopped ring is not served.
        guest.send(guest.packet(op: .request, srcPort: 5001))
        #expect(guest.receive(within: 0.3) == nil)
        #expect(guest.tx.usedIndex == 1)
    }

    @Test func aNewMemoryTableWhileRingsRunKeepsThemServed() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, srcPort: 1))
        #expect(guest.receive()?.header.knownOp == .response)
        // Memory hot-plug sends the table again with the rings running: they
        // are translated against the new mapping and carry on where they were.
        #expect(try guest.frontEnd.setMemTable(guest.ram))
        guest.send(guest.packet(op: .request, srcPort: 2))
        #expect(guest.receive()?.header.knownOp == .response)
        #expect(eventually { d.accepted.all.count == 2 })
        for c in d.accepted.all { close(c.fd) }
    }

    @Test func disabledRingsAreNotServedUntilEnabled() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.frontEnd.negotiate()
        #expect(try guest.frontEnd.setMemTable(guest.ram))
        guest.rxFDs = try guest.frontEnd.startQueue(0, guest.rx)
        guest.txFDs = try guest.frontEnd.startQueue(1, guest.tx, enable: false)
        guest.postReceiveBuffers(4)
        guest.send(guest.packet(op: .request))
        #expect(guest.receive(within: 0.3) == nil)
        #expect(try guest.frontEnd.acked(.setVringEnable, guest.frontEnd.state(1, 1)))
        #expect(guest.receive()?.header.knownOp == .response)
    }
}

/// virtio-vsock stream semantics (virtio 1.2 §5.10 "Socket Device").
@Suite(.serialized) struct VsockStreamTests {
    @Test func requestToAServedPortIsAnsweredAndHandedOn() throws {
        let d = try DeviceUnderTest(cid: 7)
        let guest = try GuestVsock(path: d.path, cid: 7)
        try guest.start()
        guest.send(guest.packet(op: .request, srcPort: 40000, dstPort: 2049))
        let reply = try #require(guest.receive()).header
        #expect(reply.knownOp == .response)
        #expect(reply.srcCID == 2 && reply.dstCID == 7)
        #expect(reply.srcPort == 2049 && reply.dstPort == 40000)
        #expect(reply.type == VsockHeader.typeStream)
        #expect(reply.bufAlloc == 256 * 1024 && reply.fwdCount == 0)
        #expect(eventually { d.accepted.all.count == 1 })
        let conn = try #require(d.accepted.all.first)
        #expect(conn.guestCID == 7 && conn.guestPort == 40000 && conn.hostPort == 2049)
        #expect(eventually { d.device.status.connections == 1 })
        close(conn.fd)
    }

    /// The process's descriptor budget (ConnectionBudget, asked through `admit`)
    /// refuses a connection: the guest gets a reset, nothing is handed on.
    @Test func aRequestTheDescriptorBudgetRefusesIsResetAndNotHandedOn() throws {
        let allowed = NIOLockedValueBox(1)
        let d = try DeviceUnderTest(admit: { allowed.withLockedValue { n in defer { n -= 1 }; return n > 0 } })
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, srcPort: 40000, dstPort: 2049))
        #expect(try #require(guest.receive()).header.knownOp == .response)
        guest.send(guest.packet(op: .request, srcPort: 40001, dstPort: 2049))
        let refused = try #require(guest.receive()).header
        #expect(refused.knownOp == .reset)
        #expect(refused.srcPort == 2049 && refused.dstPort == 40001)
        #expect(eventually { d.accepted.all.count == 1 })
        #expect(d.accepted.all.first?.guestPort == 40000)
        #expect(eventually { d.device.status.connections == 1 })
        for c in d.accepted.all { close(c.fd) }
    }

    @Test func requestToAnUnservedPortIsReset() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, srcPort: 1234, dstPort: 22))
        let reply = try #require(guest.receive()).header
        #expect(reply.knownOp == .reset)
        #expect(reply.srcPort == 22 && reply.dstPort == 1234)
        #expect(d.accepted.all.isEmpty)
    }

    @Test func packetsForUnknownConnectionsAreResetButResetsAreNot() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .readWrite, srcPort: 999), payload: [1, 2, 3])
        #expect(guest.receive()?.header.knownOp == .reset)
        guest.send(guest.packet(op: .shutdown, srcPort: 998, flags: 3))
        #expect(guest.receive()?.header.knownOp == .reset)
        guest.send(guest.packet(op: .reset, srcPort: 997))
        guest.send(guest.packet(op: .creditRequest, srcPort: 996))
        // Only the credit request is answered (with a reset); the reset is not.
        let next = try #require(guest.receive())
        #expect(next.header.knownOp == .reset && next.header.dstPort == 996)
        #expect(guest.receive(within: 0.2) == nil)
    }

    @Test func otherPortsAreForwardedToBaseUnderscorePortOnlyWhenAskedFor() throws {
        let base = temporarySocketPath("fwd")
        let listener = UnixListener(path: "\(base)_22")
        let d = try DeviceUnderTest(forwardBase: base)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, srcPort: 7000, dstPort: 22))
        #expect(guest.receive()?.header.knownOp == .response)
        let forwarded = try #require(listener.accept())
        defer { close(forwarded) }
        guest.send(guest.packet(op: .readWrite, srcPort: 7000, dstPort: 22), payload: Array("SSH-2.0-guest\r\n".utf8))
        #expect(readSocket(forwarded, count: 15) == Array("SSH-2.0-guest\r\n".utf8))
        let banner: [UInt8] = Array("SSH-2.0-host\r\n".utf8)
        #expect(write(forwarded, banner, banner.count) == banner.count)
        #expect(guest.receive()?.payload == banner)
        // Forwarded connections are not handed to the device's owner.
        #expect(d.accepted.all.isEmpty)
        // A port with nobody listening at BASE_P is reset.
        guest.send(guest.packet(op: .request, srcPort: 7001, dstPort: 23))
        #expect(guest.receive()?.header.knownOp == .reset)
    }

    @Test func hostConnectOnTheForwardSocketReachesAGuestPort() throws {
        let base = temporarySocketPath("fwd")
        let d = try DeviceUnderTest(cid: 3, forwardBase: base)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        #expect(eventually { d.device.status.frontEndConnected })
        let host = unixConnectNonBlocking(path: base)
        #expect(host >= 0)
        defer { close(host) }
        _ = fcntl(host, F_SETFL, fcntl(host, F_GETFL) & ~O_NONBLOCK)
        let line = Array("CONNECT 1234\nearly".utf8)
        #expect(write(host, line, line.count) == line.count)
        let request = try #require(guest.receive()).header
        #expect(request.knownOp == .request)
        #expect(request.srcCID == 2 && request.dstCID == 3 && request.dstPort == 1234)
        #expect(request.bufAlloc == 256 * 1024)
        // The guest accepts: the host process hears OK and its port, then data flows.
        guest.send(VsockHeader(srcCID: 3, dstCID: 2, srcPort: 1234, dstPort: request.srcPort, op: .response,
                               bufAlloc: 65536, fwdCount: 0))
        let ok = Array("OK \(request.srcPort)\n".utf8)
        #expect(readSocket(host, count: ok.count) == ok)
        #expect(guest.receive()?.payload == Array("early".utf8))
        guest.send(VsockHeader(srcCID: 3, dstCID: 2, srcPort: 1234, dstPort: request.srcPort, op: .readWrite,
                               bufAlloc: 65536, fwdCount: 5), payload: Array("hi".utf8))
        #expect(readSocket(host, count: 2) == Array("hi".utf8))

        // A guest that refuses: the host process sees end of file, no OK.
        let refused = unixConnectNonBlocking(path: base)
        defer { close(refused) }
        _ = fcntl(refused, F_SETFL, fcntl(refused, F_GETFL) & ~O_NONBLOCK)
        let line2 = Array("CONNECT 99\n".utf8)
        #expect(write(refused, line2, line2.count) == line2.count)
        let request2 = try #require(guest.receive()).header
        #expect(request2.knownOp == .request && request2.dstPort == 99)
        guest.send(VsockHeader(srcCID: 3, dstCID: 2, srcPort: 99, dstPort: request2.srcPort, op: .reset))
        #expect(readSocket(refused, count: 1).isEmpty)

        // Anything but CONNECT is closed at once.
        let junk = unixConnectNonBlocking(path: base)
        defer { close(junk) }
        _ = fcntl(junk, F_SETFL, fcntl(junk, F_GETFL) & ~O_NONBLOCK)
        #expect(write(junk, Array("HELLO\n".utf8), 6) == 6)
        #expect(readSocket(junk, count: 1).isEmpty)
    }

    @Test func aGuestThatNeverAnswersCannotHoldConnectionsOpen() throws {
        let base = temporarySocketPath("fwd")
        let d = try DeviceUnderTest(cid: 3, forwardBase: base, timeouts: 0.3)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        #expect(eventually { d.device.status.frontEndConnected })
        // A host CONNECT the guest never answers: reset after the timeout.
        let host = unixConnectNonBlocking(path: base)
        defer { close(host) }
        _ = fcntl(host, F_SETFL, fcntl(host, F_GETFL) & ~O_NONBLOCK)
        #expect(write(host, Array("CONNECT 80\n".utf8), 11) == 11)
        #expect(guest.receive()?.header.knownOp == .request)
        #expect(readSocket(host, count: 1, within: 3).isEmpty)
        #expect(guest.receive()?.header.knownOp == .reset)
        // The host side closes; the guest never sends the RST its close owes.
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.knownOp == .response)
        #expect(eventually { d.accepted.all.count == 1 })
        close(d.accepted.all[0].fd)
        let shutdown = try #require(guest.receive())
        #expect(shutdown.header.knownOp == .shutdown && shutdown.header.flags == 3)
        #expect(guest.receive()?.header.knownOp == .reset)
        #expect(eventually { d.device.status.connections == 0 })
    }

    @Test func withoutForwardingNoForwardSocketExists() throws {
        let d = try DeviceUnderTest()
        _ = d
        #expect(unixConnectNonBlocking(path: d.path + "_22") < 0)
    }

    @Test func aForeignSourceCIDIsDroppedNotAnswered() throws {
        let d = try DeviceUnderTest(cid: 3)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, srcCID: 4))
        guest.send(guest.packet(op: .request, srcCID: 2))
        #expect(guest.waitForTransmitted())
        #expect(guest.receive(within: 0.3) == nil)
        #expect(d.accepted.all.isEmpty)
        #expect(eventually { d.device.status.foreignSourcePackets == 2 })
        // The real CID still gets through.
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.knownOp == .response)
    }

    @Test func dataFlowsBothWaysAndShutdownEndsWithAReset() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        let conn = try openStream(d, guest)
        defer { close(conn.fd) }
        // Guest to host.
        let message = Array("hello, host".utf8)
        guest.send(guest.packet(op: .readWrite), payload: message)
        #expect(readSocket(conn.fd, count: message.count) == message)
        // Host to guest.
        let answer = Array("hello, guest".utf8)
        #expect(write(conn.fd, answer, answer.count) == answer.count)
        let (rw, payload) = try #require(guest.receive()).self
        #expect(rw.knownOp == .readWrite)
        #expect(payload == answer)
        #expect(rw.length == UInt32(answer.count))
        #expect(rw.fwdCount == UInt32(message.count))  // our consumer took the guest's bytes
        // The guest closes: SHUTDOWN both ways; the device ends it with RST and the host sees end of file.
        guest.send(guest.packet(op: .shutdown, flags: 3))
        #expect(guest.receive()?.header.knownOp == .reset)
        #expect(readSocket(conn.fd, count: 1).isEmpty)
        #expect(eventually { d.device.status.connections == 0 })
    }

    @Test func hostCloseSendsShutdownAndTheGuestsResetEndsIt() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        let conn = try openStream(d, guest)
        let bytes: [UInt8] = [1, 2, 3]
        #expect(write(conn.fd, bytes, 3) == 3)
        close(conn.fd)
        #expect(guest.receive()?.payload == [1, 2, 3])
        let shutdown = try #require(guest.receive())
        #expect(shutdown.header.knownOp == .shutdown)
        #expect(shutdown.header.flags == 3)
        guest.send(guest.packet(op: .reset))
        #expect(eventually { d.device.status.connections == 0 })
    }

    @Test func guestResetClosesTheHostSocket() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        let conn = try openStream(d, guest)
        defer { close(conn.fd) }
        guest.send(guest.packet(op: .reset))
        #expect(readSocket(conn.fd, count: 1).isEmpty)
        #expect(eventually { d.device.status.connections == 0 })
        #expect(guest.receive(within: 0.2) == nil)  // a reset is never answered
    }

    @Test func guestSendingPastOurCreditIsReset() throws {
        let d = try DeviceUnderTest(bufferSize: 4096)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.bufAlloc == 4096)
        #expect(eventually { !d.accepted.all.isEmpty })
        let conn = d.accepted.all[0]
        defer { close(conn.fd) }
        // Fill the socket pair so nothing is consumed, then overrun the credit.
        var sndbuf: Int32 = 4096
        setsockopt(conn.fd, SOL_SOCKET, SO_RCVBUF, &sndbuf, socklen_t(4))
        for _ in 0..<64 { guest.send(guest.packet(op: .readWrite), payload: [UInt8](repeating: 1, count: 4096)) }
        var sawReset = false
        while let packet = guest.receive(within: 1) {
            if packet.header.knownOp == .reset {
                sawReset = true
                break
            }
        }
        #expect(sawReset)
        #expect(eventually { d.device.status.streamsResetForViolations == 1 })
    }

    @Test func payloadLengthPastItsBufferResetsTheConnection() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.knownOp == .response)
        // A header claiming 1000 bytes with 10 behind it.
        var h = guest.packet(op: .readWrite)
        h.length = 1000
        let address = guest.ram.allocateScratch(VsockHeader.size + 10)
        guest.ram.write(h.bytes + [UInt8](repeating: 0, count: 10), at: address)
        guest.tx.addChain([(address, UInt32(VsockHeader.size + 10), false)])
        _ = vsnfs_eventfd_signal(guest.txFDs.kick)
        #expect(guest.receive()?.header.knownOp == .reset)
        #expect(eventually { d.device.status.streamsResetForViolations == 1 })
    }

    @Test func neverSendsTheGuestMoreThanItsCreditAndResumesOnCreditUpdate() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, bufAlloc: 1000))
        #expect(guest.receive()?.header.knownOp == .response)
        #expect(eventually { !d.accepted.all.isEmpty })
        let conn = d.accepted.all[0]
        defer { close(conn.fd) }
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        #expect(write(conn.fd, data, data.count) == data.count)
        var received: [UInt8] = []
        while let packet = guest.receive(within: 0.5) {
            #expect(packet.header.knownOp == .readWrite)
            received += packet.payload
        }
        #expect(received.count == 1000)
        // The guest's application read 600 bytes: it tells the device.
        guest.send(guest.packet(op: .creditUpdate, bufAlloc: 1000, fwdCount: 600))
        while let packet = guest.receive(within: 0.5) { received += packet.payload }
        #expect(received.count == 1600)
        guest.send(guest.packet(op: .creditUpdate, bufAlloc: 100_000, fwdCount: 1600))
        while received.count < 5000, let packet = guest.receive(within: 1) { received += packet.payload }
        #expect(received == data)
    }

    @Test func creditUpdateWhenOurConsumerFreesSpaceAndOnRequest() throws {
        let d = try DeviceUnderTest(bufferSize: 8192)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        let conn = try openStream(d, guest)
        defer { close(conn.fd) }
        // 6000 bytes: the guest now thinks only 2192 are free, under half.
        guest.send(guest.packet(op: .readWrite), payload: [UInt8](repeating: 5, count: 3000))
        guest.send(guest.packet(op: .readWrite), payload: [UInt8](repeating: 6, count: 3000))
        #expect(readSocket(conn.fd, count: 6000).count == 6000)
        let update = try #require(guest.receive())
        #expect(update.header.knownOp == .creditUpdate)
        #expect(update.header.fwdCount == 6000 && update.header.bufAlloc == 8192)
        guest.send(guest.packet(op: .creditRequest))
        let answer = try #require(guest.receive())
        #expect(answer.header.knownOp == .creditUpdate && answer.header.fwdCount == 6000)
    }

    @Test func moreChainsThanOneTurnTakesAreAllServedAfterOneKick() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3, queueSize: 1024)
        try guest.start()
        // 600 packets, one kick: the device takes them in batches and must
        // come back for the rest without another notification.
        for i in 0..<600 { guest.send(guest.packet(op: .readWrite, srcPort: UInt32(10_000 + i)), kick: i == 599) }
        #expect(eventually { guest.tx.usedIndex == 600 })
    }

    @Test func hostDataBeyondOneReadFillsPostedBuffersWithoutAnotherKick() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3, queueSize: 64)
        try guest.start(rxBuffers: 60)
        guest.send(guest.packet(op: .request))
        #expect(eventually { d.accepted.all.count == 1 })
        let conn = d.accepted.all[0]
        defer { close(conn.fd) }
        // 150000 bytes are more than one 64 KiB read; the 60 posted buffers
        // (4 KiB each) hold them all, and the guest does not kick again.
        let data = [UInt8](repeating: 0x5a, count: 150_000)
        #expect(send(conn.fd, data, data.count, Int32(MSG_DONTWAIT)) == data.count)
        let packets = 1 + (data.count + 4095) / 4096
        #expect(eventually { guest.rx.usedIndex == UInt16(packets) })
    }

    @Test func aGuestThatStopsReadingPushesBackOnTheHostInsteadOfGrowingMemory() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start(rxBuffers: 2)
        // The guest offers plenty of credit but posts no more receive buffers.
        guest.send(guest.packet(op: .request, bufAlloc: 64 * 1024 * 1024))
        #expect(eventually { d.accepted.all.count == 1 })
        let conn = d.accepted.all[0]
        defer { close(conn.fd) }
        let chunk = [UInt8](repeating: 1, count: 65536)
        // One buffer went to the RESPONSE, one to data; then at most one read
        // (64 KiB) waits in the device and the rest stays in the socket pair,
        // whose buffers the kernel bounds: the writer is pushed back. Write until
        // the socket is full, give the device 200 ms to take what it will, and
        // again, until a whole round finds no room (the device thread may take
        // its one read only after the first EAGAIN, on a loaded machine).
        var accepted = 0, pushedBack = false
        for _ in 0..<20 where !pushedBack {
            var thisRound = 0
            while case let n = send(conn.fd, chunk, chunk.count, Int32(MSG_DONTWAIT)), n > 0 { thisRound += n }
            #expect(errno == EAGAIN)
            accepted += thisRound
            pushedBack = thisRound == 0 && accepted > 0
            usleep(200_000)
        }
        #expect(pushedBack, "the device kept taking data from a guest that reads nothing (\(accepted) bytes)")
        #expect(accepted > 0)
        #expect(accepted < 4 * 1024 * 1024)
    }

    @Test func badDescriptorBreaksTheDeviceUntilTheFrontEndComesBack() throws {
        let d = try DeviceUnderTest()
        do {
            let guest = try GuestVsock(path: d.path, cid: 3)
            try guest.start()
            guest.tx.addChain([(0x100000, 44, false)])  // in the hole between regions
            _ = vsnfs_eventfd_signal(guest.txFDs.kick)
            #expect(eventually { d.device.status.brokenReason != nil })
            #expect(d.device.status.brokenReason?.contains("outside the guest's memory") == true)
            #expect(guest.tx.usedIndex == 0)
            guest.send(guest.packet(op: .request))
            #expect(guest.receive(within: 0.3) == nil)
        }
        // The front-end goes away and comes back (QEMU restarted): served again.
        #expect(eventually { !d.device.status.frontEndConnected })
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        #expect(eventually { d.device.status.brokenReason == nil })
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.knownOp == .response)
    }
}

/// A front-end that leaves and comes back, and RESET_OWNER.
@Suite(.serialized) struct ResetAndReconnectTests {
    @Test func reconnectingFrontEndGetsAFreshDeviceAndOldConnectionsEnd() throws {
        let d = try DeviceUnderTest()
        var first: VsockGuestConnection?
        do {
            let guest = try GuestVsock(path: d.path, cid: 3)
            try guest.start()
            guest.send(guest.packet(op: .request, srcPort: 1))
            #expect(guest.receive()?.header.knownOp == .response)
            #expect(eventually { d.device.status.connections == 1 })
            first = d.accepted.all.first
        }
        #expect(eventually { !d.device.status.frontEndConnected && d.device.status.connections == 0 })
        let old = try #require(first)
        #expect(readSocket(old.fd, count: 1).isEmpty)
        close(old.fd)
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request, srcPort: 1))
        #expect(guest.receive()?.header.knownOp == .response)
        #expect(eventually { d.accepted.all.count == 2 })
        #expect(eventually { d.device.status.frontEndSessions == 2 })
        close(d.accepted.all[1].fd)
    }

    @Test func theSocketIsTheOwnersOnly() throws {
        let base = temporarySocketPath("fwd")
        let d = try DeviceUnderTest(forwardBase: base)
        for path in [d.path, base] {
            var st = stat()
            #expect(stat(path, &st) == 0)
            #expect(st.st_mode & 0o777 == 0o600)
        }
    }

    @Test func aSecondFrontEndIsRefusedWhileOneIsConnected() throws {
        let d = try DeviceUnderTest()
        let first = try FrontEnd(path: d.path)
        #expect(try first.call(.getFeatures).count == 8)
        let second = try FrontEnd(path: d.path)
        second.send(.getFeatures)
        #expect(throws: FrontEndError.self) { try second.receive() }
        #expect(try first.call(.getFeatures).count == 8)
    }

    @Test func resetOwnerForgetsEverything() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3)
        try guest.start()
        guest.send(guest.packet(op: .request))
        #expect(guest.receive()?.header.knownOp == .response)
        #expect(eventually { d.device.status.connections == 1 })
        guest.frontEnd.send(.resetOwner)
        #expect(eventually { d.device.status.connections == 0 })
        // Features are gone: without REPLY_ACK negotiated, no ack comes;
        // a fresh negotiation and setup serve the guest again.
        let again = try GuestVsock(path: d.path, cid: 3)
        _ = again  // a second front-end is refused while the first is connected
        try guest.frontEnd.negotiate()
        #expect(try guest.frontEnd.setMemTable(guest.ram))
        close(d.accepted.all[0].fd)
    }
}

/// The guest asks for a connection to the served port, the device answers it, and
/// the host end is handed on: the common start of the stream tests.
func openStream(_ d: DeviceUnderTest, _ guest: GuestVsock) throws -> VsockGuestConnection {
    guest.send(guest.packet(op: .request))
    #expect(guest.receive()?.header.knownOp == .response)
    #expect(eventually { !d.accepted.all.isEmpty })
    return try #require(d.accepted.all.first)
}
