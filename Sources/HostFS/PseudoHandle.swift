/// Handles for directories outside every export: NFSv4's pseudo file system
/// (the directories on the way from `/` to each export's mount path). They are
/// sealed with the same key as object handles, so a client cannot forge one,
/// and carry an 8-byte name the NFSv4 layer chooses (a digest of the path):
///
///     byte 0      version (1)
///     byte 1      kind 3 = pseudo directory
///     bytes 2-9   the name
///     10..<18     SipHash-2-4 tag over bytes 0..<10
extension HostFileSystem {
    public static let pseudoHandleSize = 18

    /// The handle of the pseudo directory named `name`.
    public func pseudoHandle(name: UInt64) -> [UInt8] {
        var b: [UInt8] = [ObjectHandle.version, 3]
        b.appendBE(name)
        b.appendBE(codec.mac(b[...]))
        return b
    }

    /// The name in a pseudo directory's handle; nil for anything else
    /// (an object handle, or bytes whose tag does not match).
    public func pseudoHandleName<C: Collection>(_ raw: C) -> UInt64? where C.Element == UInt8 {
        guard raw.count == Self.pseudoHandleSize else { return nil }
        let b = Array(raw)
        guard b[0] == ObjectHandle.version, b[1] == 3 else { return nil }
        guard b.readBE(10, as: UInt64.self) ^ codec.mac(b[0..<10]) == 0 else { return nil }
        return b.readBE(2, as: UInt64.self)
    }
}
