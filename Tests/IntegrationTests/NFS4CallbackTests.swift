import Dispatch
import Foundation
import Glibc
import NFS4Wire
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import Testing
import XDR

/// An NFSv4.1 client whose one connection is also its back channel (RFC 8881
/// §2.10.3.1): it sends COMPOUNDs, keeps the server's calls that arrive
/// meanwhile, and answers them itself. The project's own blocking RPC client
/// carries both directions.
final class CallbackPeer {
    let client: NFS4TestClient
    var rpc: RawRPCClient { client.rpc }
    /// Calls from the server not yet taken by `nextCall`.
    private var pending: [RPCMessage] = []
    private var xid: UInt32 = 0x7000_0000
    static let program: UInt32 = 0x4000_0000
    static let callbackUID: UInt32 = 1234
    /// The minor version of every COMPOUND this peer sends (the session's).
    let minorVersion: UInt32

    init(_ client: NFS4TestClient, minorVersion: UInt32 = 1) {
        self.client = client
        self.minorVersion = minorVersion
    }

    /// EXCHANGE_ID, then CREATE_SESSION asking (or not) for this connection as the back channel.
    func establish(backChannel: Bool) throws {
        let exchange = try send(NFS4TestClient.arguments([.exchangeID(NFS4ExchangeIDArgs(
            clientOwner: ClientOwner4(verifier: Verifier4(7), ownerID: NFS4Opaque(client.owner)), flags: 0,
            stateProtect: .none, clientImplID: nil))], minorVersion: minorVersion))
        let ok = try #require(exchange.value(.exchangeID, NFS4ExchangeIDResOK.self))
        client.clientID = ok.clientID
        let attrs = ChannelAttrs(maxRequestSize: 1 << 20, maxResponseSize: 1 << 20, maxResponseSizeCached: 64 << 10,
                                 maxOperations: 16, maxRequests: 8)
        let security = CallbackSecParms4.sys(CallbackAuthSys(stamp: 9, machineName: NFS4Name(Array("cbpeer".utf8)),
                                                             uid: Self.callbackUID, gid: 99, gids: []))
        let created = try send(NFS4TestClient.arguments([.createSession(NFS4CreateSessionArgs(
            clientID: ok.clientID, sequence: ok.sequenceID,
            flags: backChannel ? NFS4Constants.createSessionFlagConnBackChan : 0,
            foreChannelAttrs: attrs, backChannelAttrs: attrs, callbackProgram: Self.program,
            securityParameters: [security]))], minorVersion: minorVersion))
        let session = try #require(created.value(.createSession, NFS4CreateSessionResOK.self), "\(created.statuses)")
        #expect((session.flags & NFS4Constants.createSessionFlagConnBackChan != 0) == backChannel)
        client.sessionID = session.sessionID
        client.sequenceID = 0
    }

    /// Sends a COMPOUND and reads until its reply; server calls meanwhile wait in `pending`.
    func send(_ arguments: ByteBuffer) throws -> NFS4TestReply {
        xid += 1
        try rpc.send(BlockingRPCClient.encodeCall(xid: xid, program: 100_003, version: 4, procedure: 1,
                                                  credential: client.credential, arguments: arguments))
        while true {
            let message = try RPCMessage(record: try rpc.receiveRecord())
            switch message {
            case .call: pending.append(message)
            case .reply(let replyXID, let body, _):
                guard replyXID == xid, case .success(let results) = body else {
                    throw NFS4TestDecodeError.unexpected("reply \(replyXID) \(body)")
                }
                return try decodeCompoundReply(results)
            }
        }
    }

    func sequenced(_ operations: [NFS4Operation]) throws -> NFS4TestReply {
        try send(client.sequencedArguments(operations, minorVersion: minorVersion))
    }

    /// The next call the server made on this connection (waits for it).
    func nextCall() throws -> (xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
                               credential: RPCOpaqueAuth, arguments: ByteBuffer) {
        let message = pending.isEmpty ? try RPCMessage(record: try rpc.receiveRecord()) : pending.removeFirst()
        guard case .call(let xid, _, let program, let version, let procedure, let credential, _, let arguments) = message else {
            throw NFS4TestDecodeError.unexpected("a reply where a call from the server was expected")
        }
        return (xid, program, version, procedure, credential, arguments)
    }

    func answer(_ xid: UInt32, results: ByteBuffer = ByteBuffer()) throws {
        var body = ByteBuffer()
        RPCMessage.reply(xid: xid, body: .success(results: results), verifier: .none).encode(xdr: &body)
        try rpc.send(BlockingRPCClient.frame(body))
    }

    /// Takes the CB_NULL probe the server sends when the back channel is bound, and answers it.
    func answerProbe() throws {
        let probe = try nextCall()
        #expect(probe.program == Self.program && probe.version == 1 && probe.procedure == 0)
        try answer(probe.xid)
    }

    /// Takes a CB_COMPOUND and returns its arguments (not answered yet).
    func nextCallbackCompound() throws -> (xid: UInt32, args: CBCompoundArgs, credential: RPCOpaqueAuth) {
        let call = try nextCall()
        #expect(call.program == Self.program && call.version == 1 && call.procedure == 1)
        var arguments = call.arguments
        return (call.xid, try CBCompoundArgs(xdr: &arguments), call.credential)
    }

    /// Answers a CB_COMPOUND of CB_SEQUENCE and CB_RECALL: CB_SEQUENCE
    /// succeeds, CB_RECALL answers `status` (success by default).
    func answerRecall(_ xid: UInt32, _ args: CBCompoundArgs, status: NFS4Status = .ok) throws {
        guard case .sequence(let sequence)? = args.operations.first else {
            throw NFS4TestDecodeError.unexpected("CB_COMPOUND without CB_SEQUENCE first")
        }
        var results = ByteBuffer()
        CBCompoundResponse(status: status, tag: args.tag, results: [
            .sequence(.ok(CBSequenceResOK(sessionID: sequence.sessionID, sequenceID: sequence.sequenceID,
                                          slotID: sequence.slotID, highestSlotID: 0, targetHighestSlotID: 0))),
            .recall(status),
        ]).encode(xdr: &results)
        try answer(xid, results: results)
    }

    func handle(_ path: [String]) throws -> NFS4FileHandle {
        let reply = try sequenced([.putrootfh] + path.map { .lookup(NFS4Name($0)) } + [.getfh])
        return try #require(reply.value(.getfh, NFS4FileHandle.self), "\(reply.statuses)")
    }

    /// OPEN (CLAIM_NULL) of `name` in `directory` for reading, no create.
    func openForReading(_ directory: NFS4FileHandle, _ name: String, owner: String = "cb-owner") throws -> NFS4TestReply {
        try sequenced([.putfh(directory), .open(NFS4OpenArgs(
            seqid: 0, shareAccess: NFS4ServerTests.read, shareDeny: 0,
            owner: StateOwner4(clientID: client.clientID, owner: Array(owner.utf8)),
            openHow: .noCreate, claim: .null(NFS4Name(name)))), .getfh])
    }
}

/// A host process's open(2) of a file, on its own thread: it waits while a
/// lease on the file is being broken.
final class HostOpen: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let result = NIOLockedValueBox<Int32>(-1)

    init(_ path: String, flags: Int32) {
        let done = self.done, result = self.result
        Thread.detachNewThread {
            let fd = open(path, flags)
            result.withLockedValue { $0 = fd < 0 ? -errno : fd }
            if fd >= 0 { close(fd) }
            done.signal()
        }
    }

    /// truncate(2) of the path instead of an open.
    init(truncating path: String) {
        let done = self.done, result = self.result
        Thread.detachNewThread {
            let rc = truncate(path, 0)
            result.withLockedValue { $0 = rc < 0 ? -errno : 0 }
            done.signal()
        }
    }

    /// Whether the open finished within `seconds`.
    func finished(within seconds: Double) -> Bool {
        if done.wait(timeout: .now() + seconds) == .success {
            done.signal()
            return true
        }
        return false
    }

    var status: Int32 { result.withLockedValue { $0 } }
}

/// Callbacks and read delegations against a real `vsnfs serve` over TCP.
@Suite(.serialized) struct NFS4CallbackTests {
    final class Setup {
        let sandbox = NFS3Sandbox()
        let b: String
        let server: ServerProcess
        let base: [String]

        init(lease: Int = 90) throws {
            b = sandbox.exportDirectory("b")
            base = sandbox.dir.split(separator: "/").map(String.init)
            let exports = sandbox.dir + "/exports"
            try "\(b) 127.0.0.1(rw,no_root_squash)\n".write(toFile: exports, atomically: false, encoding: .utf8)
            server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0", "--nfs4-lease", "\(lease)"],
                                       stateDirectory: sandbox.statePath)
        }

        deinit { server.stop() }

        func peer(minorVersion: UInt32 = 1) throws -> CallbackPeer {
            CallbackPeer(NFS4TestClient(try RawRPCClient(tcpPort: server.port, from: "127.0.0.1")), minorVersion: minorVersion)
        }

        /// A peer with a session whose back channel is its connection, probe answered.
        func peerWithBackChannel(minorVersion: UInt32 = 1) throws -> CallbackPeer {
            let p = try peer(minorVersion: minorVersion)
            try p.establish(backChannel: true)
            try p.answerProbe()
            return p
        }
    }

    static let pathDown: UInt32 = 0x1, revoked: UInt32 = 0x40

    @Test("RFC 8881 2.10.3.1, 18.36: CB_NULL on the fore connection after CREATE_SESSION4_FLAG_CONN_BACK_CHAN, with csa_sec_parms' AUTH_SYS")
    func cbNullProbe() throws {
        let s = try Setup()
        let p = try s.peer()
        try p.establish(backChannel: true)
        let probe = try p.nextCall()
        #expect(probe.program == CallbackPeer.program && probe.version == 1 && probe.procedure == 0)
        #expect(probe.credential.flavor == RPCAuthFlavor.sys)
        let sys = try AuthSysParameters(credentialBody: probe.credential.body)
        #expect(sys.uid == CallbackPeer.callbackUID && sys.gid == 99 && sys.machineName == Array("cbpeer".utf8))
        try p.answer(probe.xid)
        let reply = try p.sequenced([])
        let sequence = try #require(reply.value(.sequence, NFS4SequenceResOK.self))
        #expect(sequence.statusFlags & Self.pathDown == 0)
    }

    @Test("RFC 8881 10.4, 20.2, 18.6: a host open for writing recalls the read delegation (CB_RECALL on the fore connection) and waits for DELEGRETURN")
    func recallOnHostOpenForWrite() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel()
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, "f")
        let open = try #require(opened.value(.open, NFS4OpenResOK.self), "\(opened.statuses)")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        guard case .read(let delegation) = open.delegation else {
            Issue.record("no read delegation: \(open.delegation)"); return
        }
        // A READ under the delegation's stateid (§9.1.4).
        let read = try p.sequenced([.putfh(fh), .read(NFS4ReadArgs(stateID: delegation.stateID, offset: 0, count: 10))])
        #expect(read.value(.read, NFS4ReadResOK.self).map { Array($0.data.readableBytesView) } == Array("v1".utf8))

        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let recall = try p.nextCallbackCompound()
        #expect(recall.args.minorVersion == 1 && recall.args.operations.count == 2)
        guard case .sequence(let sequence)? = recall.args.operations.first,
              case .recall(let args)? = recall.args.operations.last else {
            Issue.record("not CB_SEQUENCE + CB_RECALL: \(recall.args.operations)"); return
        }
        #expect(sequence.sessionID == p.client.sessionID && sequence.slotID == 0 && sequence.sequenceID == 1)
        #expect(args.stateID == delegation.stateID && args.fileHandle == fh)
        try p.answerRecall(recall.xid, recall.args)
        // The host's open waits on the lease until the delegation comes back.
        #expect(!writer.finished(within: 0.5))
        let returned = try p.sequenced([.putfh(fh), .delegreturn(delegation.stateID)])
        #expect(returned.status == .ok, "\(returned.statuses)")
        #expect(writer.finished(within: 5))
        #expect(writer.status >= 0)
        // Returned: the stateid is gone.
        let again = try p.sequenced([.putfh(fh), .delegreturn(delegation.stateID)])
        #expect(again.statuses.last == .badStateid)
    }

    @Test("RFC 8881 10.4.6, 18.46.3, 18.48, 18.38: a recalled delegation not returned within the lease is revoked; another client's OPEN for writing is DELAY until then")
    func revocation() throws {
        let s = try Setup(lease: 2)
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel()
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, "f")
        guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation: \(opened.statuses)"); return
        }
        let other = try NFS4TestClient(RawRPCClient(tcpPort: s.server.port, from: "127.0.0.1"))
        try other.establishSession()
        let otherDir = try other.handle(s.base + ["b"])
        let refused = try other.open(otherDir, "f", access: NFS4ServerTests.write, owner: "other")
        #expect(refused.statuses.last == .delay, "\(refused.statuses)")
        let recall = try p.nextCallbackCompound()
        try p.answerRecall(recall.xid, recall.args)
        // Never returned: both clients keep their leases; the delegation goes after one lease period.
        var flags: UInt32 = 0
        let deadline = Date().addingTimeInterval(8)
        while flags & Self.revoked == 0 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.4)
            _ = try other.sequenced([])
            flags = try #require(try p.sequenced([]).value(.sequence, NFS4SequenceResOK.self)).statusFlags
        }
        #expect(flags & Self.revoked != 0, "SEQ4_STATUS_RECALLABLE_STATE_REVOKED never set")
        let tested = try p.sequenced([.testStateid([delegation.stateID])])
        #expect(tested.value(.testStateid, [UInt32].self) == [NFS4Status.delegRevoked.rawValue])
        let returned = try p.sequenced([.putfh(dir), .delegreturn(delegation.stateID)])
        #expect(returned.statuses.last == .delegRevoked)
        let reopened = try other.open(otherDir, "f", access: NFS4ServerTests.write, owner: "other")
        #expect(reopened.status == .ok, "\(reopened.statuses)")
        let freed = try p.sequenced([.freeStateid(delegation.stateID)])
        #expect(freed.status == .ok, "\(freed.statuses)")
        let after = try #require(try p.sequenced([]).value(.sequence, NFS4SequenceResOK.self))
        #expect(after.statusFlags & Self.revoked == 0)
    }

    @Test("RFC 8881 18.46.3, 10.4: the back channel's connection closed: SEQ4_STATUS_CB_PATH_DOWN on the others, and no delegation")
    func pathDownWhenConnectionCloses() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let second = try NFS4TestClient(RawRPCClient(tcpPort: s.server.port, from: "127.0.0.1"))
        do {
            let p = try s.peerWithBackChannel()
            second.clientID = p.client.clientID
            second.sessionID = p.client.sessionID
            second.sequenceID = p.client.sequenceID
            let first = try #require(try second.sequenced([]).value(.sequence, NFS4SequenceResOK.self))
            #expect(first.statusFlags & Self.pathDown == 0)
        }  // the back channel's connection closes here
        var flags: UInt32 = 0
        let deadline = Date().addingTimeInterval(5)
        while flags & Self.pathDown == 0 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            flags = try #require(try second.sequenced([]).value(.sequence, NFS4SequenceResOK.self)).statusFlags
        }
        #expect(flags & Self.pathDown != 0, "SEQ4_STATUS_CB_PATH_DOWN never set")
        let dir = try second.handle(s.base + ["b"])
        let opened = try second.open(dir, "f", access: NFS4ServerTests.read)
        #expect(opened.value(.open, NFS4OpenResOK.self)?.delegation == OpenDelegation4.none, "\(opened.statuses)")
    }

    @Test("RFC 8881 10.4.1: an NFSv3 WRITE to a delegated file is JUKEBOX while the delegation is recalled")
    func nfs3WriteRecalls() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel()
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, "f")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation: \(opened.statuses)"); return
        }
        // NFSv3 and NFSv4 handles of a file are the same bytes.
        let v3 = try RawRPCClient(tcpPort: s.server.port, from: "127.0.0.1")
        var args = ByteBuffer()
        args.writeXDRVariableOpaque(fh.bytes)
        args.writeXDRUInt64(0)
        args.writeXDRUInt32(2)
        args.writeXDRUInt32(2)  // FILE_SYNC
        args.writeXDRVariableOpaque(Array("v2".utf8))
        func write() throws -> UInt32 {
            guard case .success(var results) = try v3.call(program: 100_003, version: 3, procedure: 7, arguments: args) else {
                throw NFS4TestDecodeError.unexpected("WRITE not accepted")
            }
            return try results.readXDRUInt32()
        }
        #expect(try write() == 10008)  // NFS3ERR_JUKEBOX
        let recall = try p.nextCallbackCompound()
        try p.answerRecall(recall.xid, recall.args)
        #expect(try p.sequenced([.putfh(fh), .delegreturn(delegation.stateID)]).status == .ok)
        #expect(try write() == 0)
    }

    @Test("fcntl(2) F_SETLEASE: a server that neither owns the file nor has CAP_LEASE gives no delegation; on its own user's file it does")
    func unprivilegedServer() throws {
        guard getuid() == 0 else { Issue.record("needs root to start the server as another user"); return }
        let sandbox = NFS3Sandbox()
        let b = sandbox.exportDirectory("b")
        let user: uid_t = 4343
        mkdir(sandbox.statePath, 0o700)
        chown(sandbox.statePath, user, user)
        let exports = sandbox.dir + "/exports"
        try "\(b) 127.0.0.1(rw,no_root_squash)\n".write(toFile: exports, atomically: false, encoding: .utf8)
        try "root's".write(toFile: b + "/rootfile", atomically: false, encoding: .utf8)
        try "its own".write(toFile: b + "/ownfile", atomically: false, encoding: .utf8)
        chmod(b + "/rootfile", 0o644)
        chown(b + "/ownfile", user, user)
        let server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"],
                                       stateDirectory: sandbox.statePath, user: user)
        defer { server.stop() }
        let p = CallbackPeer(NFS4TestClient(try RawRPCClient(tcpPort: server.port, from: "127.0.0.1")))
        try p.establish(backChannel: true)
        try p.answerProbe()
        let dir = try p.handle(sandbox.dir.split(separator: "/").map(String.init) + ["b"])
        let notOwned = try p.openForReading(dir, "rootfile")
        #expect(notOwned.value(.open, NFS4OpenResOK.self)?.delegation == OpenDelegation4.none, "\(notOwned.statuses)")
        let owned = try p.openForReading(dir, "ownfile", owner: "second")
        guard case .read? = owned.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation on the server user's own file: \(owned.statuses)"); return
        }
    }

    @Test("RFC 8881 18.16.3: OPEN with CLAIM_DELEG_CUR_FH and CLAIM_DELEGATE_CUR under a delegation the client holds; another stateid is BAD_STATEID")
    func openUnderDelegation() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel()
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, "f")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation: \(opened.statuses)"); return
        }
        let owner = StateOwner4(clientID: p.client.clientID, owner: Array("under-deleg".utf8))
        let byFH = try p.sequenced([.putfh(fh), .open(NFS4OpenArgs(
            seqid: 0, shareAccess: NFS4ServerTests.read, shareDeny: 0, owner: owner, openHow: .noCreate,
            claim: .delegCurFH(delegateStateID: delegation.stateID)))])
        #expect(byFH.status == .ok, "\(byFH.statuses)")
        let byName = try p.sequenced([.putfh(dir), .open(NFS4OpenArgs(
            seqid: 0, shareAccess: NFS4ServerTests.read, shareDeny: 0, owner: owner, openHow: .noCreate,
            claim: .delegateCur(delegateStateID: delegation.stateID, file: NFS4Name("f"))))])
        #expect(byName.status == .ok, "\(byName.statuses)")
        var bogus = delegation.stateID
        bogus.otherLow ^= 0xff
        let refused = try p.sequenced([.putfh(fh), .open(NFS4OpenArgs(
            seqid: 0, shareAccess: NFS4ServerTests.read, shareDeny: 0, owner: owner, openHow: .noCreate,
            claim: .delegCurFH(delegateStateID: bogus)))])
        #expect(refused.statuses.last == .badStateid, "\(refused.statuses)")
        // CLAIM_DELEGATE_PREV / CLAIM_DELEG_PREV_FH (delegations kept across a
        // client's restart) are not offered: NOTSUPP (§18.16.3).
        for claim in [OpenClaim4.delegatePrev(NFS4Name("f")), .delegPrevFH] {
            let previous = try p.sequenced([.putfh(claim == .delegPrevFH ? fh : dir), .open(NFS4OpenArgs(
                seqid: 0, shareAccess: NFS4ServerTests.read, shareDeny: 0, owner: owner, openHow: .noCreate,
                claim: claim))])
            #expect(previous.statuses.last == .notsupp, "\(claim): \(previous.statuses)")
        }
    }

    @Test("RFC 8881 10.4: a host truncate(2) recalls the read delegation and waits for DELEGRETURN")
    func recallOnHostTruncate() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        // An NFSv4.2 client: its callbacks carry minor version 2, or a Linux
        // client finds no session for them (NFS4ERR_BADSESSION; e2e-host saw it).
        let p = try s.peerWithBackChannel(minorVersion: 2)
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, "f")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation: \(opened.statuses)"); return
        }
        let truncating = HostOpen(truncating: s.b + "/f")
        let recall = try p.nextCallbackCompound()
        #expect(recall.args.minorVersion == 2)
        guard case .recall(let args)? = recall.args.operations.last else {
            Issue.record("no CB_RECALL: \(recall.args.operations)"); return
        }
        #expect(args.stateID == delegation.stateID)
        try p.answerRecall(recall.xid, recall.args)
        #expect(!truncating.finished(within: 0.3))
        #expect(try p.sequenced([.putfh(fh), .delegreturn(delegation.stateID)]).status == .ok)
        #expect(truncating.finished(within: 5) && truncating.status == 0)
        #expect((try? FileManager.default.attributesOfItem(atPath: s.b + "/f")[.size] as? Int) == 0)
    }

    // MARK: Host metadata changes (the lease's inotify watch)

    /// A read delegation of `name` in b for `p`: its file handle and stateid.
    static func delegate(_ p: CallbackPeer, _ s: Setup, _ name: String = "f",
                         owner: String = "cb-owner") throws -> (fh: NFS4FileHandle, stateID: StateID)? {
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, name, owner: owner)
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self), "\(opened.statuses)")
        guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation: \(opened.statuses)"); return nil
        }
        return (fh, delegation.stateID)
    }

    /// Takes the next CB_COMPOUND (the 10 s receive timeout throws when none
    /// comes), expects it to recall `stateID`, answers it and returns the delegation.
    static func expectRecalled(_ p: CallbackPeer, _ fh: NFS4FileHandle, _ stateID: StateID) throws {
        let recall = try p.nextCallbackCompound()
        guard case .recall(let args)? = recall.args.operations.last else {
            Issue.record("no CB_RECALL: \(recall.args.operations)"); return
        }
        #expect(args.stateID == stateID && args.fileHandle == fh)
        try p.answerRecall(recall.xid, recall.args)
        let returned = try p.sequenced([.putfh(fh), .delegreturn(stateID)])
        #expect(returned.status == .ok, "\(returned.statuses)")
    }

    /// The inotify watches the server holds now: the "inotify wd:" lines of
    /// its /proc/PID/fdinfo.
    static func serverWatches(_ s: Setup) -> Int {
        let dir = "/proc/\(s.server.process.processIdentifier)/fdinfo"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return fds.reduce(0) { count, fd in
            let info = (try? String(contentsOfFile: dir + "/" + fd, encoding: .utf8)) ?? ""
            return count + info.split(separator: "\n").filter { $0.hasPrefix("inotify wd:") }.count
        }
    }

    /// A delegation of b/f, then `change` on the host (a process other than
    /// a writer, which the lease alone does not see): CB_RECALL of it.
    static func expectRecall(after change: (String) -> Int32) throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel()
        guard let d = try delegate(p, s) else { return }
        #expect(change(s.b) == 0, "the host change failed: \(errno)")
        try expectRecalled(p, d.fh, d.stateID)
        #expect(serverWatches(s) == 0, "the returned delegation's watch is still there")
    }

    @Test("RFC 8881 10.4.1, 10.2: a host chmod of the delegated file recalls the read delegation")
    func recallOnHostChmod() throws {
        try Self.expectRecall { chmod($0 + "/f", 0o600) }
    }

    @Test("RFC 8881 10.4.1, 10.2: a host rename of the delegated file recalls the read delegation")
    func recallOnHostRename() throws {
        try Self.expectRecall { rename($0 + "/f", $0 + "/f2") }
    }

    @Test("RFC 8881 10.4.1, 10.2: a host unlink of the delegated file recalls the read delegation")
    func recallOnHostUnlink() throws {
        try Self.expectRecall { unlink($0 + "/f") }
    }

    @Test("RFC 8881 10.4.1, 10.2: a host hard link to the delegated file recalls the read delegation")
    func recallOnHostLink() throws {
        try Self.expectRecall { link($0 + "/f", $0 + "/f-link") }
    }

    @Test("RFC 8881 10.4.1, 10.2: two clients' delegations of one file share one watch: a host chmod recalls both")
    func hostChmodRecallsBoth() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel(), q = try s.peerWithBackChannel()
        guard let dp = try Self.delegate(p, s), let dq = try Self.delegate(q, s, owner: "other-owner") else { return }
        #expect(Self.serverWatches(s) == 1)
        #expect(chmod(s.b + "/f", 0o600) == 0)
        try Self.expectRecalled(p, dp.fh, dp.stateID)
        try Self.expectRecalled(q, dq.fh, dq.stateID)
        #expect(Self.serverWatches(s) == 0)
    }

    @Test("RFC 8881 10.4.1, 18.6: one of two clients returns its delegation of a file: the other's watch still works; once both are returned the watch is gone and a host chmod recalls nothing")
    func returnKeepsOthersWatch() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        try "g1".write(toFile: s.b + "/g", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel(), q = try s.peerWithBackChannel()
        guard let dp = try Self.delegate(p, s), let dq = try Self.delegate(q, s, owner: "other-owner") else { return }
        #expect(try p.sequenced([.putfh(dp.fh), .delegreturn(dp.stateID)]).status == .ok)
        #expect(Self.serverWatches(s) == 1, "the other client's watch went with the returned delegation")
        #expect(chmod(s.b + "/f", 0o600) == 0)
        try Self.expectRecalled(q, dq.fh, dq.stateID)
        #expect(Self.serverWatches(s) == 0, "a watch outlives every delegation of its file")
        // Nothing of f is watched: a chmod of f recalls nothing, so the
        // first recall p sees after it (inotify reports in order) is g's.
        #expect(chmod(s.b + "/f", 0o644) == 0)
        guard let dg = try Self.delegate(p, s, "g", owner: "g-owner") else { return }
        #expect(chmod(s.b + "/g", 0o600) == 0)
        try Self.expectRecalled(p, dg.fh, dg.stateID)
    }

    /// A peer with a back channel holding a read delegation of b/f (and a
    /// file b/g besides), for the failed-recall tests.
    struct Delegated {
        let p: CallbackPeer
        let dir: NFS4FileHandle
        let fh: NFS4FileHandle
        let stateID: StateID
    }

    static func delegated(_ s: Setup) throws -> Delegated? {
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        try "g1".write(toFile: s.b + "/g", atomically: false, encoding: .utf8)
        let p = try s.peerWithBackChannel()
        let dir = try p.handle(s.base + ["b"])
        let opened = try p.openForReading(dir, "f")
        let fh = try #require(opened.value(.getfh, NFS4FileHandle.self))
        guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
            Issue.record("no read delegation: \(opened.statuses)"); return nil
        }
        return Delegated(p: p, dir: dir, fh: fh, stateID: delegation.stateID)
    }

    /// After a recall that could not succeed: the host writer got through at
    /// once (not after a lease, nor the kernel's 45 s lease break time), the
    /// next SEQUENCE says CB_PATH_DOWN and RECALLABLE_STATE_REVOKED, the
    /// stateid answers NFS4ERR_DELEG_REVOKED, and no delegation is given while
    /// the path is down.
    static func expectRevokedAtOnce(_ d: Delegated, writer: HostOpen, within seconds: Double) throws {
        #expect(writer.finished(within: seconds), "the host writer still waits on the lease")
        #expect(writer.status >= 0)
        let sequence = try #require(try d.p.sequenced([]).value(.sequence, NFS4SequenceResOK.self))
        #expect(sequence.statusFlags & pathDown != 0, "no SEQ4_STATUS_CB_PATH_DOWN: \(sequence.statusFlags)")
        #expect(sequence.statusFlags & revoked != 0, "no SEQ4_STATUS_RECALLABLE_STATE_REVOKED: \(sequence.statusFlags)")
        let tested = try d.p.sequenced([.testStateid([d.stateID])])
        #expect(tested.value(.testStateid, [UInt32].self) == [NFS4Status.delegRevoked.rawValue])
        let read = try d.p.sequenced([.putfh(d.fh), .read(NFS4ReadArgs(stateID: d.stateID, offset: 0, count: 10))])
        #expect(read.statuses.last == .delegRevoked, "\(read.statuses)")
        let returned = try d.p.sequenced([.putfh(d.fh), .delegreturn(d.stateID)])
        #expect(returned.statuses.last == .delegRevoked, "\(returned.statuses)")
        let other = try d.p.openForReading(d.dir, "g", owner: "after-revoke")
        #expect(other.status == .ok, "\(other.statuses)")
        #expect(other.value(.open, NFS4OpenResOK.self)?.delegation == OpenDelegation4.none,
                "a delegation while the callback path is down")
        #expect(try d.p.sequenced([.freeStateid(d.stateID)]).status == .ok)
    }

    @Test("RFC 8881 10.4.6, 20.2.3: CB_RECALL answered NFS4ERR_BADHANDLE (again on the one retry): the path goes down and the delegation is revoked at once")
    func recallErrorRevokes() throws {
        let s = try Setup()
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let first = try d.p.nextCallbackCompound()
        try d.p.answerRecall(first.xid, first.args, status: .badhandle)
        // Retried once (the client may not have read the OPEN reply yet), on the next sequence ID.
        let again = try d.p.nextCallbackCompound()
        guard case .sequence(let sequence)? = again.args.operations.first, case .recall(let args)? = again.args.operations.last else {
            Issue.record("not CB_SEQUENCE + CB_RECALL: \(again.args.operations)"); return
        }
        #expect(sequence.sequenceID == 2 && args.stateID == d.stateID)
        try d.p.answerRecall(again.xid, again.args, status: .badhandle)
        try Self.expectRevokedAtOnce(d, writer: writer, within: 3)
    }

    @Test("RFC 8881 10.4.6, 2.10.3.1: a CB_COMPOUND reply that cannot be read: the path goes down and the delegation is revoked at once")
    func unreadableRecallReplyRevokes() throws {
        let s = try Setup()
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let recall = try d.p.nextCallbackCompound()
        // An accepted RPC reply whose CB_COMPOUND4res stops inside the tag.
        try d.p.answer(recall.xid, results: ByteBuffer(bytes: [0, 0, 0, 0, 0, 0]))
        try Self.expectRevokedAtOnce(d, writer: writer, within: 3)
    }

    @Test("RFC 8881 10.4.6, 2.10.3.1: a CB_COMPOUND never answered (callback timeout: a tenth of the lease, at least 1 s): the path goes down and the delegation is revoked at once")
    func unansweredRecallRevokes() throws {
        let s = try Setup(lease: 10)
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        _ = try d.p.nextCallbackCompound()
        #expect(!writer.finished(within: 0.5), "the writer went on before the callback timed out")
        try Self.expectRevokedAtOnce(d, writer: writer, within: 3)
    }

    @Test("RFC 8881 10.4.6, 20.9.3: CB_SEQUENCE answered NFS4ERR_BADSESSION: the path goes down and the delegation is revoked at once")
    func callbackSequenceErrorRevokes() throws {
        let s = try Setup()
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let recall = try d.p.nextCallbackCompound()
        var results = ByteBuffer()
        CBCompoundResponse(status: .badsession, tag: recall.args.tag, results: [.sequence(.error(.badsession))])
            .encode(xdr: &results)
        try d.p.answer(recall.xid, results: results)
        try Self.expectRevokedAtOnce(d, writer: writer, within: 3)
    }

    @Test("RFC 8881 20.9.3, 2.10.6.1: a CB_SEQUENCE reply for another sequence ID than the call's: the path goes down and the delegation is revoked at once")
    func callbackSequenceMismatchRevokes() throws {
        let s = try Setup()
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let recall = try d.p.nextCallbackCompound()
        guard case .sequence(let sequence)? = recall.args.operations.first else {
            Issue.record("no CB_SEQUENCE: \(recall.args.operations)"); return
        }
        var results = ByteBuffer()
        CBCompoundResponse(status: .ok, tag: recall.args.tag, results: [
            .sequence(.ok(CBSequenceResOK(sessionID: sequence.sessionID, sequenceID: sequence.sequenceID &+ 7,
                                          slotID: sequence.slotID, highestSlotID: 0, targetHighestSlotID: 0))),
            .recall(.ok),
        ]).encode(xdr: &results)
        try d.p.answer(recall.xid, results: results)
        try Self.expectRevokedAtOnce(d, writer: writer, within: 3)
    }

    @Test("RFC 8881 10.4.6, RFC 5531 9: a CB_COMPOUND rejected at the RPC level (PROG_UNAVAIL): the path goes down and the delegation is revoked at once")
    func rejectedRecallRevokes() throws {
        let s = try Setup()
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let recall = try d.p.nextCallbackCompound()
        var body = ByteBuffer()
        RPCMessage.reply(xid: recall.xid, body: .programUnavailable, verifier: .none).encode(xdr: &body)
        try d.p.rpc.send(BlockingRPCClient.frame(body))
        try Self.expectRevokedAtOnce(d, writer: writer, within: 3)
    }

    @Test("RFC 8881 20.2.3: CB_RECALL answered NFS4ERR_DELAY is sent again; answered then, the delegation stays until DELEGRETURN")
    func recallDelayRetries() throws {
        let s = try Setup()
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let first = try d.p.nextCallbackCompound()
        try d.p.answerRecall(first.xid, first.args, status: .delay)
        let again = try d.p.nextCallbackCompound()
        guard case .recall(let args)? = again.args.operations.last else {
            Issue.record("no CB_RECALL: \(again.args.operations)"); return
        }
        #expect(args.stateID == d.stateID)
        try d.p.answerRecall(again.xid, again.args)
        #expect(!writer.finished(within: 0.3))
        let sequence = try #require(try d.p.sequenced([]).value(.sequence, NFS4SequenceResOK.self))
        #expect(sequence.statusFlags & (Self.pathDown | Self.revoked) == 0, "\(sequence.statusFlags)")
        #expect(try d.p.sequenced([.putfh(d.fh), .delegreturn(d.stateID)]).status == .ok)
        #expect(writer.finished(within: 5) && writer.status >= 0)
    }

    @Test("RFC 8881 10.4.6, 18.46.3: no callback path when the host breaks the lease: the delegation is revoked at once, the writer goes on")
    func recallWithoutPathRevokes() throws {
        let s = try Setup()
        try "v1".write(toFile: s.b + "/f", atomically: false, encoding: .utf8)
        let second = try NFS4TestClient(RawRPCClient(tcpPort: s.server.port, from: "127.0.0.1"))
        var stateID: StateID?
        do {
            let p = try s.peerWithBackChannel()
            let dir = try p.handle(s.base + ["b"])
            let opened = try p.openForReading(dir, "f")
            guard case .read(let delegation)? = opened.value(.open, NFS4OpenResOK.self)?.delegation else {
                Issue.record("no read delegation: \(opened.statuses)"); return
            }
            stateID = delegation.stateID
            second.clientID = p.client.clientID
            second.sessionID = p.client.sessionID
            second.sequenceID = p.client.sequenceID
        }  // the back channel's connection closes here
        var flags: UInt32 = 0
        let deadline = Date().addingTimeInterval(5)
        while flags & Self.pathDown == 0 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            flags = try #require(try second.sequenced([]).value(.sequence, NFS4SequenceResOK.self)).statusFlags
        }
        #expect(flags & Self.pathDown != 0, "SEQ4_STATUS_CB_PATH_DOWN never set")
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        #expect(writer.finished(within: 2), "the host writer still waits on the lease")
        #expect(writer.status >= 0)
        let after = try #require(try second.sequenced([]).value(.sequence, NFS4SequenceResOK.self))
        #expect(after.statusFlags & Self.revoked != 0, "no SEQ4_STATUS_RECALLABLE_STATE_REVOKED: \(after.statusFlags)")
        let tested = try second.sequenced([.testStateid([try #require(stateID)])])
        #expect(tested.value(.testStateid, [UInt32].self) == [NFS4Status.delegRevoked.rawValue])
    }

    @Test("RFC 8881 10.4.6: a recalled delegation not returned is revoked one lease after the recall by the server's timer, with no COMPOUND arriving")
    func revocationWithoutCompounds() throws {
        let s = try Setup(lease: 3)
        guard let d = try Self.delegated(s) else { return }
        let writer = HostOpen(s.b + "/f", flags: O_WRONLY)
        let recall = try d.p.nextCallbackCompound()
        let recalled = Date()
        try d.p.answerRecall(recall.xid, recall.args)
        // Nothing more is sent: only the timer can end the wait before the
        // kernel's lease break time (45 s).
        #expect(!writer.finished(within: 2), "the writer went on before the lease ran out")
        #expect(writer.finished(within: 4), "the delegation was not revoked by a timer")
        let waited = Date().timeIntervalSince(recalled)
        #expect(waited >= 2.9 && waited < 6, "revoked \(waited) s after the recall, not one lease (3 s)")
        #expect(writer.status >= 0)
    }
}
