import NIOCore
import NIOEmbedded
import ONCRPC
import Testing
import XDR

/// Replies ready while a read burst is being handled go out with one flush at
/// channelReadComplete; replies finished later (thread pool, held calls) are
/// flushed at once.
@Suite struct ReplyFlushTests {
    func record(xid: UInt32, procedure: UInt32, value: UInt32? = nil) -> ByteBuffer {
        var args = ByteBuffer()
        if let value { args.writeXDRUInt32(value) }
        return RPCMessage.call(xid: xid, rpcVersion: 2, program: 200_000, version: 1, procedure: procedure,
                               credential: .none, verifier: .none, arguments: args).singleRecord()
    }

    @Test func repliesOfOneBurstAreFlushedAtReadComplete() throws {
        let h = try Harness()
        // Two records in one read, as a client with several calls in flight sends them.
        var burst = record(xid: 1, procedure: 1, value: 10)
        var second = record(xid: 2, procedure: 1, value: 20)
        burst.writeBuffer(&second)
        h.channel.pipeline.fireChannelRead(burst)
        #expect(try h.channel.readOutbound(as: ByteBuffer.self) == nil)  // written, not yet flushed
        h.channel.pipeline.fireChannelReadComplete()
        let replies = try h.replies()
        #expect(replies.map(\.xid) == [1, 2])
    }

    @Test func laterRepliesAreFlushedAtOnce() throws {
        let h = try Harness()
        try h.channel.writeInbound(record(xid: 7, procedure: 2))  // held until the test completes it
        #expect(try h.replies().isEmpty)
        h.program.held[7]!.succeed(.success(results: ByteBuffer()))
        #expect(try h.replies().map(\.xid) == [7])
    }
}
