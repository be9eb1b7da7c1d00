import NIOCore

/// Why a piece of XDR (RFC 4506) could not be decoded.
///
/// Every length read from the wire is checked against the bytes actually
/// received and against the field's declared maximum *before* anything is
/// allocated, so a hostile length costs nothing.
public enum XDRError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The data ended before the item did.
    case truncated(needed: Int, available: Int)
    /// A length or count on the wire exceeds the field's limit.
    case lengthExceedsLimit(length: UInt32, limit: Int)
    /// A boolean other than 0 or 1.
    case invalidBool(UInt32)
    /// An enum value outside the declared set.
    case invalidEnum(type: String, value: UInt32)
    /// A string that must be UTF-8 was not.
    case invalidUTF8

    public var description: String {
        switch self {
        case .truncated(let needed, let available):
            return "XDR data truncated: needed \(needed) bytes, \(available) available"
        case .lengthExceedsLimit(let length, let limit):
            return "XDR length \(length) exceeds the limit of \(limit)"
        case .invalidBool(let value): return "XDR bool has value \(value)"
        case .invalidEnum(let type, let value): return "XDR \(type) has unknown value \(value)"
        case .invalidUTF8: return "XDR string is not valid UTF-8"
        }
    }
}

/// A type that reads itself from XDR.
public protocol XDRDecodable {
    init(xdr buffer: inout ByteBuffer) throws
}

/// A type that writes itself as XDR.
public protocol XDREncodable {
    func encode(xdr buffer: inout ByteBuffer)
}

public typealias XDRCodable = XDRDecodable & XDREncodable

/// Bytes of padding after `length` bytes of opaque data (RFC 4506 §3.9).
@inlinable
public func xdrPadding(_ length: Int) -> Int { (4 - (length & 3)) & 3 }

// MARK: - Decoding

extension ByteBuffer {
    @inlinable
    mutating func xdrRequire(_ count: Int) throws {
        guard self.readableBytes >= count else {
            throw XDRError.truncated(needed: count, available: self.readableBytes)
        }
    }

    @inlinable
    public mutating func readXDRUInt32() throws -> UInt32 {
        guard let value = self.readInteger(endianness: .big, as: UInt32.self) else {
            throw XDRError.truncated(needed: 4, available: self.readableBytes)
        }
        return value
    }

    @inlinable
    public mutating func readXDRInt32() throws -> Int32 {
        Int32(bitPattern: try self.readXDRUInt32())
    }

    /// An unsigned hyper (RFC 4506 §4.5).
    @inlinable
    public mutating func readXDRUInt64() throws -> UInt64 {
        guard let value = self.readInteger(endianness: .big, as: UInt64.self) else {
            throw XDRError.truncated(needed: 8, available: self.readableBytes)
        }
        return value
    }

    @inlinable
    public mutating func readXDRInt64() throws -> Int64 {
        Int64(bitPattern: try self.readXDRUInt64())
    }

    @inlinable
    public mutating func readXDRBool() throws -> Bool {
        switch try self.readXDRUInt32() {
        case 0: return false
        case 1: return true
        case let other: throw XDRError.invalidBool(other)
        }
    }

    /// An enum whose raw values are the XDR values.
    @inlinable
    public mutating func readXDREnum<E: RawRepresentable>(_ type: E.Type = E.self) throws -> E where E.RawValue == UInt32 {
        let raw = try self.readXDRUInt32()
        guard let value = E(rawValue: raw) else {
            throw XDRError.invalidEnum(type: String(describing: E.self), value: raw)
        }
        return value
    }

    /// Fixed-length opaque data (§4.9), returned as a slice sharing storage.
    @inlinable
    public mutating func readXDRFixedOpaque(length: Int) throws -> ByteBuffer {
        let padded = length + xdrPadding(length)
        try self.xdrRequire(padded)
        let slice = self.readSlice(length: length)!
        self.moveReaderIndex(forwardBy: padded - length)
        return slice
    }

    /// Checks a length prefix against the field limit and the bytes received.
    @inlinable
    mutating func readXDRLength(limit: Int) throws -> Int {
        let length = try self.readXDRUInt32()
        guard Int(length) <= limit else { throw XDRError.lengthExceedsLimit(length: length, limit: limit) }
        let padded = Int(length) + xdrPadding(Int(length))
        try self.xdrRequire(padded)
        return Int(length)
    }

    /// Variable-length opaque data (§4.10), at most `maxLength` bytes, as a slice.
    @inlinable
    public mutating func readXDRVariableOpaque(maxLength: Int) throws -> ByteBuffer {
        let length = try self.readXDRLength(limit: maxLength)
        let slice = self.readSlice(length: length)!
        self.moveReaderIndex(forwardBy: xdrPadding(length))
        return slice
    }

    /// Variable-length opaque data copied into an array.
    @inlinable
    public mutating func readXDRVariableBytes(maxLength: Int) throws -> [UInt8] {
        let length = try self.readXDRLength(limit: maxLength)
        let bytes = self.readBytes(length: length)!
        self.moveReaderIndex(forwardBy: xdrPadding(length))
        return bytes
    }

    /// A string (§4.11) of at most `maxLength` bytes that must be UTF-8.
    @inlinable
    public mutating func readXDRString(maxLength: Int) throws -> String {
        let bytes = try self.readXDRVariableBytes(maxLength: maxLength)
        guard let string = String(validating: bytes, as: UTF8.self) else { throw XDRError.invalidUTF8 }
        return string
    }

    /// A counted array (§4.13) of at most `maxCount` elements. The count is
    /// also checked against the bytes received (each element takes at least
    /// `minimumElementSize` bytes) before any storage is reserved.
    @inlinable
    public mutating func readXDRArray<T>(
        maxCount: Int, minimumElementSize: Int = 4, _ element: (inout ByteBuffer) throws -> T
    ) throws -> [T] {
        let count = try self.readXDRUInt32()
        guard Int(count) <= maxCount else { throw XDRError.lengthExceedsLimit(length: count, limit: maxCount) }
        try self.xdrRequire(Int(count) * max(minimumElementSize, 0))
        var result: [T] = []
        result.reserveCapacity(Int(count))
        for _ in 0..<count { result.append(try element(&self)) }
        return result
    }

    /// Optional data (§4.19): a bool, then the value if present.
    @inlinable
    public mutating func readXDROptional<T>(_ element: (inout ByteBuffer) throws -> T) throws -> T? {
        try self.readXDRBool() ? try element(&self) : nil
    }

    @inlinable
    public mutating func readXDR<T: XDRDecodable>(_ type: T.Type = T.self) throws -> T {
        try T(xdr: &self)
    }
}

// MARK: - Encoding

extension ByteBuffer {
    @inlinable
    @discardableResult
    public mutating func writeXDRUInt32(_ value: UInt32) -> Int {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRInt32(_ value: Int32) -> Int {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRUInt64(_ value: UInt64) -> Int {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRInt64(_ value: Int64) -> Int {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRBool(_ value: Bool) -> Int {
        self.writeXDRUInt32(value ? 1 : 0)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDREnum<E: RawRepresentable>(_ value: E) -> Int where E.RawValue == UInt32 {
        self.writeXDRUInt32(value.rawValue)
    }

    @inlinable
    mutating func writeXDRPadding(_ length: Int) -> Int {
        let pad = xdrPadding(length)
        if pad > 0 { self.writeRepeatingByte(0, count: pad) }
        return pad
    }

    /// Fixed-length opaque: the bytes and zero padding, no length prefix.
    @inlinable
    @discardableResult
    public mutating func writeXDRFixedOpaque<Bytes: Sequence>(_ bytes: Bytes) -> Int where Bytes.Element == UInt8 {
        let written = self.writeBytes(bytes)
        return written + self.writeXDRPadding(written)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRFixedOpaque(_ bytes: ByteBuffer) -> Int {
        var copy = bytes
        let written = self.writeBuffer(&copy)
        return written + self.writeXDRPadding(written)
    }

    /// Variable-length opaque: length, bytes, zero padding.
    @inlinable
    @discardableResult
    public mutating func writeXDRVariableOpaque<Bytes: Collection>(_ bytes: Bytes) -> Int where Bytes.Element == UInt8 {
        let length = self.writeXDRUInt32(UInt32(bytes.count))
        let written = self.writeBytes(bytes)
        return length + written + self.writeXDRPadding(written)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRVariableOpaque(_ bytes: ByteBuffer) -> Int {
        let length = self.writeXDRUInt32(UInt32(bytes.readableBytes))
        return length + self.writeXDRFixedOpaque(bytes)
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRString(_ string: String) -> Int {
        self.writeXDRVariableOpaque(Array(string.utf8))
    }

    @inlinable
    @discardableResult
    public mutating func writeXDRArray<C: Collection>(_ elements: C, _ element: (inout ByteBuffer, C.Element) -> Void) -> Int {
        let start = self.writerIndex
        self.writeXDRUInt32(UInt32(elements.count))
        for e in elements { element(&self, e) }
        return self.writerIndex - start
    }

    @inlinable
    @discardableResult
    public mutating func writeXDROptional<T>(_ value: T?, _ element: (inout ByteBuffer, T) -> Void) -> Int {
        let start = self.writerIndex
        self.writeXDRBool(value != nil)
        if let value { element(&self, value) }
        return self.writerIndex - start
    }

    @inlinable
    public mutating func writeXDR<T: XDREncodable>(_ value: T) {
        value.encode(xdr: &self)
    }
}
