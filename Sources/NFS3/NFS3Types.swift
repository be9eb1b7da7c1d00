import NIOCore
import XDR

// NFSv3 basic data types (RFC 1813 §2.5, §2.6), as value types with one
// decoder (`init(xdr:)`) and one encoder (`encode(xdr:)`) each.
//
// Every variable-length field is bounded: handles by NFS3_FHSIZE (64),
// names by `NFS3Limits.maxNameLength`, paths by `NFS3Limits.maxPathLength`,
// WRITE data by `NFS3Limits.maxWriteSize`. Lengths are checked against the
// received bytes before anything is allocated (see the XDR target).

/// Protocol-wide limits this server imposes on the wire.
public enum NFS3Limits {
    /// NFS3_FHSIZE.
    public static let maxHandleSize = 64
    /// filename3: NAME_MAX on Linux.
    public static let maxNameLength = 255
    /// nfspath3: PATH_MAX on Linux.
    public static let maxPathLength = 4096
    /// rtmax / wtmax advertised in FSINFO.
    public static let maxReadSize: UInt32 = 1024 * 1024
    public static let maxWriteSize: UInt32 = 1024 * 1024
    /// dtpref advertised in FSINFO.
    public static let preferredReaddirSize: UInt32 = 64 * 1024
    /// The largest READDIR count / READDIRPLUS maxcount honored; bigger requests are clamped.
    public static let maxReaddirSize: UInt32 = 1024 * 1024
}

/// nfsstat3 (RFC 1813 §2.6).
public enum NFS3Status: UInt32, Sendable, Hashable, Error, CustomStringConvertible {
    case ok = 0
    case perm = 1
    case noent = 2
    case io = 5
    case nxio = 6
    case acces = 13
    case exist = 17
    case xdev = 18
    case nodev = 19
    case notdir = 20
    case isdir = 21
    case inval = 22
    case fbig = 27
    case nospc = 28
    case rofs = 30
    case mlink = 31
    case nametoolong = 63
    case notempty = 66
    case dquot = 69
    case stale = 70
    case remote = 71
    case badhandle = 10001
    case notSync = 10002
    case badCookie = 10003
    case notsupp = 10004
    case toosmall = 10005
    case serverfault = 10006
    case badtype = 10007
    case jukebox = 10008

    public var description: String {
        switch self {
        case .ok: return "NFS3_OK"
        case .perm: return "NFS3ERR_PERM"
        case .noent: return "NFS3ERR_NOENT"
        case .io: return "NFS3ERR_IO"
        case .nxio: return "NFS3ERR_NXIO"
        case .acces: return "NFS3ERR_ACCES"
        case .exist: return "NFS3ERR_EXIST"
        case .xdev: return "NFS3ERR_XDEV"
        case .nodev: return "NFS3ERR_NODEV"
        case .notdir: return "NFS3ERR_NOTDIR"
        case .isdir: return "NFS3ERR_ISDIR"
        case .inval: return "NFS3ERR_INVAL"
        case .fbig: return "NFS3ERR_FBIG"
        case .nospc: return "NFS3ERR_NOSPC"
        case .rofs: return "NFS3ERR_ROFS"
        case .mlink: return "NFS3ERR_MLINK"
        case .nametoolong: return "NFS3ERR_NAMETOOLONG"
        case .notempty: return "NFS3ERR_NOTEMPTY"
        case .dquot: return "NFS3ERR_DQUOT"
        case .stale: return "NFS3ERR_STALE"
        case .remote: return "NFS3ERR_REMOTE"
        case .badhandle: return "NFS3ERR_BADHANDLE"
        case .notSync: return "NFS3ERR_NOT_SYNC"
        case .badCookie: return "NFS3ERR_BAD_COOKIE"
        case .notsupp: return "NFS3ERR_NOTSUPP"
        case .toosmall: return "NFS3ERR_TOOSMALL"
        case .serverfault: return "NFS3ERR_SERVERFAULT"
        case .badtype: return "NFS3ERR_BADTYPE"
        case .jukebox: return "NFS3ERR_JUKEBOX"
        }
    }
}

/// ftype3.
public enum NFS3FileType: UInt32, Sendable, Hashable {
    case regular = 1, directory = 2, blockDevice = 3, characterDevice = 4, symlink = 5, socket = 6, fifo = 7
}

/// stable_how.
public enum NFS3StableHow: UInt32, Sendable, Hashable, Comparable {
    case unstable = 0, dataSync = 1, fileSync = 2
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// nfstime3.
public struct NFS3Time: Sendable, Hashable, XDRCodable {
    public var seconds: UInt32
    public var nseconds: UInt32
    public init(seconds: UInt32, nseconds: UInt32) {
        self.seconds = seconds
        self.nseconds = nseconds
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.seconds = try buffer.readXDRUInt32()
        self.nseconds = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(seconds)
        buffer.writeXDRUInt32(nseconds)
    }
}

/// specdata3.
public struct NFS3SpecData: Sendable, Hashable, XDRCodable {
    public var major: UInt32
    public var minor: UInt32
    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.major = try buffer.readXDRUInt32()
        self.minor = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(major)
        buffer.writeXDRUInt32(minor)
    }
}

/// nfs_fh3: opaque, at most 64 bytes. Held as a slice of the received
/// record (no copy) until HostFS checks it.
public struct NFS3FileHandle: Sendable, Hashable, XDRCodable, CustomStringConvertible {
    public var bytes: ByteBuffer
    public init(bytes: ByteBuffer) { self.bytes = bytes }
    public init(_ bytes: [UInt8]) { self.bytes = ByteBuffer(bytes: bytes) }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.bytes = try buffer.readXDRVariableOpaque(maxLength: NFS3Limits.maxHandleSize)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRVariableOpaque(bytes)
    }
    public var byteArray: [UInt8] { Array(bytes.readableBytesView) }
    public var description: String {
        "fh(" + bytes.readableBytesView.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + ")"
    }
}

/// filename3 / nfspath3 / MOUNT name and dirpath: bytes, not necessarily UTF-8.
public struct NFS3Name: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }
    public init(xdr buffer: inout ByteBuffer, maxLength: Int) throws {
        self.bytes = try buffer.readXDRVariableBytes(maxLength: maxLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRVariableOpaque(bytes)
    }
    /// The name as text, with invalid UTF-8 repaired (for logs and tests only).
    public var string: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { string }
    /// Bytes this takes in XDR.
    var xdrSize: Int { 4 + bytes.count + xdrPadding(bytes.count) }
}

/// fattr3.
public struct NFS3Attributes: Sendable, Hashable, XDRCodable {
    public var type: NFS3FileType
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var used: UInt64
    public var rdev: NFS3SpecData
    public var fsid: UInt64
    public var fileid: UInt64
    public var atime: NFS3Time
    public var mtime: NFS3Time
    public var ctime: NFS3Time

    /// Bytes a fattr3 takes in XDR.
    public static let xdrSize = 84

    public init(type: NFS3FileType, mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, size: UInt64,
                used: UInt64, rdev: NFS3SpecData, fsid: UInt64, fileid: UInt64,
                atime: NFS3Time, mtime: NFS3Time, ctime: NFS3Time) {
        self.type = type
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.size = size
        self.used = used
        self.rdev = rdev
        self.fsid = fsid
        self.fileid = fileid
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
    }

    public init(xdr buffer: inout ByteBuffer) throws {
        self.type = try buffer.readXDREnum()
        self.mode = try buffer.readXDRUInt32()
        self.nlink = try buffer.readXDRUInt32()
        self.uid = try buffer.readXDRUInt32()
        self.gid = try buffer.readXDRUInt32()
        self.size = try buffer.readXDRUInt64()
        self.used = try buffer.readXDRUInt64()
        self.rdev = try NFS3SpecData(xdr: &buffer)
        self.fsid = try buffer.readXDRUInt64()
        self.fileid = try buffer.readXDRUInt64()
        self.atime = try NFS3Time(xdr: &buffer)
        self.mtime = try NFS3Time(xdr: &buffer)
        self.ctime = try NFS3Time(xdr: &buffer)
    }

    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.xdrSize) { p in
            var w = XDRRawWriter(p.baseAddress!)
            write(to: &w)
            return w.count
        }
    }

    /// The 84 bytes of fattr3, unchecked (the caller made room).
    @inline(__always)
    func write(to w: inout XDRRawWriter) {
        w.u32(type.rawValue)
        w.u32(mode)
        w.u32(nlink)
        w.u32(uid)
        w.u32(gid)
        w.u64(size)
        w.u64(used)
        w.u32(rdev.major)
        w.u32(rdev.minor)
        w.u64(fsid)
        w.u64(fileid)
        w.u32(atime.seconds)
        w.u32(atime.nseconds)
        w.u32(mtime.seconds)
        w.u32(mtime.nseconds)
        w.u32(ctime.seconds)
        w.u32(ctime.nseconds)
    }

    /// wcc_attr of these attributes.
    public var wccAttributes: NFS3WccAttributes { NFS3WccAttributes(size: size, mtime: mtime, ctime: ctime) }
}

/// post_op_attr.
public struct NFS3PostOpAttributes: Sendable, Hashable, XDRCodable {
    public var attributes: NFS3Attributes?
    public init(_ attributes: NFS3Attributes?) { self.attributes = attributes }
    public static let none = NFS3PostOpAttributes(NFS3Attributes?.none)
    public init(xdr buffer: inout ByteBuffer) throws {
        self.attributes = try buffer.readXDROptional { try NFS3Attributes(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDROptional(attributes) { $1.encode(xdr: &$0) }
    }
    var xdrSize: Int { attributes == nil ? 4 : 4 + NFS3Attributes.xdrSize }
}

/// wcc_attr.
public struct NFS3WccAttributes: Sendable, Hashable, XDRCodable {
    public var size: UInt64
    public var mtime: NFS3Time
    public var ctime: NFS3Time
    public init(size: UInt64, mtime: NFS3Time, ctime: NFS3Time) {
        self.size = size
        self.mtime = mtime
        self.ctime = ctime
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.size = try buffer.readXDRUInt64()
        self.mtime = try NFS3Time(xdr: &buffer)
        self.ctime = try NFS3Time(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(size)
        mtime.encode(xdr: &buffer)
        ctime.encode(xdr: &buffer)
    }
}

/// wcc_data: pre_op_attr then post_op_attr.
public struct NFS3WccData: Sendable, Hashable, XDRCodable {
    public var before: NFS3WccAttributes?
    public var after: NFS3Attributes?
    public init(before: NFS3WccAttributes?, after: NFS3Attributes?) {
        self.before = before
        self.after = after
    }
    public static let none = NFS3WccData(before: nil, after: nil)
    public init(xdr buffer: inout ByteBuffer) throws {
        self.before = try buffer.readXDROptional { try NFS3WccAttributes(xdr: &$0) }
        self.after = try buffer.readXDROptional { try NFS3Attributes(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDROptional(before) { $1.encode(xdr: &$0) }
        buffer.writeXDROptional(after) { $1.encode(xdr: &$0) }
    }
}

/// time_how with its set_atime / set_mtime value.
public enum NFS3SetTime: Sendable, Hashable, XDRCodable {
    case dontChange
    case serverTime
    case clientTime(NFS3Time)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 0: self = .dontChange
        case 1: self = .serverTime
        case 2: self = .clientTime(try NFS3Time(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "time_how", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .dontChange: buffer.writeXDRUInt32(0)
        case .serverTime: buffer.writeXDRUInt32(1)
        case .clientTime(let t):
            buffer.writeXDRUInt32(2)
            t.encode(xdr: &buffer)
        }
    }
}

/// sattr3.
public struct NFS3SetAttributes: Sendable, Hashable, XDRCodable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: NFS3SetTime
    public var mtime: NFS3SetTime
    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: NFS3SetTime = .dontChange, mtime: NFS3SetTime = .dontChange) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime = atime
        self.mtime = mtime
    }
    public static let none = NFS3SetAttributes()
    public init(xdr buffer: inout ByteBuffer) throws {
        self.mode = try buffer.readXDROptional { try $0.readXDRUInt32() }
        self.uid = try buffer.readXDROptional { try $0.readXDRUInt32() }
        self.gid = try buffer.readXDROptional { try $0.readXDRUInt32() }
        self.size = try buffer.readXDROptional { try $0.readXDRUInt64() }
        self.atime = try NFS3SetTime(xdr: &buffer)
        self.mtime = try NFS3SetTime(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDROptional(mode) { $0.writeXDRUInt32($1) }
        buffer.writeXDROptional(uid) { $0.writeXDRUInt32($1) }
        buffer.writeXDROptional(gid) { $0.writeXDRUInt32($1) }
        buffer.writeXDROptional(size) { $0.writeXDRUInt64($1) }
        atime.encode(xdr: &buffer)
        mtime.encode(xdr: &buffer)
    }
}

/// diropargs3: a directory and a name in it.
public struct NFS3DirOpArgs: Sendable, Hashable, XDRCodable {
    public var directory: NFS3FileHandle
    public var name: NFS3Name
    public init(directory: NFS3FileHandle, name: NFS3Name) {
        self.directory = directory
        self.name = name
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.directory = try NFS3FileHandle(xdr: &buffer)
        self.name = try NFS3Name(xdr: &buffer, maxLength: NFS3Limits.maxNameLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        directory.encode(xdr: &buffer)
        name.encode(xdr: &buffer)
    }
}

/// An 8-byte verifier (cookieverf3, createverf3, writeverf3): fixed opaque[8], held as a big-endian integer.
public struct NFS3Verifier: Sendable, Hashable, XDRCodable {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public static let zero = NFS3Verifier(0)
    public init(xdr buffer: inout ByteBuffer) throws { self.value = try buffer.readXDRUInt64() }
    public func encode(xdr buffer: inout ByteBuffer) { buffer.writeXDRUInt64(value) }
}

/// A result with nothing in it (void arms).
public struct NFS3Empty: Sendable, Hashable, XDRCodable {
    public init() {}
    public init(xdr buffer: inout ByteBuffer) throws {}
    public func encode(xdr buffer: inout ByteBuffer) {}
}

/// Every NFSv3 result: `nfsstat3` then the OK arm or the failure arm.
public enum NFS3Result<OK: XDRCodable & Sendable & Hashable, Fail: XDRCodable & Sendable & Hashable>: Sendable, Hashable, XDRCodable {
    case ok(OK)
    /// `status` is never `.ok`.
    case fail(NFS3Status, Fail)

    public var status: NFS3Status {
        if case .fail(let s, _) = self { return s }
        return .ok
    }

    public init(xdr buffer: inout ByteBuffer) throws {
        let status: NFS3Status = try buffer.readXDREnum()
        if status == .ok {
            self = .ok(try OK(xdr: &buffer))
        } else {
            self = .fail(status, try Fail(xdr: &buffer))
        }
    }

    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .ok(let ok):
            buffer.writeXDREnum(NFS3Status.ok)
            ok.encode(xdr: &buffer)
        case .fail(let status, let fail):
            buffer.writeXDREnum(status)
            fail.encode(xdr: &buffer)
        }
    }
}

extension NFS3Result where Fail == NFS3Empty {
    public static func fail(_ status: NFS3Status) -> Self { .fail(status, NFS3Empty()) }
}

/// Big-endian XDR stores into memory the caller has already reserved (e.g. inside
/// ByteBuffer.writeWithUnsafeMutableBytes(minimumWritableBytes:)); no bounds checks.
///
/// It belongs with the XDR layer, but it stays here, next to its only callers (fattr3
/// and READDIRPLUS entries): moved into the XDR module as a public @inlinable struct,
/// the micro benchmark's GETATTR reply encode took about 20% longer and its 100-entry
/// READDIRPLUS encode about 50% longer (2026-11-22, three runs each way).
struct XDRRawWriter {
    let base: UnsafeMutableRawPointer
    private(set) var count = 0
    init(_ base: UnsafeMutableRawPointer) { self.base = base }
    @inline(__always) mutating func u32(_ v: UInt32) {
        base.storeBytes(of: v.bigEndian, toByteOffset: count, as: UInt32.self)
        count += 4
    }
    @inline(__always) mutating func u64(_ v: UInt64) {
        base.storeBytes(of: v.bigEndian, toByteOffset: count, as: UInt64.self)
        count += 8
    }
    /// Variable-length opaque: length, bytes, zero padding to 4.
    @inline(__always) mutating func opaque(_ bytes: UnsafeRawBufferPointer) {
        u32(UInt32(bytes.count))
        if let src = bytes.baseAddress { (base + count).copyMemory(from: src, byteCount: bytes.count) }
        count += bytes.count
        let pad = (4 - bytes.count & 3) & 3
        for _ in 0..<pad { base.storeBytes(of: 0, toByteOffset: count, as: UInt8.self); count += 1 }
    }
    @inline(__always) mutating func opaque(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { opaque($0) }
    }
}
