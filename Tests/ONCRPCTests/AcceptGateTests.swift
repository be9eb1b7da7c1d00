#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOEmbedded
import NIOConcurrencyHelpers
import Testing
@testable import Transport

/// The listener's side of descriptor exhaustion, on an embedded listening channel
/// (ConnectionLimitTests drive a real process past its connection limit; `accept`
/// failing with EMFILE is only reachable here).
@Suite struct AcceptGateTests {
    /// A listener whose `accept` fails with EMFILE: NIO keeps it open and the socket stays
    /// readable, so asking again at once spins a core. The gate waits for a connection to
    /// close or one second, and the log says so once for the burst.
    @Test func outOfDescriptorsWaitsForACloseOrASecondAndSaysSoOnce() throws {
        let log = CapturedLog()
        let budget = ConnectionBudget(limit: 10, descriptorLimit: 64, keptForFiles: 32, logger: log.logger)
        let (listener, loop, reads) = try Self.listener(budget)

        listener.read()
        #expect(reads.count == 1)
        listener.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        listener.read()
        listener.read()
        #expect(reads.count == 1, "asked the socket again right after EMFILE")
        #expect(log.lines == ["accept: out of file descriptors (limit 64, 0 connections open); raise `ulimit -n`; accepting again as descriptors free up"])

        loop.advanceTime(by: .milliseconds(999))
        #expect(reads.count == 1)
        loop.advanceTime(by: .milliseconds(1))
        #expect(reads.count == 2, "no retry a second later")

        // Same burst: no new line. A connection that closes wakes the listener at once.
        let accepted = EmbeddedChannel(loop: loop)
        try listener.writeInbound(accepted as Channel)
        #expect(budget.openConnections == 1)
        listener.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        listener.read()
        #expect(reads.count == 2)
        _ = try accepted.finish()
        loop.run()
        #expect(budget.openConnections == 0)
        #expect(reads.count == 3, "not woken by the close")
        #expect(log.lines.count == 1)
    }

    /// At the budget the listener stops accepting, says so once, and goes on when one closes.
    @Test func atTheLimitItAcceptsAgainWhenAConnectionCloses() throws {
        let log = CapturedLog()
        let budget = ConnectionBudget(limit: 2, descriptorLimit: 64, keptForFiles: 32, logger: log.logger)
        let (listener, loop, reads) = try Self.listener(budget)
        let first = EmbeddedChannel(loop: loop), second = EmbeddedChannel(loop: loop)
        for accepted in [first, second] {
            listener.read()
            try listener.writeInbound(accepted as Channel)
        }
        #expect(reads.count == 2)
        listener.read()
        listener.read()
        #expect(reads.count == 2)
        #expect(log.lines.count == 1)
        #expect(log.lines.first?.hasPrefix("accept: connection limit reached (2 open; file descriptor limit 64, 32 of them kept for open files)") == true)
        _ = try first.finish()
        loop.run()
        #expect(reads.count == 3)
        #expect(budget.openConnections == 1)
        _ = try second.finish()
    }

    /// The vhost-user device has no backlog to leave a guest's request in: past the
    /// budget (two descriptors a connection) it is refused at once, said once per
    /// burst, and admitted again when a connection closes.
    @Test func deviceConnectionsAreAdmittedWithinTheBudgetTwoDescriptorsEach() {
        let log = CapturedLog()
        let budget = ConnectionBudget(limit: 5, descriptorLimit: 64, keptForFiles: 32, logger: log.logger)
        #expect(budget.admitWithoutWaiting(descriptors: 2))
        #expect(budget.admitWithoutWaiting(descriptors: 2))
        #expect(!budget.admitWithoutWaiting(descriptors: 2))
        #expect(!budget.admitWithoutWaiting(descriptors: 2))
        #expect(budget.openConnections == 4)
        #expect(log.lines.count == 1)
        #expect(log.lines.first?.hasPrefix("vhost-user: connection limit reached (4 descriptors held by connections; file descriptor limit 64, 32 of them kept for open files)") == true)
        budget.closed(descriptors: 2)
        #expect(budget.admitWithoutWaiting(descriptors: 2))
        #expect(budget.openConnections == 4)
    }

    static func listener(_ budget: ConnectionBudget) throws -> (EmbeddedChannel, EmbeddedEventLoop, ReadCounter) {
        let loop = EmbeddedEventLoop()
        let listener = EmbeddedChannel(loop: loop)
        let reads = ReadCounter.install(on: listener)
        try listener.pipeline.syncOperations.addHandler(AcceptGate(budget: budget))
        return (listener, loop, reads)
    }
}

/// A logger whose lines (messages only) the test reads back.
final class CapturedLog: Sendable {
    private let storage = NIOLockedValueBox<[String]>([])
    var lines: [String] { storage.withLockedValue { $0 } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            self.log.storage.withLockedValue { $0.append("\(event.message)") }
        }
    }
}
