import Glibc
import NIOCore
import Testing
@testable import HostFS

/// The event-loop fast paths (`readWithoutBlocking`, `getattrWithoutBlocking`):
/// the same answers as the thread-pool methods when they answer, nil when the
/// object is not in the open-file cache, and the same permission check.
@Suite struct WithoutBlockingTests {
    @Test(arguments: bothModes) func sameAnswersAsTheOrdinaryMethods(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "hello, page cache")
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let f = try fs.lookup(r, n("f"), as: root).handle

        var fast = allocator.buffer(capacity: 64)
        let got = try #require(try fs.readWithoutBlocking(f, offset: 7, count: 100, appendingTo: &fast, as: root))
        var slow = allocator.buffer(capacity: 64)
        let want = try fs.read(f, offset: 7, count: 100, appendingTo: &slow, as: root)
        #expect(got.count == want.count && got.eof == want.eof && got.eof)
        #expect(string(fast) == "page cache" && string(slow) == "page cache")
        #expect(got.attributes.fileid == want.attributes.fileid && got.attributes.size == want.attributes.size)

        var middle = allocator.buffer(capacity: 8)
        let part = try #require(try fs.readWithoutBlocking(f, offset: 0, count: 5, appendingTo: &middle, as: root))
        #expect(part.count == 5 && !part.eof && string(middle) == "hello")

        let attributes = try #require(try fs.getattrWithoutBlocking(f))
        #expect(attributes == (try fs.getattr(f, as: root)))
    }

    @Test func notCachedMeansNil() throws {
        let box = Sandbox()
        box.hostFile("f", "data")
        let first = try box.fs(kernelIfRoot)
        let h = try first.lookup(try first.rootHandle(exportID: 1), n("f"), as: root).handle
        // A second server (same state directory, as after a restart) has not opened the object yet.
        let fs = try box.fs(kernelIfRoot)
        var b = allocator.buffer(capacity: 8)
        #expect(try fs.readWithoutBlocking(h, offset: 0, count: 4, appendingTo: &b, as: root) == nil)
        #expect(b.readableBytes == 0)
        #expect(try fs.getattrWithoutBlocking(h) == nil)
        // The ordinary path opens it; after that the fast path answers.
        _ = try fs.getattr(h, as: root)
        #expect(try fs.getattrWithoutBlocking(h) != nil)
    }

    @Test func removedObjectFallsBackToTheOrdinaryPath() throws {
        let box = Sandbox()
        box.hostFile("f", "data")
        let fs = try box.fs(kernelIfRoot)
        let r = try fs.rootHandle(exportID: 1)
        let h = try fs.lookup(r, n("f"), as: root).handle
        #expect(unlink(box.exportPath + "/f") == 0)
        #expect(try fs.getattrWithoutBlocking(h) == nil)
        var b = allocator.buffer(capacity: 8)
        #expect(try fs.readWithoutBlocking(h, offset: 0, count: 4, appendingTo: &b, as: root) == nil)
        #expect(isError(.stale) { _ = try fs.getattr(h, as: root) })
    }

    @Test func permissionIsChecked() throws {
        guard geteuid() == 0 else { return }  // identities switch only as root
        let box = Sandbox()
        box.hostFile("private", "secret", mode: 0o600)
        let fs = try box.fs(kernelIfRoot)
        let h = try fs.lookup(try fs.rootHandle(exportID: 1), n("private"), as: root).handle
        let nobody = Credentials(uid: 65534, gid: 65534, groups: [])
        var b = allocator.buffer(capacity: 8)
        #expect(isError(.errno(EACCES)) { _ = try fs.readWithoutBlocking(h, offset: 0, count: 6, appendingTo: &b, as: nobody) })
        #expect(isError(.errno(EACCES)) { _ = try fs.read(h, offset: 0, count: 6, appendingTo: &b, as: nobody) })
    }
}
