import NIOCore
import Testing
import XDR

@Suite struct XDRTests {
    @Test func integersRoundTripBigEndian() throws {
        var buffer = ByteBuffer()
        buffer.writeXDRUInt32(0xdead_beef)
        buffer.writeXDRInt32(-2)
        buffer.writeXDRUInt64(0x0102_0304_0506_0708)
        buffer.writeXDRInt64(-3)
        buffer.writeXDRBool(true)
        #expect(Array(buffer.readableBytesView.prefix(4)) == [0xde, 0xad, 0xbe, 0xef])
        #expect(try buffer.readXDRUInt32() == 0xdead_beef)
        #expect(try buffer.readXDRInt32() == -2)
        #expect(try buffer.readXDRUInt64() == 0x0102_0304_0506_0708)
        #expect(try buffer.readXDRInt64() == -3)
        #expect(try buffer.readXDRBool() == true)
        #expect(buffer.readableBytes == 0)
    }

    @Test func boolOtherThanZeroOrOneIsRejected() {
        var buffer = ByteBuffer()
        buffer.writeXDRUInt32(2)
        #expect(throws: XDRError.invalidBool(2)) { try buffer.readXDRBool() }
    }

    enum Color: UInt32 { case red = 0, green = 1 }

    @Test func enumsRejectUnknownValues() throws {
        var buffer = ByteBuffer()
        buffer.writeXDREnum(Color.green)
        buffer.writeXDRUInt32(7)
        #expect(try buffer.readXDREnum(Color.self) == .green)
        #expect(throws: XDRError.invalidEnum(type: "Color", value: 7)) { try buffer.readXDREnum(Color.self) }
    }

    @Test func opaqueIsPaddedToFourBytes() throws {
        var buffer = ByteBuffer()
        buffer.writeXDRVariableOpaque([1, 2, 3, 4, 5])
        #expect(buffer.readableBytes == 4 + 8)
        #expect(Array(buffer.readableBytesView.suffix(3)) == [0, 0, 0])
        buffer.writeXDRFixedOpaque([9, 9])
        #expect(buffer.readableBytes == 12 + 4)
        let opaque = try buffer.readXDRVariableOpaque(maxLength: 16)
        #expect(Array(opaque.readableBytesView) == [1, 2, 3, 4, 5])
        let fixed = try buffer.readXDRFixedOpaque(length: 2)
        #expect(Array(fixed.readableBytesView) == [9, 9])
        #expect(buffer.readableBytes == 0)
    }

    @Test func lengthOverTheFieldLimitIsRejectedBeforeReading() {
        var buffer = ByteBuffer()
        buffer.writeXDRVariableOpaque([UInt8](repeating: 1, count: 9))
        #expect(throws: XDRError.lengthExceedsLimit(length: 9, limit: 8)) {
            try buffer.readXDRVariableOpaque(maxLength: 8)
        }
    }

    @Test func lengthBeyondTheReceivedBytesIsTruncation() {
        // A 4 GiB length claim with 4 bytes behind it: refused without allocating.
        var buffer = ByteBuffer()
        buffer.writeXDRUInt32(0xffff_fff0)
        buffer.writeXDRUInt32(0)
        #expect(throws: XDRError.truncated(needed: 0xffff_fff0, available: 4)) {
            try buffer.readXDRVariableOpaque(maxLength: Int(UInt32.max))
        }
        var short = ByteBuffer()
        short.writeXDRUInt32(5)
        short.writeBytes([1, 2, 3, 4, 5])  // padding missing
        #expect(throws: XDRError.truncated(needed: 8, available: 5)) {
            try short.readXDRVariableOpaque(maxLength: 10)
        }
    }

    @Test func stringsHaveLimitsAndMustBeUTF8() throws {
        var buffer = ByteBuffer()
        buffer.writeXDRString("héllo")
        #expect(try buffer.readXDRString(maxLength: 255) == "héllo")
        buffer.writeXDRVariableOpaque([0xff, 0xfe])
        #expect(throws: XDRError.invalidUTF8) { try buffer.readXDRString(maxLength: 255) }
        buffer.clear()
        buffer.writeXDRString("toolong")
        #expect(throws: XDRError.lengthExceedsLimit(length: 7, limit: 3)) { try buffer.readXDRString(maxLength: 3) }
    }

    @Test func arraysCheckCountAgainstLimitAndReceivedBytes() throws {
        var buffer = ByteBuffer()
        buffer.writeXDRArray([1, 2, 3] as [UInt32]) { $0.writeXDRUInt32($1) }
        #expect(try buffer.readXDRArray(maxCount: 3) { try $0.readXDRUInt32() } == [1, 2, 3])

        buffer.writeXDRArray([1, 2, 3] as [UInt32]) { $0.writeXDRUInt32($1) }
        #expect(throws: XDRError.lengthExceedsLimit(length: 3, limit: 2)) {
            try buffer.readXDRArray(maxCount: 2) { try $0.readXDRUInt32() }
        }

        // A count of a million with no elements behind it is refused up front.
        var lying = ByteBuffer()
        lying.writeXDRUInt32(1_000_000)
        #expect(throws: XDRError.truncated(needed: 4_000_000, available: 0)) {
            try lying.readXDRArray(maxCount: Int(UInt32.max)) { try $0.readXDRUInt32() }
        }
    }

    @Test func optionalData() throws {
        var buffer = ByteBuffer()
        buffer.writeXDROptional(UInt32(5)) { $0.writeXDRUInt32($1) }
        buffer.writeXDROptional(UInt32?.none) { $0.writeXDRUInt32($1) }
        #expect(try buffer.readXDROptional { try $0.readXDRUInt32() } == 5)
        #expect(try buffer.readXDROptional { try $0.readXDRUInt32() } == nil)
        #expect(buffer.readableBytes == 0)
    }

    @Test func truncatedIntegers() {
        var buffer = ByteBuffer(bytes: [0, 0, 1])
        #expect(throws: XDRError.truncated(needed: 4, available: 3)) { try buffer.readXDRUInt32() }
        var hyper = ByteBuffer(bytes: [0, 0, 0, 0, 1])
        #expect(throws: XDRError.truncated(needed: 8, available: 5)) { try hyper.readXDRUInt64() }
    }
}
