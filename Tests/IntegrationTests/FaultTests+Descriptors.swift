import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// Descriptor exhaustion for files: a server under `ulimit -n 64` whose open-file
/// cache may hold more descriptors than the process can open.
/// Every call that needs one is answered NFS3ERR_JUKEBOX (the client retries
/// later), never a crash, a wrong answer, SERVERFAULT, IO or STALE; and the
/// same calls succeed once descriptors are free again.
extension FaultTests {
    /// An ext4 (or whatever /tmp is) export: kernel handles (open_by_handle_at).
    @Test func filesUnderDescriptorExhaustionAnswerJukeboxThenResume() throws {
        let sandbox = NFS3Sandbox()
        try Self.exhaustDescriptors(sandbox.exportDirectory("export"), sandbox, handles: "kernel handles")
    }

    /// A ramfs export has no kernel handles: the server finds objects by walking names
    /// from the export root (one descriptor per step), which must answer JUKEBOX too
    /// when descriptors run out, never STALE.
    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root"))
    func filesWithInodeHandlesUnderDescriptorExhaustionAnswerJukeboxNeverStale() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("ramfs")
        try #require(mount("vsnfs-test", path, "ramfs", 0, "mode=0777") == 0, "mount ramfs: errno \(errno)")
        defer { umount2(path, Int32(MNT_DETACH)) }
        try Self.exhaustDescriptors(path, sandbox, handles: "inode handles")
    }

    /// An unprivileged server has no kernel handles either: inode handles on ext4, where
    /// a file's generation number goes into its handle (read through a descriptor).
    /// LOOKUP under exhaustion must give the same handle as before, or JUKEBOX.
    @Test(.enabled(if: geteuid() == 0, "setpriv to another user needs root"))
    func filesOfAnUnprivilegedServerUnderDescriptorExhaustionKeepTheirHandles() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        mkdir(sandbox.statePath, 0o700)
        chown(sandbox.statePath, 65534, 65534)
        try Self.exhaustDescriptors(path, sandbox, handles: "inode handles", user: 65534)
    }

    /// Files in `path`/d are looked up while descriptors are plenty; then, on a server
    /// that runs out of descriptors before its cache is full, each file is read, written
    /// and looked up again.
    static func exhaustDescriptors(_ path: String, _ sandbox: NFS3Sandbox, handles mode: String, user: uid_t? = nil) throws {
        let files = 120
        func original(_ i: Int) -> String { "file \(i) " + String(repeating: "x", count: i) }
        mkdir(path + "/d", 0o777)
        for i in 0..<files {
            try Data(original(i).utf8).write(to: URL(fileURLWithPath: path + "/d/f\(i)"))
            chmod(path + "/d/f\(i)", 0o666)
        }
        // The handles come from a server with descriptors to spare; the one under test
        // starts on the same state with none of them open, and must find each again.
        var handles: [NFS3FileHandle] = []
        do {
            let plenty = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath, user: user)
            defer { plenty.stop() }
            #expect(plenty.log.contains(mode), "the export does not use \(mode): \(plenty.log)")
            let c = try NFS3TestClient(port: plenty.port)
            c.credential = rootCredential
            let dir = try #require(try c.lookup(try c.rootHandle("/"), "d").ok?.object)
            for i in 0..<files { handles.append(try #require(try c.lookup(dir, "f\(i)").ok?.object)) }
        }
        let limit = 64
        // The server keeps its connections to what the descriptor limit leaves the
        // open-file cache, so descriptors run out for files only when the cache is let
        // hold more than the process can open: --open-files 200 under ulimit -n 64.
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0", "--open-files", "200"],
                                       stateDirectory: sandbox.statePath, fileLimit: limit, user: user)
        defer { server.stop() }
        let base = try openDescriptors(server)
        let first = try NFS3TestClient(port: server.port)
        first.credential = rootCredential
        let dir = try #require(try first.lookup(try first.rootHandle("/"), "d").ok?.object)
        let clients: [NFS3TestClient] = [first]

        /// One file's work: READ and WRITE (FILE_SYNC, after the original bytes) through
        /// the handle from before, then LOOKUP, which must give the same handle.
        /// Nil when done; .jukebox when the server asked to be retried; anything else is a failure.
        func work(_ i: Int, on c: NFS3TestClient) throws -> NFS3Status? {
            let fh = handles[i]
            let read = try c.read(fh, count: 4096)
            guard let data = read.ok?.data else { return read.status }
            let expected = [original(i), original(i) + "w\(i)"]
            #expect(expected.contains(String(buffer: data)), "READ f\(i) returned other bytes")
            let write = try c.write(fh, offset: UInt64(original(i).utf8.count), Array("w\(i)".utf8), stable: .fileSync)
            guard write.ok?.count == UInt32("w\(i)".utf8.count) else { return write.status == .ok ? .io : write.status }
            let lookup = try c.lookup(dir, "f\(i)")
            guard let again = lookup.ok?.object else { return lookup.status }
            #expect(again == fh, "LOOKUP f\(i) gave another handle")
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
        #expect(!pending.isEmpty, "no call met descriptor exhaustion (\(base) descriptors before)")
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
        // The descriptors the server keeps open for files it is not using are its to
        // free, so retries get through one file at a time.
        try retry(&pending, on: clients, seconds: 20)
        #expect(pending.isEmpty, "still JUKEBOX after retries: \(pending.count) files")
        // And a second round of every file gets through as well.
        var again = Array(0..<files)
        func rewrite(_ i: Int) throws { try Data(original(i).utf8).write(to: URL(fileURLWithPath: path + "/d/f\(i)")) }
        for i in 0..<files { try rewrite(i) }
        try retry(&again, on: clients, seconds: 20)
        #expect(again.isEmpty, "still JUKEBOX in the second round: \(again.count) files")
        for i in 0..<files {
            let onHost = try String(contentsOfFile: path + "/d/f\(i)", encoding: .utf8)
            #expect(onHost == original(i) + "w\(i)", "f\(i) holds \(onHost)")
        }
        #expect(server.process.isRunning)
        try server.waitForLog("out of file descriptors")
        #expect(server.log.components(separatedBy: "out of file descriptors").count == 2, "logged more than once a minute")
        print("descriptor exhaustion (\(mode)): ulimit -n \(limit), \(base) descriptors at start, --open-files 200; \(jukeboxed) of \(files) files answered JUKEBOX, all done on retry, then all \(files) again; "
              + "\(files) files checked, 0 lost")
    }
}
