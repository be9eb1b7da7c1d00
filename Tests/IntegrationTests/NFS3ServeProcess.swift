import Foundation

/// A `vsnfs serve` process for NFSv3 tests, with a state directory the
/// caller owns (so a test can kill the server and start another on the
/// same state), listening on one TCP port on loopback.
final class NFS3ServeProcess: @unchecked Sendable {
    let process = Process()
    private let log = NFS3LogBuffer()
    private(set) var port = 0

    static var vsnfsPath: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("vsnfs").path
    }

    /// Starts `vsnfs serve ARGS --listen tcp:127.0.0.1:0 --state-dir STATE` and waits until it listens.
    /// With `fileLimit`, the server runs under `ulimit -n fileLimit`.
    init(_ arguments: [String], stateDirectory: String, fileLimit: Int? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.vsnfsPath) else {
            throw LibnfsError.missingTool("\(Self.vsnfsPath) not built (swift build --build-tests builds it)")
        }
        let serve = [Self.vsnfsPath, "serve"] + arguments + ["--listen", "tcp:127.0.0.1:0", "--state-dir", stateDirectory]
        if let fileLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(fileLimit) && exec \"$@\"", "sh"] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: serve[0])
            process.arguments = Array(serve.dropFirst())
        }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        let log = self.log
        pipe.fileHandleForReading.readabilityHandler = { log.append($0.availableData) }
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while port == 0 {
            for line in log.text.split(separator: "\n") {
                if let range = line.range(of: "listening on tcp:"),
                   let p = line[range.upperBound...].split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                    port = p
                }
            }
            if port != 0 { break }
            guard process.isRunning else { throw LibnfsError.failed("vsnfs serve exited \(process.terminationStatus):\n\(log.text)") }
            guard Date() < deadline else { throw LibnfsError.timedOut("vsnfs serve did not listen:\n\(log.text)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    var output: String { log.text }

    /// SIGKILL: no chance to sync or clean up.
    func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func stop() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
    }

    deinit { kill() }
}

final class NFS3LogBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}
