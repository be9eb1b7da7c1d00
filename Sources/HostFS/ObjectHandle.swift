import CSupport

/// An authenticated file handle: opaque to clients, at most 64 bytes.
///
/// Wire format (big-endian integers), always followed by an 8-byte SipHash-2-4 tag
/// over all preceding bytes under the server's 128-bit key:
///
///     byte 0      version (1)
///     byte 1      kind: 1 = kernel handle, 2 = inode handle
///     bytes 2-5   export id
///   kind 1 (kernel):
///     byte 6      N = length of the kernel handle (1...46)
///     byte 7      kernel handle type (name_to_handle_at's handle_type, < 256)
///     bytes 8-9   zero (reserved)
///     10..<10+N   the kernel handle
///
/// One object has exactly one handle (no parent or path in it), so a client sees the
/// same handle for a file however it reached it, before and after renames.
///   kind 2 (inode):
///     6..<14      inode number, 14..<18 generation (0 = unknown),
///     18..<22     birth-time tag (0 = unknown)
///
/// The kind decides the exact length; anything shorter or longer is refused, as is
/// a tag mismatch. Decoding happens before any syscall.
public struct ObjectHandle: Hashable, Sendable, CustomStringConvertible {
    /// The bytes to send to clients.
    public let bytes: [UInt8]
    /// The export this handle belongs to.
    public let exportID: UInt32

    static let version: UInt8 = 1
    static let maxSize = 64
    static let macSize = 8
    static let kernelHeader = 10
    static let maxKernelPayload = maxSize - kernelHeader - macSize  // 46
    static let inodeSize = 22 + macSize

    init(uncheckedBytes: [UInt8], exportID: UInt32) {
        self.bytes = uncheckedBytes
        self.exportID = exportID
    }

    public var description: String {
        "fh(" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() + ")"
    }

    enum Body: Equatable {
        case kernel(type: UInt8, handle: [UInt8])
        case inode(ino: UInt64, generation: UInt32, birth: UInt32)
    }

    /// The decoded body (bytes were authenticated at construction).
    var body: Body {
        if bytes[1] == 1 {
            let n = Int(bytes[6])
            return .kernel(type: bytes[7], handle: Array(bytes[10..<10 + n]))
        }
        return .inode(ino: bytes.readBE(6, as: UInt64.self),
                      generation: bytes.readBE(14, as: UInt32.self),
                      birth: bytes.readBE(18, as: UInt32.self))
    }
}

/// Makes and checks handles under one key.
struct HandleCodec: Sendable {
    let key: [UInt8]  // 16 bytes

    func mac(_ data: ArraySlice<UInt8>) -> UInt64 {
        key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                hostfs_siphash24(k.baseAddress, d.baseAddress, d.count)
            }
        }
    }

    func seal(_ body: ObjectHandle.Body, exportID: UInt32) throws -> ObjectHandle {
        switch body {
        case let .kernel(type, handle):
            return try handle.withUnsafeBytes { try sealKernel(type: type, handle: $0, exportID: exportID) }
        case let .inode(ino, generation, birth):
            var b: [UInt8] = []
            b.reserveCapacity(ObjectHandle.inodeSize)
            b += [ObjectHandle.version, 2]
            b.appendBE(exportID)
            b.appendBE(ino)
            b.appendBE(generation)
            b.appendBE(birth)
            b.appendBE(mac(b[...]))
            return ObjectHandle(uncheckedBytes: b, exportID: exportID)
        }
    }

    /// A kernel handle from the bytes name_to_handle_at returned, in one allocation
    /// (READDIRPLUS makes one per entry).
    func sealKernel(type: UInt8, handle: UnsafeRawBufferPointer, exportID: UInt32) throws -> ObjectHandle {
        guard !handle.isEmpty, handle.count <= ObjectHandle.maxKernelPayload else { throw FSError.notSupported }
        let total = ObjectHandle.kernelHeader + handle.count + ObjectHandle.macSize
        let b = [UInt8](unsafeUninitializedCapacity: total) { out, count in
            out[0] = ObjectHandle.version
            out[1] = 1
            out[2] = UInt8(truncatingIfNeeded: exportID >> 24)
            out[3] = UInt8(truncatingIfNeeded: exportID >> 16)
            out[4] = UInt8(truncatingIfNeeded: exportID >> 8)
            out[5] = UInt8(truncatingIfNeeded: exportID)
            out[6] = UInt8(handle.count)
            out[7] = type
            out[8] = 0
            out[9] = 0
            for (i, byte) in handle.enumerated() { out[ObjectHandle.kernelHeader + i] = byte }
            let macAt = ObjectHandle.kernelHeader + handle.count
            let tag = key.withUnsafeBufferPointer { k in hostfs_siphash24(k.baseAddress, out.baseAddress, macAt) }
            for i in 0..<8 { out[macAt + i] = UInt8(truncatingIfNeeded: tag >> (56 - 8 * UInt64(i))) }
            count = total
        }
        return ObjectHandle(uncheckedBytes: b, exportID: exportID)
    }

    /// Structure and tag check; no syscalls. Throws `.badHandle`.
    func open<C: Collection>(_ raw: C) throws -> ObjectHandle where C.Element == UInt8 {
        guard raw.count >= 6, raw.count <= ObjectHandle.maxSize else { throw FSError.badHandle }
        let b = Array(raw)
        guard b[0] == ObjectHandle.version else { throw FSError.badHandle }
        let expected: Int
        switch b[1] {
        case 1:
            guard b.count >= ObjectHandle.kernelHeader else { throw FSError.badHandle }
            let n = Int(b[6])
            guard n >= 1, n <= ObjectHandle.maxKernelPayload, b[8] == 0, b[9] == 0 else { throw FSError.badHandle }
            expected = ObjectHandle.kernelHeader + n + ObjectHandle.macSize
        case 2:
            expected = ObjectHandle.inodeSize
        default:
            throw FSError.badHandle
        }
        guard b.count == expected else { throw FSError.badHandle }
        let tag = b.readBE(expected - 8, as: UInt64.self)
        let want = mac(b[0..<expected - 8])
        // Constant-time comparison.
        guard (tag ^ want) == 0 else { throw FSError.badHandle }
        return ObjectHandle(uncheckedBytes: b, exportID: b.readBE(2, as: UInt32.self))
    }
}

extension Array where Element == UInt8 {
    mutating func appendBE<T: FixedWidthInteger>(_ v: T) {
        var x = v.bigEndian
        Swift.withUnsafeBytes(of: &x) { append(contentsOf: $0) }
    }
    func readBE<T: FixedWidthInteger>(_ at: Int, as: T.Type) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v = (v << 8) | T(self[at + i]) }
        return v
    }
}
