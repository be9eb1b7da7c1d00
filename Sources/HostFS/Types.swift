import CSupport
import Glibc
import NIOCore

/// What HostFS needs to know about an export: a stable 32-bit id (it goes into
/// every file handle) and the host directory it shares.
public struct ExportRoot: Sendable, Hashable {
    public var id: UInt32
    public var hostPath: String
    public init(id: UInt32, hostPath: String) {
        self.id = id
        self.hostPath = hostPath
    }
}

/// The caller's identity, already squashed by the caller.
public struct Credentials: Sendable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    public init(uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }
    public static let root = Credentials(uid: 0, gid: 0)
}

/// How file handles find objects again.
public enum HandleMode: Sendable, Hashable {
    /// `name_to_handle_at`/`open_by_handle_at` (needs CAP_DAC_READ_SEARCH).
    case kernel
    /// Inode number + generation + birth time, found again through a persisted index.
    case inode
}

public struct FSTime: Sendable, Hashable, Comparable {
    public var seconds: Int64
    public var nanoseconds: UInt32
    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
    init(_ ts: timespec) {
        self.init(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(truncatingIfNeeded: ts.tv_nsec))
    }
    var timespec: Glibc.timespec { Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds)) }
    public static func < (a: FSTime, b: FSTime) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

public enum FileType: UInt32, Sendable, Hashable {
    // Numbered like NFSv3's ftype3.
    case regular = 1, directory = 2, blockDevice = 3, characterDevice = 4, symlink = 5, socket = 6, fifo = 7

    init?(mode: UInt32) {
        switch mode & UInt32(S_IFMT) {
        case UInt32(S_IFREG): self = .regular
        case UInt32(S_IFDIR): self = .directory
        case UInt32(S_IFBLK): self = .blockDevice
        case UInt32(S_IFCHR): self = .characterDevice
        case UInt32(S_IFLNK): self = .symlink
        case UInt32(S_IFSOCK): self = .socket
        case UInt32(S_IFIFO): self = .fifo
        default: return nil
        }
    }
}

/// Attributes of one object (everything NFSv3's fattr3 carries).
public struct FileAttributes: Sendable, Hashable {
    public var type: FileType
    /// Permission bits only (07777).
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    /// Bytes allocated on disk.
    public var used: UInt64
    public var rdevMajor: UInt32
    public var rdevMinor: UInt32
    /// The export id.
    public var fsid: UInt64
    /// The inode number.
    public var fileid: UInt64
    public var atime: FSTime
    public var mtime: FSTime
    public var ctime: FSTime

    init(_ st: stat, exportID: UInt32) {
        type = FileType(mode: UInt32(st.st_mode)) ?? .regular
        mode = UInt32(st.st_mode) & 0o7777
        nlink = UInt32(truncatingIfNeeded: st.st_nlink)
        uid = st.st_uid
        gid = st.st_gid
        size = UInt64(st.st_size)
        used = UInt64(st.st_blocks) * 512
        rdevMajor = hostfs_major(UInt64(st.st_rdev))
        rdevMinor = hostfs_minor(UInt64(st.st_rdev))
        fsid = UInt64(exportID)
        fileid = UInt64(st.st_ino)
        atime = FSTime(st.st_atim)
        mtime = FSTime(st.st_mtim)
        ctime = FSTime(st.st_ctim)
    }
}

/// How SETATTR (and the attributes given to CREATE/MKDIR/...) set a time.
public enum TimeChange: Sendable, Hashable {
    case dontChange
    case serverTime
    case client(FSTime)
}

/// Attributes to change; nil / `.dontChange` leaves a field alone.
public struct SetAttributes: Sendable, Hashable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: TimeChange
    public var mtime: TimeChange
    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: TimeChange = .dontChange, mtime: TimeChange = .dontChange) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime = atime
        self.mtime = mtime
    }
    public static let none = SetAttributes()
    var isEmpty: Bool { self == .none }
}

/// Attributes before and after a change (weak cache consistency data).
/// `before` is nil when it could not be taken.
public struct WccData: Sendable, Hashable {
    public var before: FileAttributes?
    public var after: FileAttributes?
    public init(before: FileAttributes?, after: FileAttributes?) {
        self.before = before
        self.after = after
    }
}

public enum WriteStability: UInt32, Sendable, Hashable, Comparable {
    // Numbered like NFSv3's stable_how.
    case unstable = 0, dataSync = 1, fileSync = 2
    public static func < (a: WriteStability, b: WriteStability) -> Bool { a.rawValue < b.rawValue }
}

public enum CreateHow: Sendable, Hashable {
    /// Create, or open the existing file and apply the attributes.
    case unchecked(SetAttributes)
    /// Create; fail with EEXIST if the name exists.
    case guarded(SetAttributes)
    /// Create exclusively; the 8-byte verifier is kept on the file (atime/mtime seconds,
    /// as knfsd does) so a retried CREATE with the same verifier succeeds. The client is
    /// expected to send SETATTR afterwards.
    case exclusive(verifier: UInt64)
}

public enum SpecialNode: Sendable, Hashable {
    case fifo
    case socket
    case characterDevice(major: UInt32, minor: UInt32)
    case blockDevice(major: UInt32, minor: UInt32)
}

/// ACCESS bits, numbered like NFSv3's ACCESS3_*.
public struct AccessMask: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = AccessMask(rawValue: 0x01)
    public static let lookup = AccessMask(rawValue: 0x02)
    public static let modify = AccessMask(rawValue: 0x04)
    public static let extend = AccessMask(rawValue: 0x08)
    public static let delete = AccessMask(rawValue: 0x10)
    public static let execute = AccessMask(rawValue: 0x20)
    public static let all: AccessMask = [.read, .lookup, .modify, .extend, .delete, .execute]
}

/// Result of LOOKUP / CREATE / MKDIR / SYMLINK / MKNOD.
public struct NodeResult: Sendable {
    public var handle: ObjectHandle
    public var attributes: FileAttributes
    /// Attributes of the directory (for LOOKUP only `after` is set).
    public var directory: WccData
}

public struct ReadResult {
    public var data: ByteBuffer
    public var eof: Bool
    public var attributes: FileAttributes
}

public struct WriteResult: Sendable {
    public var count: UInt32
    public var committed: WriteStability
    public var verifier: UInt64
    public var wcc: WccData
}

public struct FSStat: Sendable, Hashable {
    public var totalBytes: UInt64
    public var freeBytes: UInt64
    public var availableBytes: UInt64
    public var totalFiles: UInt64
    public var freeFiles: UInt64
    public var availableFiles: UInt64
    public var attributes: FileAttributes
}

public struct FSInfo: Sendable, Hashable {
    public var maxFileSize: UInt64
    /// Timestamp granularity the filesystem keeps (1 ns on ext4/xfs/btrfs/tmpfs).
    public var timeGranularity: FSTime
    public var supportsLinks: Bool
    public var supportsSymlinks: Bool
    public var homogeneous: Bool
    public var canSetTime: Bool
    public var attributes: FileAttributes
}

public struct PathConf: Sendable, Hashable {
    public var linkMax: UInt32
    public var nameMax: UInt32
    public var noTrunc: Bool
    public var chownRestricted: Bool
    public var caseInsensitive: Bool
    public var casePreserving: Bool
    public var attributes: FileAttributes
}
