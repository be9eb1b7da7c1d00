import NIOCore
import ONCRPC

extension RPCMessage {
    /// The message as one single-fragment record, as a client puts it on the wire.
    func singleRecord() -> ByteBuffer {
        var body = ByteBuffer()
        encode(xdr: &body)
        var record = ByteBuffer()
        record.writeInteger(RecordMarking.lastFragmentBit | UInt32(body.readableBytes), endianness: .big)
        record.writeBuffer(&body)
        return record
    }
}
