import CSupport
import Foundation
import Glibc
import NIOCore
import Testing
@testable import HostFS

@Suite struct HandleTests {
    @Test func sipHashMatchesReferenceVectors() {
        let key = (0..<16).map { UInt8($0) }
        let msg = (0..<15).map { UInt8($0) }
        // Vectors from the SipHash paper's reference implementation (vectors.h).
        #expect(hostfs_siphash24(key, msg, 0) == 0x726f_db47_dd0e_0e31)
        #expect(hostfs_siphash24(key, msg, 1) == 0x74f8_39c5_93dc_67fd)
        #expect(hostfs_siphash24(key, msg, 8) == 0x93f5_f579_9a93_2462)
        #expect(hostfs_siphash24(key, msg, 15) == 0xa129_ca61_49be_45e5)
    }

    @Test(arguments: bothModes) func handleRoundTrip(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostMkdir("d")
        box.hostFile("d/f", "hello")
        let fs = try box.fs(mode)
        #expect(fs.handleMode(exportID: 1) == mode)
        let rootH = try fs.rootHandle(exportID: 1)
        #expect(rootH.bytes.count <= 64)
        let d = try fs.lookup(rootH, n("d"), as: root)
        let f = try fs.lookup(d.handle, n("f"), as: root)
        #expect(f.handle.bytes.count <= 64)
        let decoded = try fs.decodeHandle(f.handle.bytes)
        #expect(decoded == f.handle)
        #expect(decoded.exportID == 1)
        #expect(try fs.getattr(decoded, as: root).fileid == box.ino("d/f"))
        #expect(try fs.getattr(decoded, as: root).fsid == 1)
        #expect(try fs.getattr(rootH, as: root).type == .directory)
        // A fresh instance (empty cache) resolves it too.
        let fs2 = try box.fs(mode)
        #expect(try fs2.getattr(try fs2.decodeHandle(f.handle.bytes), as: root).fileid == box.ino("d/f"))
    }

    @Test(arguments: bothModes) func handleSurvivesParentRenameAndRestart(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostMkdir("a")
        box.hostMkdir("a/b")
        box.hostFile("a/b/f", "data")
        let fileIno = box.ino("a/b/f"), dirIno = box.ino("a/b")
        var fileBytes: [UInt8] = []
        var dirBytes: [UInt8] = []
        do {
            let fs = try box.fs(mode)
            let r = try fs.rootHandle(exportID: 1)
            let a = try fs.lookup(r, n("a"), as: root)
            let b = try fs.lookup(a.handle, n("b"), as: root)
            let f = try fs.lookup(b.handle, n("f"), as: root)
            fileBytes = f.handle.bytes
            dirBytes = b.handle.bytes
            // Rename the parent's parent through the server...
            _ = try fs.rename(from: r, n("a"), to: r, n("c"), as: root)
            #expect(try fs.getattr(try fs.decodeHandle(fileBytes), as: root).fileid == fileIno)
            #expect(try fs.getattr(try fs.decodeHandle(dirBytes), as: root).fileid == dirIno)
        }
        // ...and the parent directory behind its back, then "restart".
        #expect(Glibc.rename(box.exportPath + "/c/b", box.exportPath + "/c/moved") == 0)
        let fs2 = try box.fs(mode)
        #expect(try fs2.getattr(try fs2.decodeHandle(fileBytes), as: root).fileid == fileIno)
        #expect(try fs2.getattr(try fs2.decodeHandle(dirBytes), as: root).fileid == dirIno)
        if mode == .inode { #expect(fs2.reconnectCount >= 1) }  // the index was stale: found by search
        let text = try fs2.read(try fs2.decodeHandle(fileBytes), offset: 0, count: 100, allocator: allocator, as: root)
        #expect(string(text.data) == "data")
        #expect(text.eof)
        // And once more after another restart, with the file itself moved to another directory.
        #expect(Glibc.rename(box.exportPath + "/c/moved/f", box.exportPath + "/c/g") == 0)
        let fs3 = try box.fs(mode)
        #expect(try fs3.getattr(try fs3.decodeHandle(fileBytes), as: root).fileid == fileIno)
        // One object, one handle: reached by its new name (or another hard link) it is the same.
        let c = try fs3.lookup(try fs3.rootHandle(exportID: 1), n("c"), as: root).handle
        #expect(try fs3.lookup(c, n("g"), as: root).handle.bytes == fileBytes)
        #expect(try fs3.lookup(c, n("moved"), as: root).handle.bytes == dirBytes)
        _ = try fs3.link(try fs3.decodeHandle(fileBytes), to: try fs3.rootHandle(exportID: 1), n("hard"), as: root)
        #expect(try fs3.lookup(try fs3.rootHandle(exportID: 1), n("hard"), as: root).handle.bytes == fileBytes)
    }

    @Test(arguments: bothModes) func removedObjectIsStale(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "x")
        box.hostFile("g", "y")
        box.hostMkdir("d")
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let f = try fs.lookup(r, n("f"), as: root).handle
        let g = try fs.lookup(r, n("g"), as: root).handle
        let d = try fs.lookup(r, n("d"), as: root).handle
        _ = try fs.remove(r, n("f"), as: root)
        _ = try fs.rmdir(r, n("d"), as: root)
        #expect(isError(.stale) { _ = try fs.getattr(f, as: root) })
        #expect(isError(.stale) { _ = try fs.getattr(d, as: root) })
        // Removed by the host while the server holds it cached.
        _ = try fs.getattr(g, as: root)
        #expect(Glibc.unlink(box.exportPath + "/g") == 0)
        #expect(isError(.stale) { _ = try fs.getattr(g, as: root) })
        // And after a restart.
        let fs2 = try box.fs(mode)
        #expect(isError(.stale) { _ = try fs2.getattr(try fs2.decodeHandle(f.bytes), as: root) })
        // A new file does not inherit the old handle.
        box.hostFile("f", "new")
        #expect(isError(.stale) { _ = try fs2.getattr(try fs2.decodeHandle(f.bytes), as: root) })
    }

    @Test(arguments: bothModes) func badHandlesAreRefused(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "x")
        let fs = try box.fs(mode)
        let good = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root).handle.bytes
        // Every single-bit flip.
        for i in 0..<good.count {
            for bit in 0..<8 {
                var b = good
                b[i] ^= UInt8(1 << bit)
                #expect(isError(.badHandle) { _ = try fs.decodeHandle(b) }, "byte \(i) bit \(bit)")
            }
        }
        // Truncated and extended.
        for k in 0..<good.count {
            #expect(isError(.badHandle) { _ = try fs.decodeHandle(good.prefix(k)) })
        }
        #expect(isError(.badHandle) { _ = try fs.decodeHandle(good + [0]) })
        #expect(isError(.badHandle) { _ = try fs.decodeHandle(good + [UInt8](repeating: 0, count: 64 - good.count)) })
        // Random bytes.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let len = Int.random(in: 0...64, using: &rng)
            let b = (0..<len).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(isError(.badHandle) { _ = try fs.decodeHandle(b) })
        }
        // Same key (same state directory), an export this server does not serve (a reload
        // removed it): the handle is genuine, its object gone, so stale, not bad.
        let box2 = Sandbox()
        let other = try HostFileSystem(exports: [ExportRoot(id: 2, hostPath: box2.exportPath)],
                                       options: HostFSOptions(stateDirectory: box.statePath, handleMode: mode))
        let orphan = try other.decodeHandle(good)
        #expect(isError(.stale) { _ = try other.getattr(orphan, as: root) })
        // Another server's key: refused.
        let stranger = try Sandbox().fs(mode)
        #expect(isError(.badHandle) { _ = try stranger.decodeHandle(good) })
    }

    /// Descriptors of this process whose path is `dir` or below it.
    func descriptors(under dir: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.compactMap { Int32($0) }.filter { fd in
            procPath(fd).map { Export.path($0, isWithin: Array(dir.utf8)) } ?? false
        }.count
    }

    /// A reload that removes an export lets go of every descriptor under it (so the
    /// host can unmount it), its handles turn stale, and they work again once the
    /// export is back under the same id.
    @Test(arguments: bothModes) func exportRemovedByReloadLetsGoOfItsFiles(mode: HandleMode) throws {
        let box = Sandbox(), other = Sandbox()
        other.hostFile("f", "x")
        let both = [ExportRoot(id: 1, hostPath: box.exportPath), ExportRoot(id: 2, hostPath: other.exportPath)]
        let fs = try HostFileSystem(exports: both, options: HostFSOptions(stateDirectory: box.statePath, handleMode: mode))
        let f = try fs.lookup(try fs.rootHandle(exportID: 2), n("f"), as: root).handle
        #expect(try fs.getattr(f, as: root).size == 1)
        #expect(descriptors(under: other.exportPath) >= 2)   // the export's root and the cached file

        try fs.setExports(ExportRoot.table([both[0]]))
        #expect(descriptors(under: other.exportPath) == 0)
        #expect(isError(.stale) { _ = try fs.getattr(f, as: root) })

        try fs.setExports(ExportRoot.table(both))
        #expect(try fs.getattr(f, as: root).size == 1)
    }

    @Test(arguments: bothModes) func handleOfObjectMovedOutOfExportIsStale(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostMkdir("d")
        box.hostFile("d/f", "x")
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let d = try fs.lookup(r, n("d"), as: root).handle
        let f = try fs.lookup(d, n("f"), as: root).handle
        #expect(try fs.getattr(f, as: root).size == 1)
        #expect(Glibc.rename(box.exportPath + "/d", box.dir + "/outside") == 0)
        // Cached by this instance, or resolved by a new one: stale either way.
        #expect(isError(.stale) { _ = try fs.getattr(d, as: root) })
        #expect(isError(.stale) { _ = try fs.getattr(f, as: root) })
        let fs2 = try box.fs(mode)
        #expect(isError(.stale) { _ = try fs2.getattr(try fs2.decodeHandle(d.bytes), as: root) })
        #expect(isError(.stale) { _ = try fs2.getattr(try fs2.decodeHandle(f.bytes), as: root) })
    }
}

@Suite struct KernelModeTests {
    /// Root gets kernel handles; an unprivileged server (run this suite with
    /// `setpriv --reuid=65534 --regid=65534 --clear-groups`) gets inode handles, no identity
    /// switching, and ACCESS answers for its own user.
    @Test func automaticModeFollowsPrivilege() throws {
        let box = Sandbox()
        let fs = try HostFileSystem(exports: [ExportRoot(id: 7, hostPath: box.exportPath)],
                                    options: HostFSOptions(stateDirectory: box.statePath))
        if geteuid() == 0 {
            #expect(fs.handleMode(exportID: 7) == .kernel)
            #expect(try fs.rootHandle(exportID: 7).bytes[1] == 1)
        } else {
            #expect(fs.handleMode(exportID: 7) == .inode)
            #expect(try fs.rootHandle(exportID: 7).bytes[1] == 2)
            box.hostFile("locked", "x", mode: 0o000)
            chmod(box.exportPath + "/locked", 0)
            let h = try fs.lookup(try fs.rootHandle(exportID: 7), n("locked"), as: Credentials(uid: 0, gid: 0))
            #expect(try fs.access(h.handle, requested: .all, as: Credentials(uid: 0, gid: 0)).granted.isEmpty)
            #expect(isError(.errno(EACCES)) { _ = try fs.read(h.handle, offset: 0, count: 1, allocator: allocator, as: .root) })
        }
    }

    /// After a restart with a cold dentry cache, open_by_handle_at returns a file's dentry
    /// disconnected from the tree ("/" in /proc/self/fd); the parent hint in the handle must
    /// find it again, and a file moved elsewhere is found by searching the export.
    @Test func disconnectedFileIsReconnected() throws {
        guard geteuid() == 0, access("/proc/sys/vm/drop_caches", W_OK) == 0 else { return }
        let box = Sandbox()
        box.hostMkdir("d")
        box.hostMkdir("d/e")
        box.hostFile("d/e/f", "one")
        box.hostFile("d/e/g", "two")
        var f: [UInt8] = []
        var g: [UInt8] = []
        do {
            let fs = try box.fs(.kernel)
            let e = try fs.directoryHandle(exportID: 1, relativePath: "d/e", as: root)
            f = try fs.lookup(e, n("f"), as: root).handle.bytes
            g = try fs.lookup(e, n("g"), as: root).handle.bytes
        }
        #expect(Glibc.rename(box.exportPath + "/d/e/g", box.exportPath + "/d/g") == 0)
        sync()
        // Drop dentries and inodes (not page cache) so the next lookups start cold.
        let dc = open("/proc/sys/vm/drop_caches", O_WRONLY)
        _ = Glibc.write(dc, "2", 1)
        close(dc)
        let fs = try box.fs(.kernel)
        let rf = try fs.read(try fs.decodeHandle(f), offset: 0, count: 10, allocator: allocator, as: root)
        #expect(string(rf.data) == "one")
        let rg = try fs.read(try fs.decodeHandle(g), offset: 0, count: 10, allocator: allocator, as: root)
        #expect(string(rg.data) == "two")
        #expect(fs.reconnectCount >= 1)
    }
}

@Suite struct InodeIndexTests {
    @Test func indexPersistsAndCompacts() throws {
        let box = Sandbox()
        Glibc.mkdir(box.statePath, 0o700)
        let path = box.statePath + "/index-test"
        do {
            let idx = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
            idx.record(ino: 10, parent: 2, name: n("a"))
            idx.record(ino: 11, parent: 10, name: n("b"))
            idx.record(ino: 12, parent: 11, name: n("c"))
            idx.record(ino: 13, parent: 2, name: n("gone"))
            idx.remove(ino: 13)
            // Many changes of one entry: the log compacts itself on the way.
            for i in 0..<70_000 { idx.record(ino: 14, parent: 2, name: n("n\(i)")) }
            #expect(idx.chain(to: 12)!.map(\.name) == [n("a"), n("b"), n("c")])
        }
        let st = try #require(try? InodeIndex.readAll(path))
        #expect(st.count < 1_000_000)
        let again = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
        #expect(again.chain(to: 12)!.map(\.ino) == [10, 11, 12])
        #expect(again.chain(to: 13) == nil)
        #expect(again.chain(to: 14)!.map(\.name) == [n("n69999")])
        // An index written for another export root is discarded.
        let other = try InodeIndex(path: path, rootDev: 1, rootIno: 3)
        #expect(other.count == 0)
    }

    /// Loading stops at a byte that is not a record's op: what follows it is not read
    /// as records (here it would read as "delete inode 10").
    @Test func indexLoadingStopsAtAByteThatIsNotARecord() throws {
        let box = Sandbox()
        Glibc.mkdir(box.statePath, 0o700)
        let path = box.statePath + "/index-test"
        do {
            let idx = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
            idx.record(ino: 10, parent: 2, name: n("kept"))
        }
        var junk: [UInt8] = [9]                                   // no such op
        junk += withUnsafeBytes(of: UInt64(10).bigEndian, Array.init)
        junk += [UInt8](repeating: 0, count: 10)                  // parent, name length 0
        let f = open(path, O_WRONLY | O_APPEND)
        #expect(write(f, junk, junk.count) == junk.count)
        close(f)
        let again = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
        #expect(again.chain(to: 10)?.map(\.name) == [n("kept")])
    }

    /// The state directory's filesystem fills up (often the export's own disk): a record
    /// cut short is cut off again, so the records written before and after load back.
    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func indexSurvivesAFullStateDirectory() throws {
        let box = Sandbox()
        Glibc.mkdir(box.statePath, 0o700)
        try #require(Glibc.mount("vsnfs-test", box.statePath, "tmpfs", 0, "size=64k,mode=0700") == 0, "mount: errno \(errno)")
        defer { umount2(box.statePath, Int32(MNT_DETACH)) }
        let path = box.statePath + "/index-test"
        let idx = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
        // Fill the filesystem; the index keeps the one page it has (its 24-byte header).
        let filler = open(box.statePath + "/filler", O_CREAT | O_WRONLY, 0o600)
        var page = [UInt8](repeating: 1, count: 4096)
        while write(filler, &page, page.count) > 0 {}
        close(filler)
        // Records of 19 + 200 bytes: 18 fit in the page, the 19th is cut short.
        let name = { (i: UInt64) in n(String(repeating: "x", count: 196) + String(format: "%04d", i)) }
        for i in 1...30 as ClosedRange<UInt64> { idx.record(ino: 100 + i, parent: 2, name: name(i)) }
        #expect(unlink(box.statePath + "/filler") == 0)
        for i in 31...40 as ClosedRange<UInt64> { idx.record(ino: 100 + i, parent: 2, name: name(i)) }

        let again = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
        for i in 1...40 as ClosedRange<UInt64> {
            let loaded = again.chain(to: 100 + i)?.map(\.name)
            if i <= 18 || i > 30 {
                #expect(loaded == [name(i)], "record \(i)")
            } else {
                #expect(loaded == nil, "record \(i) was never written whole")
            }
        }
        #expect(again.count == 28)
    }
}

@Suite struct StateDirectoryTests {
    @Test func keyIsPrivateAndStable() throws {
        let box = Sandbox()
        let fs = try box.fs(.inode)
        var st = stat()
        #expect(lstat(box.statePath + "/handle-key", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600 && st.st_size == 16)
        #expect(lstat(box.statePath, &st) == 0 && st.st_mode & 0o777 == 0o700)
        let h = try fs.rootHandle(exportID: 1)
        #expect(try box.fs(.inode).rootHandle(exportID: 1) == h)
        // A damaged key is an error a person can act on, not a new key.
        let fd = open(box.statePath + "/handle-key", O_WRONLY | O_TRUNC)
        close(fd)
        #expect(throws: FSError.self) { _ = try box.fs(.inode) }
    }
}
