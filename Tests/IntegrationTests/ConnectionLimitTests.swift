import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// A server short of file descriptors (`ulimit -n 64`) meets more connections than it
/// can hold: it keeps serving the clients it has, files included, says so once per
/// burst, and takes the waiting connections in turn as others close.
@Suite(.serialized) struct ConnectionLimitTests {
    @Test func pastItsDescriptorsTheServerKeepsServingAndSaysSoOncePerBurst() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let files = 40   // more than the 32 descriptors the open-file cache keeps under this limit
        for i in 0..<files {
            try Data(repeating: UInt8(i), count: 4096).write(to: URL(fileURLWithPath: "\(path)/f\(i)"))
        }
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath,
                                       fileLimit: 64)
        defer { server.stop() }
        let limit = try #require(Self.connectionLimit(server.log), "no connection limit logged:\n\(server.log)")
        #expect(limit >= 2)
        let c = try NFS3TestClient(port: server.port)
        c.credential = FaultTests.rootCredential
        let root = try c.rootHandle("/")

        // A burst: 100 clients connect (the kernel takes them all) and each sends a NULL call.
        var clients: [RawRPCClient?] = try (0..<100).map { _ in try RawRPCClient(tcpPort: server.port) }
        for (i, client) in clients.enumerated() { try client!.send(Self.nullCall(xid: UInt32(i + 1))) }
        // The server holds `limit` connections: ours and limit - 1 of them.
        var served = try Self.answers(clients, among: Set(0..<100), until: { $0.count >= limit - 1 })
        Thread.sleep(forTimeInterval: 0.5)
        served.formUnion(try Self.answers(clients, among: Set(0..<100).subtracting(served), until: { _ in false }, seconds: 0))
        #expect(served.count == limit - 1, "\(served.count) answered, limit \(limit)")
        let firstServed = served.count

        // The clients it holds keep being served, on files too (the cache's descriptors are kept).
        for i in 0..<files {
            let file = try #require(try c.lookup(root, "f\(i)").ok?.object)
            #expect(try c.read(file, count: 4096).ok?.data == ByteBuffer(repeating: UInt8(i), count: 4096))
        }
        for i in served {
            guard case .success = try clients[i]!.call(program: 100_003, version: 3, procedure: 0) else {
                Issue.record("client \(i) was not answered again"); continue
            }
        }
        try server.waitForLog("accept: connection limit reached")

        // As served clients leave, the waiting ones are accepted and answered, every one.
        let deadline = Date().addingTimeInterval(60)
        var closed = Set<Int>(), rounds = 0
        while served.count < clients.count && Date() < deadline {
            rounds += 1
            for i in served.subtracting(closed) { clients[i] = nil; closed.insert(i) }
            served.formUnion(try Self.answers(clients, among: Set(0..<100).subtracting(served),
                                              until: { !$0.isEmpty }, seconds: 2))
        }
        #expect(served.count == clients.count)
        print("ulimit -n 64: connection limit \(limit); a burst of 100: \(firstServed) answered at once, all \(served.count) in turn as others closed, in \(rounds) rounds")
        #expect(Self.occurrences("accept: connection limit reached", in: server.log) == 1, "\(server.log)")
        clients = []

        // A burst after a quiet spell is a new burst: one more line.
        Thread.sleep(forTimeInterval: 6)
        let second = try (0..<(limit + 2)).map { _ in try RawRPCClient(tcpPort: server.port) }
        try server.waitForLog("accept: connection limit reached", count: 2)
        #expect(try c.getattr(root).ok != nil)
        #expect(Self.occurrences("accept: connection limit reached", in: server.log) == 2)
        _ = second
    }

    // MARK: helpers

    static func nullCall(xid: UInt32) -> [UInt8] {
        BlockingRPCClient.encodeCall(xid: xid, program: 100_003, version: 3, procedure: 0, credential: .none,
                                     arguments: ByteBuffer())
    }

    /// "accepting up to N connections at once" from the server's log.
    /// The usual soft limit (1,024 on many systems) would hold a few hundred clients: the
    /// server raises it to the hard limit, which is what an administrator set.
    @Test func theSoftDescriptorLimitIsRaisedToTheHardLimit() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try #require(limit.rlim_max > 256 && limit.rlim_max != rlim_t.max, "needs a finite hard limit above 256")
        let sandbox = NFS3Sandbox()
        let server = try ServerProcess([sandbox.exportDirectory("export"), "--listen", "tcp:127.0.0.1:0"],
                                       stateDirectory: sandbox.statePath, softFileLimit: 256)
        defer { server.stop() }
        #expect(server.log.contains("(file descriptor limit \(limit.rlim_max),"), "\(server.log)")
        #expect(try #require(Self.connectionLimit(server.log)) > 256)
    }

    static func connectionLimit(_ log: String) -> Int? {
        guard let range = log.range(of: "accepting up to ") else { return nil }
        return Int(log[range.upperBound...].prefix { $0.isNumber })
    }

    static func occurrences(_ text: String, in log: String) -> Int {
        log.components(separatedBy: text).count - 1
    }

    /// Which of `clients` (by index, among `indices`) get their reply: waits, at most
    /// `seconds`, until `done(answered so far)`. Each reply is read whole.
    static func answers(_ clients: [RawRPCClient?], among indices: Set<Int>, until done: (Set<Int>) -> Bool,
                        seconds: TimeInterval = 10) throws -> Set<Int> {
        var answered = Set<Int>()
        var waiting = indices.filter { clients[$0] != nil }.sorted()
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            var fds = waiting.map { pollfd(fd: clients[$0]!.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 100)
            if ready > 0 {
                for (k, entry) in fds.enumerated() where entry.revents != 0 {
                    let i = waiting[k]
                    guard case .reply = try RPCMessage(record: try clients[i]!.receiveRecord()) else {
                        throw NFS3TestError.connectionClosed
                    }
                    answered.insert(i)
                }
                waiting.removeAll { answered.contains($0) }
            }
        } while !done(answered) && !waiting.isEmpty && Date() < deadline
        return answered
    }
}
