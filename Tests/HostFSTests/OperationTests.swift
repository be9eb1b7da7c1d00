import CSupport
import Glibc
import NIOCore
import NIOConcurrencyHelpers
import Testing
@testable import HostFS

@Suite struct OperationTests {
    @Test(arguments: bothModes) func symlinkOutsideIsReturnedNotFollowed(mode: HandleMode) throws {
        let box = Sandbox()
        Glibc.mkdir(box.dir + "/outside", 0o755)
        let secret = open(box.dir + "/outside/secret", O_CREAT | O_WRONLY, 0o644)
        close(secret)
        #expect(Glibc.symlink(box.dir + "/outside", box.exportPath + "/link") == 0)
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let l = try fs.lookup(r, n("link"), as: root)
        #expect(l.attributes.type == .symlink)
        #expect(try fs.readlink(l.handle, as: root).target == n(box.dir + "/outside"))
        #expect(isError(.errno(ENOTDIR)) { _ = try fs.lookup(l.handle, n("secret"), as: root) })
        #expect(isError(.errno(ENOTDIR)) { _ = try fs.readdir(l.handle, cookie: 0, cookieVerifier: 0, maxBytes: 4096, plus: false, as: root) })
        // Creating through a symlink name does not follow it either.
        #expect(isError(.errno(EEXIST)) { _ = try fs.create(r, n("link"), how: .guarded(.none), as: root) })
        #expect(isError(.errno(EEXIST)) { _ = try fs.create(r, n("link"), how: .unchecked(.none), as: root) })
        // A server-made symlink keeps its text.
        let s = try fs.symlink(r, n("up"), target: n("../../etc/passwd"), attributes: .none, as: root)
        #expect(try fs.readlink(s.handle, as: root).target == n("../../etc/passwd"))
        #expect(isError(.errno(EINVAL)) { _ = try fs.read(s.handle, offset: 0, count: 10, allocator: allocator, as: root) })
    }

    @Test(arguments: bothModes) func dotDotAtRootStaysAtRoot(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostMkdir("sub")
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        #expect(try fs.lookup(r, n(".."), as: root).handle == r)
        #expect(try fs.lookup(r, n("."), as: root).handle == r)
        let sub = try fs.lookup(r, n("sub"), as: root).handle
        #expect(try fs.lookup(sub, n(".."), as: root).handle == r)
        #expect(try fs.lookup(sub, n("."), as: root).handle == sub)
        #expect(try fs.getattr(try fs.lookup(r, n(".."), as: root).handle, as: root).fileid == box.ino(""))
        // MOUNT-style paths: below the root is fine, ".." is refused.
        #expect(try fs.directoryHandle(exportID: 1, relativePath: "/sub/", as: root) == sub)
        #expect(try fs.directoryHandle(exportID: 1, relativePath: "", as: root) == r)
        #expect(isError(.invalidName) { _ = try fs.directoryHandle(exportID: 1, relativePath: "sub/../..", as: root) })
        // READDIRPLUS at the root lists ".." as the root itself.
        let list = try fs.readdir(r, cookie: 0, cookieVerifier: 0, maxBytes: 65536, plus: true, as: root)
        let dotdot = try #require(list.entries.first { $0.name == n("..") })
        #expect(dotdot.handle == r)
        #expect(dotdot.fileid == box.ino(""))
    }

    @Test func nameValidation() throws {
        let box = Sandbox()
        let fs = try box.fs(kernelIfRoot)
        let r = try fs.rootHandle(exportID: 1)
        for bad in ["", "a/b", "/", "x\u{0}y", ".", ".."] {
            #expect(isError(.invalidName) { _ = try fs.create(r, n(bad), how: .unchecked(.none), as: root) }, "create \(bad)")
            #expect(isError(.invalidName) { _ = try fs.mkdir(r, n(bad), attributes: .none, as: root) }, "mkdir \(bad)")
            #expect(isError(.invalidName) { _ = try fs.remove(r, n(bad), as: root) }, "remove \(bad)")
            #expect(isError(.invalidName) { _ = try fs.rename(from: r, n(bad), to: r, n("ok"), as: root) }, "rename \(bad)")
            #expect(isError(.invalidName) { _ = try fs.symlink(r, n(bad), target: n("t"), attributes: .none, as: root) })
        }
        for bad in ["", "a/b", "x\u{0}y"] {
            #expect(isError(.invalidName) { _ = try fs.lookup(r, n(bad), as: root) }, "lookup \(bad)")
        }
        #expect(isError(.errno(ENAMETOOLONG)) { _ = try fs.create(r, n(String(repeating: "a", count: 256)), how: .unchecked(.none), as: root) })
        _ = try fs.create(r, n(String(repeating: "a", count: 255)), how: .unchecked(.none), as: root)
        // Non-UTF-8 names are bytes like any other.
        let odd: [UInt8] = [0x66, 0xFF, 0xFE]
        let made = try fs.create(r, odd, how: .guarded(.none), as: root)
        #expect(try fs.lookup(r, odd, as: root).handle == made.handle)
    }

    @Test(arguments: [(kernelIfRoot, false), (kernelIfRoot, true), (HandleMode.inode, true)])
    func readdirOfTenThousandEntries(mode: HandleMode, plus: Bool) throws {
        let box = Sandbox()
        box.hostMkdir("big")
        var names = Set<String>()
        for i in 0..<10_000 {
            let name = "entry-\(i)-" + String(repeating: "x", count: i % 37)
            names.insert(name)
            box.hostFile("big/" + name)
        }
        let fs = try box.fs(mode)
        let dir = try fs.lookup(try fs.rootHandle(exportID: 1), n("big"), as: root).handle
        var seen: [String: Int] = [:]
        var cookie: UInt64 = 0
        var verifier: UInt64 = 0
        var calls = 0
        while true {
            let budget = plus ? 4096 : 1024
            let list = try fs.readdir(dir, cookie: cookie, cookieVerifier: verifier, maxBytes: budget,
                                      dirBytes: plus ? 1024 : nil, plus: plus, as: root)
            calls += 1
            var used = 0
            for e in list.entries {
                seen[String(decoding: e.name, as: UTF8.self), default: 0] += 1
                used += plus ? HostFileSystem.readdirplusEntrySize(nameLength: e.name.count, handleLength: e.handle?.bytes.count)
                             : HostFileSystem.readdirEntrySize(nameLength: e.name.count)
                if plus && e.name != n("..") {
                    #expect(e.handle != nil && e.attributes != nil)
                }
            }
            #expect(used <= budget)
            if let last = list.entries.last { cookie = last.cookie }
            verifier = list.cookieVerifier
            if list.eof { break }
            #expect(calls < 20_000)
        }
        #expect(calls > 20)
        #expect(seen["."] == 1 && seen[".."] == 1)
        seen["."] = nil
        seen[".."] = nil
        #expect(Set(seen.keys) == names)
        #expect(seen.values.allSatisfy { $0 == 1 })
        // A cookie verifier from another directory is refused; a tiny budget too.
        #expect(isError(.badCookie) { _ = try fs.readdir(dir, cookie: cookie, cookieVerifier: verifier &+ 1, maxBytes: 1024, plus: false, as: root) })
        #expect(isError(.tooSmall) { _ = try fs.readdir(dir, cookie: 0, cookieVerifier: 0, maxBytes: 8, plus: false, as: root) })
    }

    @Test(arguments: bothModes) func exclusiveCreateRetry(mode: HandleMode) throws {
        let box = Sandbox()
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let v: UInt64 = 0x0123_4567_89AB_CDEF
        let first = try fs.create(r, n("f"), how: .exclusive(verifier: v), as: root)
        let again = try fs.create(r, n("f"), how: .exclusive(verifier: v), as: root)
        #expect(first.handle == again.handle)
        #expect(first.attributes.fileid == again.attributes.fileid)
        #expect(isError(.errno(EEXIST)) { _ = try fs.create(r, n("f"), how: .exclusive(verifier: v &+ 1), as: root) })
        // Once the client sets the real attributes, the verifier is gone.
        _ = try fs.setattr(first.handle, SetAttributes(mode: 0o640, atime: .serverTime, mtime: .serverTime), as: root)
        #expect(isError(.errno(EEXIST)) { _ = try fs.create(r, n("f"), how: .exclusive(verifier: v), as: root) })
        #expect(isError(.errno(EEXIST)) { _ = try fs.create(r, n("f"), how: .guarded(.none), as: root) })
        let u = try fs.create(r, n("f"), how: .unchecked(SetAttributes(mode: 0o600)), as: root)
        #expect(u.handle == first.handle)
        #expect(u.attributes.mode == 0o600)
        let g = try fs.create(r, n("g"), how: .guarded(SetAttributes(mode: 0o751)), as: root)
        #expect(g.attributes.mode == 0o751)
        #expect(g.directory.before != nil && g.directory.after != nil)
    }

    @Test(arguments: bothModes) func writeStabilityAndCommit(mode: HandleMode) throws {
        let box = Sandbox()
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let f = try fs.create(r, n("f"), how: .unchecked(.none), as: root).handle
        for (i, s) in [WriteStability.unstable, .dataSync, .fileSync].enumerated() {
            let w = try fs.write(f, offset: UInt64(i * 4), data: ByteBuffer(string: "abc\(i)"), stability: s, as: root)
            #expect(w.count == 4)
            #expect(w.committed == s)
            #expect(w.verifier == fs.writeVerifier)
            #expect(w.wcc.after?.size == UInt64(i * 4 + 4))
        }
        let c = try fs.commit(f, offset: 0, count: 0, as: root)
        #expect(c.verifier == fs.writeVerifier)
        let data = try fs.read(f, offset: 0, count: 100, allocator: allocator, as: root)
        #expect(string(data.data) == "abc0abc1abc2")
        #expect(data.eof)
        let part = try fs.read(f, offset: 2, count: 3, allocator: allocator, as: root)
        #expect(string(part.data) == "c0a")
        #expect(!part.eof)
        #expect(try fs.read(f, offset: 100, count: 3, allocator: allocator, as: root).eof)
        // The verifier changes on every start.
        let fs2 = try box.fs(mode)
        #expect(fs2.writeVerifier != fs.writeVerifier)
    }

    /// WRITE, COMMIT, CREATE and REMOVE take their pre-operation attributes from the stat
    /// made when the object is acquired: it must be the state before the call, of the
    /// right object, in every one of them (cached and freshly resolved handles alike).
    @Test(arguments: bothModes) func preOperationAttributesAreBeforeTheCall(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "0123456789")
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let dirBefore = try fs.getattr(r, as: root)
        let f = try fs.lookup(r, n("f"), as: root).handle
        let fileBefore = try fs.getattr(f, as: root)
        let w = try fs.write(f, offset: 10, data: ByteBuffer(string: "abc"), stability: .unstable, as: root)
        #expect(w.wcc.before == fileBefore)
        #expect(w.wcc.after?.size == 13)
        let c = try fs.commit(f, offset: 0, count: 0, as: root)
        #expect(c.wcc.before?.size == 13)
        #expect(c.wcc.before?.fileid == fileBefore.fileid)
        #expect(c.wcc.after?.size == 13)
        let g = try fs.create(r, n("g"), how: .guarded(.none), as: root)
        #expect(g.directory.before?.fileid == dirBefore.fileid)
        #expect(g.directory.before?.type == .directory)
        let dirAfterCreate = try #require(g.directory.after)
        #expect(try fs.getattr(r, as: root) == dirAfterCreate)
        let rm = try fs.remove(r, n("g"), as: root)
        #expect(rm.before == dirAfterCreate)
        #expect(rm.after?.fileid == dirBefore.fileid)
        // COMMIT and WRITE on a directory still fail as before.
        #expect(isError(.errno(EISDIR)) { _ = try fs.commit(r, offset: 0, count: 0, as: root) })
        #expect(isError(.errno(EISDIR)) {
            _ = try fs.write(r, offset: 0, data: ByteBuffer(string: "x"), stability: .unstable, as: root)
        })
        // A handle of a removed file is stale for all of them, not answered from an old stat.
        _ = try fs.remove(r, n("f"), as: root)
        #expect(isError(.stale) { _ = try fs.commit(f, offset: 0, count: 0, as: root) })
        #expect(isError(.stale) { _ = try fs.write(f, offset: 0, data: ByteBuffer(string: "x"), stability: .unstable, as: root) })
    }

    @Test func procReopenOpensTheSameObject() throws {
        let box = Sandbox()
        box.hostFile("f", "data")
        let p = open(box.exportPath + "/f", O_PATH | O_CLOEXEC)
        defer { close(p) }
        let w = procReopen(p, O_WRONLY | O_CLOEXEC)
        #expect(w >= 0)
        var a = stat(), b = stat()
        #expect(fstat(p, &a) == 0 && fstat(w, &b) == 0 && a.st_ino == b.st_ino)
        #expect(fcntl(w, F_GETFL) & O_ACCMODE == O_WRONLY)
        close(w)
        #expect(procReopen(-1, O_RDONLY) == -1 && errno == EBADF)
    }

    @Test(arguments: bothModes) func setattrAndGuard(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "0123456789")
        let fs = try box.fs(mode)
        let f = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root)
        #expect(isError(.notSync) {
            _ = try fs.setattr(f.handle, SetAttributes(size: 1), guardCtime: FSTime(seconds: 1, nanoseconds: 0), as: root)
        })
        let t = FSTime(seconds: 1_000_000_000, nanoseconds: 123_456_789)
        let w = try fs.setattr(f.handle, SetAttributes(mode: 0o600, size: 4, atime: .client(t), mtime: .client(t)),
                               guardCtime: f.attributes.ctime, as: root)
        #expect(w.before?.size == 10)
        #expect(w.after?.size == 4)
        #expect(w.after?.mode == 0o600)
        #expect(w.after?.mtime == t)
        #expect(w.after?.atime == t)
        // Directories cannot be truncated.
        #expect(isError(.errno(EISDIR)) { _ = try fs.setattr(try fs.rootHandle(exportID: 1), SetAttributes(size: 0), as: root) })
    }

    @Test(arguments: bothModes) func namespaceOperations(mode: HandleMode) throws {
        let box = Sandbox()
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let d = try fs.mkdir(r, n("d"), attributes: SetAttributes(mode: 0o700), as: root)
        #expect(d.attributes.type == .directory && d.attributes.mode == 0o700)
        let a = try fs.create(r, n("a"), how: .guarded(.none), as: root)
        let b = try fs.create(d.handle, n("b"), how: .guarded(.none), as: root)
        // Link, then rename over a file: the replaced object's handle goes stale.
        let l = try fs.link(a.handle, to: d.handle, n("a2"), as: root)
        #expect(l.attributes.nlink == 2)
        let mv = try fs.rename(from: r, n("a"), to: d.handle, n("b"), as: root)
        #expect(mv.from.before != nil && mv.to.after != nil)
        #expect(isError(.stale) { _ = try fs.getattr(b.handle, as: root) })
        #expect(try fs.lookup(d.handle, n("b"), as: root).attributes.fileid == a.attributes.fileid)
        #expect(try fs.getattr(a.handle, as: root).fileid == a.attributes.fileid)
        #expect(isError(.errno(ENOENT)) { _ = try fs.lookup(r, n("a"), as: root) })
        #expect(isError(.errno(ENOTEMPTY)) { _ = try fs.rmdir(r, n("d"), as: root) })
        // Special files.
        let fifo = try fs.mknod(r, n("p"), kind: .fifo, attributes: SetAttributes(mode: 0o600), allowDevices: false, as: root)
        #expect(fifo.attributes.type == .fifo && fifo.attributes.mode == 0o600)
        let sock = try fs.mknod(r, n("s"), kind: .socket, attributes: .none, allowDevices: false, as: root)
        #expect(sock.attributes.type == .socket)
        #expect(isError(.errno(EPERM)) {
            _ = try fs.mknod(r, n("c"), kind: .characterDevice(major: 1, minor: 3), attributes: .none, allowDevices: false, as: root)
        })
        if geteuid() == 0 {
            let dev = try fs.mknod(r, n("null"), kind: .characterDevice(major: 1, minor: 3), attributes: .none, allowDevices: true, as: root)
            #expect(dev.attributes.type == .characterDevice && dev.attributes.rdevMajor == 1 && dev.attributes.rdevMinor == 3)
        }
        // fsstat/fsinfo/pathconf/access.
        #expect(try fs.fsstat(r, as: root).totalBytes > 0)
        #expect(try fs.fsinfo(r, as: root).maxFileSize > 1 << 32)
        #expect(try fs.pathconf(r, as: root).nameMax == 255)
        #expect(try fs.access(r, requested: .all, as: root).granted.contains([.read, .lookup, .modify, .delete]))
        // Cross-export operations are refused.
        #expect(isError(.errno(EISDIR)) { _ = try fs.link(d.handle, to: r, n("dl"), as: root) })
    }

    @Test(.enabled(if: geteuid() == 0, "needs root")) func identityIsSwitchedPerThreadAndRestored() throws {
        let box = Sandbox()
        box.hostFile("secret", "root only", mode: 0o600)
        box.hostMkdir("shared")
        chmod(box.exportPath + "/shared", 0o777)
        let fs = try box.fs(.kernel)
        let r = try fs.rootHandle(exportID: 1)
        let user = Credentials(uid: 1000, gid: 1000, groups: [1000, 2000])
        let secret = try fs.lookup(r, n("secret"), as: user).handle
        let groupsBefore = threadGroups()
        #expect(isError(.errno(EACCES)) { _ = try fs.read(secret, offset: 0, count: 10, allocator: allocator, as: user) })
        #expect(isError(.errno(EACCES)) { _ = try fs.write(secret, offset: 0, data: ByteBuffer(string: "x"), stability: .unstable, as: user) })
        #expect(isError(.errno(EACCES)) { _ = try fs.create(r, n("nope"), how: .guarded(.none), as: user) })
        #expect(isError(.errno(EPERM)) { _ = try fs.setattr(secret, SetAttributes(mode: 0o666), as: user) })
        #expect(try fs.access(secret, requested: .all, as: user).granted.isEmpty)
        // Restored afterwards, even after errors.
        #expect(hostfs_thread_fsuid() == 0 && hostfs_thread_fsgid() == 0)
        #expect(threadGroups() == groupsBefore)
        #expect(string(try fs.read(secret, offset: 0, count: 100, allocator: allocator, as: root).data) == "root only")
        // Objects made for a user belong to that user.
        let shared = try fs.lookup(r, n("shared"), as: user).handle
        let mine = try fs.create(shared, n("mine"), how: .guarded(SetAttributes(mode: 0o400)), as: user)
        #expect(mine.attributes.uid == 1000 && mine.attributes.gid == 1000)
        // The owner may write their own read-only file (knfsd's owner override).
        _ = try fs.write(mine.handle, offset: 0, data: ByteBuffer(string: "ok"), stability: .unstable, as: user)
        let other = Credentials(uid: 1001, gid: 1001)
        #expect(isError(.errno(EACCES)) { _ = try fs.read(mine.handle, offset: 0, count: 10, allocator: allocator, as: other) })
        #expect(hostfs_thread_fsuid() == 0)
        #expect(try fs.access(r, requested: [.read, .modify], as: user).granted == [.read])
    }

    /// Parts of the caller's identity equal to the server's are not switched (no syscall):
    /// the kernel must still see exactly the caller's uid, gid and groups.
    @Test(.enabled(if: geteuid() == 0, "needs root")) func partlyServerIdentitiesAreCheckedAsTheCaller() throws {
        let box = Sandbox()
        box.hostFile("root-group", "g0", mode: 0o040)    // root:root, group may read
        box.hostFile("group-1234", "g1234", mode: 0o040)
        #expect(chown(box.exportPath + "/group-1234", 0, 1234) == 0)
        box.hostFile("user-5", "u5", mode: 0o600)
        #expect(chown(box.exportPath + "/user-5", 5, 5) == 0)
        let fs = try box.fs(.kernel)
        let r = try fs.rootHandle(exportID: 1)
        let groupsBefore = threadGroups()
        func reads(_ name: String, _ cred: Credentials) throws -> Bool {
            let h = try fs.lookup(r, n(name), as: root).handle
            do {
                _ = try fs.read(h, offset: 0, count: 10, allocator: allocator, as: cred)
                return true
            } catch FSError.errno(EACCES) {
                return false
            }
        }
        let serverGroups = groupsBefore
        // uid switched, gid and groups the server's: the gid still counts, the uid's powers do not.
        let uidOnly = Credentials(uid: 1000, gid: 0, groups: serverGroups)
        #expect(try reads("root-group", uidOnly))
        #expect(try !reads("user-5", uidOnly))
        #expect(try !reads("group-1234", uidOnly))
        // gid switched, uid root: root's fs capabilities stay, as with a full switch to uid 0.
        let gidOnly = Credentials(uid: 0, gid: 1234, groups: serverGroups)
        #expect(try reads("user-5", gidOnly))
        // A supplementary group alone (uid and gid not root).
        let member = Credentials(uid: 1000, gid: 1000, groups: [1234])
        #expect(try reads("group-1234", member))
        #expect(try !reads("root-group", member))
        let nobody = Credentials(uid: 1000, gid: 1000, groups: serverGroups)
        #expect(try !reads("group-1234", nobody))
        #expect(hostfs_thread_fsuid() == 0 && hostfs_thread_fsgid() == 0)
        #expect(threadGroups() == groupsBefore)
    }

    @Test(arguments: bothModes) func openFileCacheStaysBounded(mode: HandleMode) throws {
        let box = Sandbox()
        let fs = try box.fs(mode, openFileLimit: 16)
        let r = try fs.rootHandle(exportID: 1)
        var handles: [ObjectHandle] = []
        for i in 0..<1000 {
            let f = try fs.create(r, n("f\(i)"), how: .guarded(.none), as: root)
            _ = try fs.write(f.handle, offset: 0, data: ByteBuffer(string: "file \(i)"), stability: .unstable, as: root)
            handles.append(f.handle)
            #expect(fs.cachedFileDescriptorCount <= 16)
        }
        for (i, h) in handles.enumerated() {
            #expect(string(try fs.read(h, offset: 0, count: 64, allocator: allocator, as: root).data) == "file \(i)")
            #expect(fs.cachedFileDescriptorCount <= 16)
        }
        // Concurrent use from many threads keeps the bound once they are done.
        let all = handles
        DispatchLikeThreads.run(count: 8) { t in
            for i in stride(from: t, to: 1000, by: 8) {
                _ = try? fs.read(all[i], offset: 0, count: 64, allocator: allocator, as: root)
            }
        }
        #expect(fs.cachedFileDescriptorCount <= 16)
    }
}

func threadGroups() -> [UInt32] {
    var g = [UInt32](repeating: 0, count: 256)
    let n = hostfs_thread_groups(&g, 256)
    return Array(g[0..<Int(max(n, 0))])
}

/// Plain pthreads (the way the NFS layer's thread pool calls HostFS).
enum DispatchLikeThreads {
    static func run(count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        final class Box: Sendable {
            let body: @Sendable (Int) -> Void
            let index: Int
            init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) {
                self.body = body
                self.index = index
            }
        }
        var threads: [pthread_t] = []
        for i in 0..<count {
            var t = pthread_t()
            let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
            pthread_create(&t, nil, { p in
                let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
                b.body(b.index)
                return nil
            }, box)
            threads.append(t)
        }
        for t in threads { pthread_join(t, nil) }
    }
}

@Suite struct ConcurrentIdentityTests {
    /// Each thread works as its own user at the same time: identities never leak across threads.
    @Test(.enabled(if: geteuid() == 0, "needs root")) func identitiesStayOnTheirThreads() throws {
        let box = Sandbox()
        box.hostMkdir("shared")
        chmod(box.exportPath + "/shared", 0o777)
        let fs = try box.fs(.kernel)
        let dir = try fs.lookup(try fs.rootHandle(exportID: 1), n("shared"), as: root).handle
        DispatchLikeThreads.run(count: 8) { t in
            let cred = Credentials(uid: UInt32(2000 + t), gid: UInt32(3000 + t), groups: [UInt32(3000 + t)])
            for i in 0..<50 {
                _ = try? fs.create(dir, n("t\(t)-\(i)"), how: .guarded(SetAttributes(mode: 0o644)), as: cred)
            }
        }
        var count = 0
        for t in 0..<8 {
            for i in 0..<50 {
                var st = stat()
                #expect(lstat(box.exportPath + "/shared/t\(t)-\(i)", &st) == 0)
                #expect(st.st_uid == 2000 + t && st.st_gid == 3000 + t)
                count += 1
            }
        }
        #expect(count == 400)
        #expect(hostfs_thread_fsuid() == 0)
    }
}

@Suite struct WriteFDTests {
    /// An fd open for writing makes the host's exec of that file fail (ETXTBSY): reads never
    /// hold one, and write fds are closed once idle.
    @Test func idleWriteFDsAreClosedSoTheHostCanExec() throws {
        let box = Sandbox()
        var options = HostFSOptions(stateDirectory: box.statePath)
        options.idleWriteCloseNanoseconds = 200_000_000
        let fs = try HostFileSystem(exports: [ExportRoot(id: 1, hostPath: box.exportPath)], options: options)
        let r = try fs.rootHandle(exportID: 1)
        let script = try fs.create(r, n("run.sh"), how: .guarded(SetAttributes(mode: 0o755)), as: root).handle
        _ = try fs.write(script, offset: 0, data: ByteBuffer(string: "#!/bin/sh\nexit 7\n"), stability: .fileSync, as: root)
        let path = box.exportPath + "/run.sh"
        #expect(spawnStatus(path) == .failure(ETXTBSY))
        var waited = 0
        while spawnStatus(path) != .exited(7) && waited < 50 {
            usleep(100_000)
            waited += 1
        }
        #expect(spawnStatus(path) == .exited(7))
        // Reading keeps only a read fd.
        _ = try fs.read(script, offset: 0, count: 100, allocator: allocator, as: root)
        #expect(spawnStatus(path) == .exited(7))
    }

    /// A file deleted on the host (not through REMOVE) loses its cached fds at the next
    /// sweep, so its blocks are freed; a file still linked elsewhere keeps them.
    @Test(arguments: bothModes) func filesDeletedOnTheHostAreClosed(mode: HandleMode) throws {
        let box = Sandbox()
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        var handles: [ObjectHandle] = []
        for name in ["gone", "linked"] {
            let h = try fs.create(r, n(name), how: .guarded(.none), as: root).handle
            _ = try fs.write(h, offset: 0, data: ByteBuffer(string: name), stability: .unstable, as: root)
            handles.append(h)
        }
        #expect(link(box.exportPath + "/linked", box.exportPath + "/other-name") == 0)
        let cached = fs.cachedFileDescriptorCount
        #expect(unlink(box.exportPath + "/gone") == 0 && unlink(box.exportPath + "/linked") == 0)
        fs.cache.sweepUnlinked()
        // "gone": its path fd and write fd are closed; "linked" keeps both.
        #expect(fs.cachedFileDescriptorCount == cached - 2)
        #expect(throws: FSError.stale) { try fs.getattr(handles[0], as: root) }
        #expect(string(try fs.read(handles[1], offset: 0, count: 64, allocator: allocator, as: root).data) == "linked")
    }
}

enum SpawnResult: Equatable {
    case exited(Int32)
    case failure(Int32)
}

func spawnStatus(_ path: String) -> SpawnResult {
    var pid = pid_t()
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
    defer { argv.forEach { free($0) } }
    let r = posix_spawn(&pid, path, nil, nil, argv, nil)
    if r != 0 { return .failure(r) }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return .exited((status >> 8) & 0xFF)
}

@Suite struct StressTests {
    /// Many threads, a tiny fd budget: evictions and invalidations under load must never
    /// close an fd in use (a reused fd number would send data to another file).
    @Test(arguments: bothModes) func concurrentChurnKeepsDataWhereItBelongs(mode: HandleMode) throws {
        let box = Sandbox()
        let fs = try box.fs(mode, openFileLimit: 8)
        let r = try fs.rootHandle(exportID: 1)
        final class Failures: Sendable {
            private let list = NIOLockedValueBox<[String]>([])
            var messages: [String] { list.withLockedValue { $0 } }
            func add(_ s: String) { list.withLockedValue { $0.append(s) } }
        }
        let failures = Failures()
        DispatchLikeThreads.run(count: 8) { t in
            do {
                let dir = try fs.mkdir(r, n("t\(t)"), attributes: .none, as: root).handle
                var live: [Int: ObjectHandle] = [:]
                for i in 0..<300 {
                    let name = n("f\(i % 40)")
                    if let h = live[i % 40], i % 7 == 0 {
                        _ = try fs.remove(dir, name, as: root)
                        if (try? fs.getattr(h, as: root)) != nil { failures.add("t\(t): removed file still resolves") }
                        live[i % 40] = nil
                        continue
                    }
                    let h = try live[i % 40] ?? fs.create(dir, name, how: .unchecked(.none), as: root).handle
                    live[i % 40] = h
                    let text = "thread \(t) file \(i % 40) round \(i)"
                    _ = try fs.setattr(h, SetAttributes(size: 0), as: root)
                    _ = try fs.write(h, offset: 0, data: ByteBuffer(string: text), stability: .unstable, as: root)
                    let back = try fs.read(h, offset: 0, count: 200, allocator: allocator, as: root)
                    if String(buffer: back.data) != text { failures.add("t\(t): read \(String(buffer: back.data)) wanted \(text)") }
                    if i % 11 == 0 {
                        _ = try fs.rename(from: dir, name, to: dir, n("tmp"), as: root)
                        _ = try fs.rename(from: dir, n("tmp"), to: dir, name, as: root)
                    }
                    if i % 13 == 0 {
                        _ = try fs.readdir(dir, cookie: 0, cookieVerifier: 0, maxBytes: 2048, plus: true, as: root)
                    }
                }
            } catch {
                failures.add("t\(t): \(error)")
            }
        }
        #expect(failures.messages.isEmpty, "\(failures.messages.prefix(5))")
        #expect(fs.cachedFileDescriptorCount <= 8)
    }
}
