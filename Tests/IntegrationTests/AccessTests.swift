import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// Who may reach what, over real connections to a real `vsnfs serve` with an
/// exports file. TCP peers are identified by address: connections from
/// 127.0.0.1 and from 127.0.0.2 are two clients. None gets past what the
/// exports file and the host's permissions allow.
///
///     shared   127.0.0.1(rw) 127.0.0.2(ro)             root_squash (the default)
///     private  127.0.0.1(rw,no_root_squash)            nothing for 127.0.0.2
///     anon     127.0.0.1(rw,all_squash,anonuid=4321,anongid=4321)
@Suite(.serialized) struct AccessTests {
    final class Setup {
        let sandbox = NFS3Sandbox()
        let shared: String, privateDir: String, anon: String
        /// Beside the exports, on the same filesystem: where links and renames lead.
        let outside: String
        let server: ServerProcess

        init() throws {
            shared = sandbox.exportDirectory("shared")
            privateDir = sandbox.exportDirectory("private")
            anon = sandbox.exportDirectory("anon")
            outside = sandbox.exportDirectory("outside", mode: 0o755)
            try "outside the export\n".write(toFile: outside + "/secret", atomically: false, encoding: .utf8)
            try "root's own\n".write(toFile: privateDir + "/rootfile", atomically: false, encoding: .utf8)
            chmod(privateDir + "/rootfile", 0o600)
            let exports = sandbox.dir + "/exports"
            try """
                \(shared) 127.0.0.1(rw) 127.0.0.2(ro)
                \(privateDir) 127.0.0.1(rw,no_root_squash)
                \(anon) 127.0.0.1(rw,all_squash,anonuid=4321,anongid=4321)

                """.write(toFile: exports, atomically: false, encoding: .utf8)
            server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        }

        deinit { server.stop() }

        /// A client from `source` presenting AUTH_SYS `uid`/`gid`.
        func client(from source: String = "127.0.0.1", uid: UInt32, gid: UInt32? = nil) throws -> NFS3TestClient {
            let c = NFS3TestClient(try RawRPCClient(tcpPort: server.port, from: source))
            c.credential = AuthSysParameters(machineName: Array("test".utf8), uid: uid, gid: gid ?? uid).opaqueAuth
            return c
        }

        /// A file made on the host, owned by `uid`, with `mode`.
        func hostFile(_ path: String, _ text: String, uid: UInt32 = 0, mode: mode_t = 0o644) throws {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chown(path, uid, uid)
            chmod(path, mode)
        }
    }

    static func text(_ r: NFS3ReadResult) -> String? { r.ok.map { String(buffer: $0.data) } }

    @Test func aPeerWithoutAccessIsRefusedMountAndEveryCallWithAHandle() throws {
        let s = try Setup()
        let insider = try s.client(uid: 0)
        let root = try insider.rootHandle(s.privateDir)
        let file = try #require(try insider.lookup(root, "rootfile").ok?.object)
        #expect(Self.text(try insider.read(file, count: 100)) == "root's own\n")   // no_root_squash: root reads 0600

        let stranger = try s.client(from: "127.0.0.2", uid: 0)
        #expect(try stranger.mount(s.privateDir) == .fail(.acces))
        // Handles learnt some other way are no key: every call is refused.
        for status in [try stranger.getattr(root).status, try stranger.lookup(root, "rootfile").status,
                       try stranger.read(file, count: 100).status, try stranger.write(file, Array("x".utf8)).status,
                       try stranger.getattr(file).status] {
            #expect(status == .acces || status == .perm, "\(status)")
        }
        #expect(try String(contentsOfFile: s.privateDir + "/rootfile", encoding: .utf8) == "root's own\n")
    }

    @Test func aReadOnlyPeerReadsButEveryChangeIsROFS() throws {
        let s = try Setup()
        try s.hostFile(s.shared + "/f", "unchanged\n", mode: 0o666)
        mkdir(s.shared + "/d", 0o777)
        let c = try s.client(from: "127.0.0.2", uid: 1000)
        let root = try c.rootHandle(s.shared)
        let file = try #require(try c.lookup(root, "f").ok?.object)
        #expect(Self.text(try c.read(file, count: 100)) == "unchanged\n")
        #expect(try c.write(file, Array("changed".utf8)).status == .rofs)
        #expect(try c.create(root, "new").status == .rofs)
        #expect(try c.mkdir(root, "newdir").status == .rofs)
        let setattr: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(object: file, newAttributes: NFS3SetAttributes(size: 0)))
        #expect(setattr.status == .rofs)
        let remove: NFS3RemoveResult = try c.nfs(.remove, NFS3DirOpArgs(directory: root, name: "f"))
        #expect(remove.status == .rofs)
        let rmdir: NFS3RmdirResult = try c.nfs(.rmdir, NFS3DirOpArgs(directory: root, name: "d"))
        #expect(rmdir.status == .rofs)
        let rename: NFS3RenameResult = try c.nfs(.rename, NFS3RenameArgs(from: NFS3DirOpArgs(directory: root, name: "f"),
                                                                         to: NFS3DirOpArgs(directory: root, name: "g")))
        #expect(rename.status == .rofs)
        let link: NFS3LinkResult = try c.nfs(.link, NFS3LinkArgs(file: file, link: NFS3DirOpArgs(directory: root, name: "l")))
        #expect(link.status == .rofs)
        let symlink: NFS3SymlinkResult = try c.nfs(.symlink, NFS3SymlinkArgs(
            whereTo: NFS3DirOpArgs(directory: root, name: "s"), attributes: NFS3SetAttributes(), target: "f"))
        #expect(symlink.status == .rofs)
        let access: NFS3AccessResult = try c.nfs(.access, NFS3AccessArgs(object: file, access: 0x3f))
        #expect(access.ok.map { $0.access & 0x1c } == 0, "ACCESS grants modify/extend/delete to a read-only peer")
        // The same file, from the read-write peer, is writable: the refusal was the export's.
        let rw = try s.client(uid: 1000)
        #expect(try rw.write(try #require(try rw.lookup(try rw.rootHandle(s.shared), "f").ok?.object), Array("W".utf8)).ok != nil)
        #expect(try String(contentsOfFile: s.shared + "/f", encoding: .utf8) == "Wnchanged\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.shared).sorted() == ["d", "f"])
    }

    @Test(.enabled(if: geteuid() == 0, "squashing needs the server to run as root (it takes the caller's fsuid)"))
    func rootIsSquashedToNobodyAndAllSquashMapsEveryone() throws {
        let s = try Setup()
        try s.hostFile(s.shared + "/rootonly", "root's\n", uid: 0, mode: 0o600)
        let root = try s.client(uid: 0)
        let dir = try root.rootHandle(s.shared)
        let file = try #require(try root.lookup(dir, "rootonly").ok?.object)
        #expect(try root.read(file, count: 100).status == .acces, "root_squash: uid 0 read a 0600 root file")
        #expect(try root.write(file, Array("x".utf8)).status == .acces)
        let created = try root.createdHandle(try root.create(dir, "byroot"))
        let attributes = try #require(try root.getattr(created).ok)
        #expect(attributes.uid == 65534 && attributes.gid == 65534, "created as \(attributes.uid):\(attributes.gid)")
        var st = stat()
        #expect(lstat(s.shared + "/byroot", &st) == 0 && st.st_uid == 65534)

        // all_squash: any uid, root included, acts as anonuid.
        for uid: UInt32 in [0, 1000] {
            let c = try s.client(uid: uid)
            let made = try c.createdHandle(try c.create(try c.rootHandle(s.anon), "by\(uid)"))
            #expect(try c.getattr(made).ok.map { [$0.uid, $0.gid] } == [4321, 4321])
            #expect(lstat(s.anon + "/by\(uid)", &st) == 0 && st.st_uid == 4321 && st.st_gid == 4321)
        }
    }

    @Test(.enabled(if: geteuid() == 0, "other uids' permissions need the server to run as root"))
    func aUidThatDoesNotOwnAPrivateFileIsRefused() throws {
        let s = try Setup()
        try s.hostFile(s.shared + "/mine", "uid 1000's\n", uid: 1000, mode: 0o600)
        let other = try s.client(uid: 2000)
        let dir = try other.rootHandle(s.shared)
        let file = try #require(try other.lookup(dir, "mine").ok?.object)
        #expect(try other.read(file, count: 100).status == .acces)
        #expect(try other.write(file, Array("x".utf8)).status == .acces)
        let chmod: NFS3SetAttrResult = try other.nfs(.setattr, NFS3SetAttrArgs(object: file, newAttributes: NFS3SetAttributes(mode: 0o666)))
        #expect(chmod.status == .perm)
        let access: NFS3AccessResult = try other.nfs(.access, NFS3AccessArgs(object: file, access: 0x3f))
        #expect(access.ok.map { $0.access & 0x0d } == 0, "ACCESS grants read/modify/extend to a non-owner")
        // A group member does not help either (mode 0600), but the owner can.
        let owner = try s.client(uid: 1000)
        #expect(Self.text(try owner.read(file, count: 100)) == "uid 1000's\n")
        var st = stat()
        #expect(lstat(s.shared + "/mine", &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try String(contentsOfFile: s.shared + "/mine", encoding: .utf8) == "uid 1000's\n")
    }

    /// Symlinks are returned, never followed: READLINK gives the link's text, but a
    /// symlink's handle is no file and no directory (READ: INVAL, LOOKUP through it:
    /// NOTDIR), and ".." at the export root is the root. A hard link made on the host
    /// to a file outside is the same file, and a name inside the export: exporting a
    /// directory exports every name in it, under the file's own permissions.
    @Test func plantedLinksNeverLeadOutside() throws {
        let s = try Setup()
        #expect(symlink(s.outside + "/secret", s.shared + "/abs") == 0)
        #expect(symlink("../outside", s.shared + "/rel") == 0)
        try s.hostFile(s.outside + "/hardsrc", "a hard link's file\n", uid: 1000, mode: 0o600)
        #expect(link(s.outside + "/hardsrc", s.shared + "/hard") == 0)
        let c = try s.client(uid: 2000)
        let root = try c.rootHandle(s.shared)
        for (name, target) in [("abs", s.outside + "/secret"), ("rel", "../outside")] {
            let lookup = try #require(try c.lookup(root, name).ok)
            #expect(lookup.objectAttributes.attributes?.type == .symlink)
            let handle = lookup.object
            let readlink: NFS3ReadlinkResult = try c.nfs(.readlink, NFS3ReadlinkArgs(object: handle))
            #expect(readlink.ok?.data.string == target)
            #expect(try c.read(handle, count: 100).status == .inval)
            #expect(try c.lookup(handle, "secret").status == .notdir)
            let readdir: NFS3ReaddirResult = try c.nfs(.readdir, NFS3ReaddirArgs(directory: handle, cookie: 0,
                                                                                 cookieVerifier: .zero, count: 4096))
            #expect(readdir.status == .notdir)
            #expect(try c.write(handle, Array("x".utf8)).status == .inval)
        }
        let dotdot = try #require(try c.lookup(root, "..").ok)
        #expect(dotdot.object == root, "LOOKUP .. at the export root left it")
        #expect(try c.lookup(root, "../outside").status == .noent || (try c.lookup(root, "../outside").status == .inval))
        // The hard link: host permissions still hold (uid 2000 may not read uid 1000's 0600 file)...
        let hard = try #require(try c.lookup(root, "hard").ok?.object)
        #expect(try c.read(hard, count: 100).status == .acces)
        // ...and its owner reads it through the export.
        let owner = try s.client(uid: 1000)
        #expect(Self.text(try owner.read(hard, count: 100)) == "a hard link's file\n")
    }

    /// A directory the host moves out of the export while a client holds its handle
    /// and the handle of a file in it: both answer STALE, and a directory put at the
    /// old name is a new object (its own handle), never reached through the old ones.
    /// Then the same race live: the host moves the directory out and back while the
    /// client looks up and reads through the directory's handle; every answer is the
    /// file inside, STALE or NOENT.
    @Test func aDirectoryMovedOutOfTheExportIsStaleNeverTheOutside() throws {
        let s = try Setup()
        mkdir(s.shared + "/d", 0o755)
        try s.hostFile(s.shared + "/d/f", "inside\n")
        mkdir(s.outside + "/other", 0o755)
        try s.hostFile(s.outside + "/other/f", "OUTSIDE\n")
        let c = try s.client(uid: 1000)
        let root = try c.rootHandle(s.shared)
        let dir = try #require(try c.lookup(root, "d").ok?.object)
        let file = try #require(try c.lookup(dir, "f").ok?.object)
        #expect(Self.text(try c.read(file, count: 100)) == "inside\n")

        #expect(rename(s.shared + "/d", s.outside + "/d-moved") == 0)
        #expect(rename(s.outside + "/other", s.shared + "/d") == 0)
        #expect(try c.getattr(dir).status == .stale)
        #expect(try c.lookup(dir, "f").status == .stale)
        let readdir: NFS3ReaddirResult = try c.nfs(.readdir, NFS3ReaddirArgs(directory: dir, cookie: 0, cookieVerifier: .zero, count: 4096))
        #expect(readdir.status == .stale)
        #expect(try c.read(file, count: 100).status == .stale)
        let now = try #require(try c.lookup(root, "d").ok?.object)
        #expect(now != dir)
        #expect(Self.text(try c.read(try #require(try c.lookup(now, "f").ok?.object), count: 100)) == "OUTSIDE\n")

        // The race: a fresh directory, moved out and back by the host 200 times.
        mkdir(s.shared + "/r", 0o755)
        try s.hostFile(s.shared + "/r/f", "inside r\n")
        let raced = try #require(try c.lookup(root, "r").ok?.object)
        let (inside, outside) = (s.shared, s.outside)   // Sendable, for the thread
        let mover = Thread {
            for _ in 0..<200 {
                rename(inside + "/r", outside + "/r-out")
                rename(outside + "/r-out", inside + "/r")
            }
        }
        mover.start()
        var answers: [String: Int] = [:]
        while !mover.isFinished {
            let lookup = try c.lookup(raced, "f")
            guard let fh = lookup.ok?.object else { answers["LOOKUP \(lookup.status)", default: 0] += 1; continue }
            let read = try c.read(fh, count: 100)
            let key = read.ok.map { String(buffer: $0.data) == "inside r\n" ? "READ inside" : "READ other bytes" }
                ?? "READ \(read.status)"
            answers[key, default: 0] += 1
        }
        let allowed: Set<String> = ["READ inside", "LOOKUP NFS3ERR_STALE", "READ NFS3ERR_STALE", "LOOKUP NFS3ERR_NOENT"]
        #expect(Set(answers.keys).isSubset(of: allowed), "\(answers)")
    }

    /// LOOKUP ".." (and READDIRPLUS's ".." entry) of a directory the host moves out of
    /// the export at that moment: the answer is the export root (the move came after),
    /// STALE or NOENT (or a ".." entry with a name only); never the directory outside
    /// that is now its parent. 1,000 fresh directories, each moved out
    /// by another thread after a random 0-300 µs, as the LOOKUP is sent.
    @Test func dotDotOfADirectoryMovedOutAsItIsLookedUpNeverNamesTheOutside() throws {
        let s = try Setup()
        let c = try s.client(uid: 1000)
        let root = try c.rootHandle(s.shared)
        var st = stat()
        #expect(lstat(s.shared, &st) == 0)
        let rootID = UInt64(st.st_ino)
        #expect(lstat(s.outside, &st) == 0)
        let outsideID = UInt64(st.st_ino)
        let rounds = 1_000
        let asked = SharedCounter(), moved = SharedCounter()
        asked.value.store(-1, ordering: .releasing)
        moved.value.store(-1, ordering: .releasing)
        let delays = (0..<rounds).map { _ in UInt64.random(in: 0...300_000) }
        let (inside, outside) = (s.shared, s.outside)   // Sendable, for the thread
        let mover = Thread {
            for k in 0..<rounds {
                while asked.value.load(ordering: .acquiring) < k { }
                let start = monotonicNanosecondsForTests()
                while monotonicNanosecondsForTests() &- start < delays[k] { }
                rename(inside + "/r\(k)", outside + "/r\(k)")
                moved.value.store(k, ordering: .releasing)
            }
        }
        var answers: [String: Int] = [:]
        var dirs: [NFS3FileHandle] = []
        for k in 0..<rounds {
            mkdir(s.shared + "/r\(k)", 0o755)
            dirs.append(try #require(try c.lookup(root, "r\(k)").ok?.object))
        }
        mover.start()
        for k in 0..<rounds {
            func name(_ id: UInt64?) -> String {
                id == rootID ? "the export root" : id == outsideID ? "THE OUTSIDE DIRECTORY" : "fileid \(String(describing: id))"
            }
            asked.value.store(k, ordering: .releasing)
            let key: String
            if k % 2 == 0 {
                let r = try c.lookup(dirs[k], "..")
                key = "LOOKUP: " + (r.ok.map { name($0.objectAttributes.attributes?.fileid) } ?? "\(r.status)")
            } else {
                let r: NFS3ReaddirPlusResult = try c.nfs(.readdirplus, NFS3ReaddirPlusArgs(
                    directory: dirs[k], cookie: 0, cookieVerifier: .zero, dirCount: 4096, maxCount: 8192))
                let dotdot = r.ok?.entries.first { $0.name.string == ".." }
                key = "READDIRPLUS: " + (r.ok.map { _ in dotdot?.attributes.attributes.map { name($0.fileid) } ?? "name only" } ?? "\(r.status)")
            }
            answers[key, default: 0] += 1
            while moved.value.load(ordering: .acquiring) < k { }
        }
        let allowed: Set<String> = ["LOOKUP: the export root", "LOOKUP: NFS3ERR_STALE", "LOOKUP: NFS3ERR_NOENT",
                                    "READDIRPLUS: the export root", "READDIRPLUS: name only", "READDIRPLUS: NFS3ERR_STALE"]
        #expect(Set(answers.keys).isSubset(of: allowed), "\(answers)")
        print("LOOKUP and READDIRPLUS of .. racing a move out of the export: \(answers)")
    }

    /// Every single-bit change of a valid handle (a file's and the export root's)
    /// answers BADHANDLE or STALE, never another object; so do shortened and
    /// lengthened handles.
    @Test func everyBitFlipOfAHandleIsRefused() throws {
        let s = try Setup()
        try s.hostFile(s.shared + "/f", "the file\n")
        try s.hostFile(s.shared + "/g", "another file\n")
        let c = try s.client(uid: 1000)
        let root = try c.rootHandle(s.shared)
        let file = try #require(try c.lookup(root, "f").ok?.object)
        var tried = 0
        for handle in [file, root] {
            let bytes = handle.byteArray
            var variants: [[UInt8]] = []
            for bit in 0..<(bytes.count * 8) {
                var flipped = bytes
                flipped[bit / 8] ^= 1 << (bit % 8)
                variants.append(flipped)
            }
            variants += [Array(bytes.dropLast()), bytes + [0], Array(bytes.prefix(8)), []]
            for variant in variants {
                let r = try c.getattr(NFS3FileHandle(variant))
                #expect(r.status == .badhandle || r.status == .stale, "handle \(NFS3FileHandle(variant)): \(r.status)")
                tried += 1
            }
        }
        #expect(Self.text(try c.read(file, count: 100)) == "the file\n")
        print("handle bit flips: \(tried) altered handles, every one BADHANDLE or STALE")
    }
}
