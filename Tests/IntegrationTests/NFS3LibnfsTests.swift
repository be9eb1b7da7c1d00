import Exports
import Foundation
import NFS3
import NIOCore
import Testing
import ONCRPC
import Transport

/// An independent NFSv3 client: libnfs's command-line tools (Debian's
/// `libnfs-utils`). These tests fail, not skip, when the tools are missing.
enum Libnfs {
    static let tools = ["nfs-cp", "nfs-ls", "nfs-cat"]

    static func url(port: Int, _ path: String) -> String {
        "nfs://127.0.0.1\(path)?nfsport=\(port)&mountport=\(port)&version=3"
    }

    /// Runs a tool to completion (at most `timeout` seconds).
    static func run(_ tool: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> ChildOutput {
        try runChild(try toolPath(tool), arguments, timeout: timeout)
    }

    /// Runs a tool that must succeed.
    @discardableResult
    static func check(_ tool: String, _ arguments: [String]) throws -> Data {
        let output = try run(tool, arguments)
        guard output.status == 0 else {
            throw LibnfsError.failed("\(tool) \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)")
        }
        return output.stdout
    }
}

/// `nfs-cat URL` held in the middle of a file: its stdout is a pipe nobody
/// reads until `finish`, so after its first READs it blocks writing them out
/// and sends its next READ only after `finish` drains the pipe. What happens
/// to the server in between (a reload) meets a client holding an open file
/// handle, as a mounted guest would.
final class PausedNFSCat {
    private let process = Process()
    private let out = Pipe(), err = Pipe()

    /// Starts nfs-cat and waits (at most 30 s) until the pipe is full.
    init(_ url: String) throws {
        process.executableURL = URL(fileURLWithPath: try toolPath("nfs-cat"))
        process.arguments = [url]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let fd = out.fileHandleForReading.fileDescriptor
        let capacity = fcntl(fd, 1032)   // F_GETPIPE_SZ (F_LINUX_SPECIFIC_BASE + 8), which Glibc's module leaves out
        let deadline = Date().addingTimeInterval(30)
        var queued: Int32 = 0
        while ioctl(fd, UInt(FIONREAD), &queued) == 0, Int(queued) < capacity {
            guard process.isRunning, Date() < deadline else {
                Foundation.kill(process.processIdentifier, SIGKILL)
                throw LibnfsError.failed("nfs-cat \(url) did not fill its pipe (\(queued) of \(capacity) bytes)")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Drains the pipe and lets nfs-cat run to its end (at most 60 s).
    func finish() throws -> ChildOutput {
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        guard waitForExit(process, seconds: 60) else {
            Foundation.kill(process.processIdentifier, SIGKILL)
            throw LibnfsError.failed("nfs-cat did not finish within 60 s of its pipe being drained")
        }
        return ChildOutput(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

struct LibnfsError: Error, CustomStringConvertible {
    var description: String
    static func failed(_ description: String) -> LibnfsError { LibnfsError(description: description) }
}

/// Where the libnfs tests find a server: a real `vsnfs serve DIR` process
/// (DIR exported read-write, root_squash, to everyone, mounted as `/`).
final class LibnfsTarget {
    let sandbox = NFS3Sandbox()
    let exportPath: String
    let server: ServerProcess
    var port: Int { server.port }

    /// With `tmpfsSize`, the export is a tmpfs of that size (needs root).
    init(tmpfsSize: String? = nil) throws {
        exportPath = sandbox.exportDirectory("export")
        if let tmpfsSize {
            guard mount("vsnfs-test", exportPath, "tmpfs", 0, "size=\(tmpfsSize),mode=0777") == 0 else {
                throw LibnfsError.failed("mount tmpfs on \(exportPath): errno \(errno)")
            }
            mountedTmpfs = true
        }
        do {
            server = try ServerProcess([exportPath, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        } catch {
            if mountedTmpfs { umount2(exportPath, Int32(MNT_DETACH)) }   // no deinit for a failed init
            throw error
        }
    }

    private var mountedTmpfs = false

    deinit {
        server.stop()
        if mountedTmpfs { umount2(exportPath, Int32(MNT_DETACH)) }
    }

    func url(_ relative: String) -> String { Libnfs.url(port: port, relative.isEmpty ? "/" : relative) }

    /// Our own NFSv3 client on the same server (AUTH_SYS root, squashed).
    func client() throws -> NFS3TestClient {
        let c = try NFS3TestClient(port: port)
        c.credential = AuthSysParameters(machineName: Array("test".utf8), uid: 0, gid: 0).opaqueAuth
        return c
    }
}

func randomBytes(_ count: Int) -> Data {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: count)
    data.withUnsafeMutableBytes { raw in
        var i = 0
        while i + 8 <= count {
            raw.storeBytes(of: generator.next() as UInt64, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count { raw[i] = UInt8.random(in: 0...255); i += 1 }
    }
    return data
}

@Suite(.serialized) struct NFS3LibnfsTests {
    @Test func toolsAreInstalled() throws {
        for tool in Libnfs.tools { _ = try toolPath(tool) }
    }

    @Test(arguments: [0, 1, 4095, 4096, 65_537, (1 << 20) + 3, 64 << 20])
    func copyInAndOutKeepsEveryByte(size: Int) throws {
        let target = try LibnfsTarget()
        let local = target.sandbox.dir + "/local-\(size)"
        let back = target.sandbox.dir + "/back-\(size)"
        // libnfs takes the URL's directory as the export to mount and refuses an
        // empty one, so files live one level down (MNT of a subdirectory).
        mkdir(target.exportPath + "/data", 0o777)
        chmod(target.exportPath + "/data", 0o777)
        let data = randomBytes(size)
        try data.write(to: URL(fileURLWithPath: local))
        try Libnfs.check("nfs-cp", [local, target.url("/data/file-\(size)")])
        // The host sees exactly what was sent...
        let onHost = try Data(contentsOf: URL(fileURLWithPath: target.exportPath + "/data/file-\(size)"))
        #expect(onHost == data, "host copy differs for \(size) bytes")
        // ...and the client reads it back unchanged.
        try Libnfs.check("nfs-cp", [target.url("/data/file-\(size)"), back])
        let returned = try Data(contentsOf: URL(fileURLWithPath: back))
        #expect(returned.count == size)
        #expect(returned == data, "copy back differs for \(size) bytes")
        if size <= 65_537 {
            let cat = try Libnfs.check("nfs-cat", [target.url("/data/file-\(size)")])
            #expect(cat == data)
        }
    }

    /// nfs-cp of 4 MiB into a 2 MiB export fails; the file already there is intact,
    /// and once the host deletes the partial copy, a copy that fits works.
    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func copyIntoAFullExportFailsAndLosesNothing() throws {
        let target = try LibnfsTarget(tmpfsSize: "2m")
        mkdir(target.exportPath + "/data", 0o777)
        chmod(target.exportPath + "/data", 0o777)
        let keep = randomBytes(500_000), big = randomBytes(4 << 20), small = randomBytes(10_000)
        for (name, data) in [("keep", keep), ("big", big), ("small", small)] {
            try data.write(to: URL(fileURLWithPath: target.sandbox.dir + "/" + name))
        }
        try Libnfs.check("nfs-cp", [target.sandbox.dir + "/keep", target.url("/data/keep")])
        let failed = try Libnfs.run("nfs-cp", [target.sandbox.dir + "/big", target.url("/data/big")])
        #expect(failed.status != 0, "nfs-cp of 4 MiB into 2 MiB succeeded")   // it prints only "Failed to write to dest file"
        #expect(try Data(contentsOf: URL(fileURLWithPath: target.exportPath + "/data/keep")) == keep)
        #expect(try Libnfs.check("nfs-cat", [target.url("/data/keep")]) == keep)
        // The host removes the partial copy: its space comes back once the server has
        // closed its fds of the file (within its one-second sweep), and the next copy fits.
        #expect(unlink(target.exportPath + "/data/big") == 0)
        var fsStat = statvfs()
        let deadline = Date().addingTimeInterval(5)
        while statvfs(target.exportPath, &fsStat) == 0 && fsStat.f_bfree < 256 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(fsStat.f_bfree >= 256, "only \(fsStat.f_bfree) blocks free 5 s after the host deleted the file")
        try Libnfs.check("nfs-cp", [target.sandbox.dir + "/small", target.url("/data/small")])
        #expect(try Data(contentsOf: URL(fileURLWithPath: target.exportPath + "/data/small")) == small)
    }

    @Test func listsTenThousandEntriesCompletely() throws {
        let target = try LibnfsTarget()
        let dir = target.exportPath + "/big"
        mkdir(dir, 0o755)
        var expected: Set<String> = []
        for i in 0..<10_000 {
            let name = "file-\(i)" + String(repeating: "_", count: i % 33)
            let fd = open(dir + "/" + name, O_CREAT | O_WRONLY, 0o644)
            precondition(fd >= 0)
            close(fd)
            expected.insert(name)
        }
        let listing = String(decoding: try Libnfs.check("nfs-ls", [target.url("/big")]), as: UTF8.self)
        // nfs-ls prints one `ls -l`-style line per entry, the name last.
        var seen: [String] = []
        for line in listing.split(separator: "\n") {
            guard let name = line.split(separator: " ").last.map(String.init) else { continue }
            if name == "." || name == ".." { continue }
            seen.append(name)
        }
        #expect(seen.count == 10_000, "nfs-ls listed \(seen.count) entries")
        #expect(Set(seen) == expected)
    }

    @Test func seesRenames() throws {
        let target = try LibnfsTarget()
        let local = target.sandbox.dir + "/payload"
        try Data("renamed content\n".utf8).write(to: URL(fileURLWithPath: local))
        mkdir(target.exportPath + "/dir", 0o777)
        chmod(target.exportPath + "/dir", 0o777)
        try Libnfs.check("nfs-cp", [local, target.url("/dir/before")])
        #expect(String(decoding: try Libnfs.check("nfs-ls", [target.url("/dir")]), as: UTF8.self).contains("before"))

        // Rename through NFS (another client), then through the host.
        let client = try target.client()
        let root = try client.rootHandle("/")
        let dir = try #require(try client.lookup(root, "dir").ok?.object)
        let renamed: NFS3RenameResult = try client.nfs(.rename, NFS3RenameArgs(from: NFS3DirOpArgs(directory: dir, name: "before"),
                                                                               to: NFS3DirOpArgs(directory: dir, name: "after")))
        #expect(renamed.status == .ok)
        var listing = String(decoding: try Libnfs.check("nfs-ls", [target.url("/dir")]), as: UTF8.self)
        #expect(listing.contains("after") && !listing.contains("before"))
        #expect(try Libnfs.check("nfs-cat", [target.url("/dir/after")]) == Data("renamed content\n".utf8))
        #expect(try Libnfs.run("nfs-cat", [target.url("/dir/before")]).status != 0)

        #expect(rename(target.exportPath + "/dir", target.exportPath + "/moved") == 0)
        listing = String(decoding: try Libnfs.check("nfs-ls", [target.url("")]), as: UTF8.self)
        #expect(listing.contains("moved") && !listing.contains(" dir"))
        #expect(try Libnfs.check("nfs-cat", [target.url("/moved/after")]) == Data("renamed content\n".utf8))
    }
}
