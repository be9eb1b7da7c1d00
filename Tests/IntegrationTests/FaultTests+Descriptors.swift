import Foundation
import NFSProtocols
import NIOCore
import ONCRPC
import Testing

/// Descriptor exhaustion for files: a server under `ulimit -n 64` whose
/// descriptors are taken by connections has none left to open files with.
/// Every call that needs one is answered NFS3ERR_JUKEBOX (the client retries
/// later), never a crash, a wrong answer, SERVERFAULT, IO or STALE; and the
/// same calls succeed once descriptors are free again.
extension FaultTests {
    @Test func filesUnderDescriptorExhaustionAnswerJukeboxThenResume() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let files = 120
        func original(_ i: Int) -> String { "file \(i) " + String(repeating: "x", count: i) }
        for i in 0..<files {
            try Data(original(i).utf8).write(to: URL(fileURLWithPath: path + "/f\(i)"))
            chmod(path + "/f\(i)", 0o666)
        }
        let limit = 64
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath,
                                       fileLimit: limit)
        defer { server.stop() }
        // Connections take all but a few descriptors: the open-file cache (limit / 2 = 32
        // descriptors) cannot fill up.
        let base = try Self.openDescriptors(server)
        var clients: [NFS3TestClient] = []
        for _ in 0..<(limit - base - 4) {
            let c = NFS3TestClient(try RawRPCClient(ipv4: "127.0.0.1", port: server.port, timeoutSeconds: 20))
            c.credential = Self.rootCredential
            let null = try c.rawCall(program: NFSProgramNumber.nfs, version: 3, procedure: 0, arguments: ByteBuffer())
            guard case .success = null else { Issue.record("NULL: \(null)"); return }
            clients.append(c)
        }
        let root = try clients[0].rootHandle("/")

        /// One file's work: LOOKUP, READ, WRITE (FILE_SYNC, after the original bytes).
        /// Nil when done; .jukebox when the server asked to be retried; anything else is a failure.
        func work(_ i: Int, on c: NFS3TestClient) throws -> NFS3Status? {
            let lookup = try c.lookup(root, "f\(i)")
            guard let fh = lookup.ok?.object else { return lookup.status }
            let read = try c.read(fh, count: 4096)
            guard let data = read.ok?.data else { return read.status }
            #expect(String(buffer: data) == original(i), "READ f\(i) returned other bytes")
            let write = try c.write(fh, offset: UInt64(original(i).utf8.count), Array("w\(i)".utf8), stable: .fileSync)
            guard write.ok?.count == UInt32("w\(i)".utf8.count) else { return write.status == .ok ? .io : write.status }
            return nil
        }

        var pending: [Int] = []
        var answers: [NFS3Status: Int] = [:]
        for i in 0..<files {
            guard let status = try work(i, on: clients[i % clients.count]) else { continue }
            answers[status, default: 0] += 1
            pending.append(i)
        }
        #expect(answers.keys.allSatisfy { $0 == .jukebox }, "answers other than JUKEBOX: \(answers)")
        #expect(!pending.isEmpty, "no call met descriptor exhaustion (\(clients.count) connections, \(base) descriptors before)")
        #expect(server.process.isRunning)
        let jukeboxed = pending.count

        /// Retries what is pending, as a client retries JUKEBOX, for at most `seconds`.
        func retry(_ pending: inout [Int], on clients: [NFS3TestClient], seconds: TimeInterval) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while !pending.isEmpty && Date() < deadline {
                var still: [Int] = []
                for i in pending {
                    guard let status = try work(i, on: clients[i % clients.count]) else { continue }
                    #expect(status == .jukebox, "f\(i) on retry: \(status)")
                    still.append(i)
                }
                pending = still
                if !pending.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
            }
        }
        // The connections stay: the descriptors the server keeps open for files it is
        // not using are its to free, so retries get through one file at a time.
        try retry(&pending, on: clients, seconds: 20)
        #expect(pending.isEmpty, "still JUKEBOX with the connections open: \(pending.count) files")
        // Descriptors come free as most connections close: a second round of every file succeeds.
        clients.removeLast(clients.count - 2)
        var again = Array(0..<files)
        func rewrite(_ i: Int) throws { try Data(original(i).utf8).write(to: URL(fileURLWithPath: path + "/f\(i)")) }
        for i in 0..<files { try rewrite(i) }
        try retry(&again, on: clients, seconds: 20)
        #expect(again.isEmpty, "still JUKEBOX after connections closed: \(again.count) files")
        for i in 0..<files {
            let onHost = try String(contentsOfFile: path + "/f\(i)", encoding: .utf8)
            #expect(onHost == original(i) + "w\(i)", "f\(i) holds \(onHost)")
        }
        #expect(server.process.isRunning)
        try server.waitForLog("out of file descriptors")
        #expect(server.log.components(separatedBy: "out of file descriptors").count == 2, "logged more than once a minute")
        print("descriptor exhaustion: ulimit -n \(limit), \(base) descriptors at start, \(limit - base - 4) connections; \(jukeboxed) of \(files) files answered JUKEBOX, all done on retry, then all \(files) again after the connections closed; "
              + "\(files) files checked, 0 lost")
    }
}
