import Exports
import Foundation
import HostFS
import Mount3
import NFS3
import NFSCore
import NIOCore
import ONCRPC
import Testing
import Transport
import XDR

extension NFS3TestClient {
    /// The nfsstat3 of a call (the first word of its results).
    func status<A: XDREncodable>(_ procedure: NFS3Procedure, _ args: A) throws -> NFS3Status {
        var buffer = ByteBuffer()
        args.encode(xdr: &buffer)
        let reply = try rawCall(program: NFSProgramNumber.nfs, version: 3, procedure: procedure.rawValue, arguments: buffer)
        guard case .success(var results) = reply else { throw NFS3TestError.unexpectedReply(reply) }
        return try results.readXDREnum()
    }

    /// One call of every procedure but NULL, naming `fh` (as object or directory) and `name`.
    func statusOfEveryProcedure(_ fh: NFS3FileHandle, name: String = "x") throws -> [NFS3Procedure: NFS3Status] {
        let dirop = NFS3DirOpArgs(directory: fh, name: NFS3Name(name))
        let verifier = NFS3Verifier.zero
        var out: [NFS3Procedure: NFS3Status] = [:]
        out[.getattr] = try status(.getattr, NFS3HandleArgs(object: fh))
        out[.setattr] = try status(.setattr, NFS3SetAttrArgs(object: fh, newAttributes: NFS3SetAttributes(mode: 0o600)))
        out[.lookup] = try status(.lookup, dirop)
        out[.access] = try status(.access, NFS3AccessArgs(object: fh, access: 0x3f))
        out[.readlink] = try status(.readlink, NFS3HandleArgs(object: fh))
        out[.read] = try status(.read, NFS3ReadArgs(file: fh, offset: 0, count: 10))
        out[.write] = try status(.write, NFS3WriteArgs(file: fh, offset: 0, count: 1, stable: .fileSync, data: ByteBuffer(bytes: [1])))
        out[.create] = try status(.create, NFS3CreateArgs(whereTo: dirop, how: .guarded(.none)))
        out[.mkdir] = try status(.mkdir, NFS3MkdirArgs(whereTo: dirop, attributes: .none))
        out[.symlink] = try status(.symlink, NFS3SymlinkArgs(whereTo: dirop, attributes: .none, target: "t"))
        out[.mknod] = try status(.mknod, NFS3MknodArgs(whereTo: dirop, what: .fifo(.none)))
        out[.remove] = try status(.remove, dirop)
        out[.rmdir] = try status(.rmdir, dirop)
        out[.rename] = try status(.rename, NFS3RenameArgs(from: dirop, to: NFS3DirOpArgs(directory: fh, name: "y")))
        out[.link] = try status(.link, NFS3LinkArgs(file: fh, link: dirop))
        out[.readdir] = try status(.readdir, NFS3ReaddirArgs(directory: fh, cookie: 0, cookieVerifier: verifier, count: 4096))
        out[.readdirplus] = try status(.readdirplus, NFS3ReaddirPlusArgs(directory: fh, cookie: 0, cookieVerifier: verifier,
                                                                          dirCount: 4096, maxCount: 8192))
        out[.fsstat] = try status(.fsstat, NFS3HandleArgs(object: fh))
        out[.fsinfo] = try status(.fsinfo, NFS3HandleArgs(object: fh))
        out[.pathconf] = try status(.pathconf, NFS3HandleArgs(object: fh))
        out[.commit] = try status(.commit, NFS3CommitArgs(file: fh, offset: 0, count: 0))
        return out
    }
}

@Suite(.serialized) struct NFS3ProcedureTests {
    static let guest = PeerIdentity.vsock(cid: 3, port: 1023)
    static let stranger = PeerIdentity.vsock(cid: 4, port: 1023)

    // MARK: MOUNT

    @Test func mountAnswersPerPeer() throws {
        let sandbox = NFS3Sandbox()
        let a = sandbox.exportDirectory("a"), b = sandbox.exportDirectory("b")
        mkdir(a + "/sub", 0o755)
        _ = FileManager.default.createFile(atPath: a + "/file", contents: Data())
        let server = try NFS3TestServer(exports: [
            Export(hostPath: a, mountPath: "/a", clients: [rwRule(.vsockCID(3)), roRule(.vsockRange(10, 20))]),
            Export(hostPath: b, mountPath: "/b", clients: [rwRule(.vsockCID(9))]),
        ], sandbox: sandbox)
        let c3 = try server.client(Self.guest)
        guard case .ok(let root, let flavors) = try c3.mount("/a") else { Issue.record("MNT /a"); return }
        #expect(flavors == [RPCAuthFlavor.sys])
        guard case .ok(let sub, _) = try c3.mount("/a//sub/") else { Issue.record("MNT /a/sub"); return }
        #expect(try c3.lookup(root, "sub").ok?.object == sub)
        #expect(try c3.mount("/a/missing") == .fail(.noent))
        #expect(try c3.mount("/a/file") == .fail(.notdir))
        #expect(try c3.mount("/nowhere") == .fail(.noent))
        #expect(try c3.mount("/b") == .fail(.acces))
        #expect(try c3.mount("/a/../b") == .fail(.acces))

        let exports3: MountExportResult = try c3.call(NFSProgramNumber.mount, MountProcedure.export.rawValue, NFS3Empty())
        #expect(exports3.exports == [MountExportEntry(directory: "/a", groups: ["vsock:3", "vsock:10-20"])])
        let c9 = try server.client(.vsock(cid: 9, port: 5))
        let exports9: MountExportResult = try c9.call(NFSProgramNumber.mount, MountProcedure.export.rawValue, NFS3Empty())
        #expect(exports9.exports.map(\.directory) == ["/b"])
        let c4 = try server.client(Self.stranger)
        let exports4: MountExportResult = try c4.call(NFSProgramNumber.mount, MountProcedure.export.rawValue, NFS3Empty())
        #expect(exports4.exports.isEmpty)
        #expect(try c4.mount("/a") == .fail(.acces))

        var dump: MountDumpResult = try c3.call(NFSProgramNumber.mount, MountProcedure.dump.rawValue, NFS3Empty())
        #expect(Set(dump.entries) == [MountEntry(hostname: "vsock:3", directory: "/a"),
                                      MountEntry(hostname: "vsock:3", directory: "/a/sub")])
        let _: NFS3Empty = try c3.call(NFSProgramNumber.mount, MountProcedure.umnt.rawValue, MountPathArgs(path: "/a/sub"))
        dump = try c3.call(NFSProgramNumber.mount, MountProcedure.dump.rawValue, NFS3Empty())
        #expect(dump.entries == [MountEntry(hostname: "vsock:3", directory: "/a")])
        let _: NFS3Empty = try c3.call(NFSProgramNumber.mount, MountProcedure.umntall.rawValue, NFS3Empty())
        dump = try c3.call(NFSProgramNumber.mount, MountProcedure.dump.rawValue, NFS3Empty())
        #expect(dump.entries.isEmpty)
    }

    // MARK: access control

    @Test func peerWithoutAccessIsRefusedAtMountAndEveryProcedure() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3))])
        let c3 = try server.client(Self.guest)
        let root = try c3.rootHandle()
        let c4 = try server.client(Self.stranger)
        #expect(try c4.mount("/export") == .fail(.acces))
        let statuses = try c4.statusOfEveryProcedure(root)
        #expect(statuses.count == 21)
        for (procedure, status) in statuses {
            #expect(status == .acces, "\(procedure) answered \(status)")
        }
        // NULL needs no access.
        #expect(try c4.rawCall(program: NFSProgramNumber.nfs, version: 3, procedure: 0, arguments: ByteBuffer())
                == .success(results: ByteBuffer()))
    }

    @Test func reloadAppliesFromTheNextCall() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        let server = try NFS3TestServer(exports: [Export(hostPath: path, mountPath: "/export", clients: [rwRule(.vsockCID(3))])],
                                        sandbox: sandbox)
        let c3 = try server.client(Self.guest)
        let root = try c3.rootHandle()
        #expect(try c3.getattr(root).status == .ok)
        try server.context.replace(AuthTable(exports: [Export(hostPath: path, mountPath: "/export", clients: [rwRule(.vsockCID(5))])]))
        #expect(try c3.getattr(root).status == .acces)
        try server.context.replace(AuthTable(exports: [Export(hostPath: path, mountPath: "/export", clients: [roRule(.vsockCID(3))])]))
        #expect(try c3.getattr(root).status == .ok)
        #expect(try c3.create(root, "f").status == .rofs)
    }

    @Test func readOnlyExportRefusesEveryChange() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        _ = FileManager.default.createFile(atPath: path + "/x", contents: Data("hello".utf8))
        mkdir(path + "/d", 0o755)
        let server = try NFS3TestServer(exports: [Export(hostPath: path, mountPath: "/export", clients: [roRule()])],
                                        sandbox: sandbox)
        let c = try server.client(Self.guest)
        let root = try c.rootHandle()
        let file = try #require(try c.lookup(root, "x").ok?.object)
        let changing: [NFS3Procedure] = [.setattr, .write, .create, .mkdir, .symlink, .mknod, .remove, .rmdir, .rename, .link]
        for (handle, name) in [(root, "x"), (root, "d"), (file, "x")] {
            let statuses = try c.statusOfEveryProcedure(handle, name: name)
            for procedure in changing {
                #expect(statuses[procedure] == .rofs, "\(procedure) answered \(String(describing: statuses[procedure]))")
            }
        }
        // Reading still works; ACCESS grants no changes.
        guard case .ok(let read) = try c.read(file, count: 100) else { Issue.record("READ"); return }
        #expect(Array(read.data.readableBytesView) == Array("hello".utf8))
        let access: NFS3AccessResult = try c.nfs(.access, NFS3AccessArgs(object: file, access: 0x3f))
        #expect((access.ok?.access ?? 0) & 0x1c == 0)
        #expect(FileManager.default.fileExists(atPath: path + "/x"))
    }

    /// On a tmpfs export small WRITEs are done on the event loop (`writeWithoutBlocking`):
    /// they must answer as the pool's WRITE does, and a read-only export still refuses them.
    @Test(.enabled(if: geteuid() == 0, "mount(2) needs root")) func tmpfsWritesAnswerAsOrdinaryWrites() throws {
        let sandbox = NFS3Sandbox()
        let rw = sandbox.exportDirectory("rw"), ro = sandbox.exportDirectory("ro")
        for path in [rw, ro] {
            try #require(Glibc.mount("vsnfs-test", path, "tmpfs", 0, "size=4m,mode=0777") == 0, "mount tmpfs: errno \(errno)")
            _ = FileManager.default.createFile(atPath: path + "/x", contents: Data("hello".utf8), attributes: [.posixPermissions: 0o666])
        }
        defer { for path in [rw, ro] { umount2(path, Int32(MNT_DETACH)) } }
        let server = try NFS3TestServer(exports: [Export(hostPath: rw, mountPath: "/rw", clients: [rwRule()]),
                                                  Export(hostPath: ro, mountPath: "/ro", clients: [roRule()])],
                                        sandbox: sandbox)
        #expect(server.context.hostFS.servesMemoryBackedExport)
        let c = try server.client(Self.guest)
        for (mountPath, expected) in [("/rw", NFS3Status.ok), ("/ro", .rofs)] {
            let root = try c.rootHandle(mountPath)
            let file = try #require(try c.lookup(root, "x").ok?.object)
            _ = try c.read(file, count: 5)   // in the open-file cache now: the event loop may answer
            let written = try c.write(file, offset: 5, Array(" world".utf8), stable: .fileSync)
            #expect(written.status == expected, "\(mountPath)")
            if expected == .ok {
                #expect(written.ok?.count == 6 && written.ok?.committed == .fileSync)
                #expect(written.ok?.fileWcc.after?.size == 11)
            }
        }
        #expect(try String(contentsOfFile: rw + "/x", encoding: .utf8) == "hello world")
        #expect(try String(contentsOfFile: ro + "/x", encoding: .utf8) == "hello")
    }

    @Test func rootIsSquashedByDefault() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3)), rwRule(.vsockCID(7), squash: .noRootSquash)])
        let c = try server.client(Self.guest, uid: 0, gid: 0)
        let root = try c.rootHandle()
        let created = try #require(try c.create(root, "by-root").ok)
        #expect(created.objectAttributes.attributes?.uid == 65534)
        #expect(created.objectAttributes.attributes?.gid == 65534)
        let user = try server.client(Self.guest, uid: 1000, gid: 1000)
        #expect(try user.create(root, "by-user").ok?.objectAttributes.attributes?.uid == 1000)
        let trusted = try server.client(.vsock(cid: 7, port: 1), uid: 0, gid: 0)
        #expect(try trusted.create(root, "by-trusted-root").ok?.objectAttributes.attributes?.uid == 0)
    }

    @Test func allSquashAndAnonuidApply() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3), squash: .allSquash, anon: 1234)])
        let c = try server.client(Self.guest, uid: 1000, gid: 1000, gids: [4, 24])
        let root = try c.rootHandle()
        let attrs = try #require(try c.create(root, "f").ok?.objectAttributes.attributes)
        #expect(attrs.uid == 1234 && attrs.gid == 1234)
        // AUTH_NONE is the anonymous identity too.
        c.credential = .none
        let dir = try #require(try c.mkdir(root, "d").ok?.objectAttributes.attributes)
        #expect(dir.uid == 1234 && dir.gid == 1234)
    }

    @Test func mknodCreatesFifosAndSocketsButDevicesOnlyForTrustedRoot() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3))])
        let c = try server.client(Self.guest)
        let root = try c.rootHandle()
        let fifo: NFS3MknodResult = try c.nfs(.mknod, NFS3MknodArgs(whereTo: NFS3DirOpArgs(directory: root, name: "fifo"), what: .fifo(.none)))
        #expect(fifo.ok?.objectAttributes.attributes?.type == .fifo)
        let sock: NFS3MknodResult = try c.nfs(.mknod, NFS3MknodArgs(whereTo: NFS3DirOpArgs(directory: root, name: "sock"), what: .socket(.none)))
        #expect(sock.ok?.objectAttributes.attributes?.type == .socket)
        let dev = try c.status(.mknod, NFS3MknodArgs(whereTo: NFS3DirOpArgs(directory: root, name: "null"),
                                                     what: .characterDevice(.none, NFS3SpecData(major: 1, minor: 3))))
        #expect(dev == .perm)
        let reg = try c.status(.mknod, NFS3MknodArgs(whereTo: NFS3DirOpArgs(directory: root, name: "reg"), what: .other(.regular)))
        #expect(reg == .badtype)
    }

    // MARK: attributes and data

    @Test func setattrGuardAndSize() throws {
        let server = try NFS3TestServer(clients: [rwRule()])
        let c = try server.client(Self.guest, uid: 1000, gid: 1000)
        let root = try c.rootHandle()
        let created = try #require(try c.create(root, "f").ok)
        let fh = try #require(created.object)
        let ctime = try #require(created.objectAttributes.attributes?.ctime)
        let wrong = NFS3Time(seconds: ctime.seconds &- 1, nseconds: ctime.nseconds)
        let refused: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(object: fh, newAttributes: NFS3SetAttributes(size: 10),
                                                                              guardCtime: wrong))
        #expect(refused.status == .notSync)
        let done: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(
            object: fh, newAttributes: NFS3SetAttributes(mode: 0o640, size: 10, mtime: .clientTime(NFS3Time(seconds: 1_000_000, nseconds: 5))),
            guardCtime: ctime))
        let wcc = try #require(done.ok)
        #expect(wcc.before?.ctime == ctime)
        #expect(wcc.after?.size == 10)
        #expect(wcc.after?.mode == 0o640)
        #expect(wcc.after?.mtime == NFS3Time(seconds: 1_000_000, nseconds: 5))
    }

    @Test func writeStabilitiesAndCommitVerifier() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3)), rwRule(.vsockCID(8), sync: false)])
        let c = try server.client(Self.guest, uid: 1000, gid: 1000)
        let root = try c.rootHandle()
        let fh = try c.createdHandle(try c.create(root, "data"))
        let verifier = NFS3Verifier(server.context.hostFS.writeVerifier)
        var expected: [UInt8] = []
        for (index, stable) in [NFS3StableHow.unstable, .dataSync, .fileSync].enumerated() {
            let chunk = [UInt8](repeating: UInt8(index + 1), count: 5000)
            let w = try #require(try c.write(fh, offset: UInt64(expected.count), chunk, stable: stable).ok)
            #expect(w.count == 5000)
            #expect(w.committed == stable)
            #expect(w.verifier == verifier)
            #expect(w.fileWcc.after?.size == UInt64(expected.count + 5000))
            expected += chunk
        }
        let commit: NFS3CommitResult = try c.nfs(.commit, NFS3CommitArgs(file: fh, offset: 0, count: 0))
        #expect(commit.ok?.verifier == verifier)
        let read = try #require(try c.read(fh, count: 1 << 20).ok)
        #expect(read.eof && read.count == 15000)
        #expect(Array(read.data.readableBytesView) == expected)
        // An offset read at the end: empty and eof.
        let tail = try #require(try c.read(fh, offset: 15000, count: 10).ok)
        #expect(tail.count == 0 && tail.eof)
        // async exports answer FILE_SYNC as asked (without syncing, like knfsd).
        let asyncClient = try server.client(.vsock(cid: 8, port: 1), uid: 1000, gid: 1000)
        let w = try #require(try asyncClient.write(fh, offset: 0, [9], stable: .fileSync).ok)
        #expect(w.committed == .fileSync)
        // READ count is clamped to rtmax.
        let big = try c.createdHandle(try c.create(root, "big"))
        for offset in Swift.stride(from: 0, to: 3 << 20, by: 1 << 20) {
            _ = try #require(try c.write(big, offset: UInt64(offset), [UInt8](repeating: 7, count: 1 << 20), stable: .unstable).ok)
        }
        let clamped = try #require(try c.read(big, offset: 0, count: 3 << 20).ok)
        #expect(clamped.count == 1 << 20 && !clamped.eof)
        // WRITE claiming more than it carries is refused.
        #expect(try c.status(.write, NFS3WriteArgs(file: fh, offset: 0, count: 10, stable: .unstable, data: ByteBuffer(bytes: [1]))) == .inval)
    }

    @Test func nowccLeavesWeakCacheDataOut() throws {
        let server = try NFS3TestServer(clients: [rwRule(noWCC: true)])
        let c = try server.client(Self.guest, uid: 1000, gid: 1000)
        let root = try c.rootHandle()
        let created = try #require(try c.create(root, "f").ok)
        #expect(created.directoryWcc == .none)
        let object = try #require(created.object)
        let w = try #require(try c.write(object, [1, 2, 3]).ok)
        #expect(w.fileWcc == .none)
    }

    // MARK: directories

    @Test func readdirplusPagesTenThousandEntriesWithoutLossOrDuplication() throws {
        let sandbox = NFS3Sandbox()
        let path = sandbox.exportDirectory("export")
        mkdir(path + "/big", 0o755)
        var expected: Set<String> = [".", ".."]
        for i in 0..<10_000 {
            let name = "entry-\(i)-" + String(repeating: "x", count: i % 40)
            let fd = open(path + "/big/" + name, O_CREAT | O_WRONLY, 0o644)
            precondition(fd >= 0)
            close(fd)
            expected.insert(name)
        }
        let server = try NFS3TestServer(exports: [Export(hostPath: path, mountPath: "/export", clients: [rwRule()])], sandbox: sandbox)
        let c = try server.client(Self.guest)
        let dir = try #require(try c.lookup(try c.rootHandle(), "big").ok?.object)

        var seen: [String] = []
        var cookie: UInt64 = 0
        var verifier = NFS3Verifier.zero
        var pages = 0
        while true {
            let page: NFS3ReaddirPlusResult = try c.nfs(.readdirplus, NFS3ReaddirPlusArgs(
                directory: dir, cookie: cookie, cookieVerifier: verifier, dirCount: 2048, maxCount: 16384))
            let ok = try #require(page.ok, "READDIRPLUS failed: \(page.status)")
            pages += 1
            for entry in ok.entries {
                seen.append(entry.name.string)
                if entry.name.string != ".." {
                    #expect(entry.handle != nil && entry.attributes.attributes != nil)
                }
                // Each entry carries its own handle (they share one buffer per reply).
                if seen.count % 97 == 0, let h = entry.handle {
                    #expect(try c.getattr(h).ok?.fileid == entry.fileid)
                }
            }
            if ok.eof { break }
            cookie = try #require(ok.entries.last?.cookie)
            verifier = ok.cookieVerifier
            #expect(pages < 10_000)
        }
        #expect(seen.count == expected.count)
        #expect(Set(seen) == expected)
        #expect(pages > 10)

        // READDIR too, with a small count.
        var names: [String] = []
        cookie = 0
        verifier = .zero
        while true {
            let page: NFS3ReaddirResult = try c.nfs(.readdir, NFS3ReaddirArgs(directory: dir, cookie: cookie,
                                                                               cookieVerifier: verifier, count: 4096))
            let ok = try #require(page.ok)
            names += ok.entries.map(\.name.string)
            if ok.eof { break }
            cookie = try #require(ok.entries.last?.cookie)
            verifier = ok.cookieVerifier
        }
        #expect(names.count == expected.count && Set(names) == expected)
        // A count too small for one entry.
        #expect(try c.status(.readdir, NFS3ReaddirArgs(directory: dir, cookie: 0, cookieVerifier: .zero, count: 100)) == .toosmall)
    }

    @Test func lookupOfDotDotAtTheRootStaysAtTheRoot() throws {
        let server = try NFS3TestServer(clients: [rwRule()])
        let c = try server.client(Self.guest)
        let root = try c.rootHandle()
        let up = try #require(try c.lookup(root, "..").ok)
        #expect(up.object == root)
        let sub = try c.createdHandle(try c.mkdir(root, "sub"))
        let parent = try #require(try c.lookup(sub, "..").ok)
        #expect(parent.objectAttributes.attributes?.fileid == up.objectAttributes.attributes?.fileid)
        guard case .fail(.noent, let dirAttributes) = try c.lookup(root, "missing") else {
            Issue.record("LOOKUP of a missing name")
            return
        }
        #expect(dirAttributes.attributes?.fileid == up.objectAttributes.attributes?.fileid)
    }

    /// The second LOOKUP of a name is answered on the event loop (directory open,
    /// dentry cached): it must give what the thread pool gave, refusals included.
    @Test func repeatedLookupsAnswerAsTheFirst() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3))])
        let user = try server.client(Self.guest, uid: 1000, gid: 1000)
        let root = try user.rootHandle()
        let dir = try user.createdHandle(try user.mkdir(root, "private"))
        _ = try user.createdHandle(try user.create(dir, "f"))
        let symlink: NFS3SymlinkResult = try user.nfs(.symlink, NFS3SymlinkArgs(
            whereTo: NFS3DirOpArgs(directory: dir, name: "sym"), attributes: .none, target: "/etc"))
        #expect(symlink.status == .ok)
        let chmod: NFS3SetAttrResult = try user.nfs(.setattr, NFS3SetAttrArgs(object: dir, newAttributes: NFS3SetAttributes(mode: 0o700)))
        #expect(chmod.status == .ok)

        func twice(_ c: NFS3TestClient, _ name: String) throws -> (NFS3LookupResult, NFS3LookupResult) {
            (try c.lookup(dir, name), try c.lookup(dir, name))
        }
        for name in ["f", "sym"] {
            let (first, second) = try twice(user, name)
            let a = try #require(first.ok), b = try #require(second.ok)
            #expect(a.object == b.object)
            #expect(a.objectAttributes.attributes == b.objectAttributes.attributes)
            #expect(a.directoryAttributes.attributes == b.directoryAttributes.attributes)
        }
        #expect(try user.lookup(dir, "sym").ok?.objectAttributes.attributes?.type == .symlink)
        let (missing1, missing2) = try twice(user, "missing")
        guard case .fail(.noent, let d1) = missing1, case .fail(.noent, let d2) = missing2 else {
            Issue.record("LOOKUP of a missing name: \(missing1.status), \(missing2.status)")
            return
        }
        #expect(d1.attributes != nil && d1.attributes == d2.attributes)

        // As root the server checks as the caller: squashed root and another user
        // may not search the 0700 directory, however often they ask.
        guard geteuid() == 0 else { return }
        let squashed = try server.client(Self.guest, uid: 0, gid: 0)
        let other = try server.client(Self.guest, uid: 1001, gid: 1001, gids: [1000])
        for c in [squashed, other] {
            for name in ["f", "sym", "missing"] {
                let (first, second) = try twice(c, name)
                #expect(first.status == .acces && second.status == .acces, "\(name): \(first.status), \(second.status)")
            }
        }
    }

    @Test func handlesOfAnotherExportDoNotMix() throws {
        let sandbox = NFS3Sandbox()
        let a = sandbox.exportDirectory("a"), b = sandbox.exportDirectory("b")
        let server = try NFS3TestServer(exports: [
            Export(hostPath: a, mountPath: "/a", clients: [rwRule(.vsockCID(3))]),
            Export(hostPath: b, mountPath: "/b", clients: [rwRule(.vsockCID(3)), rwRule(.vsockCID(9))]),
        ], sandbox: sandbox)
        let c = try server.client(Self.guest, uid: 1000, gid: 1000)
        let rootA = try c.rootHandle("/a"), rootB = try c.rootHandle("/b")
        let file = try c.createdHandle(try c.create(rootA, "f"))
        let rename: NFS3RenameResult = try c.nfs(.rename, NFS3RenameArgs(from: NFS3DirOpArgs(directory: rootA, name: "f"),
                                                                         to: NFS3DirOpArgs(directory: rootB, name: "f")))
        #expect(rename.status == .xdev)
        #expect(try c.status(.link, NFS3LinkArgs(file: file, link: NFS3DirOpArgs(directory: rootB, name: "l"))) == .xdev)
        // A peer with access to /b only cannot use a handle of /a.
        let c9 = try server.client(.vsock(cid: 9, port: 1), uid: 1000, gid: 1000)
        #expect(try c9.getattr(rootB).status == .ok)
        #expect(try c9.getattr(file).status == .acces)
        #expect(try c9.lookup(rootA, "f").status == .acces)
    }

    @Test func renamesKeepHandlesAndSymlinksAreNotFollowed() throws {
        let server = try NFS3TestServer(clients: [rwRule()])
        let c = try server.client(Self.guest, uid: 1000, gid: 1000)
        let root = try c.rootHandle()
        let dir = try c.createdHandle(try c.mkdir(root, "dir"))
        let file = try c.createdHandle(try c.create(dir, "file"))
        _ = try #require(try c.write(file, Array("content".utf8)).ok)
        let renamed: NFS3RenameResult = try c.nfs(.rename, NFS3RenameArgs(from: NFS3DirOpArgs(directory: root, name: "dir"),
                                                                          to: NFS3DirOpArgs(directory: root, name: "dir2")))
        #expect(renamed.status == .ok)
        #expect(try c.lookup(root, "dir").status == .noent)
        #expect(Array(try #require(try c.read(file, count: 100).ok).data.readableBytesView) == Array("content".utf8))
        // LINK and SYMLINK / READLINK.
        let link: NFS3LinkResult = try c.nfs(.link, NFS3LinkArgs(file: file, link: NFS3DirOpArgs(directory: root, name: "hard")))
        #expect(link.ok?.fileAttributes.attributes?.nlink == 2)
        let symlink: NFS3SymlinkResult = try c.nfs(.symlink, NFS3SymlinkArgs(
            whereTo: NFS3DirOpArgs(directory: root, name: "sym"), attributes: .none, target: "/etc/passwd"))
        let sym = try c.createdHandle(symlink)
        let text: NFS3ReadlinkResult = try c.nfs(.readlink, NFS3HandleArgs(object: sym))
        #expect(text.ok?.data == "/etc/passwd")
        #expect(try c.read(sym, count: 10).status == .inval)
        // REMOVE / RMDIR.
        #expect(try c.status(.rmdir, NFS3DirOpArgs(directory: root, name: "dir2")) == .notempty)
        #expect(try c.status(.remove, NFS3DirOpArgs(directory: root, name: "hard")) == .ok)
    }

    // MARK: handles

    @Test func forgedAndStaleHandles() throws {
        let server = try NFS3TestServer(clients: [rwRule()])
        let c = try server.client(Self.guest, uid: 1000, gid: 1000)
        let root = try c.rootHandle()
        var flipped = root.byteArray
        flipped[flipped.count - 1] ^= 1
        var headerFlipped = root.byteArray
        headerFlipped[3] ^= 0x40
        let forged: [NFS3FileHandle] = [
            NFS3FileHandle(flipped),
            NFS3FileHandle(headerFlipped),
            NFS3FileHandle(Array(root.byteArray.dropLast())),
            NFS3FileHandle(root.byteArray + [0]),
            NFS3FileHandle([]),
            NFS3FileHandle((0..<64).map { _ in UInt8.random(in: 0...255) }),
        ]
        for fh in forged {
            #expect(try c.getattr(fh).status == .badhandle, "\(fh)")
            #expect(try c.lookup(fh, "x").status == .badhandle, "\(fh)")
        }
        // A removed object's handle is stale.
        let fh = try c.createdHandle(try c.create(root, "gone"))
        #expect(try c.status(.remove, NFS3DirOpArgs(directory: root, name: "gone")) == .ok)
        #expect(try c.getattr(fh).status == .stale)
        #expect(try c.read(fh, count: 1).status == .stale)
    }

    // MARK: RPC-level behavior

    @Test func garbageArgumentsAndUnavailableProcedures() throws {
        let server = try NFS3TestServer(clients: [rwRule()])
        let c = try server.client(Self.guest)
        let root = try c.rootHandle()
        #expect(try c.rawCall(program: NFSProgramNumber.nfs, version: 3, procedure: 1, arguments: ByteBuffer(bytes: [0, 0])) == .garbageArguments)
        var truncated = ByteBuffer()
        NFS3WriteArgs(file: root, offset: 0, count: 100, stable: .unstable, data: ByteBuffer(bytes: [UInt8](repeating: 1, count: 100)))
            .encode(xdr: &truncated)
        truncated.moveWriterIndex(to: truncated.writerIndex - 10)
        #expect(try c.rawCall(program: NFSProgramNumber.nfs, version: 3, procedure: 7, arguments: truncated) == .garbageArguments)
        #expect(try c.rawCall(program: NFSProgramNumber.mount, version: 3, procedure: 1, arguments: ByteBuffer(bytes: [0, 0, 0, 9])) == .garbageArguments)
        #expect(try c.rawCall(program: NFSProgramNumber.nfs, version: 3, procedure: 22, arguments: ByteBuffer()) == .procedureUnavailable)
        // A dispatcher serving NFSv3 alone (this test server registers no NFS4Program) answers
        // version 4 PROG_MISMATCH, so a client that tries 4 falls back to 3.
        #expect(try c.rawCall(program: NFSProgramNumber.nfs, version: 4, procedure: 0, arguments: ByteBuffer()) == .programMismatch(low: 3, high: 3))
        #expect(try c.rawCall(program: NFSProgramNumber.nfs, version: 4, procedure: 1, arguments: ByteBuffer()) == .programMismatch(low: 3, high: 3))
        #expect(try c.rawCall(program: NFSProgramNumber.mount, version: 3, procedure: 6, arguments: ByteBuffer()) == .procedureUnavailable)
        #expect(try c.rawCall(program: NFSProgramNumber.nfs, version: 2, procedure: 0, arguments: ByteBuffer()) == .programMismatch(low: 3, high: 3))
    }

    @Test func fsinfoFsstatPathconf() throws {
        let server = try NFS3TestServer(clients: [rwRule()])
        let c = try server.client(Self.guest)
        let root = try c.rootHandle()
        let info: NFS3FSInfoResult = try c.nfs(.fsinfo, NFS3HandleArgs(object: root))
        let ok = try #require(info.ok)
        #expect(ok.rtmax == 1 << 20 && ok.wtmax == 1 << 20 && ok.rtpref == 1 << 20 && ok.wtpref == 1 << 20)
        #expect(ok.dtpref == 64 << 10)
        #expect(ok.properties == 0x1b)
        let stat: NFS3FSStatResult = try c.nfs(.fsstat, NFS3HandleArgs(object: root))
        #expect((stat.ok?.totalBytes ?? 0) > 0)
        let conf: NFS3PathConfResult = try c.nfs(.pathconf, NFS3HandleArgs(object: root))
        #expect(conf.ok?.nameMax == 255)
    }
}
