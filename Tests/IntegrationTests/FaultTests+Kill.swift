import Foundation
import NFS3
import NIOCore
import ONCRPC
import Synchronization
import Testing

/// An atomic integer that threads of a test share.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// CLOCK_MONOTONIC in nanoseconds, for busy-waits that place an event in time.
func monotonicNanosecondsForTests() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The SHA-256 of a file, as sha256sum prints it.
func sha256sum(_ path: String) throws -> String {
    let (status, output) = try runTool("sha256sum", [path])
    guard status == 0, let sum = output.split(separator: " ").first else { throw LibnfsError.failed("sha256sum \(path): \(output)") }
    return String(sum)
}

/// SIGKILL of the server in the middle of a write-heavy workload, then a
/// restart on the same state directory. A server that dies loses what it had
/// not made durable, and says so by changing its write verifier: a client
/// resends every WRITE it has not seen committed under the verifier it holds
/// (RFC 1813 section 3.3.7). What a client saw written FILE_SYNC, or
/// committed, must be there byte for byte.
extension FaultTests {
    /// The file written in `chunks` pieces of `chunkSize` bytes, each piece its own random bytes.
    struct KillWorkload {
        static let chunkSize = 64 * 1024
        static let chunks = 96
        let content = randomBytes(chunkSize * chunks)
        func chunk(_ i: Int) -> [UInt8] { Array(content[i * Self.chunkSize..<(i + 1) * Self.chunkSize]) }
        func offset(_ i: Int) -> UInt64 { UInt64(i * Self.chunkSize) }
    }

    /// Our client writes a file chunk by chunk: every third chunk FILE_SYNC, the others
    /// UNSTABLE with a COMMIT after each fourth, while another thread SIGKILLs the server
    /// at a random chunk. After the restart: the durable chunks (FILE_SYNC, or UNSTABLE
    /// then COMMITted under the same verifier) read back byte for byte; the verifier
    /// differs from the one before the kill; the client resends every other chunk, as a
    /// client must, commits, and the whole file matches, on the wire and on the host.
    @Test func sigkillMidWritesKeepsWhatWasCommittedAndResendRestoresTheRest() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        var (server, c) = try Self.serve(path, sandbox)
        let port = server.port
        let file = try c.createdHandle(c.create(try c.rootHandle("/"), "data", mode: 0o666))
        let work = KillWorkload()
        let killAt = Int.random(in: 8..<(KillWorkload.chunks - 16))
        let progress = SharedCounter()
        let serverToKill = server
        let killer = Thread {
            while progress.value.load(ordering: .acquiring) < killAt { Thread.sleep(forTimeInterval: 0.001) }
            Thread.sleep(forTimeInterval: Double.random(in: 0...0.005))   // lands among calls in flight
            serverToKill.kill()
        }
        killer.start()

        var durable = Set<Int>()          // chunks the client knows are on stable storage
        var uncommitted: [Int: NFS3Verifier] = [:]   // acknowledged UNSTABLE, not yet committed
        var verifierBefore: NFS3Verifier?
        var killedAfter = KillWorkload.chunks
        do {
            for i in 0..<KillWorkload.chunks {
                progress.value.store(i, ordering: .releasing)
                let stable: NFS3StableHow = i % 3 == 0 ? .fileSync : .unstable
                let ok = try #require(try c.write(file, offset: work.offset(i), work.chunk(i), stable: stable).ok)
                #expect(Int(ok.count) == KillWorkload.chunkSize)
                verifierBefore = ok.verifier
                if ok.committed == .unstable { uncommitted[i] = ok.verifier } else { durable.insert(i) }
                if i % 4 == 3 {
                    let commit: NFS3CommitResult = try c.nfs(.commit, NFS3CommitArgs(file: file, offset: 0, count: 0))
                    let verifier = try #require(commit.ok?.verifier)
                    for (chunk, v) in uncommitted where v == verifier { durable.insert(chunk) }
                    uncommitted = uncommitted.filter { $0.value != verifier }
                }
            }
        } catch is BlockingRPCClient.Error {   // the connection died with the server
            killedAfter = progress.value.load(ordering: .acquiring)
        }
        while !killer.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        #expect(killedAfter < KillWorkload.chunks, "the kill (at chunk \(killAt)) came after the workload ended")
        #expect(!durable.isEmpty)

        server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:\(port)"], stateDirectory: sandbox.statePath)
        defer { server.stop() }
        c = try NFS3TestClient(port: server.port)
        c.credential = Self.rootCredential
        for i in durable.sorted() {
            let read = try #require(try c.read(file, offset: work.offset(i), count: UInt32(KillWorkload.chunkSize)).ok)
            #expect(Array(read.data.readableBytesView) == work.chunk(i), "durable chunk \(i) differs after the restart")
        }
        let commit: NFS3CommitResult = try c.nfs(.commit, NFS3CommitArgs(file: file, offset: 0, count: 0))
        let verifierAfter = try #require(commit.ok?.verifier)
        #expect(verifierAfter != verifierBefore, "the write verifier did not change across the restart")
        // The client's recovery: every chunk not known durable is written again.
        let resend = (0..<KillWorkload.chunks).filter { !durable.contains($0) }
        for i in resend {
            let ok = try #require(try c.write(file, offset: work.offset(i), work.chunk(i), stable: .unstable).ok)
            #expect(Int(ok.count) == KillWorkload.chunkSize && ok.verifier == verifierAfter)
        }
        let final: NFS3CommitResult = try c.nfs(.commit, NFS3CommitArgs(file: file, offset: 0, count: 0))
        #expect(final.ok?.verifier == verifierAfter, "the verifier changed without a restart")
        var wire: [UInt8] = []
        while wire.count < work.content.count {
            let read = try #require(try c.read(file, offset: UInt64(wire.count), count: 1 << 20).ok)
            wire += read.data.readableBytesView
            if read.eof { break }
        }
        #expect(Data(wire) == work.content, "the file read back differs from what was written")
        let onHost = try Data(contentsOf: URL(fileURLWithPath: path + "/data"))
        #expect(onHost == work.content, "the host file differs from what was written")
        print("kill mid-writes: killed at chunk \(killedAfter) of \(KillWorkload.chunks) (\(KillWorkload.chunkSize) B each); "
              + "\(durable.count) chunks durable before the kill and intact, \(uncommitted.count) acknowledged UNSTABLE "
              + "but uncommitted, \(resend.count) resent; \(work.content.count) bytes compared, 0 lost")
    }

    /// nfs-cp (libnfs) copies a file with sequential 1 MiB writes. The server is
    /// SIGKILLed when part of the copy is on the host: what is there then is the
    /// source's bytes at their offsets (or a hole not yet written), nothing else.
    /// The server starts again on the same port and state; libnfs reconnects and
    /// resends what was not answered, and nfs-cp finishes with a copy identical to
    /// the source (that is what libnfs 4.0 does; an nfs-cp that gave up instead
    /// would fail here). A second nfs-cp after the restart, into the same name once
    /// removed, gives the same checksum.
    @Test func nfsCpInterruptedBySigkillResumesAndARerunGivesTheSameFile() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let source = sandbox.dir + "/source"
        let size = 128 << 20
        let content = randomBytes(size)
        try content.write(to: URL(fileURLWithPath: source))
        var server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        let port = server.port
        // libnfs mounts the URL's directory: the copy goes into a subdirectory.
        mkdir(path + "/data", 0o777)
        chmod(path + "/data", 0o777)
        let url = Libnfs.url(port: port, "/data/copy")
        let copy = path + "/data/copy"

        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: try toolPath("nfs-cp"))
        cp.arguments = [source, url]
        cp.standardOutput = FileHandle.nullDevice
        cp.standardError = FileHandle.nullDevice
        try cp.run()
        // Kill once a few MiB are on the host, well before the end.
        let deadline = Date().addingTimeInterval(60)
        var sizeAtKill = 0
        while Date() < deadline {
            sizeAtKill = (try? FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int) ?? 0
            if sizeAtKill >= 4 << 20 || !cp.isRunning { break }
            Thread.sleep(forTimeInterval: 0.002)
        }
        server.kill()
        #expect(cp.isRunning && sizeAtKill < size, "nfs-cp ended (or wrote everything) before the kill")
        let atKill = try Data(contentsOf: URL(fileURLWithPath: copy))
        #expect(atKill.count < size)
        let foreign = atKill.withUnsafeBytes { (written: UnsafeRawBufferPointer) -> Int in
            content.withUnsafeBytes { (source: UnsafeRawBufferPointer) -> Int in
                var count = 0
                for i in 0..<written.count where written[i] != 0 && written[i] != source[i] { count += 1 }
                return count
            }
        }
        #expect(foreign == 0, "\(foreign) bytes of the interrupted copy are not the source's")

        server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:\(port)"], stateDirectory: sandbox.statePath)
        defer { server.stop() }
        if !waitForExit(cp, seconds: 120) {
            Foundation.kill(cp.processIdentifier, SIGKILL)
            cp.waitUntilExit()
            Issue.record("nfs-cp did not finish within 120 s of the restart")
        }
        #expect(cp.terminationStatus == 0, "nfs-cp gave up after the restart")
        let resumed = try sha256sum(copy)
        #expect(resumed == (try sha256sum(source)), "the copy nfs-cp finished after the restart differs from the source")

        // nfs-cp creates GUARDED (libnfs 4.0, seen on the wire): it refuses a file that exists.
        #expect(unlink(copy) == 0)
        try Libnfs.check("nfs-cp", [source, url])
        #expect(try sha256sum(copy) == sha256sum(source), "the copy after the restart differs from the source")
        print("nfs-cp kill: \(atKill.count) of \(size) bytes on the host at the kill, all the source's; nfs-cp exited "
              + "\(cp.terminationStatus) after the restart with an identical copy; rerun: identical SHA-256")
    }
}
