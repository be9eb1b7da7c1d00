#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// QEMU run in the foreground: it keeps this terminal (stdin, stdout; it is
/// in our process group, so the terminal's own signals reach it as they
/// reach us), gets its signal dispositions and mask reset, and is waited for.
///
/// With `watchStderr`, its standard error passes through a pipe that is
/// copied to ours line by line and remembered, so a failure QEMU reports
/// there (a guest CID already in use) can be recognised.
public final class QEMUProcess: Sendable {
    public let pid: pid_t
    private let stderrPipe: Int32
    private let stderrTail = NIOLockedValueBox<String>("")

    /// QEMU's message when /dev/vhost-vsock has the guest CID in use by another VM.
    public static let cidInUseMessage = "unable to set guest cid: Address already in use"

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(arguments: [String], watchStderr: Bool) throws(SpawnError) {
        guard let program = arguments.first else { throw SpawnError(description: "no QEMU command") }
        var fds: [Int32] = [-1, -1]
        if watchStderr {
            guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
                throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))")
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if watchStderr { posix_spawn_file_actions_adddup2(&actions, fds[1], 2) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t(), empty = sigset_t()
        sigfillset(&defaults)
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let cargs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, program, &actions, &attributes, cargs, environ)
        if watchStderr { close(fds[1]) }
        guard rc == 0 else {
            if watchStderr { close(fds[0]) }
            throw SpawnError(description: "cannot start \(program): \(String(cString: strerror(rc)))")
        }
        pid = child
        stderrPipe = watchStderr ? fds[0] : -1
    }

    /// Sends `signal` to QEMU (if it still runs).
    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Blocks until QEMU exits, copying its standard error through; returns
    /// its exit status (128 + N if signal N killed it).
    public func wait() -> Int32 {
        if stderrPipe >= 0 {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(stderrPipe, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                _ = buffer.withUnsafeBytes { write(2, $0.baseAddress, n) }
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                stderrTail.withLockedValue { tail in
                    tail += text
                    if tail.utf8.count > 8192 { tail = String(tail.suffix(4096)) }
                }
            }
            close(stderrPipe)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signalled = status & 0x7f
        return signalled == 0 ? (status >> 8) & 0xff : 128 + signalled
    }

    /// True once QEMU said, on standard error, that the guest CID is in use.
    public var reportedCIDInUse: Bool {
        stderrTail.withLockedValue { $0.contains(Self.cidInUseMessage) }
    }

    /// Finds `program` as posix_spawnp would (PATH, or a path with a slash).
    public static func locate(_ program: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(program)"
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }
}

/// Runs QEMU with the kernel's vhost-vsock, moving to the next CID while
/// QEMU says the one it was given is in use by another VM (only when the CID
/// was not chosen by the user, and at most `attempts` times).
public enum KernelCIDRetry {
    public struct Outcome: Equatable, Sendable {
        public var status: Int32
        public var cid: UInt32
        /// The CID the user chose was in use (QEMU said so): vsnfs share says what to do.
        public var chosenCIDInUse: Bool
    }

    /// `launch(cid)` runs QEMU with that guest CID to its end and returns
    /// its status and whether it reported the CID in use; `willRetry` is
    /// told each CID given up.
    public static func run(firstCID: UInt32, userChose: Bool, attempts: Int = 32,
                           launch: (UInt32) throws -> (status: Int32, cidInUse: Bool),
                           willRetry: (UInt32) -> Void = { _ in }) rethrows -> Outcome {
        var cid = firstCID
        var tries = 0
        while true {
            let (status, inUse) = try launch(cid)
            tries += 1
            guard inUse, status != 0 else { return Outcome(status: status, cid: cid, chosenCIDInUse: false) }
            if userChose { return Outcome(status: status, cid: cid, chosenCIDInUse: true) }
            guard tries < attempts, cid < UInt32.max - 1 else { return Outcome(status: status, cid: cid, chosenCIDInUse: false) }
            willRetry(cid)
            cid += 1
        }
    }
}
