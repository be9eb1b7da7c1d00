import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// `map_uid`/`map_gid` through a real `vsnfs serve` process and libnfs's
/// tools (an independent client presenting AUTH_SYS uid/gid from the URL):
/// guest uid 1000 is host uid 4501, guest gid 1000 host gid 4502, both ways.
/// Needs root, so that ownership on the host is real.
///
///     mapped  127.0.0.1(rw,map_uid=1000:4501:1,map_gid=1000:4502:1)                  root_squash
///     admin   127.0.0.1(rw,no_root_squash,map_uid=1000:4501:1,map_gid=1000:4502:1)
@Suite(.serialized, .enabled(if: geteuid() == 0, "owners on the host need root"))
struct IDMapTests {
    static let guestID: UInt32 = 1000, hostUID: UInt32 = 4501, hostGID: UInt32 = 4502

    final class Setup {
        let sandbox = NFS3Sandbox()
        let mapped: String, admin: String
        let server: ServerProcess

        init() throws {
            mapped = sandbox.exportDirectory("mapped")
            admin = sandbox.exportDirectory("admin")
            // libnfs mounts the URL's directory: files live one level down.
            for dir in [mapped + "/data", admin + "/data"] {
                mkdir(dir, 0o777)
                chmod(dir, 0o777)
            }
            let exports = sandbox.dir + "/exports"
            let map = "map_uid=\(guestID):\(hostUID):1,map_gid=\(guestID):\(hostGID):1"
            try """
                \(mapped) 127.0.0.1(rw,\(map))
                \(admin) 127.0.0.1(rw,no_root_squash,\(map))

                """.write(toFile: exports, atomically: false, encoding: .utf8)
            server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        }

        deinit { server.stop() }

        /// A libnfs URL for `path` (under `mapped` unless given) as AUTH_SYS `uid`/`gid`.
        func url(_ path: String, export: String? = nil, uid: UInt32, gid: UInt32? = nil) -> String {
            Libnfs.url(port: server.port, (export ?? mapped) + path) + "&uid=\(uid)&gid=\(gid ?? uid)"
        }

        /// A file written on the host, owned by `uid`:`gid`, with `mode`.
        func hostFile(_ path: String, uid: UInt32, gid: UInt32? = nil, mode: mode_t = 0o644) throws {
            try "made on the host\n".write(toFile: path, atomically: false, encoding: .utf8)
            #expect(chown(path, uid, gid ?? uid) == 0)
            chmod(path, mode)
        }

        func local(_ name: String, _ text: String) throws -> String {
            let path = sandbox.dir + "/" + name
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            return path
        }
    }

    /// (uid, gid) of `path` on the host.
    static func hostOwner(_ path: String) -> (UInt32, UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid)
    }

    /// name -> (uid, gid) as nfs-ls lists them (`MODE NLINK UID GID SIZE NAME`; it reads READDIRPLUS).
    static func listedOwners(_ url: String) throws -> [String: (UInt32, UInt32)] {
        let listing = String(decoding: try Libnfs.check("nfs-ls", [url]), as: UTF8.self)
        var owners: [String: (UInt32, UInt32)] = [:]
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 6, let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) else {
                Issue.record("nfs-ls line not understood: \(line)")
                continue
            }
            owners[String(fields[5])] = (uid, gid)
        }
        return owners
    }

    @Test func aFileTheGuestUserCreatesIsOwnedByTheMappedHostUserAndListedAsTheGuestsOwn() throws {
        let s = try Setup()
        let local = try s.local("payload", "written as guest uid 1000\n")
        try Libnfs.check("nfs-cp", [local, s.url("/data/mine", uid: Self.guestID)])
        let owner = try #require(Self.hostOwner(s.mapped + "/data/mine"))
        #expect(owner == (Self.hostUID, Self.hostGID), "host owner \(owner)")
        let listed = try Self.listedOwners(s.url("/data", uid: Self.guestID))
        let mine = try #require(listed["mine"])
        #expect(mine == (Self.guestID, Self.guestID), "nfs-ls shows \(mine)")
        // The guest user reads it back: the server checks as host 4501, the owner
        // (nfs-cp creates it 0660, so an unmapped uid 1000 could not).
        #expect(try Libnfs.check("nfs-cat", [s.url("/data/mine", uid: Self.guestID)]) == Data("written as guest uid 1000\n".utf8))
    }

    /// Host 4501 shows as guest 1000 and only it does: host 1000 shows as
    /// anonuid (65534), not as a second "1000"; ids outside the map pass through.
    @Test func everyHostOwnerShowsAsOneGuestIdAndNoTwoAsTheSame() throws {
        let s = try Setup()
        try s.hostFile(s.mapped + "/data/target", uid: Self.hostUID, gid: Self.hostGID)
        try s.hostFile(s.mapped + "/data/host1000", uid: 1000, gid: 1000)
        try s.hostFile(s.mapped + "/data/other", uid: 1234, gid: 4321)
        try s.hostFile(s.mapped + "/data/root", uid: 0)
        let listed = try Self.listedOwners(s.url("/data", uid: Self.guestID))
        #expect(listed["target"].map { $0 == (Self.guestID, Self.guestID) } == true, "\(String(describing: listed["target"]))")
        #expect(listed["host1000"].map { $0 == (65534, 65534) } == true, "\(String(describing: listed["host1000"]))")
        #expect(listed["other"].map { $0 == (1234, 4321) } == true, "\(String(describing: listed["other"]))")
        #expect(listed["root"].map { $0 == (0, 0) } == true, "\(String(describing: listed["root"]))")
    }

    /// A guest caller presenting the host id a map targets (uid 4501) is not
    /// that host user: it becomes anonuid, so the mapped user's 0600 file is
    /// closed to it and what it creates belongs to 65534.
    @Test func aGuestIdEqualToAMappingTargetDoesNotActAsIt() throws {
        let s = try Setup()
        try s.hostFile(s.mapped + "/data/private", uid: Self.hostUID, gid: Self.hostGID, mode: 0o600)
        #expect(try Libnfs.check("nfs-cat", [s.url("/data/private", uid: Self.guestID)]) == Data("made on the host\n".utf8))
        let impostor = try Libnfs.run("nfs-cat", [s.url("/data/private", uid: Self.hostUID, gid: Self.hostGID)])
        #expect(impostor.status != 0, "guest uid 4501 read host 4501's 0600 file")
        let local = try s.local("payload", "x\n")
        try Libnfs.check("nfs-cp", [local, s.url("/data/by4501", uid: Self.hostUID, gid: Self.hostGID)])
        let owner = try #require(Self.hostOwner(s.mapped + "/data/by4501"))
        #expect(owner == (65534, 65534), "host owner \(owner)")
    }

    @Test func guestRootIsStillSquashedWithAMap() throws {
        let s = try Setup()
        let local = try s.local("payload", "root\n")
        try Libnfs.check("nfs-cp", [local, s.url("/data/byroot", uid: 0)])
        let owner = try #require(Self.hostOwner(s.mapped + "/data/byroot"))
        #expect(owner == (65534, 65534), "host owner \(owner)")
    }

    /// A map given by a reload (SIGHUP) applies to a connection already open:
    /// the next GETATTR shows the mapped owner, and the next reload takes it away.
    @Test func aReloadedMapAppliesToLiveConnections() throws {
        let s = try Setup()
        try s.hostFile(s.mapped + "/data/target", uid: Self.hostUID, gid: Self.hostGID)
        let exports = s.sandbox.dir + "/exports-reload"
        try "\(s.mapped) 127.0.0.1(rw)\n".write(toFile: exports, atomically: false, encoding: .utf8)
        let server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"])
        defer { server.stop() }
        let c = try NFS3TestClient(port: server.port)
        let data = try #require(try c.lookup(try c.rootHandle(s.mapped), "data").ok?.object)
        let file = try #require(try c.lookup(data, "target").ok?.object)
        func owner() throws -> (UInt32, UInt32)? { try c.getattr(file).ok.map { ($0.uid, $0.gid) } }
        #expect(try owner().map { $0 == (Self.hostUID, Self.hostGID) } == true)

        try "\(s.mapped) 127.0.0.1(rw,map_uid=\(Self.guestID):\(Self.hostUID):1,map_gid=\(Self.guestID):\(Self.hostGID):1)\n"
            .write(toFile: exports, atomically: false, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports", count: 1)
        let mapped = try owner()
        #expect(mapped.map { $0 == (Self.guestID, Self.guestID) } == true, "\(String(describing: mapped))")

        try "\(s.mapped) 127.0.0.1(rw)\n".write(toFile: exports, atomically: false, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports", count: 2)
        #expect(try owner().map { $0 == (Self.hostUID, Self.hostGID) } == true)
    }

    /// Owners the guest sets (SETATTR, MKDIR's attributes) are mapped guest ->
    /// host, and the replies' attributes (wcc data, GETATTR) host -> guest.
    @Test func ownersTheGuestSetsAreMappedInAndRepliesShowThemMappedOut() throws {
        let s = try Setup()
        let c = try NFS3TestClient(port: s.server.port)
        c.credential = AuthSysParameters(machineName: Array("test".utf8), uid: 0, gid: 0).opaqueAuth
        let root = try c.rootHandle(s.admin)
        let data = try #require(try c.lookup(root, "data").ok?.object)
        let file = try c.createdHandle(try c.create(data, "given"))
        let chown: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(
            object: file, newAttributes: NFS3SetAttributes(uid: Self.guestID, gid: Self.guestID)))
        let after = try #require(chown.ok?.after)
        #expect((after.uid, after.gid) == (Self.guestID, Self.guestID))
        #expect(Self.hostOwner(s.admin + "/data/given").map { $0 == (Self.hostUID, Self.hostGID) } == true)
        let got = try #require(try c.getattr(file).ok)
        #expect((got.uid, got.gid) == (Self.guestID, Self.guestID))

        // 4501 has no guest id of its own here: giving a file to it is refused.
        let ambiguous: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(
            object: file, newAttributes: NFS3SetAttributes(uid: Self.hostUID)))
        #expect(ambiguous.status == .inval)
        #expect(Self.hostOwner(s.admin + "/data/given").map { $0 == (Self.hostUID, Self.hostGID) } == true)

        let made: NFS3MkdirResult = try c.nfs(.mkdir, NFS3MkdirArgs(
            whereTo: NFS3DirOpArgs(directory: data, name: "dir"),
            attributes: NFS3SetAttributes(mode: 0o755, uid: Self.guestID, gid: Self.guestID)))
        let dirAttributes = try #require(made.ok?.objectAttributes.attributes)
        #expect((dirAttributes.uid, dirAttributes.gid) == (Self.guestID, Self.guestID))
        #expect(Self.hostOwner(s.admin + "/data/dir").map { $0 == (Self.hostUID, Self.hostGID) } == true)
    }
}
