import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing
import XDR

/// Faults a file server meets in the field, against a real `vsnfs serve`
/// process: an export whose filesystem fills up, and clients that go away in
/// the middle of a WRITE. In each, nothing already written is lost and the
/// server goes on serving.
@Suite(.serialized) struct FaultTests {
    static let rootCredential = AuthSysParameters(machineName: Array("test".utf8), uid: 0, gid: 0).opaqueAuth

    /// A server on `path` (exported to everyone, root_squash), and our client on it.
    static func serve(_ path: String, _ sandbox: NFS3Sandbox) throws -> (ServerProcess, NFS3TestClient) {
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        let client = try NFS3TestClient(port: server.port)
        client.credential = rootCredential
        return (server, client)
    }

    /// An export on a 1 MiB tmpfs: WRITEs are answered with the bytes that fit (a short
    /// count, as write(2)), then NFS3ERR_NOSPC; the host file holds exactly the bytes
    /// acknowledged, another file is untouched, and once space is freed writes work again.
    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func fullExportAnswersNoSpaceAndLosesNothing() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("small")
        try #require(mount("vsnfs-test", path, "tmpfs", 0, "size=1m,mode=0777") == 0, "mount tmpfs: errno \(errno)")
        defer { umount2(path, Int32(MNT_DETACH)) }
        let keep = randomBytes(100_000)
        try keep.write(to: URL(fileURLWithPath: path + "/keep"))
        let (server, c) = try Self.serve(path, sandbox)
        defer { server.stop() }
        let root = try c.rootHandle("/")
        let big = try c.createdHandle(c.create(root, "big"))

        // 100,000-byte WRITEs do not divide the filesystem's pages: one of them is cut short.
        let chunk = Array(repeating: UInt8(0x5A), count: 100_000)
        var acknowledged: UInt64 = 0, shortCounts: [UInt32] = [], failure: NFS3Status?
        for _ in 0..<40 {   // 4 MB into 1 MiB
            let r = try c.write(big, offset: acknowledged, chunk, stable: .fileSync)
            guard let ok = r.ok else { failure = r.status; break }
            #expect(ok.count > 0 && ok.count <= UInt32(chunk.count))
            if ok.count < UInt32(chunk.count) { shortCounts.append(ok.count) }
            acknowledged += UInt64(ok.count)
        }
        #expect(failure == .nospc)
        #expect(shortCounts.count == 1, "short counts: \(shortCounts)")
        let onHost = try Data(contentsOf: URL(fileURLWithPath: path + "/big"))
        #expect(UInt64(onHost.count) == acknowledged)
        #expect(onHost.allSatisfy { $0 == 0x5A })
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/keep")) == keep)
        // CREATE and MKDIR of empty objects still fit; data does not.
        let more = try c.createdHandle(c.create(root, "more"))
        #expect(try c.write(more, Array("x".utf8)).status == .nospc)

        // Space freed by the host: the server closes its fds of the deleted file within
        // its one-second sweep (they would keep the blocks allocated), and takes writes again.
        #expect(unlink(path + "/big") == 0)
        var written = try c.write(more, Array("after".utf8))
        let deadline = Date().addingTimeInterval(5)
        while written.status == .nospc && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            written = try c.write(more, Array("after".utf8))
        }
        #expect(written.ok?.count == 5)
        #expect(try String(contentsOfFile: path + "/more", encoding: .utf8) == "after")
    }

    /// A client sends part of a WRITE record and goes away (within the record mark, the
    /// header, the data; after a whole fragment that is not the last, and within the
    /// next): nothing is written, the server logs the cut record, and other
    /// connections never notice.
    @Test func writeCutOffMidRecordChangesNothing() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        try Data("original".utf8).write(to: URL(fileURLWithPath: path + "/f"))
        chmod(path + "/f", 0o666)
        let (server, c) = try Self.serve(path, sandbox)
        defer { server.stop() }
        let file = try #require(try c.lookup(try c.rootHandle("/"), "f").ok?.object)

        let record = try Self.writeRecord(file, offset: 0, Array(repeating: UInt8(0x41), count: 256 * 1024), xid: 7)
        for cut in [4, 100, record.count / 2, record.count - 1] {
            try RawRPCClient(tcpPort: server.port).send(Array(record[..<cut]))   // closed as it goes out of scope
        }
        // The same call as two fragments: the client leaves after the whole first one
        // (not the last), and after the first and half the second.
        let body = Array(record[4...]), split = body.count / 3
        func mark(_ length: Int, last: Bool) -> [UInt8] {
            withUnsafeBytes(of: ((last ? RecordMarking.lastFragmentBit : 0) | UInt32(length)).bigEndian) { Array($0) }
        }
        let fragments = mark(split, last: false) + body[..<split] + mark(body.count - split, last: true) + body[split...]
        for cut in [4 + split, 4 + split + 4 + (body.count - split) / 2] {
            try RawRPCClient(tcpPort: server.port).send(Array(fragments[..<cut]))
        }
        try server.waitForLog("connection closed in the middle of a record", count: 6)
        #expect(try String(contentsOfFile: path + "/f", encoding: .utf8) == "original")
        #expect(try c.read(file, count: 100).ok?.data == ByteBuffer(string: "original"))
    }

    /// Clients send whole WRITEs and close without reading the replies: each WRITE is
    /// done (it reached the server whole), the replies to closed connections are
    /// dropped, and the server holds no descriptor for the connections afterwards.
    @Test func writesOfClientsThatLeaveAreDoneAndLeakNothing() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let (server, c) = try Self.serve(path, sandbox)
        defer { server.stop() }
        let file = try c.createdHandle(c.create(try c.rootHandle("/"), "f", mode: 0o666))
        let block = 64 * 1024, clients = 32
        #expect(try c.write(file, offset: 0, [0], stable: .unstable).ok != nil)   // the file is open now
        let descriptorsBefore = try Self.openDescriptors(server)

        var expected = Data(count: block * clients)
        for i in 0..<clients {
            let bytes = Array(repeating: UInt8(i + 1), count: block)
            expected.replaceSubrange(i * block..<(i + 1) * block, with: bytes)
            try RawRPCClient(tcpPort: server.port).send(try Self.writeRecord(file, offset: UInt64(i * block), bytes, xid: UInt32(i + 1)))
        }
        // The WRITEs run after their clients are gone: wait for the last bytes.
        let deadline = Date().addingTimeInterval(20)
        var onHost = Data()
        while Date() < deadline {
            onHost = try Data(contentsOf: URL(fileURLWithPath: path + "/f"))
            if onHost == expected { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(onHost == expected, "host file has \(onHost.count) of \(expected.count) bytes, or different ones")
        var descriptorsAfter = try Self.openDescriptors(server)
        while descriptorsAfter > descriptorsBefore && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            descriptorsAfter = try Self.openDescriptors(server)
        }
        #expect(descriptorsAfter <= descriptorsBefore, "descriptors: \(descriptorsBefore) before, \(descriptorsAfter) after")
        #expect(try c.read(file, offset: UInt64(block), count: 4).ok?.data == ByteBuffer(bytes: [2, 2, 2, 2]))
        #expect(!server.log.contains("error"), "\(server.log)")
    }

    /// A client that sends READs and never reads the replies: once its replies back up,
    /// the server stops reading its calls (back-pressure through the socket), instead of
    /// queueing replies in memory without bound. 400 READs of 1 MiB would be 400 MiB of
    /// queued replies; the server may hold the calls in flight (8 here), the reply
    /// watermark's worth (4 MiB) and the socket buffers'. Without the back-pressure it
    /// grew by the whole 400 MiB.
    @Test func aClientThatNeverReadsRepliesCannotGrowTheServer() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        try randomBytes(1 << 20).write(to: URL(fileURLWithPath: path + "/big"))
        let server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:0", "--max-calls-in-flight", "8"],
                                       stateDirectory: sandbox.statePath)
        defer { server.stop() }
        let c = try NFS3TestClient(port: server.port)
        c.credential = Self.rootCredential
        let file = try #require(try c.lookup(try c.rootHandle("/"), "big").ok?.object)
        #expect(try c.read(file, count: 1 << 20).ok?.count == 1 << 20)
        let before = try Self.residentKiB(server)

        var calls: [UInt8] = []
        for xid in 1...400 as ClosedRange<UInt32> {
            calls += Self.nfsCallRecord(.read, NFS3ReadArgs(file: file, offset: 0, count: 1 << 20), xid: xid)
        }
        let silent = try RawRPCClient(tcpPort: server.port)
        try silent.send(calls)   // about 60 KiB: the kernel takes it all, read or not
        var peak = before
        for _ in 0..<30 {
            Thread.sleep(forTimeInterval: 0.1)
            peak = max(peak, try Self.residentKiB(server))
        }
        #expect(peak - before < 100 * 1024, "resident memory grew from \(before / 1024) MiB to \(peak / 1024) MiB")
        // Other clients are served meanwhile.
        #expect(try c.read(file, offset: 4096, count: 4096).ok?.count == 4096)
    }

    static func residentKiB(_ server: ServerProcess) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    /// One whole record (record mark included) holding a FILE_SYNC WRITE call as root.
    static func writeRecord(_ file: NFS3FileHandle, offset: UInt64, _ bytes: [UInt8], xid: UInt32) throws -> [UInt8] {
        nfsCallRecord(.write, NFS3WriteArgs(file: file, offset: offset, count: UInt32(bytes.count), stable: .fileSync,
                                            data: ByteBuffer(bytes: bytes)), xid: xid)
    }

    /// One whole record holding an NFSv3 call as root (the product's own call encoder).
    static func nfsCallRecord<A: XDREncodable>(_ procedure: NFS3Procedure, _ args: A, xid: UInt32) -> [UInt8] {
        var arguments = ByteBuffer()
        args.encode(xdr: &arguments)
        return BlockingRPCClient.encodeCall(xid: xid, program: 100_003, version: 3, procedure: procedure.rawValue,
                                            credential: rootCredential, arguments: arguments)
    }

    static func openDescriptors(_ server: ServerProcess) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.process.processIdentifier)/fd").count
    }
}
