import Foundation
import NFS3
import NIOCore
import ONCRPC
import NIOConcurrencyHelpers
import Testing
import XDR

/// Load: 1,000 connections at once to one real `vsnfs serve` process over TCP loopback,
/// each running NFSv3 operations back to back for a fixed time (NULL, CREATE, WRITE,
/// GETATTR, READ, LOOKUP, READDIRPLUS, REMOVE, each reply checked). No error; after the
/// connections close, the server's descriptors are back to their baseline and its
/// resident memory within a few MiB of it.
@Suite(.serialized, .residentMemoryIsMeaningful) struct LoadTests {
    static let connections = 1_000
    static let seconds: TimeInterval = 20

    @Test func aThousandConnectionsOfMixedOperationsForTwentySeconds() throws {
        try Self.raiseOurDescriptorLimit(to: Self.connections + 200)
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        // Under the usual `ulimit -n 1024` the server holds about 460 connections (the
        // open-file cache keeps half the descriptors); 4,096 leaves room for 1,000.
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath,
                                       fileLimit: 4096)
        defer { server.stop() }
        let c = try NFS3TestClient(port: server.port)
        c.credential = FaultTests.rootCredential
        let root = try c.rootHandle("/")
        // One directory per 25 connections: READDIRPLUS lists a few dozen entries.
        let directories = try (0..<(Self.connections / 25)).map { try c.createdHandle(c.mkdir(root, "d\($0)")) }
        let baselineDescriptors = try FaultTests.openDescriptors(server)

        // Warm-up: the same load for a few seconds (allocator arenas, thread stacks, caches).
        let warmUp = try Self.run(port: server.port, directories: directories, seconds: 3)
        #expect(warmUp.errors.isEmpty, "warm-up: \(warmUp.errors.prefix(5))")
        let descriptorsBefore = try ConnectionLeakTests.waitForDescriptors(server, atMost: baselineDescriptors)
        let residentBefore = try FaultTests.residentKiB(server)

        let load = try Self.run(port: server.port, directories: directories, seconds: Self.seconds) {
            // The kernel completes connections before the server accepts them: wait for it.
            let target = descriptorsBefore + Self.connections, deadline = Date().addingTimeInterval(10)
            var held = try FaultTests.openDescriptors(server)
            while held < target && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
                held = max(held, try FaultTests.openDescriptors(server))
            }
            return held
        }
        let descriptorsAfter = try ConnectionLeakTests.waitForDescriptors(server, atMost: descriptorsBefore)
        let residentAfter = try FaultTests.residentKiB(server)

        print("""
            load: \(Self.connections) connections held (server descriptors \(descriptorsBefore) -> \(load.descriptorsHeld) while held), \
            \(load.operations) operations in \(Int(Self.seconds)) s (\(load.operations / Int(Self.seconds))/s), \(load.errors.count) errors; \
            after: descriptors \(descriptorsAfter), resident \(residentBefore) KiB -> \(residentAfter) KiB
            """)
        #expect(load.errors.isEmpty, "\(load.errors.count) errors, first: \(load.errors.prefix(5))")
        #expect(load.descriptorsHeld >= descriptorsBefore + Self.connections, "the server did not hold every connection at once")
        #expect(load.operations >= Self.connections * Step.allCases.count, "fewer operations than one round per connection")
        #expect(descriptorsAfter <= descriptorsBefore)
        #expect(residentAfter - residentBefore < 5 * 1024,
                "resident memory grew from \(residentBefore) KiB to \(residentAfter) KiB")
        #expect(try c.getattr(root).ok != nil)
        let left = try directories.indices.flatMap { try FileManager.default.contentsOfDirectory(atPath: "\(path)/d\($0)") }
        #expect(left.isEmpty, "files left behind: \(left.prefix(5))")
    }

    // MARK: the load program

    /// What one connection does, in turn, over and over.
    enum Step: Int, CaseIterable {
        case null, create, write, getattr, read, lookup, readdirplus, remove
    }

    struct Outcome {
        var operations = 0
        var errors: [String] = []
        var descriptorsHeld = 0
    }

    /// One connection's state: its socket (non-blocking), the call going out, the reply coming in.
    final class Connection {
        let index: Int
        let client: RawRPCClient
        let directory: NFS3FileHandle
        var name: NFS3Name { NFS3Name("c\(index)") }
        var step = Step.null
        var round = 0
        var file: NFS3FileHandle?
        var xid: UInt32 = 0
        var output: [UInt8] = []
        var sent = 0
        var input: [UInt8] = []
        var done = false

        init(index: Int, port: Int, directory: NFS3FileHandle) throws {
            self.index = index
            self.client = try RawRPCClient(tcpPort: port)
            self.directory = directory
            let flags = fcntl(client.fd, F_GETFL)
            _ = fcntl(client.fd, F_SETFL, flags | O_NONBLOCK)
        }

        var data: ByteBuffer { ByteBuffer(repeating: UInt8(truncatingIfNeeded: index &+ round), count: 4096) }

        /// Queues the call of the current step.
        func queueCall() {
            xid &+= 1
            let d = directory
            switch step {
            case .null: output = Self.call(.null, NFS3Empty(), xid: xid)
            case .create: output = Self.call(.create, NFS3CreateArgs(
                whereTo: NFS3DirOpArgs(directory: d, name: name), how: .unchecked(NFS3SetAttributes(mode: 0o644))), xid: xid)
            case .write: output = Self.call(.write, NFS3WriteArgs(file: file!, offset: 0, count: 4096, stable: .unstable,
                                                                  data: data), xid: xid)
            case .getattr: output = Self.call(.getattr, NFS3HandleArgs(object: file!), xid: xid)
            case .read: output = Self.call(.read, NFS3ReadArgs(file: file!, offset: 0, count: 4096), xid: xid)
            case .lookup: output = Self.call(.lookup, NFS3DirOpArgs(directory: d, name: name), xid: xid)
            case .readdirplus: output = Self.call(.readdirplus, NFS3ReaddirPlusArgs(
                directory: d, cookie: 0, cookieVerifier: .zero, dirCount: 4096, maxCount: 16384), xid: xid)
            case .remove: output = Self.call(.remove, NFS3DirOpArgs(directory: d, name: name), xid: xid)
            }
            sent = 0
        }

        static func call<A: XDREncodable>(_ procedure: NFS3Procedure, _ args: A, xid: UInt32) -> [UInt8] {
            FaultTests.nfsCallRecord(procedure, args, xid: xid)
        }

        /// Checks the reply to the current step; nil if it is right, else what is wrong.
        func check(_ record: ByteBuffer) throws -> String? {
            guard case .reply(let replyXID, let body, _) = try RPCMessage(record: record), replyXID == xid,
                  case .success(var results) = body else { return "\(step): not a successful reply: \(record.readableBytes) bytes" }
            switch step {
            case .null:
                return nil
            case .create:
                guard case .ok(let ok) = try NFS3CreateResult(xdr: &results), let handle = ok.object else { return "CREATE failed" }
                file = handle
            case .write:
                let r = try NFS3WriteResult(xdr: &results)
                guard r.ok?.count == 4096 else { return "WRITE: \(r.status)" }
            case .getattr:
                let r = try NFS3GetAttrResult(xdr: &results)
                guard r.ok?.size == 4096 else { return "GETATTR: \(r.status), size \(String(describing: r.ok?.size))" }
            case .read:
                let r = try NFS3ReadResult(xdr: &results)
                guard r.ok?.data == data else { return "READ: \(r.status), not the bytes written" }
            case .lookup:
                let r = try NFS3LookupResult(xdr: &results)
                guard r.ok?.object == file else { return "LOOKUP: \(r.status), another handle" }
            case .readdirplus:
                let r = try NFS3ReaddirPlusResult(xdr: &results)
                guard r.ok != nil else { return "READDIRPLUS: \(r.status)" }
            case .remove:
                let r = try NFS3RemoveResult(xdr: &results)
                guard r.ok != nil else { return "REMOVE: \(r.status)" }
                file = nil
                round += 1
            }
            return nil
        }

        /// A whole record from `input`, if one has arrived (the server sends one fragment per reply).
        func takeRecord() -> ByteBuffer? {
            guard input.count >= 4 else { return nil }
            let mark = input[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let length = Int(mark & ~RecordMarking.lastFragmentBit)
            guard input.count >= 4 + length else { return nil }
            let record = ByteBuffer(bytes: input[4..<(4 + length)])
            input.removeFirst(4 + length)
            return record
        }
    }

    /// Opens `connections` connections, then drives them from 4 threads (poll over
    /// non-blocking sockets) for `seconds`: each connection's next call goes out when its
    /// reply is in and checked. Then every connection finishes its round (its file removed) and closes.
    /// `whileHeld` runs once while every connection is open.
    static func run(port: Int, directories: [NFS3FileHandle], seconds: TimeInterval,
                    whileHeld: () throws -> Int = { 0 }) throws -> Outcome {
        let all = try (0..<connections).map { i in
            try Connection(index: i, port: port, directory: directories[i % directories.count])
        }
        for connection in all { connection.queueCall() }
        var outcome = Outcome()
        let threads = 4
        let deadline = Date().addingTimeInterval(seconds)
        let results = NIOLockedValueBox<[Outcome]>([])
        let shares = (0..<threads).map { t in stride(from: t, to: all.count, by: threads).map { all[$0] } }
        // Each connection is used by the one thread whose share it is in, and by no other:
        // the compiler cannot see that a non-Sendable class crosses to one thread only.
        nonisolated(unsafe) let unsafeShares = shares
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let result = Self.drive(unsafeShares[t], until: deadline)
                results.withLockedValue { $0.append(result) }
            }
        }
        outcome.descriptorsHeld = try whileHeld()
        guard group.wait(timeout: .now() + seconds + 60) == .success else {
            throw LoadError.stuck
        }
        for result in results.withLockedValue({ $0 }) {
            outcome.operations += result.operations
            outcome.errors += result.errors
        }
        return outcome   // the connections close as `all` goes
    }

    enum LoadError: Error { case stuck }

    /// Drives `connections` until `deadline`, then until each has its last reply.
    static func drive(_ connections: [Connection], until deadline: Date) -> Outcome {
        var outcome = Outcome()
        var chunk = [UInt8](repeating: 0, count: 65536)
        let hardStop = deadline.addingTimeInterval(60)
        func fail(_ connection: Connection, _ message: String) {
            outcome.errors.append("connection \(connection.index): \(message)")
            connection.done = true
        }
        while Date() < hardStop {
            let active = connections.filter { !$0.done }
            if active.isEmpty { break }
            var fds = active.map { c in
                pollfd(fd: c.client.fd, events: Int16(c.sent < c.output.count ? POLLOUT : POLLIN), revents: 0)
            }
            guard poll(&fds, nfds_t(fds.count), 100) >= 0 else { continue }
            let stopping = Date() >= deadline
            for (k, entry) in fds.enumerated() where entry.revents != 0 {
                let c = active[k]
                if entry.revents & Int16(POLLOUT) != 0 {
                    let n = c.output[c.sent...].withUnsafeBytes { send(c.client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 { c.sent += n } else if errno != EAGAIN && errno != EINTR { fail(c, "send: errno \(errno)") }
                    continue
                }
                if entry.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
                    let n = chunk.withUnsafeMutableBytes { recv(c.client.fd, $0.baseAddress, $0.count, 0) }
                    if n == 0 { fail(c, "closed by the server in \(c.step)"); continue }
                    if n < 0 {
                        if errno != EAGAIN && errno != EINTR { fail(c, "recv: errno \(errno)") }
                        continue
                    }
                    c.input += chunk[0..<n]
                    guard let record = c.takeRecord() else { continue }
                    do {
                        if let problem = try c.check(record) { fail(c, problem); continue }
                    } catch {
                        fail(c, "\(c.step): \(error)"); continue
                    }
                    outcome.operations += 1
                    // Past the deadline a connection finishes its round: its file is removed.
                    if stopping && c.step == .remove { c.done = true; continue }
                    c.step = Step(rawValue: (c.step.rawValue + 1) % Step.allCases.count)!
                    c.queueCall()
                }
            }
        }
        for c in connections where !c.done { outcome.errors.append("connection \(c.index): no reply to \(c.step) in time") }
        return outcome
    }

    /// The test process holds every connection's socket too.
    static func raiseOurDescriptorLimit(to needed: Int) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur < rlim_t(needed) else { return }
        try #require(limit.rlim_max >= rlim_t(needed), "the load test needs \(needed) descriptors; the hard limit is \(limit.rlim_max)")
        limit.rlim_cur = rlim_t(needed)
        try #require(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
    }
}
