import Foundation
import Glibc
import NFS4Wire
import NIOCore
import ONCRPC
import Testing
import XDR

/// The grace period after a restart, against real `vsnfs serve` processes
/// sharing one state directory: RFC 8881 §8.4.2 (server failure and
/// recovery), §9.11 (reclaims), §18.51 (RECLAIM_COMPLETE).
@Suite(.serialized) struct NFS4GraceTests {
    static let both: UInt32 = 3

    final class Setup {
        let sandbox = NFS3Sandbox()
        let b: String
        let base: [String]
        let exports: String
        var server: ServerProcess

        init() throws {
            b = sandbox.exportDirectory("b")
            base = sandbox.dir.split(separator: "/").map(String.init)
            exports = sandbox.dir + "/exports"
            try "\(b) 127.0.0.1(rw,no_root_squash) 127.0.0.2(rw,no_root_squash)\n"
                .write(toFile: exports, atomically: false, encoding: .utf8)
            server = try Self.start(exports, sandbox)
        }

        static func start(_ exports: String, _ sandbox: NFS3Sandbox) throws -> ServerProcess {
            try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        }

        /// SIGKILL, then a new server on the same state directory.
        func restart() throws {
            server.kill()
            server = try Self.start(exports, sandbox)
        }

        deinit { server.stop() }

        func session(from source: String, owner: String) throws -> NFS4TestClient {
            let c = NFS4TestClient(try RawRPCClient(tcpPort: server.port, from: source), owner: owner)
            try c.establishSession()
            return c
        }
    }

    static func lock(_ c: NFS4TestClient, _ fh: NFS4FileHandle, open: StateID, reclaim: Bool) throws -> NFS4TestReply {
        try c.sequenced([.putfh(fh), .lock(NFS4LockArgs(
            lockType: .write, reclaim: reclaim, offset: 0, length: 10,
            locker: .newLockOwner(OpenToLockOwner4(openSeqid: 0, openStateID: open, lockSeqid: 0,
                                                   lockOwner: StateOwner4(clientID: c.clientID, owner: Array("lo".utf8))))))])
    }

    static func reclaimOpen(_ c: NFS4TestClient, _ fh: NFS4FileHandle) throws -> NFS4TestReply {
        try c.sequenced([.putfh(fh), .open(NFS4OpenArgs(
            seqid: 0, shareAccess: both, shareDeny: 0, owner: StateOwner4(clientID: c.clientID, owner: Array("oo".utf8)),
            openHow: .noCreate, claim: .previous(.none)))])
    }

    @Test("RFC 8881 8.4.2, 9.11, 18.51: after a restart a recorded client reclaims its open and lock; others wait for grace")
    func reclaimAfterRestart() throws {
        let s = try Setup()
        try "0123456789".write(toFile: s.b + "/locked", atomically: false, encoding: .utf8)
        // Before the restart: client A opens the file and locks bytes 0-9.
        let a = try s.session(from: "127.0.0.1", owner: "grace-a")
        let opened = try a.open(try a.handle(s.base + ["b"]), "locked", access: Self.both, owner: "oo")
        let open = try #require(opened.value(.open, NFS4OpenResOK.self), "\(opened.statuses)")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        #expect(try Self.lock(a, fh, open: open.stateID, reclaim: false).status == .ok)
        let records = try String(contentsOfFile: s.sandbox.statePath + "/nfs4-clients", encoding: .utf8)
        #expect(records.contains(Array("grace-a".utf8).map { String(format: "%02x", $0) }.joined() + " inet:127.0.0.1 0"),
                "\(records)")

        try s.restart()
        // A client the previous instance did not know: GRACE for OPEN and LOCKT, RECLAIM_BAD for a reclaim.
        let b = try s.session(from: "127.0.0.2", owner: "grace-b")
        let dirB = try b.handle(s.base + ["b"])
        #expect(try b.open(dirB, "locked", access: Self.both).statuses.last == .grace)
        #expect(try b.sequenced([.putfh(fh), .lockt(NFS4LocktArgs(
            lockType: .write, offset: 0, length: 1, owner: StateOwner4(clientID: b.clientID, owner: [1])))]).statuses.last == .grace)
        #expect(try Self.reclaimOpen(b, fh).statuses.last == .reclaimBad)
        // A again (same owner and host, a new client ID): its reclaims succeed.
        let a2 = try s.session(from: "127.0.0.1", owner: "grace-a")
        let reopened = try Self.reclaimOpen(a2, fh)
        let reopen = try #require(reopened.value(.open, NFS4OpenResOK.self), "\(reopened.statuses)")
        #expect(try Self.lock(a2, fh, open: reopen.stateID, reclaim: true).status == .ok)
        // RECLAIM_COMPLETE from the one recorded client ends grace; a second is COMPLETE_ALREADY.
        #expect(try a2.sequenced([.reclaimComplete(oneFS: false)]).status == .ok)
        #expect(try a2.sequenced([.reclaimComplete(oneFS: false)]).statuses.last == .completeAlready)
        #expect(try Self.lock(a2, fh, open: reopen.stateID, reclaim: true).statuses.last == .noGrace)
        // B opens now; A's reclaimed lock holds against it.
        let openedB = try b.open(dirB, "locked", access: Self.both)
        let openB = try #require(openedB.value(.open, NFS4OpenResOK.self), "\(openedB.statuses)")
        #expect(try Self.lock(b, fh, open: openB.stateID, reclaim: false).statuses.last == .denied)
    }

    @Test("RFC 8881 8.4.2.1: with no records (a first start, or clients destroyed) there is no grace; reclaims are NO_GRACE")
    func noGraceWithoutRecords() throws {
        let s = try Setup()
        try "x".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let a = try s.session(from: "127.0.0.1", owner: "grace-a")
        let opened = try a.open(try a.handle(s.base + ["b"]), "f", access: Self.both, owner: "oo")
        let open = try #require(opened.value(.open, NFS4OpenResOK.self), "\(opened.statuses)")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        #expect(try Self.reclaimOpen(a, fh).statuses.last == .noGrace)
        // The client goes away cleanly: its record goes too.
        #expect(try a.sequenced([.putfh(fh), .close(NFS4CloseArgs(seqid: 0, openStateID: open.stateID))]).status == .ok)
        #expect(try a.compound([.destroySession(a.sessionID)]).status == .ok)
        #expect(try a.compound([.destroyClientID(a.clientID)]).status == .ok)
        try s.restart()
        let b = try s.session(from: "127.0.0.2", owner: "grace-b")
        #expect(try b.open(try b.handle(s.base + ["b"]), "f", access: Self.both).status == .ok)
    }
}
