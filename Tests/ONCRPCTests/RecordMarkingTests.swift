import NIOCore
import NIOEmbedded
import ONCRPC
import Testing

@Suite struct RecordMarkingTests {
    func channel(max: Int = 1024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder(maximumRecordSize: max)))
        return channel
    }

    func fragment(_ bytes: [UInt8], last: Bool) -> [UInt8] {
        let header = UInt32(bytes.count) | (last ? RecordMarking.lastFragmentBit : 0)
        return withUnsafeBytes(of: header.bigEndian) { Array($0) } + bytes
    }

    func records(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let record = try channel.readInbound(as: ByteBuffer.self) { out.append(Array(record.readableBytesView)) }
        return out
    }

    @Test func multiFragmentRecordIsReassembled() throws {
        let channel = try self.channel()
        let bytes = fragment([1, 2, 3], last: false) + fragment([4], last: false) + fragment([5, 6], last: true)
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        #expect(try records(channel) == [[1, 2, 3, 4, 5, 6]])
        #expect(try channel.finish().isClean)
    }

    @Test func severalRecordsInOneRead() throws {
        let channel = try self.channel()
        let bytes = fragment([1], last: true) + fragment([2, 2], last: true) + fragment([3], last: false) + fragment([3], last: true)
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        #expect(try records(channel) == [[1], [2, 2], [3, 3]])
    }

    @Test func oneRecordAcrossManyReads() throws {
        let channel = try self.channel()
        let payload = (0..<200).map { UInt8($0) }
        let bytes = fragment(Array(payload[0..<150]), last: false) + fragment(Array(payload[150...]), last: true)
        for byte in bytes {  // one byte per read, headers split too
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        #expect(try records(channel) == [payload])
    }

    @Test func oversizedFragmentHeaderFailsBeforeBuffering() throws {
        let channel = try self.channel(max: 100)
        // Only the header arrives: the decoder must refuse on the claim alone.
        let header = withUnsafeBytes(of: (RecordMarking.lastFragmentBit | 101).bigEndian) { Array($0) }
        #expect(throws: RecordMarkingError.recordTooLarge(size: 101, limit: 100)) {
            try channel.writeInbound(ByteBuffer(bytes: header))
        }
    }

    @Test func fragmentsThatAddUpPastTheLimitAreRefused() throws {
        let channel = try self.channel(max: 100)
        try channel.writeInbound(ByteBuffer(bytes: fragment([UInt8](repeating: 1, count: 60), last: false)))
        #expect(throws: RecordMarkingError.recordTooLarge(size: 120, limit: 100)) {
            try channel.writeInbound(ByteBuffer(bytes: fragment([UInt8](repeating: 1, count: 60), last: true)))
        }
    }

    @Test func truncatedRecordAtCloseIsAnError() throws {
        let channel = try self.channel()
        try channel.writeInbound(ByteBuffer(bytes: fragment([1, 2, 3, 4], last: true).dropLast()))
        #expect(try records(channel).isEmpty)
        #expect(throws: RecordMarkingError.truncatedRecord(bytesPending: 7)) { try channel.finish() }
    }

    @Test func emptyRecordIsRefused() throws {
        let channel = try self.channel()
        #expect(throws: RecordMarkingError.emptyRecord) {
            try channel.writeInbound(ByteBuffer(bytes: fragment([], last: true)))
        }
    }

    @Test func encoderFramesEachWriteAsOneRecord() throws {
        let channel = EmbeddedChannel(handler: RecordMarkingEncoder())
        try channel.writeOutbound(ByteBuffer(bytes: [7, 8, 9]))
        var out = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&part) }
        #expect(Array(out.readableBytesView) == fragment([7, 8, 9], last: true))
    }

    /// The one rule for the header of every record vsnfs sends: the last-fragment bit
    /// and a length that fits in 31 bits.
    @Test func singleFragmentHeaderHasTheLastBitAndA31BitLength() {
        #expect(RecordMarking.singleFragmentHeader(length: 0) == 0x8000_0000)
        #expect(RecordMarking.singleFragmentHeader(length: 28) == 0x8000_001C)
        #expect(RecordMarking.singleFragmentHeader(length: 0x7FFF_FFFF) == 0xFFFF_FFFF)
        #expect(RecordMarking.singleFragmentHeader(length: 0x8000_0000) == nil)
        #expect(RecordMarking.singleFragmentHeader(length: -1) == nil)
    }
}
