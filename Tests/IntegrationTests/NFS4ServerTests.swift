import Foundation
import Glibc
import NFS4Wire
import NIOCore
import ONCRPC
import Testing
import XDR

/// The NFSv4.1 server against a real `vsnfs serve` process over TCP, with the
/// project's own RPC client sending real COMPOUNDs. TCP peers are told apart
/// by address: 127.0.0.1 and 127.0.0.2 are two clients.
///
///     <dir>/a/x   127.0.0.1(rw)
///     <dir>/a/y   127.0.0.2(rw)
///     <dir>/b     127.0.0.1(rw) 127.0.0.2(rw)
@Suite(.serialized) struct NFS4ServerTests {
    final class Setup {
        let sandbox = NFS3Sandbox()
        let x: String, y: String, b: String
        let server: ServerProcess
        /// The sandbox's path as pseudo-fs components.
        let base: [String]

        init(lease: Int? = nil) throws {
            mkdir(sandbox.dir + "/a", 0o755)
            x = sandbox.exportDirectory("a/x")
            y = sandbox.exportDirectory("a/y")
            b = sandbox.exportDirectory("b")
            base = sandbox.dir.split(separator: "/").map(String.init)
            let exports = sandbox.dir + "/exports"
            try """
                \(x) 127.0.0.1(rw,no_root_squash)
                \(y) 127.0.0.2(rw,no_root_squash)
                \(b) 127.0.0.1(rw,no_root_squash) 127.0.0.2(rw,no_root_squash)

                """.write(toFile: exports, atomically: false, encoding: .utf8)
            server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"]
                                       + (lease.map { ["--nfs4-lease", "\($0)"] } ?? []), stateDirectory: sandbox.statePath)
        }

        deinit { server.stop() }

        func client(from source: String = "127.0.0.1", owner: String? = nil) throws -> NFS4TestClient {
            let rpc = try RawRPCClient(tcpPort: server.port, from: source)
            return owner.map { NFS4TestClient(rpc, owner: $0) } ?? NFS4TestClient(rpc)
        }

        /// A session's client from `source`.
        func session(from source: String = "127.0.0.1") throws -> NFS4TestClient {
            let c = try client(from: source)
            try c.establishSession()
            return c
        }
    }

    static let read: UInt32 = 1, write: UInt32 = 2, both: UInt32 = 3

    @Test("RFC 8881 18.35, 18.36, 18.46: EXCHANGE_ID, CREATE_SESSION, then SEQUENCE'd operations on the export")
    func sessionEstablishment() throws {
        let s = try Setup()
        let c = try s.client()
        let created = try c.establishSession(maxOperations: 64)
        let session = try #require(created.value(.createSession, NFS4CreateSessionResOK.self))
        // The fore channel is the smaller of what was asked and what the server offers.
        #expect(session.foreChannelAttrs.maxOperations == 16)
        #expect(session.foreChannelAttrs.maxRequests == 8)
        try "hello".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let reply = try c.sequenced([.putrootfh] + (s.base + ["b", "f"]).map { .lookup(NFS4Name($0)) } + [
            .getattr([NFS4Attribute.type.rawValue, NFS4Attribute.size.rawValue]),
        ])
        #expect(reply.status == .ok, "\(reply.statuses)")
        let sequence = try #require(reply.value(.sequence, NFS4SequenceResOK.self))
        #expect(sequence.sessionID == c.sessionID && sequence.sequenceID == 1)
        let fattr = try #require(reply.value(.getattr, NFS4Fattr.self))
        let attributes = try NFS4Attributes(decoding: fattr, for: .verify)
        #expect(attributes.type == .regular && attributes.size == 5)
    }

    @Test("RFC 8881 2.10.6.1.3: a retried request is answered from the reply cache, not run again")
    func replayFromCache() throws {
        let s = try Setup()
        let c = try s.session()
        let file = s.b + "/replay"
        try "".write(toFile: file, atomically: false, encoding: .utf8)
        let dir = try c.handle(s.base + ["b"])
        let opened = try c.open(dir, "replay", access: Self.both)
        let open = try #require(opened.value(.open, NFS4OpenResOK.self))
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        let write = c.sequencedArguments([.putfh(fh), .write(NFS4WriteArgs(
            stateID: open.stateID, offset: 0, stable: .fileSync, data: ByteBuffer(string: "first")))], cacheThis: true)
        let first = try c.send(write)
        #expect(first.status == .ok, "\(first.statuses)")
        // The host changes the file; a retry that ran again would write "first" over it.
        try "other".write(toFile: file, atomically: false, encoding: .utf8)
        let retry = try c.send(write)
        #expect(retry.bytes == first.bytes)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "other")
        // Not cached: the retry is NFS4ERR_RETRY_UNCACHED_REP.
        let uncached = c.sequencedArguments([.putfh(fh), .getattr([NFS4Attribute.size.rawValue])], cacheThis: false)
        _ = try c.send(uncached)
        #expect(try c.send(uncached).statuses == [.retryUncachedRep])
    }

    @Test("RFC 8881 18.46.3: BADSESSION, BADSLOT and SEQ_MISORDERED")
    func sequenceErrors() throws {
        let s = try Setup()
        let c = try s.session()
        func sequence(_ session: SessionID, slot: UInt32, seq: UInt32) throws -> [NFS4Status] {
            try c.compound([.sequence(NFS4SequenceArgs(sessionID: session, sequenceID: seq, slotID: slot,
                                                       highestSlotID: 0, cacheThis: false)), .putrootfh]).statuses
        }
        #expect(try sequence(SessionID(high: 1, low: 2), slot: 0, seq: 1) == [.badsession])
        #expect(try sequence(c.sessionID, slot: 100, seq: 1) == [.badslot])
        #expect(try sequence(c.sessionID, slot: 0, seq: 5) == [.seqMisordered])
        #expect(try sequence(c.sessionID, slot: 0, seq: 1) == [.ok, .ok])
        // SEQUENCE anywhere but first: SEQUENCE_POS.
        c.sequenceID = 1
        #expect(try c.sequenced([.putrootfh, .sequence(NFS4SequenceArgs(sessionID: c.sessionID, sequenceID: 9, slotID: 0,
                                                                         highestSlotID: 0, cacheThis: false))]).statuses
                == [.ok, .ok, .sequencePos])
        // More operations than the session's ca_maxoperations (16).
        #expect(try c.sequenced(Array(repeating: .putrootfh, count: 20)).statuses == [.tooManyOps])
    }

    @Test("RFC 8881 2.10.8.3: another host's session and client ID are refused (BADSESSION, STALE_CLIENTID)")
    func sessionsBelongToTheirHost() throws {
        let s = try Setup()
        let owner = try s.session(from: "127.0.0.1")
        let other = try s.client(from: "127.0.0.2")
        other.sessionID = owner.sessionID
        other.clientID = owner.clientID
        #expect(try other.sequenced([.putrootfh]).statuses == [.badsession])
        #expect(try other.compound([.destroySession(owner.sessionID)]).statuses == [.badsession])
        #expect(try other.compound([.destroyClientID(owner.clientID)]).statuses == [.staleClientid])
        // The owner's session is untouched.
        #expect(try owner.sequenced([.putrootfh]).status == .ok)
    }

    @Test("RFC 8881 16.2.3: minor versions other than 1 and 2 are NFS4ERR_MINOR_VERS_MISMATCH with no results")
    func minorVersionMismatch() throws {
        let s = try Setup()
        let c = try s.client()
        for minor: UInt32 in [0, 3] {
            let reply = try c.compound([.putrootfh], minorVersion: minor)
            #expect(reply.status == .minorVersMismatch && reply.results.isEmpty)
        }
        #expect(try c.compound([], minorVersion: 2).status == .ok)
    }

    @Test("RFC 8881 2.10.6.2: an operation outside a session is OP_NOT_IN_SESSION; EXCHANGE_ID with others NOT_ONLY_OP")
    func outsideSession() throws {
        let s = try Setup()
        let c = try s.client()
        #expect(try c.compound([.putrootfh, .getfh]).statuses == [.opNotInSession])
        let exchange = NFS4Operation.exchangeID(NFS4ExchangeIDArgs(
            clientOwner: ClientOwner4(verifier: Verifier4(1), ownerID: NFS4Opaque(Array("x".utf8))), flags: 0,
            stateProtect: .none, clientImplID: nil))
        #expect(try c.compound([exchange, .putrootfh]).statuses == [.notOnlyOp])
    }

    @Test("RFC 8881 7.3: the pseudo-root shows each client only the exports it may use")
    func pseudoRootPerPeer() throws {
        let s = try Setup()
        let one = try s.session(from: "127.0.0.1")
        let two = try s.session(from: "127.0.0.2")
        func names(_ c: NFS4TestClient, _ path: [String]) throws -> [String] {
            let reply = try c.list(path)
            return try #require(reply.value(.readdir, NFS4TestDirectory.self), "\(reply.statuses)").names.sorted()
        }
        #expect(try names(one, s.base) == ["a", "b"])
        #expect(try names(one, s.base + ["a"]) == ["x"])
        #expect(try names(two, s.base + ["a"]) == ["y"])
        // The other client's export is refused by name (as MNT refuses it) and by handle.
        let refused = try two.sequenced([.putrootfh] + (s.base + ["a", "x"]).map { .lookup(NFS4Name($0)) })
        #expect(refused.statuses.last == .access)
        try s.server.waitForLog("/a/x refused: tcp:127.0.0.2:")
        let missing = try two.sequenced([.putrootfh] + (s.base + ["a", "z"]).map { .lookup(NFS4Name($0)) })
        #expect(missing.statuses.last == .noent)
        let xHandle = try one.handle(s.base + ["a", "x"])
        #expect(try two.sequenced([.putfh(xHandle), .getattr([NFS4Attribute.type.rawValue])]).statuses.last == .access)
        // LOOKUPP from an export's root leads back into the pseudo file system.
        let up = try one.sequenced([.putfh(xHandle), .lookupp, .getfh])
        #expect(up.status == .ok)
        #expect(try up.value(.getfh, NFS4FileHandle.self) == one.handle(s.base + ["a"]))
        // A forged pseudo handle is refused.
        var forged = try one.handle(s.base).bytes
        forged[forged.count - 1] ^= 1
        #expect(try one.sequenced([.putfh(NFS4FileHandle(forged))]).statuses.last == .badhandle)
    }

    @Test("RFC 8881 9.7, 18.16.4: an OPEN denying writes refuses another client's OPEN for writing")
    func shareDenial() throws {
        let s = try Setup()
        try "shared".write(toFile: s.b + "/locked", atomically: false, encoding: .utf8)
        let one = try s.session(from: "127.0.0.1")
        let two = try s.session(from: "127.0.0.2")
        let dirOne = try one.handle(s.base + ["b"]), dirTwo = try two.handle(s.base + ["b"])
        #expect(try one.open(dirOne, "locked", access: Self.read, deny: Self.write).status == .ok)
        #expect(try two.open(dirTwo, "locked", access: Self.write).statuses.last == .shareDenied)
        #expect(try two.open(dirTwo, "locked", access: Self.read).status == .ok)
    }

    /// A host process's POSIX write lock on `fd`'s file (F_SETLK: no waiting); whether it was granted.
    static func hostTryLock(_ fd: Int32, start: Int, length: Int) -> Bool {
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = start
        fl.l_len = length
        return fcntl(fd, F_SETLK, &fl) == 0
    }

    @Test("RFC 8881 18.10: LOCK conflicts between two clients and with a host process's fcntl lock")
    func lockConflicts() throws {
        let s = try Setup()
        let path = s.b + "/lockme"
        try "0123456789".write(toFile: path, atomically: false, encoding: .utf8)
        let one = try s.session(from: "127.0.0.1")
        let two = try s.session(from: "127.0.0.2")
        func lock(_ c: NFS4TestClient, offset: UInt64, length: UInt64) throws -> NFS4TestReply {
            let opened = try c.open(try c.handle(s.base + ["b"]), "lockme", access: Self.both)
            let open = try #require(opened.value(.open, NFS4OpenResOK.self), "\(opened.statuses)")
            let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
            return try c.sequenced([.putfh(fh), .lock(NFS4LockArgs(
                lockType: .write, reclaim: false, offset: offset, length: length,
                locker: .newLockOwner(OpenToLockOwner4(openSeqid: 0, openStateID: open.stateID, lockSeqid: 0,
                                                       lockOwner: StateOwner4(clientID: c.clientID, owner: Array("lo".utf8))))))])
        }
        #expect(try lock(one, offset: 0, length: 5).status == .ok)
        let denied = try lock(two, offset: 2, length: 2)
        #expect(denied.statuses.last == .denied)
        #expect(try lock(two, offset: 5, length: 5).status == .ok)
        // A host process's POSIX lock on bytes 100-109 refuses a client's.
        let fd = Glibc.open(path, O_RDWR)
        #expect(fd >= 0)
        defer { Glibc.close(fd) }
        #expect(Self.hostTryLock(fd, start: 100, length: 10))
        #expect(try lock(one, offset: 105, length: 1).statuses.last == .denied)
    }

    @Test("RFC 8881 8.3: a client that goes silent loses its lease and its locks on host files, with no COMPOUND arriving")
    func silentClientLosesItsLocks() throws {
        let s = try Setup(lease: 2)
        let path = s.b + "/held"
        try "0123456789".write(toFile: path, atomically: false, encoding: .utf8)
        let c = try s.session()
        let opened = try c.open(try c.handle(s.base + ["b"]), "held", access: Self.both)
        let open = try #require(opened.value(.open, NFS4OpenResOK.self), "\(opened.statuses)")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        let locked = try c.sequenced([.putfh(fh), .lock(NFS4LockArgs(
            lockType: .write, reclaim: false, offset: 0, length: 10,
            locker: .newLockOwner(OpenToLockOwner4(openSeqid: 0, openStateID: open.stateID, lockSeqid: 0,
                                                   lockOwner: StateOwner4(clientID: c.clientID, owner: Array("lo".utf8))))))])
        #expect(locked.status == .ok)
        let lockedAt = Date()
        // The client sends nothing more (a guest that was killed). A host
        // process tries for the same bytes until the server lets them go.
        let fd = Glibc.open(path, O_RDWR)
        #expect(fd >= 0)
        defer { Glibc.close(fd) }
        #expect(!Self.hostTryLock(fd, start: 0, length: 10), "the client's lock is not held on the host file")
        var freed = false
        while !freed && Date().timeIntervalSince(lockedAt) < 15 {
            usleep(100_000)
            freed = Self.hostTryLock(fd, start: 0, length: 10)
        }
        let waited = Date().timeIntervalSince(lockedAt)
        #expect(freed, "the lock was still held \(waited) s after the client's last call (lease 2 s)")
        // Not before the lease ran out; the timer looks every quarter lease (the
        // bound is loose for the sanitizer runs on a loaded machine).
        #expect(waited >= 1.9 && waited < 8, "released \(waited) s after the last call, not after one lease (2 s)")
    }

    @Test("RFC 8881 15.1.1.1: garbage in a COMPOUND is NFS4ERR_BADXDR, and the server keeps serving")
    func garbageCompound() throws {
        let s = try Setup()
        let c = try s.session()
        // SEQUENCE, then a PUTFH whose handle runs past the end of the request.
        var args = c.sequencedArguments([.putfh(NFS4FileHandle([1, 2, 3, 4]))])
        args.moveWriterIndex(to: args.writerIndex - 6)
        let reply = try c.send(args)
        #expect(reply.statuses == [.ok, .badxdr])
        // A header that cannot be read is GARBAGE_ARGS.
        #expect(try c.raw(ByteBuffer(bytes: [0, 0, 0, 200])) == .garbageArguments)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var b = ByteBuffer()
            b.writeXDRVariableOpaque([UInt8]())
            b.writeXDRUInt32(1)
            b.writeXDRUInt32(3)
            b.writeBytes((0..<64).map { _ in UInt8.random(in: 0...255, using: &random) })
            _ = try c.raw(b)
        }
        // Well-formed values at the edges: a pseudo directory's cookie past any entry.
        let cookie = try c.sequenced([.putrootfh, .readdir(NFS4ReaddirArgs(
            cookie: .max, cookieVerifier: .zero, dirCount: 1024, maxCount: 4096, attrRequest: []))])
        #expect(cookie.statuses.last == .badCookie)
        #expect(try c.sequenced([.putrootfh, .getfh]).status == .ok)
    }
}
