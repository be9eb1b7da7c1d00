import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// Clients that go away in the middle of a reply, or of a directory listing.
/// (A client cut off in the middle of a record: `writeCutOffMidRecordChangesNothing`.)
extension FaultTests {
    /// A client asks for 64 READs of 1 MiB, reads 100 bytes of the first reply and
    /// stops reading. Meanwhile another client reads the whole file, correct, within
    /// seconds; then the first closes with replies unread, and the server lets go of
    /// its connection (descriptors back to where they were) and goes on serving.
    @Test func aClientThatStopsReadingALargeReplyAndClosesBlocksNobody() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let content = randomBytes(1 << 20)
        try content.write(to: URL(fileURLWithPath: path + "/big"))
        let (server, c) = try Self.serve(path, sandbox)
        defer { server.stop() }
        let file = try #require(try c.lookup(try c.rootHandle("/"), "big").ok?.object)
        #expect(try c.read(file, count: 4).ok?.count == 4)   // the file is open now
        let descriptorsBefore = try Self.openDescriptors(server)

        var stuck: RawRPCClient? = try RawRPCClient(tcpPort: server.port)
        var calls: [UInt8] = []
        for xid in 1...64 as ClosedRange<UInt32> {
            calls += Self.nfsCallRecord(.read, NFS3ReadArgs(file: file, offset: 0, count: 1 << 20), xid: xid)
        }
        try stuck!.send(calls)
        var firstBytes = [UInt8](repeating: 0, count: 100)
        #expect(recv(stuck!.fd, &firstBytes, 100, Int32(MSG_WAITALL)) == 100)

        let started = Date()
        var read = Data()
        while read.count < content.count {
            let r = try #require(try c.read(file, offset: UInt64(read.count), count: 256 * 1024).ok)
            read.append(contentsOf: r.data.readableBytesView)
        }
        let seconds = Date().timeIntervalSince(started)
        #expect(read == content)
        #expect(seconds < 10, "another client's 1 MiB took \(seconds) s while a reply was stuck")

        stuck = nil   // closes with replies unread
        let deadline = Date().addingTimeInterval(10)
        var descriptorsAfter = try Self.openDescriptors(server)
        while descriptorsAfter > descriptorsBefore && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            descriptorsAfter = try Self.openDescriptors(server)
        }
        #expect(descriptorsAfter <= descriptorsBefore, "descriptors: \(descriptorsBefore) before, \(descriptorsAfter) after")
        #expect(try c.read(file, offset: 12345, count: 10).ok?.data == ByteBuffer(bytes: content[12345..<12355]))
    }

    /// READDIR and READDIRPLUS of a 3,000-entry directory in small pages: a client reads
    /// a few pages and disconnects; another connection goes on from the last cookie with
    /// the cookie verifier, and then a third after the server is SIGKILLed and started
    /// again. The pages together name every entry exactly once. A cookie verifier that
    /// is not the directory's answers NFS3ERR_BAD_COOKIE.
    @Test(arguments: [false, true]) func aListingResumesOnAnotherConnectionAndAfterARestart(plus: Bool) throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        mkdir(path + "/big", 0o755)
        let names = Set((0..<3_000).map { "entry-\($0)-" + String(repeating: "n", count: $0 % 40) })
        for name in names {
            let fd = creat(path + "/big/" + name, 0o644)
            try #require(fd >= 0, "creat \(name): errno \(errno)")
            close(fd)
        }
        var (server, c) = try Self.serve(path, sandbox)
        let port = server.port
        let dir = try #require(try c.lookup(try c.rootHandle("/"), "big").ok?.object)

        var seen: [String] = []
        var cookie: UInt64 = 0, verifier = NFS3Verifier.zero, eof = false, pages = 0
        func page(_ c: NFS3TestClient) throws {
            if plus {
                let r: NFS3ReaddirPlusResult = try c.nfs(.readdirplus, NFS3ReaddirPlusArgs(
                    directory: dir, cookie: cookie, cookieVerifier: verifier, dirCount: 1024, maxCount: 4096))
                let ok = try #require(r.ok, "READDIRPLUS at cookie \(cookie): \(r.status)")
                for e in ok.entries {
                    seen.append(e.name.string)
                    if e.name.string != "." && e.name.string != ".." { #expect(e.handle != nil && e.attributes != .none) }
                }
                cookie = ok.entries.last?.cookie ?? cookie
                verifier = ok.cookieVerifier
                eof = ok.eof
            } else {
                let r: NFS3ReaddirResult = try c.nfs(.readdir, NFS3ReaddirArgs(
                    directory: dir, cookie: cookie, cookieVerifier: verifier, count: 2048))
                let ok = try #require(r.ok, "READDIR at cookie \(cookie): \(r.status)")
                seen += ok.entries.map(\.name.string)
                cookie = ok.entries.last?.cookie ?? cookie
                verifier = ok.cookieVerifier
                eof = ok.eof
            }
            pages += 1
        }
        for _ in 0..<5 { try page(c) }
        #expect(!eof)
        c = NFS3TestClient(try RawRPCClient(tcpPort: port))   // the first connection closes
        c.credential = Self.rootCredential
        for _ in 0..<5 { try page(c) }
        #expect(!eof)
        // A verifier that is not this directory's.
        let bad: NFS3ReaddirResult = try c.nfs(.readdir, NFS3ReaddirArgs(
            directory: dir, cookie: cookie, cookieVerifier: NFS3Verifier(verifier.value ^ 1), count: 2048))
        #expect(bad.status == .badCookie)

        server.kill()
        server = try ServerProcess([path, "--listen", "tcp:127.0.0.1:\(port)"], stateDirectory: sandbox.statePath)
        defer { server.stop() }
        c = NFS3TestClient(try RawRPCClient(tcpPort: port))
        c.credential = Self.rootCredential
        while !eof && pages < 10_000 { try page(c) }
        #expect(eof)
        let entries = seen.filter { $0 != "." && $0 != ".." }
        #expect(entries.count == Set(entries).count, "\(entries.count - Set(entries).count) entries listed twice")
        #expect(Set(entries) == names, "lost: \(names.subtracting(entries).count), unexpected: \(Set(entries).subtracting(names).count)")
        print("\(plus ? "READDIRPLUS" : "READDIR") resumed across 2 disconnects and a SIGKILL: \(pages) pages, "
              + "\(entries.count) of \(names.count) entries, none twice, none lost")
    }
}
