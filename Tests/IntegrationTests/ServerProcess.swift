import Foundation
import NIOConcurrencyHelpers
import Testing

/// A real `vsnfs` process, started from the binary `swift build` produced
/// next to this test bundle, and stopped (SIGTERM) when the test is done.
final class ServerProcess: Sendable {
    let process = Process()
    let stateDirectory: URL
    /// The control socket ServerProcess gave it (nil when the test gave `--control` or `--no-control`).
    let controlPath: String?
    /// A state directory the test made itself outsurvives this process, so a
    /// test can kill the server and start another on the same state.
    private let ownsStateDirectory: Bool
    private let stderrPipe = Pipe()
    private let collected = LogCollector()

    /// The product directory (.build/debug or .build-*/debug) holding vsnfs.
    static var binDirectory: URL {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // .../debug/vsnfsPackageTests.xctest
        return exe.deletingLastPathComponent()
    }

    static var vsnfsPath: String { binDirectory.appendingPathComponent("vsnfs").path }

    /// Runs `vsnfs ARGS` to completion; returns (status, stdout, stderr).
    static func run(_ arguments: [String]) throws -> (Int32, String, String) {
        let output = try runChild(vsnfsPath, arguments, timeout: 60)
        return (output.status, String(decoding: output.stdout, as: UTF8.self), output.stderr)
    }

    /// Starts `vsnfs serve ARGS --state-dir STATE` and waits until it has
    /// logged one "listening on" line per `--listen` given (and made the
    /// control socket ServerProcess gave it). Without
    /// `stateDirectory`, a fresh one is made and removed with the process.
    /// With `fileLimit`, the server runs under `ulimit -n fileLimit` (soft and hard
    /// limit); with `softFileLimit`, under `ulimit -Sn softFileLimit` only. With `user`,
    /// it runs as that uid and gid, with no groups and no capabilities (setpriv; the
    /// test must be root): unprivileged, as a user would start it.
    init(_ arguments: [String], expectListeners: Int = 1, stateDirectory: String? = nil, fileLimit: Int? = nil,
         softFileLimit: Int? = nil, user: uid_t? = nil) throws {
        ownsStateDirectory = stateDirectory == nil
        self.stateDirectory = stateDirectory.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("vsnfs-state-\(UUID().uuidString)")
        // A control socket of its own (the default path is one per user: tests run side by side).
        self.controlPath = arguments.contains("--control") || arguments.contains("--no-control")
            ? nil : self.stateDirectory.appendingPathComponent("control").path
        var serve = [Self.vsnfsPath, "serve"] + arguments + ["--state-dir", self.stateDirectory.path]
            + (self.controlPath.map { ["--control", $0] } ?? [])
        if let user {
            serve = [try toolPath("setpriv"), "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"] + serve
        }
        if let limit = fileLimit.map({ "-n \($0)" }) ?? softFileLimit.map({ "-Sn \($0)" }) {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit \(limit) && exec \"$@\"", "sh"] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: serve[0])
            process.arguments = Array(serve.dropFirst())
        }
        process.standardError = stderrPipe
        process.standardOutput = FileHandle.nullDevice
        let collected = self.collected
        stderrPipe.fileHandleForReading.readabilityHandler = { handle in
            collected.append(handle.availableData)
        }
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        // The control socket is made after the listeners: a test that talks
        // to it at once failed on a loaded machine (ENOENT).
        while listening.count < expectListeners || controlPath.map({ !FileManager.default.fileExists(atPath: $0) }) == true {
            guard process.isRunning else {
                throw ServerProcessError.exited(status: process.terminationStatus, log: log)
            }
            guard Date() < deadline else { throw ServerProcessError.timeout(log: log) }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    var log: String { collected.text }

    /// Waits (at most 10 s) until the log holds `text` at least `count` times:
    /// the server logs from its own threads, after the event a test caused.
    func waitForLog(_ text: String, count: Int = 1) throws {
        let deadline = Date().addingTimeInterval(10)
        while log.components(separatedBy: text).count - 1 < count {
            guard Date() < deadline else { throw ServerProcessError.logLineMissing(text, log: log) }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Listen specs as the server logged them ("listening on tcp:127.0.0.1:40123").
    var listening: [String] {
        log.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "listening on ") else { return nil }
            return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
    }

    /// The port of the first TCP listener.
    var port: Int { tcpPort }

    var tcpPort: Int {
        for spec in listening where spec.hasPrefix("tcp:") {
            if let port = spec.split(separator: ":").last.flatMap({ Int($0) }) { return port }
        }
        return 0
    }

    func signal(_ signo: Int32) { Foundation.kill(process.processIdentifier, signo) }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    /// A server that has not exited 30 s later is a failure of the test
    /// (and is killed), never a hang of the suite.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGTERM)
            if !waitForExit(process, seconds: 30) {
                Issue.record("vsnfs did not exit within 30 s of SIGTERM; killed. Log:\n\(log)")
                kill()
            }
        }
        removeOwnedState()
        recordSanitizerReports()
        return process.terminationStatus
    }

    /// Under `make test-asan` or `make test-tsan` the server is sanitized too: a
    /// report it printed (a race, a memory error, a leak at exit) fails the test.
    private func recordSanitizerReports() {
        let markers = ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer"]
        // The report is written as the process exits; the pipe's handler may lag behind.
        Thread.sleep(forTimeInterval: 0.2)
        let text = log
        if markers.contains(where: text.contains) {
            Issue.record("vsnfs reported a sanitizer finding:\n\(text)")
        }
    }

    /// SIGKILL: no chance to sync or clean up.
    func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    private func removeOwnedState() {
        if ownsStateDirectory { try? FileManager.default.removeItem(at: stateDirectory) }
    }

    deinit {
        kill()
        removeOwnedState()
    }
}

enum ServerProcessError: Error, CustomStringConvertible {
    case exited(status: Int32, log: String)
    case timeout(log: String)
    case logLineMissing(String, log: String)
    var description: String {
        switch self {
        case .exited(let status, let log): return "vsnfs exited with status \(status):\n\(log)"
        case .timeout(let log): return "vsnfs did not start listening in time:\n\(log)"
        case .logLineMissing(let text, let log): return "vsnfs did not log \"\(text)\" within 10 s:\n\(log)"
        }
    }
}

final class LogCollector: Sendable {
    private let data = NIOLockedValueBox(Data())
    func append(_ chunk: Data) { data.withLockedValue { $0.append(chunk) } }
    var text: String { data.withLockedValue { String(decoding: $0, as: UTF8.self) } }
}

extension Trait where Self == ConditionTrait {
    /// Tests that judge leaks by resident memory run only without a sanitizer:
    /// under one (`make test-asan`/`test-tsan` set VSNFS_SANITIZER) the allocator
    /// keeps freed memory in quarantine and shadow, so RSS says nothing, and the
    /// sanitizer's own leak check judges leaks instead.
    static var residentMemoryIsMeaningful: Self {
        .disabled(if: ProcessInfo.processInfo.environment["VSNFS_SANITIZER"] != nil,
                  "resident memory under a sanitizer's allocator says nothing about leaks")
    }
}

/// What a child process printed, and how it ended.
struct ChildOutput {
    var status: Int32
    var stdout: Data
    var stderr: String
    /// stdout then stderr, as text.
    var text: String { String(decoding: stdout, as: UTF8.self) + stderr }
}

struct ChildTimedOut: Error, CustomStringConvertible {
    var command: String
    var seconds: TimeInterval
    var description: String { "\(command) did not finish within \(Int(seconds)) s; killed" }
}

/// Runs a program to completion, draining stdout and stderr while it runs
/// (nfs-ls of 10,000 entries fills a pipe). Every wait is bounded: a child
/// still running after `timeout` seconds is killed and the call throws, so a
/// stuck peer fails its test instead of hanging the suite. (Do not start
/// daemons with this: a daemon keeps Foundation's exit-notification socket
/// open, and its parent is never seen to exit.)
func runChild(_ path: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> ChildOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let group = DispatchGroup()
    let stdout = NIOLockedValueBox(Data()), stderr = NIOLockedValueBox(Data())
    group.enter()
    DispatchQueue.global().async { stdout.withLockedValue { $0 = out.fileHandleForReading.readDataToEndOfFile() }; group.leave() }
    group.enter()
    DispatchQueue.global().async { stderr.withLockedValue { $0 = err.fileHandleForReading.readDataToEndOfFile() }; group.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    let drained = group.wait(timeout: .now() + timeout) == .success
    guard drained, waitForExit(process, seconds: max(1, deadline.timeIntervalSinceNow)) else {
        Foundation.kill(process.processIdentifier, SIGKILL)
        throw ChildTimedOut(command: ([path] + arguments).joined(separator: " "), seconds: timeout)
    }
    return ChildOutput(status: process.terminationStatus, stdout: stdout.withLockedValue { $0 },
                       stderr: stderr.withLockedValue { String(decoding: $0, as: UTF8.self) })
}

/// Waits at most `seconds` for `process` to exit; true if it did.
func waitForExit(_ process: Process, seconds: TimeInterval) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning {
        guard Date() < deadline else { return false }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return true
}

/// Where an installed tool (rpcinfo, nfs-cp, ...) lives. A missing tool
/// fails the test loudly: .ci/run installs them.
func toolPath(_ tool: String) throws -> String {
    let candidates = ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/local/bin/"].map { $0 + tool }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw ToolMissing(tool: tool)
    }
    return path
}

/// Runs an external tool; returns its status and everything it printed.
func runTool(_ tool: String, _ arguments: [String], timeout: TimeInterval = 120) throws -> (status: Int32, output: String) {
    let output = try runChild(try toolPath(tool), arguments, timeout: timeout)
    return (output.status, output.text)
}

struct ToolMissing: Error, CustomStringConvertible {
    var tool: String
    var description: String { "\(tool) is not installed (run .ci/run or apt-get install the package that ships it)" }
}

struct RPCBindNotRunning: Error, CustomStringConvertible {
    var rpcinfo: String
    var description: String {
        "rpcbind is not answering (rpcinfo -p 127.0.0.1: \(rpcinfo)); `make test` starts it, or run `rpcbind -w` as root"
    }
}

/// A fresh temporary directory, removed by the caller.
func makeTemporaryDirectory(_ prefix: String = "vsnfs-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// rpcinfo's `-t` form needs rpcbind. `make test` starts it
/// (tests/prepare.sh); the test process never starts daemons itself.
func ensureRPCBindIsRunning() throws {
    let (status, output) = try runTool("rpcinfo", ["-p", "127.0.0.1"], timeout: 30)
    guard status == 0 else {
        throw RPCBindNotRunning(rpcinfo: output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// The harness itself: no child process can hang the suite.
@Suite struct ChildProcessTests {
    @Test func aChildPastItsTimeoutIsKilledAndReported() throws {
        let started = Date()
        #expect(throws: ChildTimedOut.self) { try runChild("/bin/sleep", ["30"], timeout: 1) }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    /// What hung CI once: a child that leaves a daemon behind (as `rpcbind -w`
    /// does) is never seen to exit by Foundation. The bounded wait reports it.
    @Test func aChildThatLeavesADaemonBehindIsReportedNotWaitedFor() throws {
        let started = Date()
        #expect(throws: ChildTimedOut.self) {
            try runChild("/bin/sh", ["-c", "sleep 20 </dev/null >/dev/null 2>&1 &"], timeout: 2)
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func outputAndStatusAreReturned() throws {
        let output = try runChild("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], timeout: 30)
        #expect(output.status == 3)
        #expect(String(decoding: output.stdout, as: UTF8.self) == "out\n")
        #expect(output.stderr == "err\n")
    }
}
