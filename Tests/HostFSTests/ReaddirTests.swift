import CSupport
import Glibc
import Testing
@testable import HostFS

/// READDIRPLUS: what each entry carries, and what it must never carry.
@Suite struct ReaddirTests {
    private func plusListing(_ fs: HostFileSystem, _ dir: ObjectHandle, as cred: Credentials = root,
                             budget: Int = 1 << 20) throws -> [String: DirectoryEntry] {
        var out: [String: DirectoryEntry] = [:]
        var cookie: UInt64 = 0, verifier: UInt64 = 0
        while true {
            let list = try fs.readdir(dir, cookie: cookie, cookieVerifier: verifier, maxBytes: budget, plus: true, as: cred)
            for e in list.entries {
                let name = String(decoding: e.name, as: UTF8.self)
                #expect(out[name] == nil, "\(name) listed twice")
                out[name] = e
            }
            if list.eof { return out }
            cookie = try #require(list.entries.last).cookie
            verifier = list.cookieVerifier
        }
    }

    /// Each entry's handle and attributes are the ones LOOKUP gives for its name; symlinks
    /// are the links themselves, never their targets.
    @Test(arguments: bothModes) func entriesMatchLookup(mode: HandleMode) throws {
        let box = Sandbox()
        Glibc.mkdir(box.dir + "/outside", 0o755)
        box.hostFile("file", "data")
        box.hostMkdir("sub")
        box.hostFile("sub/inner", "x")
        #expect(Glibc.symlink(box.dir + "/outside", box.exportPath + "/sub/out") == 0)
        #expect(Glibc.symlink("/etc/passwd", box.exportPath + "/abs") == 0)
        #expect(Glibc.symlink("dangling-target", box.exportPath + "/dangling") == 0)
        #expect(mkfifo(box.exportPath + "/fifo", 0o644) == 0)
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let top = try plusListing(fs, r)
        #expect(Set(top.keys) == [".", "..", "file", "sub", "abs", "dangling", "fifo"])
        for name in ["file", "sub", "abs", "dangling", "fifo"] {
            let e = try #require(top[name])
            let l = try fs.lookup(r, n(name), as: root)
            #expect(e.handle == l.handle, "handle of \(name)")
            #expect(e.attributes?.fileid == l.attributes.fileid && e.fileid == l.attributes.fileid, "fileid of \(name)")
            #expect(e.attributes?.type == l.attributes.type, "type of \(name)")
            #expect(e.attributes?.size == l.attributes.size, "size of \(name)")
        }
        #expect(top["abs"]?.attributes?.type == .symlink)
        #expect(top["dangling"]?.attributes?.type == .symlink)
        #expect(try fs.readlink(try #require(top["abs"]?.handle), as: root).target == n("/etc/passwd"))
        #expect(top["."]?.handle == r && top[".."]?.handle == r)

        let sub = try #require(top["sub"]?.handle)
        let below = try plusListing(fs, sub)
        #expect(below[".."]?.handle == r)
        #expect(below["."]?.handle == sub)
        let out = try #require(below["out"])
        #expect(out.attributes?.type == .symlink)
        #expect(out.fileid == box.ino("sub/out"))
        #expect(try fs.readlink(try #require(out.handle), as: root).target == n(box.dir + "/outside"))
        #expect(isError(.errno(ENOTDIR)) { _ = try fs.lookup(try #require(out.handle), n("anything"), as: root) })
        // The handles work after the server forgets everything it had open.
        let fs2 = try box.fs(mode)
        #expect(try fs2.getattr(try #require(below["inner"]?.handle), as: root).fileid == box.ino("sub/inner"))
        #expect(try fs2.getattr(try #require(top["file"]?.handle), as: root).size == 4)
    }

    /// A mount point inside the export (another filesystem, or a bind mount of the same
    /// one from outside the export) is listed by name only: no handle, no attributes.
    @Test(.enabled(if: geteuid() == 0, "needs root"), arguments: bothModes) func mountPointsGetNoHandle(mode: HandleMode) throws {
        let box = Sandbox()
        Glibc.mkdir(box.dir + "/outside", 0o755)
        let secret = open(box.dir + "/outside/secret", O_CREAT | O_WRONLY, 0o644)
        close(secret)
        box.hostMkdir("tmpfs")
        box.hostMkdir("bind")
        box.hostFile("plain")
        guard Glibc.mount("none", box.exportPath + "/tmpfs", "tmpfs", 0, nil) == 0 else {
            Issue.record("mount tmpfs: errno \(errno)")
            return
        }
        defer { umount2(box.exportPath + "/tmpfs", Int32(MNT_DETACH)) }
        guard Glibc.mount(box.dir + "/outside", box.exportPath + "/bind", nil, UInt(MS_BIND), nil) == 0 else {
            Issue.record("bind mount: errno \(errno)")
            return
        }
        defer { umount2(box.exportPath + "/bind", Int32(MNT_DETACH)) }
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        // Small budgets too: the mount points fall anywhere in a page.
        for budget in [1 << 20, 400] {
            let top = try plusListing(fs, r, budget: budget)
            #expect(Set(top.keys) == [".", "..", "tmpfs", "bind", "plain"])
            for name in ["tmpfs"] {
                #expect(top[name]?.handle == nil, "\(name) has a handle")
                #expect(top[name]?.attributes == nil, "\(name) has attributes")
            }
            if mode == .kernel {
                // Same device, other mount: only the mount id tells (inode handles cannot).
                #expect(top["bind"]?.handle == nil)
                #expect(top["bind"]?.attributes == nil)
            }
            #expect(top["plain"]?.handle != nil && top["plain"]?.attributes != nil)
        }
    }

    /// Read permission without search permission lists names only, as knfsd does: no
    /// handles or attributes. Without read permission there is no listing at all.
    @Test(.enabled(if: geteuid() == 0, "needs root to list as another user"), arguments: bothModes)
    func withoutSearchPermissionNamesOnly(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostMkdir("listable")
        box.hostFile("listable/a")
        box.hostMkdir("listable/b")
        chmod(box.exportPath + "/listable", 0o744)  // others: read, no search
        box.hostMkdir("closed")
        box.hostFile("closed/c")
        chmod(box.exportPath + "/closed", 0o700)
        let fs = try box.fs(mode)
        let r = try fs.rootHandle(exportID: 1)
        let user = Credentials(uid: 1000, gid: 1000)
        let listable = try fs.lookup(r, n("listable"), as: root).handle
        let asUser = try plusListing(fs, listable, as: user)
        #expect(Set(asUser.keys) == [".", "..", "a", "b"])
        for name in ["a", "b"] {
            #expect(asUser[name]?.handle == nil && asUser[name]?.attributes == nil, "\(name)")
        }
        #expect(hostfs_thread_fsuid() == 0)
        let asRoot = try plusListing(fs, listable, as: root)
        #expect(asRoot["a"]?.handle != nil && asRoot["b"]?.attributes?.type == .directory)
        // No read permission: no listing at all.
        let closed = try fs.lookup(r, n("closed"), as: root).handle
        #expect(isError(.errno(EACCES)) { _ = try fs.readdir(closed, cookie: 0, cookieVerifier: 0, maxBytes: 65536, plus: true, as: user) })
        #expect(hostfs_thread_fsuid() == 0)
    }

    /// Cookies are getdents64 offsets: a listing resumed from any entry's cookie goes on
    /// with exactly the entries after it, whatever the budget of each call.
    @Test(arguments: [4096, 65536 - 112, 1 << 20]) func paginationAtClientBudgets(budget: Int) throws {
        let box = Sandbox()
        box.hostMkdir("d")
        var names = Set<String>()
        for i in 0..<3000 {
            let name = "f\(i)" + String(repeating: "y", count: (i * 7) % 200)
            names.insert(name)
            box.hostFile("d/" + name)
        }
        let fs = try box.fs(kernelIfRoot)
        let dir = try fs.lookup(try fs.rootHandle(exportID: 1), n("d"), as: root).handle
        let all = try plusListing(fs, dir, budget: budget)
        #expect(Set(all.keys) == names.union([".", ".."]))
        #expect(all.values.allSatisfy { $0.name == n(".") || $0.name == n("..") || ($0.handle != nil && $0.attributes != nil) })
        // Plain READDIR from a cookie in the middle: the rest, once each.
        let first = try fs.readdir(dir, cookie: 0, cookieVerifier: 0, maxBytes: budget / 4, plus: false, as: root)
        var rest: [String] = first.entries.map { String(decoding: $0.name, as: UTF8.self) }
        var cookie = try #require(first.entries.last).cookie
        var eof = first.eof
        while !eof {
            let l = try fs.readdir(dir, cookie: cookie, cookieVerifier: first.cookieVerifier, maxBytes: budget, plus: false, as: root)
            rest += l.entries.map { String(decoding: $0.name, as: UTF8.self) }
            if let last = l.entries.last { cookie = last.cookie }
            eof = l.eof
        }
        #expect(rest.count == names.count + 2)
        #expect(Set(rest) == names.union([".", ".."]))
    }
}
