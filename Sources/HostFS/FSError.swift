import Glibc

/// The one error HostFS throws.
public enum FSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A host syscall failed with this errno (EACCES, ENOENT, EEXIST, ENOTEMPTY, EROFS, ...).
    case errno(Int32)
    /// The handle was valid once, but its object is gone (removed, or moved out of its export).
    case stale
    /// Not a handle we made: malformed, truncated, extended, forged, or for an unknown export.
    case badHandle
    /// A name that may not be used: empty, containing '/' or NUL, or '.'/'..' where a name is created.
    case invalidName
    /// The operation does not apply to this object or is not supported here.
    case notSupported
    /// The object lies on another filesystem mounted inside the export (exports do not cross mounts).
    case otherFilesystem
    /// READDIR cookie or cookie verifier is not valid for this directory.
    case badCookie
    /// READDIR budget too small for even one entry.
    case tooSmall
    /// SETATTR guard: the object's ctime differs from the guard.
    case notSync
    /// A server-side failure that is nobody's input (e.g. state directory unusable).
    case serverFault(String)

    public var description: String {
        switch self {
        case .errno(let e): return "\(String(cString: strerror(e))) (errno \(e))"
        case .stale: return "stale file handle"
        case .badHandle: return "bad file handle"
        case .invalidName: return "invalid name"
        case .notSupported: return "not supported"
        case .otherFilesystem: return "object on another filesystem"
        case .badCookie: return "bad readdir cookie"
        case .tooSmall: return "readdir budget too small"
        case .notSync: return "setattr guard mismatch"
        case .serverFault(let s): return "server fault: \(s)"
        }
    }

    /// errno -> FSError, with ESTALE mapped to `.stale`.
    static func from(_ e: Int32) -> FSError {
        e == ESTALE ? .stale : .errno(e)
    }
    static var current: FSError { from(Glibc.errno) }
}

/// The state directory (handle key, inode index) cannot be made or written:
/// `failed` is the path the system refused (the directory, a parent, or a
/// file in it), `errno` why. The server turns it into what to do.
public struct StateDirectoryError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var failed: String
    public var errno: Int32

    public init(path: String, failed: String, errno: Int32) {
        self.path = path
        self.failed = failed
        self.errno = errno
    }

    /// The reason in words, e.g. "permission denied", with the path refused if
    /// it is not the state directory itself.
    public var reason: String {
        var words = errno == ENOTDIR ? "a part of the path is not a directory" : String(cString: strerror(errno))
        if let first = words.first { words = first.lowercased() + words.dropFirst() }
        return failed == path ? words : "\(failed): \(words)"
    }

    public var description: String { "cannot create or write the state directory \(path): \(reason)" }
}

/// Run a syscall returning -1/errno; retry EINTR.
@inline(__always)
func sys<T: BinaryInteger>(_ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        if Glibc.errno == EINTR { continue }
        throw FSError.current
    }
}

/// Run a shim returning -errno.
@inline(__always)
func shim<T: BinaryInteger>(_ body: () -> T) throws -> T {
    while true {
        let r = body()
        let v = Int64(r)
        if v >= 0 { return r }
        if v == -Int64(EINTR) { continue }
        throw FSError.from(Int32(truncatingIfNeeded: -v))
    }
}

/// Linux open flags Swift's Glibc module leaves out (same value on x86_64 and aarch64).
let O_PATH: Int32 = 0o10000000
let AT_EMPTY_PATH: Int32 = 0x1000
let UTIME_NOW = (1 << 30) - 1
let UTIME_OMIT = (1 << 30) - 2
