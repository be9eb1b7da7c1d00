#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where the control socket lives, and the client's side of it.
///
/// The socket is a Unix socket in a directory only the server's user may
/// enter (0700), itself 0600; the server also checks every peer's uid
/// (SO_PEERCRED): the same user as the server, or root.
public enum ControlSocket {
    /// `/run/vsnfs/control` as root, else `$XDG_RUNTIME_DIR/vsnfs/control`.
    public static func defaultPath() throws(ControlSocketError) -> String {
        if geteuid() == 0 { return "/run/vsnfs/control" }
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), runtime.hasPrefix("/") {
            return runtime + "/vsnfs/control"
        }
        throw ControlSocketError("no control socket: XDG_RUNTIME_DIR is not set; give --control PATH")
    }

    /// Readies `path` for the server to bind: creates its directory (0700)
    /// if missing, removes a socket a dead server left, and refuses a path a
    /// live server holds or that is not a socket.
    public static func prepareToBind(_ path: String) throws(ControlSocketError) {
        guard path.utf8.count < 108 else { throw ControlSocketError("control socket path \(path) is too long (at most 107 bytes)") }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !directory.isEmpty { try makeDirectory(directory) }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw ControlSocketError("cannot use \(path) as the control socket: it exists and is not a socket")
        }
        switch connectSocket(path) {
        case .success(let fd):
            close(fd)
            throw ControlSocketError("another vsnfs is serving on \(path); stop it, or give --control PATH")
        case .failure(let error) where error.code == ECONNREFUSED:
            unlink(path)   // a server that died without removing it
        case .failure(let error):
            let code = error.code
            throw ControlSocketError("cannot use \(path) as the control socket: \(String(cString: strerror(code)))")
        }
    }

    /// `mkdir -p`, the last component 0700.
    static func makeDirectory(_ directory: String) throws(ControlSocketError) {
        var st = stat()
        if stat(directory, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw ControlSocketError("\(directory) is not a directory") }
            return
        }
        let parent = directory.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !parent.isEmpty { try makeDirectory(parent) }
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw ControlSocketError("cannot create \(directory) for the control socket: \(String(cString: strerror(errno)))")
        }
    }

    struct Errno: Error { var code: Int32 }

    /// Connects to the Unix socket at `path`; the descriptor, or errno.
    static func connectSocket(_ path: String) -> Result<Int32, Errno> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Errno(code: errno)) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { close(fd); return .failure(Errno(code: ENAMETOOLONG)) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            return .failure(Errno(code: code))
        }
        return .success(fd)
    }

    /// Largest answer read (a status of many thousand connections fits).
    public static let maximumLineLength = 16 << 20

    /// Sends `request` to the server at `path` and returns its answer.
    /// Throws `.unreachable` when no server answers there.
    public static func send(_ request: ControlRequest, to path: String) throws(ControlClientError) -> ControlResponse {
        let fd: Int32
        switch connectSocket(path) {
        case .success(let descriptor): fd = descriptor
        case .failure(let error):
            let code = error.code
            let hint = code == ENOENT || code == ECONNREFUSED ? " (is vsnfs serve running? it listens there by default; --control PATH names another socket)" : ""
            throw .unreachable("cannot reach vsnfs at \(path): \(String(cString: strerror(code)))\(hint)")
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let line: [UInt8]
        do { line = try request.jsonLine() } catch { throw .failed("cannot encode the request: \(error)") }
        let refused = ControlClientError.unreachable(
            "vsnfs at \(path) closed the connection without answering (only the server's user and root may use it)")
        var sent = 0
        while sent < line.count {
            // MSG_NOSIGNAL: a server that refused this peer closes at once; EPIPE, not SIGPIPE.
            let n = line[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EPIPE || errno == ECONNRESET) { throw refused }
            guard n > 0 else { throw .unreachable("cannot reach vsnfs at \(path): \(String(cString: strerror(errno)))") }
            sent += n
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while answer.last != 0x0A {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == ECONNRESET && answer.isEmpty { throw refused }
            if n < 0 { throw .unreachable("no answer from vsnfs at \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            answer.append(contentsOf: chunk[0..<n])
            guard answer.count <= maximumLineLength else { throw .failed("the answer from \(path) is too long") }
        }
        guard !answer.isEmpty else { throw refused }
        do {
            return try JSONDecoder().decode(ControlResponse.self, from: Data(answer))
        } catch {
            throw .failed("cannot read the answer from \(path): \(error)")
        }
    }
}

public struct ControlSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum ControlClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No server answered (exit 2).
    case unreachable(String)
    /// The exchange went wrong (exit 1).
    case failed(String)

    public var description: String {
        switch self {
        case .unreachable(let message), .failed(let message): return message
        }
    }
}
