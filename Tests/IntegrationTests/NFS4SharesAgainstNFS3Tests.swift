import Foundation
import NFS3
import NFS4Wire
import ONCRPC
import Testing

/// NFSv4 share reservations against NFSv3 (RFC 8881 §9.7), on one real
/// `vsnfs serve`: NFSv3 has no opens, so any open denying an access refuses it.
@Suite(.serialized) struct NFS4SharesAgainstNFS3Tests {
    static let read: UInt32 = 1, write: UInt32 = 2, both: UInt32 = 3

    @Test("RFC 8881 9.7: NFSv3 WRITE and SETATTR of the size are refused while an open denies writing, READ while one denies reading")
    func nfs3MeetsDenyModes() throws {
        let s = try NFS4GraceTests.Setup()
        try "0123456789".write(toFile: s.b + "/shared", atomically: false, encoding: .utf8)
        let v3 = try NFS3TestClient(port: s.server.port)
        v3.credential = AuthSysParameters(machineName: Array("v3".utf8), uid: 0, gid: 0).opaqueAuth
        let file = try #require(try v3.lookup(try v3.rootHandle(s.b), "shared").ok?.object)
        let v4 = try s.session(from: "127.0.0.1", owner: "denier")
        let dir = try v4.handle(s.base + ["b"])
        func truncate() throws -> NFS3Status {
            try v3.status(.setattr, NFS3SetAttrArgs(object: file, newAttributes: NFS3SetAttributes(size: 10)))
        }
        func close(_ opened: NFS4TestReply) throws {
            let open = try #require(opened.value(.open, NFS4OpenResOK.self), "\(opened.statuses)")
            let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
            #expect(try v4.sequenced([.putfh(fh), .close(NFS4CloseArgs(seqid: 0, openStateID: open.stateID))]).status == .ok)
        }

        // An open that denies nothing refuses nothing.
        let plain = try v4.open(dir, "shared", access: Self.both)
        #expect(try v3.write(file, Array("a".utf8)).status == .ok)
        #expect(try v3.read(file, count: 4).status == .ok)
        try close(plain)

        let denyWrite = try v4.open(dir, "shared", access: Self.read, deny: Self.write)
        #expect(try v3.write(file, Array("b".utf8)).status == .acces)
        #expect(try truncate() == .acces)
        #expect(try v3.status(.setattr, NFS3SetAttrArgs(object: file, newAttributes: NFS3SetAttributes(mode: 0o644))) == .ok)
        #expect(try v3.read(file, count: 4).status == .ok)
        try close(denyWrite)

        let denyRead = try v4.open(dir, "shared", access: Self.read, deny: Self.read)
        #expect(try v3.read(file, count: 4).status == .acces)
        #expect(try v3.write(file, Array("c".utf8)).status == .ok)
        try close(denyRead)

        // Closed: everything goes again, and the file holds only the allowed writes.
        #expect(try v3.read(file, count: 4).status == .ok)
        #expect(try truncate() == .ok)
        #expect(try String(contentsOfFile: s.b + "/shared", encoding: .utf8) == "c123456789")
    }
}
