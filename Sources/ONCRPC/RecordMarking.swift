import NIOCore

/// Record marking (RFC 5531 §11): each record is a sequence of fragments,
/// each preceded by a 4-byte header whose top bit marks the last fragment
/// and whose low 31 bits give the fragment's length.
public enum RecordMarking {
    public static let lastFragmentBit: UInt32 = 0x8000_0000
    /// Enough for a 1 MiB READ or WRITE plus RPC and NFS headers.
    public static let defaultMaximumRecordSize = 1024 * 1024 + 64 * 1024

    /// The header of a record of `length` bytes sent as one fragment (every record
    /// vsnfs sends is), or nil when `length` does not fit in a fragment's 31 bits.
    @inlinable
    public static func singleFragmentHeader(length: Int) -> UInt32? {
        length >= 0 && length <= Int(~lastFragmentBit) ? lastFragmentBit | UInt32(length) : nil
    }
}

public enum RecordMarkingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A record (the sum of its fragments) would exceed the configured maximum.
    case recordTooLarge(size: Int, limit: Int)
    /// The connection closed in the middle of a record.
    case truncatedRecord(bytesPending: Int)
    /// A record with no bytes in it: not an RPC message.
    case emptyRecord

    public var description: String {
        switch self {
        case .recordTooLarge(let size, let limit):
            return "record of at least \(size) bytes exceeds the maximum record size of \(limit)"
        case .truncatedRecord(let pending):
            return "connection closed in the middle of a record (\(pending) bytes pending)"
        case .emptyRecord:
            return "empty record"
        }
    }
}

/// Reassembles records from fragments. Emits one `ByteBuffer` per record.
///
/// Several records in one read and one record across many reads both work;
/// a record whose fragments would exceed `maximumRecordSize` fails the
/// decoder as soon as the offending fragment header arrives, before the
/// fragment's bytes are buffered, and the connection is closed by the
/// handler that sees the error.
public struct RecordMarkingDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maximumRecordSize: Int
    /// Fragments of the record being assembled, when it has more than one.
    private var pending: ByteBuffer?

    public init(maximumRecordSize: Int = RecordMarking.defaultMaximumRecordSize) {
        precondition(maximumRecordSize > 0 && maximumRecordSize <= Int(UInt32.max >> 1))
        self.maximumRecordSize = maximumRecordSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let header = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return .needMoreData
        }
        let isLast = header & RecordMarking.lastFragmentBit != 0
        let length = Int(header & ~RecordMarking.lastFragmentBit)
        let assembled = self.pending?.readableBytes ?? 0
        guard assembled + length <= self.maximumRecordSize else {
            throw RecordMarkingError.recordTooLarge(size: assembled + length, limit: self.maximumRecordSize)
        }
        guard buffer.readableBytes >= 4 + length else {
            return .needMoreData
        }
        buffer.moveReaderIndex(forwardBy: 4)
        var fragment = buffer.readSlice(length: length)!

        if isLast {
            var record: ByteBuffer
            if var pending = self.pending {
                pending.writeBuffer(&fragment)
                record = pending
                self.pending = nil
            } else {
                // The common case: a single-fragment record, passed on without a copy.
                record = fragment
            }
            guard record.readableBytes > 0 else { throw RecordMarkingError.emptyRecord }
            context.fireChannelRead(Self.wrapInboundOut(record))
        } else if self.pending == nil {
            var pending = context.channel.allocator.buffer(capacity: max(length * 2, 1024))
            pending.writeBuffer(&fragment)
            self.pending = pending
        } else {
            self.pending!.writeBuffer(&fragment)
        }
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try self.decode(context: context, buffer: &buffer) == .continue {}
        let leftover = buffer.readableBytes + (self.pending?.readableBytes ?? 0)
        if leftover > 0 {
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            self.pending = nil
            throw RecordMarkingError.truncatedRecord(bytesPending: leftover)
        }
        return .needMoreData
    }
}

/// Frames each outbound `ByteBuffer` as one single-fragment record. The
/// header goes out as its own small write so large payloads are not copied.
public final class RecordMarkingEncoder: ChannelOutboundHandler {
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let record = self.unwrapOutboundIn(data)
        guard let mark = RecordMarking.singleFragmentHeader(length: record.readableBytes) else {
            preconditionFailure("a record of \(record.readableBytes) bytes does not fit in one fragment")
        }
        var header = context.channel.allocator.buffer(capacity: 4)
        header.writeInteger(mark, endianness: .big)
        context.write(self.wrapOutboundOut(header), promise: nil)
        context.write(self.wrapOutboundOut(record), promise: promise)
    }
}
