// libFuzzer target: the record-marking decoder (RFC 5531 §11) as the server
// runs it, a ByteToMessageHandler around RecordMarkingDecoder, fed arbitrary
// bytes in arbitrary chunks.
//
// Input: byte 0 picks the chunk sizes (0: everything at once; n: chunks of
// 1...n bytes, cycling), the rest is the byte stream. The decoder's limit is
// small (4 KiB) so that fragments over it are reached.
//
// Checked beyond "no crash": every record passed on is non-empty and within
// the limit; the records never hold more bytes than came in; the only
// errors are the decoder's own.
import FuzzDriver
import NIOCore
import NIOEmbedded
import ONCRPC

let maximumRecordSize = 4096

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecordMarking(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count)
    guard let chunking = bytes.first else { return 0 }
    let stream = bytes.dropFirst()

    let channel = EmbeddedChannel(handler: ByteToMessageHandler(RecordMarkingDecoder(maximumRecordSize: maximumRecordSize)))
    var recordBytes = 0
    func drain() {
        while let record = try! channel.readInbound(as: ByteBuffer.self) {
            precondition(record.readableBytes > 0, "empty record passed on")
            precondition(record.readableBytes <= maximumRecordSize, "record of \(record.readableBytes) bytes over the limit")
            recordBytes += record.readableBytes
        }
    }
    func expected(_ error: Error) {
        precondition(error is RecordMarkingError, "unexpected error \(error)")
    }

    var offset = stream.startIndex
    var step = 0
    var failed = false
    while offset < stream.endIndex && !failed {
        let size = chunking == 0 ? stream.count : 1 + step % Int(chunking)
        let end = min(stream.endIndex, offset + size)
        var chunk = channel.allocator.buffer(capacity: end - offset)
        chunk.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
        do {
            try channel.writeInbound(chunk)
        } catch {
            expected(error)
            failed = true
        }
        drain()
        offset = end
        step += 1
    }
    if !failed {
        do {
            _ = try channel.finish()
        } catch {
            expected(error)
        }
        drain()
    } else {
        _ = try? channel.finish()
    }
    precondition(recordBytes <= stream.count, "records hold \(recordBytes) bytes, only \(stream.count) came in")
    return 0
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzRecordMarking_main")
public func fuzzRecordMarkingMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzRecordMarking)
}
