#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Logging
import Synchronization

/// Where a relay for CID:port keeps its lock, port file and log.
struct RelayFiles {
    static let directory = "/run/vsnfs"
    let cid: UInt32, port: UInt32
    var base: String { "\(RelayFiles.directory)/relay-\(cid)-\(port)" }
    /// Held (flock LOCK_EX) by a helper while it finds or starts the relay and
    /// mounts, and by the relay while it decides to exit: no mount can pick a
    /// relay that is going away.
    var lock: String { base + ".lock" }
    /// "PID TCPPORT MODE\n", written by the relay once it listens.
    var portFile: String { base + ".port" }
    var log: String { base + ".log" }
}

/// The relay: a TCP listener on 127.0.0.1 whose every connection is forwarded
/// to a new vsock connection to CID:port, both ways, until both sides close.
///
/// One thread per direction with blocking I/O: back-pressure is the kernel's
/// socket buffers, half-close is shutdown(SHUT_WR) on the other side when one
/// side reaches end of file. A fresh vsock connection per accepted
/// connection is what makes a server restart survivable: the kernel client
/// reconnects, and gets a new path to the new server.
enum RelayCommand {
    static let subcommandName = "__relay"
    /// Bytes moved per read/splice; VSNFS_RELAY_CHUNK overrides (for benchmarks).
    static let chunk = envNumber("VSNFS_RELAY_CHUNK") ?? 256 * 1024
    /// vsock receive buffer per connection (0: kernel default, 256 KiB);
    /// VSNFS_RELAY_VSOCK_BUFFER overrides.
    static let vsockBuffer = UInt64(envNumber("VSNFS_RELAY_VSOCK_BUFFER") ?? 2 * 1024 * 1024)

    static func envNumber(_ name: String) -> Int? {
        guard let v = getenv(name) else { return nil }
        return Int(String(cString: v))
    }

    /// `vsnfs-mount __relay CID PORT MODE`; fd 3, if open, gets "PORT\n" once listening.
    static func run(_ args: [String]) -> Int32 {
        guard args.count >= 3, let cid = UInt32(args[0]), let port = UInt32(args[1]) else {
            printToStandardError("usage: vsnfs-mount \(subcommandName) CID PORT auto|splice|copy")
            return 2
        }
        guard let mode = RelayMode(rawValue: args[2]) else {
            printToStandardError("relay mode must be one of: \(RelayMode.allCases.map(\.rawValue).joined(separator: ", "))")
            return 2
        }
        let files = RelayFiles(cid: cid, port: port)
        signal(SIGPIPE, SIG_IGN)
        var logger = Logger(label: "vsnfs-relay[\(getpid())] \(cid):\(port)") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = getenv("VSNFS_RELAY_DEBUG") != nil ? .debug : .info

        // fd 3 is the pipe to the helper that started us, if any (check before
        // opening anything, which could take the number).
        var st = stat()
        let readyFD: Int32 = fstat(3, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO ? 3 : -1
        var tcpPort: UInt16 = 0
        let listener = vsnfs_tcp_listen_loopback(&tcpPort)
        guard listener >= 0 else {
            let m = "cannot listen on 127.0.0.1: \(errnoText(-listener))"
            logger.error("\(m)")
            ready(fd: readyFD, message: "ERR \(m)\n")
            return 1
        }
        let state = RelayState()
        let pidLine = "\(getpid()) \(tcpPort) \(mode.rawValue)\n"
        mkdir(RelayFiles.directory, 0o755)
        guard writeFile(files.portFile, pidLine) else {
            logger.error("cannot write \(files.portFile): \(errnoText(errno))")
            ready(fd: readyFD, message: "ERR cannot write \(files.portFile)\n")
            return 1
        }
        logger.info("listening on 127.0.0.1:\(tcpPort), forwarding to vsock \(cid):\(port) (\(mode.rawValue))")
        ready(fd: readyFD, message: "\(tcpPort)\n")

        let started = monotonicSeconds()
        var idleChecks = 0
        var unusedSince = started
        // For tests and benchmarks without a mount: never exit on our own.
        let stay = getenv("VSNFS_RELAY_STAY") != nil
        var lastCheck = 0.0
        while true {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let n = poll(&pfd, 1, 1000)
            if n > 0 {
                let conn = accept(listener, nil, nil)
                if conn >= 0 {
                    _ = fcntl(conn, F_SETFD, FD_CLOEXEC)
                    _ = vsnfs_tcp_nodelay(conn)
                    let id = state.nextID()
                    startThread { forward(conn: conn, id: id, cid: cid, port: port, mode: mode, state: state, logger: logger) }
                } else if errno != EINTR && errno != EAGAIN {
                    logger.warning("accept: \(errnoText(errno))")
                    usleep(100_000)
                }
            }
            // Exit once no mount has used this relay for a few checks in a row
            // (after a start-up grace period for the mount that started it).
            let now = monotonicSeconds()
            guard now - lastCheck >= 2 else { continue }
            lastCheck = now
            // A connection with no mount left is only waited for so long (60 s).
            if mountsUsing(port: tcpPort) > 0 || now - started < 20 || stay {
                idleChecks = 0
                unusedSince = now
                continue
            }
            if state.activeConnections > 0 && now - unusedSince < 60 { continue }
            idleChecks += 1
            guard idleChecks >= 3 else { continue }
            let lockFD = open(files.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if lockFD >= 0 && flock(lockFD, LOCK_EX | LOCK_NB) == 0 {
                if mountsUsing(port: tcpPort) == 0 {
                    if readFile(files.portFile) == pidLine { unlink(files.portFile) }
                    logger.info("no mount uses 127.0.0.1:\(tcpPort) any more; exiting (\(state.summary))")
                    exit(0)
                }
            }
            if lockFD >= 0 { close(lockFD) }   // a helper is mounting: check again later
            idleChecks = 0
        }
    }

    /// Forwards one accepted TCP connection to a new vsock connection.
    static func forward(conn: Int32, id: Int, cid: UInt32, port: UInt32, mode: RelayMode, state: RelayState, logger: Logger) {
        let vs = vsnfs_vsock_connect(cid, port, 5000, vsockBuffer)
        guard vs >= 0 else {
            logger.warning("connection \(id): vsock \(cid):\(port): \(errnoText(-vs)); closing the TCP side")
            close(conn)
            return
        }
        logger.debug("connection \(id): open")
        state.opened()
        let down = Box<(Int32, UInt64)>((0, 0))
        let reverse = startThread {
            var moved: UInt64 = 0
            let rc = vsnfs_pump(vs, conn, mode.fromServer, chunk, &moved)
            finishDirection(rc: rc, from: vs, to: conn)
            down.value = (rc, moved)
        }
        var up: UInt64 = 0
        let rc = vsnfs_pump(conn, vs, mode.toServer, chunk, &up)
        finishDirection(rc: rc, from: conn, to: vs)
        pthread_join(reverse, nil)
        close(conn)
        close(vs)
        state.closed()
        let (rcDown, bytesDown) = down.value
        if rc != 0 || rcDown != 0 {
            logger.info("connection \(id) closed: to server \(up) B (\(rc == 0 ? "eof" : errnoText(-rc))), from server \(bytesDown) B (\(rcDown == 0 ? "eof" : errnoText(-rcDown)))")
        } else {
            logger.debug("connection \(id) closed: to server \(up) B, from server \(bytesDown) B")
        }
    }

    /// End of file: pass the half-close on. Error: tear both sides down so the
    /// other direction's blocking read returns too.
    static func finishDirection(rc: Int32, from: Int32, to: Int32) {
        if rc == 0 {
            shutdown(to, Int32(SHUT_WR))
        } else {
            shutdown(to, Int32(SHUT_RDWR))
            shutdown(from, Int32(SHUT_RDWR))
        }
    }

    static func ready(fd: Int32, message: String) {
        guard fd >= 0 else { return }
        _ = message.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Number of NFS mounts in /proc/self/mountinfo that reach 127.0.0.1:port.
    static func mountsUsing(port: UInt16) -> Int {
        guard let text = readFile("/proc/self/mountinfo") else { return 0 }
        var count = 0
        for line in text.split(separator: "\n") {
            guard let dash = line.firstRange(of: " - ") else { continue }
            let fields = line[dash.upperBound...].split(separator: " ")
            guard fields.count >= 3, fields[0].hasPrefix("nfs") else { continue }
            let options = fields[2].split(separator: ",")
            if options.contains("addr=127.0.0.1") && options.contains(Substring("port=\(port)")) { count += 1 }
        }
        return count
    }
}

/// How the relay moves bytes in each direction (vsnfs_pump: 0 read/write, 1 splice).
///
/// On Linux 6.1, splice into a vsock socket goes page by page (vsock has no
/// sendpage, so each 4 KiB page becomes its own sendmsg and packet), while
/// splice out of vsock into TCP saves a copy. `auto` uses read/write with
/// large buffers towards the server and splice towards the kernel client.
enum RelayMode: String, CaseIterable {
    case auto, splice, copy
    var toServer: Int32 { self == .splice ? 1 : 0 }
    var fromServer: Int32 { self == .copy ? 0 : 1 }
}

/// Connection counters shared by the relay's threads.
final class RelayState: Sendable {
    private let ids = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    func nextID() -> Int { ids.add(1, ordering: .relaxed).newValue }
    func opened() { active.add(1, ordering: .relaxed) }
    func closed() { active.subtract(1, ordering: .relaxed) }
    var activeConnections: Int { active.load(ordering: .relaxed) }
    var summary: String { "\(ids.load(ordering: .relaxed)) connections served" }
}

/// A value handed to a thread and read back after `pthread_join`: the join
/// orders the thread's write before the reader's read, which the compiler
/// cannot see (hence `@unchecked Sendable`). Used for nothing else.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

/// Starts a joinable pthread running `body`.
@discardableResult
func startThread(_ body: @escaping () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box<() -> Void>>.fromOpaque(raw!).takeRetainedValue()
        box.value()
        return nil
    }, context)
    precondition(rc == 0, "pthread_create: \(rc)")
    return thread
}

/// One line to standard error, with write(2): C's `stderr` is a global mutable
/// variable, which Swift 6 refuses to share between threads.
func printToStandardError(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 65536) }
        if n <= 0 { break }
        data += buf[0..<n]
    }
    return String(decoding: data, as: UTF8.self)
}

func writeFile(_ path: String, _ text: String) -> Bool {
    let tmp = path + ".tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return false }
    let ok = text.withCString { write(fd, $0, strlen($0)) } == text.utf8.count
    close(fd)
    return ok && rename(tmp, path) == 0
}
