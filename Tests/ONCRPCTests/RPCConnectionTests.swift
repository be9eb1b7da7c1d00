import NIOCore
import NIOEmbedded
import ONCRPC
import Testing
import Transport
import XDR
import Logging

/// Program 200000 v1-2: procedure 0 NULL, 1 echoes a UInt32 (garbage if
/// absent), 2 completes only when the test says so (for ordering tests).
///
/// `@unchecked Sendable` (RPCProgram requires Sendable, for real servers' threads):
/// its vars are touched only on the EmbeddedChannel's thread, the test's own, where
/// every call of these tests runs.
final class TestProgram: RPCProgram, @unchecked Sendable {
    let program: UInt32 = 200_000
    let versions: ClosedRange<UInt32> = 1...2
    var held: [UInt32: EventLoopPromise<RPCReplyBody>] = [:]
    var seen: [RPCCall] = []
    var connection: RPCConnection?

    func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        seen.append(call)
        connection = context.connection
        #expect(context.peer == .vsock(cid: 3, port: 1000))
        switch call.procedure {
        case 0: return context.eventLoop.makeSucceededFuture(.success(results: ByteBuffer()))
        case 1:
            var args = call.arguments
            guard let value = try? args.readXDRUInt32() else {
                return context.eventLoop.makeSucceededFuture(.garbageArguments)
            }
            var out = ByteBuffer()
            out.writeXDRUInt32(value &+ 1)
            return context.eventLoop.makeSucceededFuture(.success(results: out))
        case 2:
            let promise = context.eventLoop.makePromise(of: RPCReplyBody.self)
            held[call.xid] = promise
            return promise.futureResult
        case 3:
            return context.eventLoop.makeFailedFuture(RPCConnectionError.closed)
        default:
            return context.eventLoop.makeSucceededFuture(.procedureUnavailable)
        }
    }
}

struct Harness {
    let channel: EmbeddedChannel
    let program: TestProgram

    /// `alsoServing`: further programs beside `program` (200000 v1-2).
    init(maximumCallsInFlight: Int = 128, alsoServing others: [any RPCProgram] = []) throws {
        program = TestProgram()
        channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
        try channel.pipeline.syncOperations.addHandler(
            RPCConnectionHandler(peer: .vsock(cid: 3, port: 1000), dispatcher: RPCDispatcher(programs: [program] + others),
                                 maximumCallsInFlight: maximumCallsInFlight, logger: Logger(label: "test")))
        channel.pipeline.fireChannelActive()
    }

    func send(_ message: RPCMessage) throws {
        try channel.writeInbound(message.singleRecord())
    }

    func call(xid: UInt32, rpcVersion: UInt32 = 2, program: UInt32 = 200_000, version: UInt32 = 1, procedure: UInt32,
              credential: RPCOpaqueAuth = .none, verifier: RPCOpaqueAuth = .none, args: ByteBuffer = ByteBuffer()) throws {
        try send(.call(xid: xid, rpcVersion: rpcVersion, program: program, version: version, procedure: procedure,
                       credential: credential, verifier: verifier, arguments: args))
    }

    /// Reads every complete record written so far and decodes it.
    func replies() throws -> [RPCMessage] {
        var bytes = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        var out: [RPCMessage] = []
        while let header = bytes.readInteger(endianness: .big, as: UInt32.self) {
            #expect(header & RecordMarking.lastFragmentBit != 0)
            let record = bytes.readSlice(length: Int(header & ~RecordMarking.lastFragmentBit))!
            out.append(try RPCMessage(record: record))
        }
        #expect(bytes.readableBytes == 0)
        return out
    }

    func reply() throws -> (UInt32, RPCReplyBody) {
        let all = try replies()
        #expect(all.count == 1)
        guard case .reply(let xid, let body, _)? = all.first else { throw RPCConnectionError.closed }
        return (xid, body)
    }
}

@Suite struct RPCDispatchTests {
    @Test func nullProcedureSucceeds() throws {
        let h = try Harness()
        try h.call(xid: 42, procedure: 0)
        let (xid, body) = try h.reply()
        #expect(xid == 42)
        #expect(body == .success(results: ByteBuffer()))
    }

    @Test func wrongRPCVersionIsRPCMismatch() throws {
        let h = try Harness()
        try h.call(xid: 1, rpcVersion: 3, procedure: 0)
        #expect(try h.reply().1 == .rpcMismatch(low: 2, high: 2))
    }

    @Test func unknownProgramIsProgUnavail() throws {
        let h = try Harness()
        try h.call(xid: 1, program: 400_122, procedure: 0)
        #expect(try h.reply().1 == .programUnavailable)
    }

    @Test func versionOutOfRangeIsProgMismatchWithRange() throws {
        let h = try Harness()
        try h.call(xid: 1, version: 7, procedure: 0)
        #expect(try h.reply().1 == .programMismatch(low: 1, high: 2))
    }

    /// One implementation per (program, version): a second program registered for
    /// version 4 of the same number gets version 4's calls, the first keeps 1 and 2,
    /// and a version between them that nobody serves answers PROG_MISMATCH with the
    /// lowest and highest served (RFC 5531 §9).
    @Test func dispatchIsByProgramAndVersion() throws {
        struct VersionFour: RPCProgram {
            let program: UInt32 = 200_000
            let versions: ClosedRange<UInt32> = 4...4
            func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
                var out = ByteBuffer()
                out.writeXDRUInt32(0x4444)
                return context.eventLoop.makeSucceededFuture(.success(results: out))
            }
        }
        let h = try Harness(alsoServing: [VersionFour()])
        var four = ByteBuffer()
        four.writeXDRUInt32(0x4444)
        try h.call(xid: 1, version: 4, procedure: 1)
        #expect(try h.reply().1 == .success(results: four))
        var args = ByteBuffer()
        args.writeXDRUInt32(7)
        try h.call(xid: 2, version: 2, procedure: 1, args: args)
        var eight = ByteBuffer()
        eight.writeXDRUInt32(8)
        #expect(try h.reply().1 == .success(results: eight))
        try h.call(xid: 3, version: 3, procedure: 0)
        #expect(try h.reply().1 == .programMismatch(low: 1, high: 4))
        #expect(h.program.seen.map(\.version) == [2])
    }

    @Test func unknownProcedureIsProcUnavail() throws {
        let h = try Harness()
        try h.call(xid: 1, procedure: 99)
        #expect(try h.reply().1 == .procedureUnavailable)
    }

    @Test func aProgramThatFailsIsAnsweredSystemErr() throws {
        let h = try Harness()
        try h.call(xid: 9, procedure: 3)
        #expect(try h.reply() == (9, .systemError))
    }

    @Test func undecodableArgumentsAreGarbageArgs() throws {
        let h = try Harness()
        try h.call(xid: 1, procedure: 1, args: ByteBuffer(bytes: [1, 2]))
        #expect(try h.reply().1 == .garbageArguments)
    }

    @Test func authSysIsDecodedAndHandedToTheProgram() throws {
        let h = try Harness()
        let sys = AuthSysParameters(stamp: 9, machineName: Array("guest".utf8), uid: 1000, gid: 100, gids: [100, 27])
        var args = ByteBuffer()
        args.writeXDRUInt32(41)
        try h.call(xid: 5, procedure: 1, credential: sys.opaqueAuth, args: args)
        let (_, body) = try h.reply()
        var expected = ByteBuffer()
        expected.writeXDRUInt32(42)
        #expect(body == .success(results: expected))
        #expect(h.program.seen.first?.credential == .sys(sys))
    }

    @Test func unsupportedFlavorIsBadCred() throws {
        let h = try Harness()
        try h.call(xid: 1, procedure: 0, credential: RPCOpaqueAuth(flavor: RPCAuthFlavor.rpcsecGSS, body: ByteBuffer(bytes: [0, 0, 0, 1])))
        #expect(try h.reply().1 == .authError(.badCredential))
        try h.call(xid: 2, procedure: 0, credential: RPCOpaqueAuth(flavor: RPCAuthFlavor.dh, body: ByteBuffer()))
        #expect(try h.reply().1 == .authError(.badCredential))
    }

    @Test func malformedAuthSysIsBadCred() throws {
        let h = try Harness()
        // Machine name longer than 255 bytes.
        var long = AuthSysParameters(uid: 0, gid: 0)
        long.machineName = [UInt8](repeating: 0x61, count: 256)
        try h.call(xid: 1, procedure: 0, credential: long.opaqueAuth)
        #expect(try h.reply().1 == .authError(.badCredential))
        // Seventeen supplementary groups.
        let many = AuthSysParameters(uid: 0, gid: 0, gids: Array(0..<17))
        try h.call(xid: 2, procedure: 0, credential: many.opaqueAuth)
        #expect(try h.reply().1 == .authError(.badCredential))
        // Truncated body.
        var body = AuthSysParameters(uid: 1, gid: 1).opaqueAuth.body
        body.moveWriterIndex(to: body.writerIndex - 4)
        try h.call(xid: 3, procedure: 0, credential: RPCOpaqueAuth(flavor: RPCAuthFlavor.sys, body: body))
        #expect(try h.reply().1 == .authError(.badCredential))
        // Trailing bytes after the groups.
        var trailing = AuthSysParameters(uid: 1, gid: 1).opaqueAuth.body
        trailing.writeXDRUInt32(0)
        try h.call(xid: 4, procedure: 0, credential: RPCOpaqueAuth(flavor: RPCAuthFlavor.sys, body: trailing))
        #expect(try h.reply().1 == .authError(.badCredential))
        // AUTH_NONE with a body.
        try h.call(xid: 5, procedure: 0, credential: RPCOpaqueAuth(flavor: RPCAuthFlavor.none, body: ByteBuffer(bytes: [0, 0, 0, 0])))
        #expect(try h.reply().1 == .authError(.badCredential))
    }

    @Test func nonNullVerifierIsBadVerf() throws {
        let h = try Harness()
        try h.call(xid: 1, procedure: 0, credential: AuthSysParameters(uid: 1, gid: 1).opaqueAuth,
                   verifier: RPCOpaqueAuth(flavor: RPCAuthFlavor.sys, body: ByteBuffer()))
        #expect(try h.reply().1 == .authError(.badVerifier))
    }

    @Test func rpcVersionIsCheckedBeforeTheCredential() throws {
        let h = try Harness()
        try h.call(xid: 1, rpcVersion: 1, procedure: 0, credential: RPCOpaqueAuth(flavor: 99, body: ByteBuffer()))
        #expect(try h.reply().1 == .rpcMismatch(low: 2, high: 2))
    }
}

@Suite struct RPCConnectionTests {
    @Test func repliesGoOutOfOrderAndMatchByXID() throws {
        let h = try Harness()
        try h.call(xid: 10, procedure: 2)
        try h.call(xid: 11, procedure: 0)
        // The quick call is answered while the slow one is still running.
        #expect(try h.reply().0 == 11)
        var results = ByteBuffer()
        results.writeXDRUInt32(7)
        h.program.held[10]!.succeed(.success(results: results))
        let (xid, body) = try h.reply()
        #expect(xid == 10)
        #expect(body == .success(results: results))
    }

    @Test func callsInFlightAreBoundedByWithholdingReads() throws {
        let h = try Harness(maximumCallsInFlight: 2)
        try h.call(xid: 1, procedure: 2)
        try h.call(xid: 2, procedure: 2)
        let readsBefore = ReadCounter.install(on: h.channel)
        h.channel.read()
        #expect(readsBefore.count == 0, "a third read must wait while two calls run")
        h.program.held[1]!.succeed(.success(results: ByteBuffer()))
        #expect(readsBefore.count == 1, "finishing a call releases the withheld read")
        _ = try h.replies()
    }

    /// Five calls in one read with a limit of two: two run, the others wait (in order)
    /// and run as earlier ones finish; no read is asked for while any wait.
    @Test func callsOfOneReadPastTheLimitWaitTheirTurn() throws {
        let h = try Harness(maximumCallsInFlight: 2)
        var bytes = ByteBuffer()
        for xid in 1...5 as ClosedRange<UInt32> {
            var record = RPCMessage.call(xid: xid, rpcVersion: 2, program: 200_000, version: 1, procedure: 2,
                                         credential: .none, verifier: .none, arguments: ByteBuffer()).singleRecord()
            bytes.writeBuffer(&record)
        }
        try h.channel.writeInbound(bytes)
        #expect(h.program.seen.map(\.xid) == [1, 2])
        let reads = ReadCounter.install(on: h.channel)
        h.channel.read()
        #expect(reads.count == 0)
        h.program.held[2]!.succeed(.success(results: ByteBuffer()))
        #expect(h.program.seen.map(\.xid) == [1, 2, 3])
        h.program.held[1]!.succeed(.success(results: ByteBuffer()))
        h.program.held[3]!.succeed(.success(results: ByteBuffer()))
        #expect(h.program.seen.map(\.xid) == [1, 2, 3, 4, 5])
        #expect(reads.count == 0, "two calls still run")
        h.program.held[4]!.succeed(.success(results: ByteBuffer()))
        #expect(reads.count == 1, "nothing waits and a call may run: the withheld read goes out")
        h.program.held[5]!.succeed(.success(results: ByteBuffer()))
        #expect(try h.replies().map(\.xid) == [2, 1, 3, 4, 5])
    }

    /// While the channel is not writable (the client does not read its replies), no new
    /// call runs and no read is asked for; writable again, both resume.
    @Test func anUnwritableChannelHoldsNewCallsAndReads() throws {
        let h = try Harness()
        try h.call(xid: 1, procedure: 0)
        #expect(h.program.seen.count == 1)
        h.channel.isWritable = false
        h.channel.pipeline.fireChannelWritabilityChanged()
        try h.call(xid: 2, procedure: 0)
        try h.call(xid: 3, procedure: 0)
        #expect(h.program.seen.count == 1, "calls wait while replies back up")
        let reads = ReadCounter.install(on: h.channel)
        h.channel.read()
        #expect(reads.count == 0)
        h.channel.isWritable = true
        h.channel.pipeline.fireChannelWritabilityChanged()
        #expect(h.program.seen.map(\.xid) == [1, 2, 3])
        #expect(reads.count == 1)
        #expect(try h.replies().map(\.xid) == [1, 2, 3])
    }

    @Test func largeResultsAreNotCopiedIntoTheHeader() throws {
        let h = try Harness()
        try h.call(xid: 3, procedure: 2)
        let big = ByteBuffer(repeating: 0xab, count: 100_000)
        h.program.held[3]!.succeed(.success(results: big))
        var parts: [ByteBuffer] = []
        while let part = try h.channel.readOutbound(as: ByteBuffer.self) { parts.append(part) }
        #expect(parts.count == 2)
        #expect(parts.last == big)
    }

    @Test func garbageRecordClosesTheConnection() throws {
        let h = try Harness()
        var record = ByteBuffer()
        record.writeInteger(RecordMarking.lastFragmentBit | 8, endianness: .big)
        record.writeXDRUInt32(1)
        record.writeXDRUInt32(5)  // msg_type 5 does not exist
        try h.channel.writeInbound(record)
        #expect(!h.channel.isActive)
    }

    @Test func backchannelCallsAreMatchedToReplies() throws {
        let h = try Harness()
        // A program gets the connection handle in its call context; an NFSv4.1 session keeps it.
        try h.call(xid: 20, procedure: 2)
        let connection = h.program.connection
        #expect(connection?.peer == .vsock(cid: 3, port: 1000))
        var args = ByteBuffer()
        args.writeXDRUInt32(77)
        let reply = connection!.call(program: 0x4000_0000, version: 1, procedure: 0, arguments: args)
        guard case .call(let xid, _, let prog, _, _, _, _, let sentArgs)? = try h.replies().first else {
            Issue.record("no call went out"); return
        }
        #expect(prog == 0x4000_0000)
        #expect(sentArgs == args)
        // The client's reply comes back on the same connection, told apart by msg_type.
        try h.send(.reply(xid: xid, body: .success(results: ByteBuffer(bytes: [0, 0, 0, 1])), verifier: .none))
        #expect(try reply.wait() == .success(results: ByteBuffer(bytes: [0, 0, 0, 1])))
        // A pending call fails when the connection goes away.
        let orphan = connection!.call(program: 0x4000_0000, version: 1, procedure: 0, arguments: ByteBuffer())
        _ = try h.replies()
        _ = try? h.channel.finish()
        #expect(throws: RPCConnectionError.closed) { try orphan.wait() }
        // A handle kept past the close (the session outlives the connection) fails new calls.
        let late = connection!.call(program: 0x4000_0000, version: 1, procedure: 0, arguments: ByteBuffer())
        #expect(throws: RPCConnectionError.closed) { try late.wait() }
    }
}

/// Counts read() requests that pass the RPC handler on their way to the socket.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var count = 0
    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
    static func install(on channel: EmbeddedChannel) -> ReadCounter {
        let counter = ReadCounter()
        try! channel.pipeline.syncOperations.addHandler(counter, position: .first)
        return counter
    }
}

@Suite struct RPCCallTimeoutTests {
    @Test("A server call with a timeout fails with timedOut when no reply comes, and a late reply is dropped")
    func backchannelCallTimesOut() throws {
        let h = try Harness()
        try h.call(xid: 21, procedure: 2)
        let connection = try #require(h.program.connection)
        let reply = connection.call(program: 0x4000_0000, version: 1, procedure: 0, arguments: ByteBuffer(),
                                    timeout: .milliseconds(50))
        guard case .call(let xid, _, _, _, _, _, _, _)? = try h.replies().first else {
            Issue.record("no call went out"); return
        }
        h.channel.embeddedEventLoop.advanceTime(by: .milliseconds(60))
        #expect(throws: RPCConnectionError.timedOut) { try reply.wait() }
        // The reply after the timeout matches nothing and changes nothing.
        try h.send(.reply(xid: xid, body: .success(results: ByteBuffer()), verifier: .none))
        // The connection goes on serving calls.
        try h.call(xid: 22, procedure: 0)
        #expect(try h.reply().0 == 22)
    }
}
