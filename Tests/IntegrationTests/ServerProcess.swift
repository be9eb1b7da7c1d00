import Foundation
import Testing

/// A real `vsnfs` process, started from the binary `swift build` produced
/// next to this test bundle, and stopped (SIGTERM) when the test is done.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let stateDirectory: URL
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vsnfsPath)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// Starts `vsnfs serve ARGS --state-dir STATE` and waits until it has
    /// logged one "listening on" line per `--listen` given. Without
    /// `stateDirectory`, a fresh one is made and removed with the process.
    /// With `fileLimit`, the server runs under `ulimit -n fileLimit`.
    init(_ arguments: [String], expectListeners: Int = 1, stateDirectory: String? = nil, fileLimit: Int? = nil) throws {
        ownsStateDirectory = stateDirectory == nil
        self.stateDirectory = stateDirectory.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("vsnfs-state-\(UUID().uuidString)")
        let serve = [Self.vsnfsPath, "serve"] + arguments + ["--state-dir", self.stateDirectory.path]
        if let fileLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(fileLimit) && exec \"$@\"", "sh"] + serve
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
        while listening.count < expectListeners {
            guard process.isRunning else {
                throw ServerProcessError.exited(status: process.terminationStatus, log: log)
            }
            guard Date() < deadline else { throw ServerProcessError.timeout(log: log) }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    var log: String { collected.text }

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
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        removeOwnedState()
        return process.terminationStatus
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
    var description: String {
        switch self {
        case .exited(let status, let log): return "vsnfs exited with status \(status):\n\(log)"
        case .timeout(let log): return "vsnfs did not start listening in time:\n\(log)"
        }
    }
}

final class LogCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}

/// Runs an external tool (rpcinfo, nfs-cp, ...). A missing tool fails the
/// test loudly: .ci/run installs them.
func runTool(_ tool: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: String) {
    let candidates = ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/local/bin/"].map { $0 + tool }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw ToolMissing(tool: tool)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

struct ToolMissing: Error, CustomStringConvertible {
    var tool: String
    var description: String { "\(tool) is not installed (run .ci/run or apt-get install the package that ships it)" }
}

/// A fresh temporary directory, removed by the caller.
func makeTemporaryDirectory(_ prefix: String = "vsnfs-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// rpcinfo's `-t` form needs rpcbind. Starts it (as root, `rpcbind -w`)
/// when its socket is missing; fails loudly if that is impossible.
func ensureRPCBindIsRunning() throws {
    if FileManager.default.fileExists(atPath: "/run/rpcbind.sock") {
        if (try? runTool("rpcinfo", ["-p", "127.0.0.1"]))?.status == 0 { return }
    }
    let (status, output) = try runTool("rpcbind", ["-w"])
    guard status == 0 else { throw ToolMissing(tool: "a running rpcbind (rpcbind -w failed: \(output))") }
    for _ in 0..<50 where !FileManager.default.fileExists(atPath: "/run/rpcbind.sock") {
        Thread.sleep(forTimeInterval: 0.1)
    }
}
