#if canImport(Glibc)
import Glibc
#endif

/// QEMU for the user device: `--listen vhost-user:...` needs a QEMU with
/// `vhost-user-vsock-pci` (QEMU 5.1 and later).
public struct QEMUCheck: Sendable {
    public var binary: String
    /// The absolute path found (nil: not found).
    public var path: String?
    /// The first line of `--version`.
    public var version: String?
    public var hasVhostUserVsock: Bool
    /// Why QEMU could not be asked (nil when it answered).
    public var problem: String?

    public static func inspect(_ binary: String) -> QEMUCheck {
        guard let path = findExecutable(binary) else {
            return QEMUCheck(binary: binary, path: nil, version: nil, hasVhostUserVsock: false, problem: "not found")
        }
        let version = runProgram(path, ["--version"])
        guard version.status == 0 else {
            return QEMUCheck(binary: binary, path: path, version: nil, hasVhostUserVsock: false,
                             problem: "\(path) --version failed (\(version.failure))")
        }
        let firstLine = version.output.split(separator: "\n").first.map(String.init)
        let devices = runProgram(path, ["-device", "help"])
        guard devices.status == 0 else {
            return QEMUCheck(binary: binary, path: path, version: firstLine, hasVhostUserVsock: false,
                             problem: "\(path) -device help failed (\(devices.failure))")
        }
        return QEMUCheck(binary: binary, path: path, version: firstLine,
                         hasVhostUserVsock: devices.output.contains("\"vhost-user-vsock-pci\""), problem: nil)
    }

    /// The verdict: a missing QEMU or device is a warning, or a failure when
    /// the user device is the only way into a guest (no usable /dev/vhost-vsock).
    public func result(userDeviceNeeded: Bool) -> CheckResult {
        let missing: CheckResult.Verdict = userDeviceNeeded ? .fail : .warn
        let install = "apt-get install --no-install-recommends qemu-system-x86 (QEMU 5.1 or later)"
        guard let path else {
            return CheckResult("qemu", missing, "\(binary) not found in PATH: the vhost-user device (--listen vhost-user:...) needs QEMU's vhost-user-vsock-pci",
                               fix: install + ", or name it with --qemu PATH")
        }
        if let problem {
            return CheckResult("qemu", missing, problem, fix: install)
        }
        let name = version ?? path
        guard hasVhostUserVsock else {
            return CheckResult("qemu", missing, "\(name) (\(path)) has no vhost-user-vsock-pci device, so --listen vhost-user:... cannot serve its guests",
                               fix: install)
        }
        return CheckResult("qemu", .ok, "\(name) (\(path)) has vhost-user-vsock-pci: --listen vhost-user:PATH:cid=N can serve its guests")
    }
}

/// `name` if it holds a slash, else the first executable of that name in PATH.
func findExecutable(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") where !dir.isEmpty {
        let candidate = "\(dir)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}

struct ProgramRun {
    var status: Int32
    var output: String
    /// Why it did not exit 0, for a message.
    var failure: String
}

/// Runs `path` with `arguments`, stdin from /dev/null, stdout and stderr
/// captured together; a program still running after `timeoutSeconds` is killed.
func runProgram(_ path: String, _ arguments: [String], timeoutSeconds: Int = 20) -> ProgramRun {
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else {
        return ProgramRun(status: -1, output: "", failure: String(cString: strerror(errno)))
    }
    for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
    var pid: pid_t = 0
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
    // ETXTBSY: a script just written is still open for writing in a child
    // another thread forked but has not yet exec'd; that ends within moments.
    for _ in 0..<50 where spawned == ETXTBSY {
        usleep(20_000)
        spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
    }
    close(pipeFDs[1])
    guard spawned == 0 else {
        close(pipeFDs[0])
        return ProgramRun(status: -1, output: "", failure: String(cString: strerror(spawned)))
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var timedOut = false
    var deadline = timespec()
    clock_gettime(CLOCK_MONOTONIC, &deadline)
    deadline.tv_sec += timeoutSeconds
    while true {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let remainingMS = Int32(max(0, (deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1_000_000))
        var poller = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, remainingMS)
        if ready < 0 && errno == EINTR { continue }
        if ready <= 0 {
            timedOut = true
            kill(pid, SIGKILL)
            break
        }
        let n = read(pipeFDs[0], &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        output.append(contentsOf: buffer[0..<n])
    }
    close(pipeFDs[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = String(decoding: output, as: UTF8.self)
    if timedOut { return ProgramRun(status: -1, output: text, failure: "no answer within \(timeoutSeconds) s") }
    // WIFEXITED / WEXITSTATUS, which Swift does not import as functions.
    let exited = status & 0x7f == 0
    let code = exited ? (status >> 8) & 0xff : -1
    let lastLine = text.split(separator: "\n").last.map(String.init) ?? ""
    return ProgramRun(status: code, output: text,
                      failure: exited ? "exit status \(code)" + (lastLine.isEmpty ? "" : ": \(lastLine)") : "killed by signal \(status & 0x7f)")
}
