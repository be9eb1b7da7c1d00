import Logging
import NIOCore
import NIOEmbedded
import ONCRPC
import Testing
import XDR

/// Program 200001: answers with a whole record (procedure 1: results from
/// `makeResultsBuffer`, finished by `successRecord`), `.now` (procedure 2: a
/// plain buffer; 4: `successRecord` of a buffer without headroom), or `.later`
/// through a future (procedure 3, with headroom). Argument: the number of
/// 0xab bytes to return.
final class AnsweringProgram: RPCProgram, Sendable {
    let program: UInt32 = 200_001
    let versions: ClosedRange<UInt32> = 1...1

    func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        answer(call, context: context).future(on: context.eventLoop)
    }

    func answer(_ call: RPCCall, context: RPCCallContext) -> RPCAnswer {
        var args = call.arguments
        guard let count = try? args.readXDRUInt32() else { return .now(.garbageArguments) }
        var out = call.procedure == 2 || call.procedure == 4 ? ByteBuffer() : context.makeResultsBuffer(capacity: Int(count))
        out.writeRepeatingByte(0xab, count: Int(count))
        switch call.procedure {
        case 1, 4: return context.successRecord(&out)
        case 2: return .now(.success(results: out))
        case 3: return .later(context.eventLoop.makeSucceededFuture(.success(results: out)))
        default: return .now(.procedureUnavailable)
        }
    }
}

@Suite struct ReplyHeadroomTests {
    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
        try channel.pipeline.syncOperations.addHandler(
            RPCConnectionHandler(peer: .vsock(cid: 3, port: 1000), dispatcher: RPCDispatcher(programs: [AnsweringProgram()]),
                                 logger: Logger(label: "test")))
        channel.pipeline.fireChannelActive()
        return channel
    }

    func call(_ channel: EmbeddedChannel, xid: UInt32, procedure: UInt32, count: UInt32) throws {
        var args = ByteBuffer()
        args.writeXDRUInt32(count)
        try channel.writeInbound(RPCMessage.call(xid: xid, rpcVersion: 2, program: 200_001, version: 1, procedure: procedure,
                                                 credential: .none, verifier: .none, arguments: args).singleRecord())
    }

    /// The buffers written for one reply, and the reply they make together.
    func reply(_ channel: EmbeddedChannel) throws -> (parts: Int, xid: UInt32, body: RPCReplyBody) {
        var parts = 0
        var bytes = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { parts += 1; bytes.writeBuffer(&part) }
        let mark = bytes.readInteger(endianness: .big, as: UInt32.self)
        let header = try #require(mark)
        #expect(header == RecordMarking.lastFragmentBit | UInt32(bytes.readableBytes))
        guard case .reply(let xid, let body, let verifier) = try RPCMessage(record: bytes) else {
            throw RPCConnectionError.closed
        }
        #expect(verifier == .none)
        return (parts, xid, body)
    }

    @Test(arguments: [0, 5, 4096, 100_000])
    func recordAnswersGoOutAsOneBuffer(count: Int) throws {
        let channel = try channel()
        try call(channel, xid: 41, procedure: 1, count: UInt32(count))
        let (parts, xid, body) = try reply(channel)
        #expect(parts == 1)
        #expect(xid == 41)
        #expect(body == .success(results: ByteBuffer(repeating: 0xab, count: count)))
    }

    /// A record answer as a future (`handle`) is the plain results.
    @Test func recordAsAFutureIsTheResults() throws {
        let channel = EmbeddedChannel()
        var record = ByteBuffer(repeating: 0, count: RPCCallContext.successReplyHeadroom)
        record.writeBytes([1, 2, 3])
        let future = RPCAnswer.record(record).future(on: channel.eventLoop)
        #expect(try future.wait() == .success(results: ByteBuffer(bytes: [1, 2, 3])))
    }

    @Test(arguments: [1, 3, 4]) func repliesAreTheSameWithOrWithoutHeadroomAndFuture(procedure: UInt32) throws {
        for count in [0, 7, 5000] {
            let channel = try channel()
            try call(channel, xid: 9, procedure: 2, count: UInt32(count))
            let plain = try reply(channel)
            try call(channel, xid: 9, procedure: procedure, count: UInt32(count))
            let other = try reply(channel)
            #expect(plain.xid == other.xid && plain.body == other.body)
            #expect(other.body == .success(results: ByteBuffer(repeating: 0xab, count: count)))
        }
    }

    @Test func headerErrorsAreAnsweredAtOnce() throws {
        let channel = try channel()
        try channel.writeInbound(RPCMessage.call(xid: 5, rpcVersion: 2, program: 200_001, version: 9, procedure: 1,
                                                 credential: .none, verifier: .none, arguments: ByteBuffer()).singleRecord())
        let (_, xid, reply) = try reply(channel)
        #expect(xid == 5 && reply == .programMismatch(low: 1, high: 1))
    }
}
