import CSupport
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

    @Test(arguments: bothModes) func objectMovedOutOfTheExportFallsBack(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostMkdir("d")
        box.hostFile("d/f", "data")
        let fs = try box.fs(mode)
        let d = try fs.lookup(try fs.rootHandle(exportID: 1), n("d"), as: root).handle
        let f = try fs.lookup(d, n("f"), as: root).handle
        #expect(try fs.getattrWithoutBlocking(f) != nil)
        // A sibling whose name starts with the export's is still outside it.
        #expect(Glibc.rename(box.exportPath + "/d", box.exportPath + "-sibling") == 0)
        #expect(try fs.getattrWithoutBlocking(f) == nil)
        #expect(try fs.getattrWithoutBlocking(d) == nil)
        var b = allocator.buffer(capacity: 8)
        #expect(try fs.readWithoutBlocking(f, offset: 0, count: 4, appendingTo: &b, as: root) == nil)
        #expect(b.readableBytes == 0)
        #expect(isError(.stale) { _ = try fs.getattr(f, as: root) })
    }

    @Test func pathContainment() {
        let root: [UInt8] = Array("/srv/share".utf8)
        func within(_ p: String, _ r: [UInt8] = root) -> Bool { Export.path(Array(p.utf8), isWithin: r) }
        #expect(within("/srv/share"))
        #expect(within("/srv/share/a"))
        #expect(within("/srv/share/a/b"))
        #expect(!within("/srv/shared"))
        #expect(!within("/srv/share-x/a"))
        #expect(!within("/srv"))
        #expect(!within("/"))
        #expect(!within(""))
        #expect(within("/anything", [0x2F]))
        #expect(within("/", [0x2F]))
        #expect(!within("anon_inode:[x]", [0x2F]))
    }

    @Test func procReadlinkMatchesReadlink() throws {
        let box = Sandbox()
        box.hostFile("f", "x")
        let fd = open(box.exportPath + "/f", O_PATH | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        let high = fcntl(fd, F_DUPFD_CLOEXEC, 1000)
        #expect(high >= 1000)
        defer { close(high) }
        for x in [fd, high] {
            var want = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/fd/\(x)", &want, 4096)
            #expect(n > 0)
            #expect(procPath(x) == want[0..<n].map { UInt8(bitPattern: $0) })
        }
        #expect(procPath(-1) == nil)
        #expect(procPath(999_999) == nil)
    }

    @Test(.enabled(if: geteuid() == 0, "identities switch only as root")) func permissionIsChecked() throws {
        let box = Sandbox()
        box.hostFile("private", "secret", mode: 0o600)
        let fs = try box.fs(kernelIfRoot)
        let h = try fs.lookup(try fs.rootHandle(exportID: 1), n("private"), as: root).handle
        let nobody = Credentials(uid: 65534, gid: 65534, groups: [])
        var b = allocator.buffer(capacity: 8)
        #expect(isError(.errno(EACCES)) { _ = try fs.readWithoutBlocking(h, offset: 0, count: 6, appendingTo: &b, as: nobody) })
        #expect(isError(.errno(EACCES)) { _ = try fs.read(h, offset: 0, count: 6, appendingTo: &b, as: nobody) })
    }

    // MARK: LOOKUP

    /// The handle, attributes and directory attributes of an inline LOOKUP, or nil.
    private func found(_ r: LookupWithoutBlocking?) -> NodeResult? {
        if case .found(let node)? = r { return node }
        return nil
    }

    @Test(.enabled(if: geteuid() == 0, "kernel handles need CAP_DAC_READ_SEARCH")) func lookupGivesTheOrdinaryAnswerOnceCached() throws {
        let box = Sandbox()
        box.hostFile("f", "data")
        box.hostMkdir("d")
        let fs = try box.fs(.kernel)
        let r = try fs.rootHandle(exportID: 1)
        for name in ["f", "d"] {
            let want = try fs.lookup(r, n(name), as: root)  // opens the root, records the index
            let got = try #require(found(try fs.lookupWithoutBlocking(r, n(name), as: root)))
            #expect(got.handle == want.handle)
            #expect(got.attributes == want.attributes)
            #expect(got.directory.after == want.directory.after)
        }
        // A name never looked up has no dentry, not even a negative one: the ordinary path answers.
        #expect(try fs.lookupWithoutBlocking(r, n("never-seen"), as: root) == nil)
        #expect(isError(.errno(ENOENT)) { _ = try fs.lookup(r, n("never-seen"), as: root) })
        // Now the negative dentry is cached: "no such name", with the directory's attributes.
        guard case .absent(let dir)? = try fs.lookupWithoutBlocking(r, n("never-seen"), as: root) else {
            Issue.record("a cached negative dentry should be answered inline")
            return
        }
        #expect(dir == (try fs.getattr(r, as: root)))
        // "." and ".." and bad names always go to the ordinary path.
        #expect(try fs.lookupWithoutBlocking(r, n("."), as: root) == nil)
        #expect(try fs.lookupWithoutBlocking(r, n(".."), as: root) == nil)
        #expect(throws: FSError.self) { _ = try fs.lookupWithoutBlocking(r, n("a/b"), as: root) }
    }

    @Test func lookupOfAnUncachedDirectoryOrInodeHandlesFallsBack() throws {
        let box = Sandbox()
        box.hostMkdir("d")
        box.hostFile("d/f", "data")
        let first = try box.fs(kernelIfRoot)
        let d = try first.lookup(try first.rootHandle(exportID: 1), n("d"), as: root).handle
        _ = try first.lookup(d, n("f"), as: root)
        // A restarted server has not opened the directory yet.
        let fs = try box.fs(kernelIfRoot)
        #expect(try fs.lookupWithoutBlocking(d, n("f"), as: root) == nil)
        // Inode handles (unprivileged servers) always take the ordinary path.
        let inodeBox = Sandbox()
        inodeBox.hostFile("f", "data")
        let ifs = try inodeBox.fs(.inode)
        let ir = try ifs.rootHandle(exportID: 1)
        _ = try ifs.lookup(ir, n("f"), as: root)
        #expect(try ifs.lookupWithoutBlocking(ir, n("f"), as: root) == nil)
    }

    @Test(.enabled(if: geteuid() == 0, "needs root")) func lookupOfASymlinkReturnsTheLinkItself() throws {
        let box = Sandbox()
        box.hostFile("target", "data")
        #expect(symlink("target", box.exportPath + "/link") == 0)
        #expect(symlink("/etc", box.exportPath + "/escape") == 0)
        let fs = try box.fs(.kernel)
        let r = try fs.rootHandle(exportID: 1)
        for name in ["link", "escape"] {
            let want = try fs.lookup(r, n(name), as: root)
            let got = try #require(found(try fs.lookupWithoutBlocking(r, n(name), as: root)))
            #expect(got.attributes.type == .symlink && want.attributes.type == .symlink)
            #expect(got.handle == want.handle)
            #expect(got.attributes.fileid == UInt64(box.ino(name)))
        }
    }

    @Test(.enabled(if: geteuid() == 0, "identities switch only as root")) func lookupChecksSearchPermissionAsTheCaller() throws {
        let box = Sandbox()
        box.hostMkdir("private")
        box.hostFile("private/f", "secret")
        #expect(chown(box.exportPath + "/private", 1000, 1234) == 0)
        #expect(chmod(box.exportPath + "/private", 0o710) == 0)  // owner: search; group 1234: search; others: none
        let fs = try box.fs(.kernel)
        let r = try fs.rootHandle(exportID: 1)
        let dir = try fs.lookup(r, n("private"), as: root).handle
        _ = try fs.lookup(dir, n("f"), as: root)  // dentry cached, index recorded, directory in the open-file cache
        _ = try? fs.lookup(dir, n("missing"), as: .init(uid: 1000, gid: 1000, groups: []))  // a negative dentry too

        let squashedRoot = Credentials(uid: 65534, gid: 65534, groups: [])
        let stranger = Credentials(uid: 1001, gid: 1001, groups: [4, 24])
        for cred in [squashedRoot, stranger] {
            // Denied: never answered inline (the RCU walk gives EAGAIN, or the ordinary path's error).
            for name in ["f", "missing"] {
                let fast = try? fs.lookupWithoutBlocking(dir, n(name), as: cred)
                #expect(fast == nil, "uid \(cred.uid) looked up \(name) inline")
                #expect(isError(.errno(EACCES)) { _ = try fs.lookup(dir, n(name), as: cred) })
            }
        }
        // Allowed as the owner and through a supplementary group, as the ordinary path allows.
        let owner = Credentials(uid: 1000, gid: 1000, groups: [])
        let member = Credentials(uid: 1002, gid: 1002, groups: [7, 1234])
        for cred in [owner, member] {
            let want = try fs.lookup(dir, n("f"), as: cred)
            let got = try #require(found(try fs.lookupWithoutBlocking(dir, n("f"), as: cred)))
            #expect(got.handle == want.handle)
            guard case .absent? = try fs.lookupWithoutBlocking(dir, n("missing"), as: cred) else {
                Issue.record("uid \(cred.uid): a cached negative dentry should be answered inline")
                continue
            }
        }
        // The event loop's identity is the server's again afterwards.
        #expect(hostfs_thread_fsuid() == 0)
    }

    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func lookupOfAMountPointFallsBack() throws {
        let box = Sandbox()
        box.hostMkdir("mnt")
        let mnt = box.exportPath + "/mnt"
        guard Glibc.mount("vsnfs-test", mnt, "tmpfs", 0, "size=1m") == 0 else { return }
        defer { umount2(mnt, Int32(MNT_DETACH)) }
        let fs = try box.fs(.kernel)
        let r = try fs.rootHandle(exportID: 1)
        #expect(isError(.otherFilesystem) { _ = try fs.lookup(r, n("mnt"), as: root) })
        // The dentry is cached now, and the directory open: still the ordinary path's answer.
        #expect(try fs.lookupWithoutBlocking(r, n("mnt"), as: root) == nil)
    }

    /// A sandbox whose export directory is a fresh tmpfs (memory-backed data).
    private func tmpfsSandbox() -> Sandbox? {
        let box = Sandbox()
        guard Glibc.mount("vsnfs-test", box.exportPath, "tmpfs", 0, "size=4m,mode=0755") == 0 else {
            Issue.record("mount tmpfs: errno \(errno)")
            return nil
        }
        return box
    }

    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func writeOnTmpfsMatchesTheOrdinaryWrite() throws {
        guard let box = tmpfsSandbox() else { return }
        defer { umount2(box.exportPath, Int32(MNT_DETACH)) }
        box.hostFile("f", "0123456789")
        let fs = try box.fs(.kernel)
        #expect(fs.servesMemoryBackedExport)
        let f = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root).handle
        var data = allocator.buffer(capacity: 8)
        data.writeString("abcd")
        let fast = try #require(try fs.writeWithoutBlocking(f, offset: 8, data: data, stability: .fileSync, as: root))
        #expect(fast.count == 4 && fast.committed == .fileSync && fast.verifier == fs.writeVerifier)
        #expect(fast.wcc.before?.size == 10 && fast.wcc.after?.size == 12)
        var back = allocator.buffer(capacity: 16)
        _ = try fs.read(f, offset: 0, count: 16, appendingTo: &back, as: root)
        #expect(string(back) == "01234567abcd")
        // The ordinary write of the same bytes gives the same answer.
        let slow = try fs.write(f, offset: 8, data: data, stability: .fileSync, as: root)
        #expect(slow.count == fast.count && slow.committed == fast.committed && slow.wcc.after?.size == 12)
        // Reads on tmpfs answer inline too (no RWF_NOWAIT needed there).
        var inline = allocator.buffer(capacity: 16)
        let r = try #require(try fs.readWithoutBlocking(f, offset: 8, count: 10, appendingTo: &inline, as: root))
        #expect(r.count == 4 && r.eof && string(inline) == "abcd")
    }

    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func writeOnTmpfsChecksPermissionAsTheCaller() throws {
        guard let box = tmpfsSandbox() else { return }
        defer { umount2(box.exportPath, Int32(MNT_DETACH)) }
        box.hostFile("ro", "data", mode: 0o644)   // owned by root, not writable by others
        let fs = try box.fs(.kernel)
        let h = try fs.lookup(try fs.rootHandle(exportID: 1), n("ro"), as: root).handle
        var data = allocator.buffer(capacity: 4)
        data.writeString("XXXX")
        let nobody = Credentials(uid: 65534, gid: 65534, groups: [])
        #expect(isError(.errno(EACCES)) { _ = try fs.writeWithoutBlocking(h, offset: 0, data: data, stability: .unstable, as: nobody) })
        var back = allocator.buffer(capacity: 8)
        _ = try fs.read(h, offset: 0, count: 8, appendingTo: &back, as: root)
        #expect(string(back) == "data")
        #expect(hostfs_thread_fsuid() == 0)
    }

    @Test func writeOffTmpfsOrUncachedGoesToThePool() throws {
        let box = Sandbox()   // under /tmp: a disk filesystem on the build machines
        box.hostFile("f", "data")
        var data = allocator.buffer(capacity: 4)
        data.writeString("XXXX")
        let first = try box.fs(kernelIfRoot)
        let h = try first.lookup(try first.rootHandle(exportID: 1), n("f"), as: root).handle
        let dirFD = open(box.exportPath, O_RDONLY | O_DIRECTORY)
        let onTmpfs = HostFS.isTmpfs(dirFD)
        close(dirFD)
        #expect(first.servesMemoryBackedExport == onTmpfs)
        if !onTmpfs {
            #expect(try first.writeWithoutBlocking(h, offset: 0, data: data, stability: .unstable, as: root) == nil)
        }
        // Not in the open-file cache (a second server, as after a restart): nil on any filesystem.
        let fs = try box.fs(kernelIfRoot)
        #expect(try fs.writeWithoutBlocking(h, offset: 0, data: data, stability: .unstable, as: root) == nil)
        var back = allocator.buffer(capacity: 8)
        _ = try fs.read(h, offset: 0, count: 8, appendingTo: &back, as: root)
        #expect(string(back) == (onTmpfs ? "XXXX" : "data"))
    }
}
