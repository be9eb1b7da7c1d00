import Foundation
import NFS3
import NIOCore
import ONCRPC
import NIOConcurrencyHelpers
import Testing

/// Connections come and go (a guest relay reconnects, health checks connect and
/// leave): a real `vsnfs serve` process must give back everything a closed
/// connection held, its descriptor and its memory.
@Suite(.serialized, .residentMemoryIsMeaningful) struct ConnectionLeakTests {
    /// 20,000 connections, each one NFS NULL call then close, from 4 client threads.
    /// Resident memory after them stays within a few MiB of its level after a warm-up
    /// batch (allocator arenas and caches grown), and no descriptor is left. Each
    /// closed connection used to keep its whole channel (about 6.5 KB): 127 MiB here.
    @Test func twentyThousandConnectionsLeaveNothingBehind() throws {
        let sandbox = NFS3Sandbox()
        let server = try ServerProcess([sandbox.exportDirectory("export"), "--listen", "tcp:127.0.0.1:0"],
                                       stateDirectory: sandbox.statePath)
        defer { server.stop() }

        try Self.nullCallConnections(port: server.port, count: 2_000)
        let descriptorsBefore = try FaultTests.openDescriptors(server)
        let residentBefore = try FaultTests.residentKiB(server)

        let started = Date()
        try Self.nullCallConnections(port: server.port, count: 20_000)
        let seconds = Date().timeIntervalSince(started)
        let descriptorsAfter = try Self.waitForDescriptors(server, atMost: descriptorsBefore)
        let residentAfter = try FaultTests.residentKiB(server)

        print("20,000 connections in \(String(format: "%.1f", seconds)) s: resident \(residentBefore) KiB -> \(residentAfter) KiB, descriptors \(descriptorsBefore) -> \(descriptorsAfter)")
        #expect(descriptorsAfter <= descriptorsBefore)
        #expect(residentAfter - residentBefore < 4 * 1024,
                "resident memory grew from \(residentBefore) KiB to \(residentAfter) KiB over 20,000 connections")
    }

    /// Connections that go away (reset) with calls still queued behind the in-flight limit:
    /// each sends eight 64 KiB WRITEs in one write to a server that runs one call per
    /// connection at a time, reads the first reply, and resets. The queued calls' arguments, the record buffers
    /// and the channels are all given back, and so is every descriptor.
    @Test func connectionsClosedWithCallsQueuedGiveTheirMemoryBack() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0", "--max-calls-in-flight", "1"],
                                       stateDirectory: sandbox.statePath)
        defer { server.stop() }
        let c = try NFS3TestClient(port: server.port)
        c.credential = FaultTests.rootCredential
        let file = try c.createdHandle(c.create(try c.rootHandle("/"), "f", mode: 0o666))

        let burst = (1...8 as ClosedRange<UInt32>).flatMap { xid in
            FaultTests.nfsCallRecord(.write, NFS3WriteArgs(
                file: file, offset: UInt64(xid) << 16, count: 1 << 16, stable: .unstable,
                data: ByteBuffer(repeating: UInt8(xid), count: 1 << 16)), xid: xid)
        }
        func resetAfterBursts(_ connections: Int) throws {
            try Self.onClientThreads(connections) { _ in
                let client = try RawRPCClient(tcpPort: server.port)
                try client.send(burst)
                _ = try client.receiveRecord()   // the first call ran; the server has read more meanwhile
                Self.resetOnClose(client.fd)
            }
        }
        let baseline = try FaultTests.openDescriptors(server)
        try resetAfterBursts(100)
        let descriptorsBefore = try Self.waitForDescriptors(server, atMost: baseline)
        let residentBefore = try FaultTests.residentKiB(server)

        try resetAfterBursts(1_000)
        let descriptorsAfter = try Self.waitForDescriptors(server, atMost: descriptorsBefore)
        // The server may still be writing the calls that were in flight at the reset.
        #expect(try c.getattr(file).ok != nil)
        let residentAfter = try FaultTests.residentKiB(server)

        print("1,000 reset connections with queued WRITEs: resident \(residentBefore) KiB -> \(residentAfter) KiB, descriptors \(descriptorsBefore) -> \(descriptorsAfter)")
        #expect(descriptorsAfter <= descriptorsBefore)
        #expect(residentAfter - residentBefore < 4 * 1024,
                "resident memory grew from \(residentBefore) KiB to \(residentAfter) KiB over 1,000 connections reset with calls queued")
    }

    // MARK: helpers

    /// `count` connections to `port`, each one NULL call (answered) then close, from a few threads.
    static func nullCallConnections(port: Int, count: Int) throws {
        try onClientThreads(count) { _ in
            let client = try RawRPCClient(tcpPort: port)
            guard case .success = try client.call(program: 100_003, version: 3, procedure: 0) else {
                throw NFS3TestError.connectionClosed
            }
        }
    }

    /// Runs `body(i)` for i in 0..<count on 4 threads; rethrows the first error.
    static func onClientThreads(_ count: Int, threads: Int = 4, _ body: @Sendable (Int) throws -> Void) throws {
        let firstError = NIOLockedValueBox<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for i in stride(from: thread, to: count, by: threads) {
                do {
                    try body(i)
                } catch {
                    firstError.withLockedValue { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
        if let error = firstError.withLockedValue({ $0 }) { throw error }
    }

    /// SO_LINGER 0: close(2) sends a reset and drops what is unsent.
    static func resetOnClose(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    }

    /// The server closes a connection some time after its client did: waits (at most 10 s)
    /// until it holds at most `count` descriptors, and returns how many it holds.
    static func waitForDescriptors(_ server: ServerProcess, atMost count: Int) throws -> Int {
        let deadline = Date().addingTimeInterval(10)
        var open = try FaultTests.openDescriptors(server)
        while open > count && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            open = try FaultTests.openDescriptors(server)
        }
        return open
    }
}
