import Exports
import Foundation
import Glibc
import HostFS
@testable import NFS4
import NFS4State
import NFS4Wire
import NFSCore
import NIOCore
import NIOPosix
import ONCRPC
import Testing
import Transport

/// COMPOUNDs run on the event loop (NFS4CompoundRunner's `runWithoutBlocking`)
/// against the same COMPOUNDs on the thread pool (`run`), in process: the same
/// replies, the hand-over to the pool at the first operation that would block
/// (what ran before is kept, not run again), and the reply cache.
@Suite(.serialized) struct NFS4EventLoopTests {
    final class Setup {
        let dir: String
        let export: String
        let mounted: Bool
        let pool = NIOThreadPool(numberOfThreads: 1)
        let program: NFS4Program
        let peer = PeerIdentity.vsock(cid: 3, port: 900)
        let credential = RPCCredential.sys(AuthSysParameters(uid: 0, gid: 0))
        var sessionID = SessionID(high: 0, low: 0)
        var clientID: ClientID = 0
        var sequenceID: UInt32 = 0

        /// `tmpfs`: the export is a fresh tmpfs (WRITE on the event loop needs memory-backed data).
        init(tmpfs: Bool) throws {
            var template = Array("/tmp/nfs4-eventloop-XXXXXX".utf8CString)
            dir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
            export = dir + "/export"
            mkdir(export, 0o755)
            mounted = tmpfs && Glibc.mount("vsnfs-test", export, "tmpfs", 0, "size=4m,mode=0755") == 0
            let exports = try ExportsFile.parse("\(export) vsock:3(rw,no_root_squash)\n", fileName: "exports")
            let fs = try HostFileSystem(exports: AuthTable(exports: exports),
                                        options: HostFSOptions(stateDirectory: dir + "/state"))
            pool.start()
            let server = NFSServerContext(hostFS: fs, threadPool: pool)
            program = NFS4Program(server: server, delegations: false, timers: MultiThreadedEventLoopGroup.singleton.next())
            try establishSession()
        }

        deinit {
            if mounted { umount2(export, Int32(MNT_DETACH)) }
            try? pool.syncShutdownGracefully()
            try? FileManager.default.removeItem(atPath: dir)
        }

        func runner() -> NFS4CompoundRunner {
            NFS4CompoundRunner(server: program.server, state: program.state, peer: peer, credential: credential,
                               connection: ConnectionID(1), allocator: ByteBufferAllocator())
        }

        static func arguments(_ operations: [NFS4Operation]) -> ByteBuffer {
            var b = ByteBuffer()
            NFS4CompoundRequest(tag: Array("t".utf8), minorVersion: 1, operations: operations).encode(xdr: &b)
            return b
        }

        static func request(_ arguments: ByteBuffer) throws -> NFS4CompoundRequest {
            try NFS4CompoundRequest(decoding: arguments, limits: .server, rpcHeaderSize: NFS4Program.estimatedCallHeaderSize)
        }

        /// On the pool, as before this change: `run`.
        func onPool(_ arguments: ByteBuffer) throws -> ByteBuffer {
            var r = runner()
            return r.run(try Self.request(arguments), arguments: arguments)
        }

        /// On the event loop: the reply, or nil with the runner as it stopped (then `proceed` on the pool).
        func onEventLoop(_ arguments: ByteBuffer) throws -> (reply: ByteBuffer?, runner: NFS4CompoundRunner, started: Bool) {
            var r = runner()
            let (reply, started) = r.runWithoutBlocking(try Self.request(arguments), arguments: arguments)
            return (reply, r, started)
        }

        func establishSession() throws {
            let exchange = try decodeCompoundReply(try onPool(Self.arguments([.exchangeID(NFS4ExchangeIDArgs(
                clientOwner: ClientOwner4(verifier: Verifier4(7), ownerID: NFS4Opaque(Array("eventloop".utf8))), flags: 0,
                stateProtect: .none, clientImplID: nil))])))
            let ok = try #require(exchange.value(.exchangeID, NFS4ExchangeIDResOK.self))
            clientID = ok.clientID
            let attrs = ChannelAttrs(maxRequestSize: 1 << 20, maxResponseSize: 1 << 20, maxResponseSizeCached: 64 << 10,
                                     maxOperations: 16, maxRequests: 8)
            let session = try decodeCompoundReply(try onPool(Self.arguments([.createSession(NFS4CreateSessionArgs(
                clientID: ok.clientID, sequence: ok.sequenceID, flags: 0, foreChannelAttrs: attrs, backChannelAttrs: attrs,
                callbackProgram: 0x4000_0000, securityParameters: [.none]))])))
            sessionID = try #require(session.value(.createSession, NFS4CreateSessionResOK.self)).sessionID
        }

        /// SEQUENCE (slot 0, the next sequence ID) and `operations`.
        func sequenced(_ operations: [NFS4Operation], cacheThis: Bool = false) -> ByteBuffer {
            sequenceID += 1
            return Self.arguments([.sequence(NFS4SequenceArgs(sessionID: sessionID, sequenceID: sequenceID, slotID: 0,
                                                              highestSlotID: 0, cacheThis: cacheThis))] + operations)
        }

        /// The handle of `name` in the export, through the pool (which also opens it into the open-file cache).
        func handle(_ name: String) throws -> NFS4FileHandle {
            let root = NFS4FileHandle(try program.server.hostFS.rootHandle(exportID: program.server.authTable.ids[0]).bytes)
            let reply = try decodeCompoundReply(try onPool(sequenced([.putfh(root), .lookup(NFS4Name(name)), .getfh,
                                                                       .getattr([NFS4Attribute.size.rawValue])])))
            return try #require(reply.value(.getfh, NFS4FileHandle.self))
        }

        /// The pseudo filesystem's root handle (the export is a directory below it).
        func pseudoRoot() throws -> NFS4FileHandle {
            let reply = try decodeCompoundReply(try onPool(sequenced([.putrootfh, .getfh])))
            return try #require(reply.value(.getfh, NFS4FileHandle.self))
        }

        func file(_ name: String) -> String { export + "/" + name }

        /// How many of `opcode` this client's sessions ran (what `vsnfs status` shows).
        func count(_ opcode: NFS4Opcode) -> Int {
            program.state.tables.withLockedValue { $0.operationCounts[clientID]?[opcode] ?? 0 }
        }
    }

    static let anonymous = StateID(seqid: 0, otherHigh: 0, otherLow: 0)
    static let attributes: Bitmap4 = [NFS4Attribute.type.rawValue, NFS4Attribute.size.rawValue,
                                      NFS4Attribute.change.rawValue, NFS4Attribute.timeModify.rawValue]

    /// The results after SEQUENCE's (whose sequence ID differs from call to call).
    static func afterSequence(_ reply: ByteBuffer) throws -> [NFS4TestResult] {
        Array(try decodeCompoundReply(reply).results.dropFirst())
    }

    @Test("PUTFH, READ and GETATTR from the page cache: on the event loop, the pool's reply")
    func readAndGetattrMatchThePool() throws {
        let s = try Setup(tmpfs: false)
        try "0123456789abcdef".write(toFile: s.file("r"), atomically: false, encoding: .utf8)
        let fh = try s.handle("r")
        let operations: [NFS4Operation] = [.putfh(fh), .read(NFS4ReadArgs(stateID: Self.anonymous, offset: 4, count: 8)),
                                           .getattr(Self.attributes)]
        let pool = try Self.afterSequence(try s.onPool(s.sequenced(operations)))
        let (reply, _, started) = try s.onEventLoop(s.sequenced(operations))
        #expect(started)
        let inline = try Self.afterSequence(try #require(reply, "READ from the page cache went to the pool"))
        #expect(inline.map(\.status) == [.ok, .ok, .ok])
        let data = try #require(inline[1].as(NFS4ReadResOK.self))
        #expect(String(buffer: data.data) == "456789ab" && !data.eof)
        #expect(inline[1].as(NFS4ReadResOK.self) == pool[1].as(NFS4ReadResOK.self))
        #expect(inline[2].as(NFS4Fattr.self) == pool[2].as(NFS4Fattr.self))
        #expect(s.count(.read) == 2)
        // LOOKUP of a cached name in a cached directory (kernel handles: as root), then GETFH.
        let root = NFS4FileHandle(try s.program.server.hostFS.rootHandle(exportID: s.program.server.authTable.ids[0]).bytes)
        let lookup: [NFS4Operation] = [.putfh(root), .lookup(NFS4Name("r")), .getfh]
        let looked = try #require(try s.onEventLoop(s.sequenced(lookup)).reply, "LOOKUP of a cached name went to the pool")
        #expect(try Self.afterSequence(looked).map(\.status) == [.ok, .ok, .ok])
        #expect(try decodeCompoundReply(looked).value(.getfh, NFS4FileHandle.self) == fh)
    }

    @Test("WRITE to tmpfs, then GETATTR: on the event loop, the pool's reply", .enabled(if: geteuid() == 0, "mount(2) needs root"))
    func writeToTmpfsMatchesThePool() throws {
        let s = try Setup(tmpfs: true)
        try #require(s.mounted && s.program.server.hostFS.servesMemoryBackedExport)
        try "..........".write(toFile: s.file("w"), atomically: false, encoding: .utf8)
        let fh = try s.handle("w")
        var data = ByteBuffer()
        data.writeString("WXYZ")
        let write = NFS4Operation.write(NFS4WriteArgs(stateID: Self.anonymous, offset: 2, stable: .fileSync, data: data))
        let pool = try Self.afterSequence(try s.onPool(s.sequenced([.putfh(fh), write, .getattr(Self.attributes)])))
        let (reply, _, _) = try s.onEventLoop(s.sequenced([.putfh(fh), write, .getattr(Self.attributes)]))
        let inline = try Self.afterSequence(try #require(reply, "WRITE to tmpfs went to the pool"))
        #expect(inline.map(\.status) == [.ok, .ok, .ok])
        #expect(inline[1].as(NFS4WriteResOK.self) == pool[1].as(NFS4WriteResOK.self))
        let written = try #require(inline[1].as(NFS4WriteResOK.self))
        #expect(written.count == 4 && written.committed == .fileSync)
        // The same bytes at the same offset: the same size; the change attribute may move.
        let a = try NFS4Attributes(decoding: try #require(inline[2].as(NFS4Fattr.self)), for: .verify)
        let b = try NFS4Attributes(decoding: try #require(pool[2].as(NFS4Fattr.self)), for: .verify)
        #expect(a.type == .regular && a.size == 10 && a.size == b.size)
        #expect(try String(contentsOfFile: s.file("w"), encoding: .utf8) == "..WXYZ....")
    }

    @Test("An operation that would block moves the rest to the pool; what ran before is kept and runs once",
          .enabled(if: geteuid() == 0, "mount(2) needs root"))
    func blockingOperationMovesTheRestToThePool() throws {
        let s = try Setup(tmpfs: true)
        try #require(s.mounted)
        try "0123456789".write(toFile: s.file("m"), atomically: false, encoding: .utf8)
        let fh = try s.handle("m")
        let root = try s.pseudoRoot()
        let writesBefore = s.count(.write)
        var data = ByteBuffer()
        data.writeString("ab")
        // PUTFH of a pseudo directory's handle is the pool's: declined on the event loop when it comes to it.
        let arguments = s.sequenced([.putfh(fh),
                                     .write(NFS4WriteArgs(stateID: Self.anonymous, offset: 10, stable: .unstable, data: data)),
                                     .putfh(root), .putfh(fh), .getattr(Self.attributes)])
        let request = try Setup.request(arguments)
        var (reply, runner, started) = try s.onEventLoop(arguments)
        #expect(reply == nil && started)
        #expect(runner.next == 3 && runner.results.map(\.opcode) == [.sequence, .putfh, .write])
        // The WRITE is done already, before the pool's part.
        #expect(try String(contentsOfFile: s.file("m"), encoding: .utf8) == "0123456789ab")
        // The slot is busy meanwhile: a retransmission is not run a second time.
        let (retry, _, _) = try s.onEventLoop(arguments)
        let busy = try decodeCompoundReply(try #require(retry))
        #expect(busy.statuses == [.delay])
        let proceeded = runner.proceed(request, blocking: true)
        let rest = try decodeCompoundReply(try #require(proceeded))
        #expect(rest.statuses == [.ok, .ok, .ok, .ok, .ok, .ok])
        let size = try NFS4Attributes(decoding: try #require(rest.value(.getattr, NFS4Fattr.self)), for: .verify).size
        #expect(size == 12)
        #expect(s.count(.write) == writesBefore + 1)
        // The slot is free again: the next sequence ID runs.
        let next = try s.onEventLoop(s.sequenced([.putfh(fh), .getattr(Self.attributes)])).reply
        #expect(try decodeCompoundReply(try #require(next)).status == .ok)
    }

    @Test("A COMPOUND holding an operation the event loop never runs goes to the pool whole, before SEQUENCE",
          arguments: ["ACCESS", "READ past the event loop's limit"])
    func neverOnTheEventLoopGoesToThePoolWhole(_ which: String) throws {
        let s = try Setup(tmpfs: false)
        try String(repeating: "r", count: Int(EventLoopLimits.maximumRead) + 1)
            .write(toFile: s.file("n"), atomically: false, encoding: .utf8)
        let fh = try s.handle("n")
        let operation: NFS4Operation = which == "ACCESS"
            ? .access(AccessMask.read.rawValue)
            : .read(NFS4ReadArgs(stateID: Self.anonymous, offset: 0, count: EventLoopLimits.maximumRead + 1))
        let arguments = s.sequenced([.putfh(fh), .getattr(Self.attributes), operation])
        let (reply, runner, started) = try s.onEventLoop(arguments)
        #expect(reply == nil && !started && runner.next == 0 && runner.results.isEmpty)
        // The slot was not taken: the pool runs the COMPOUND (a busy slot would answer DELAY).
        let answered = try decodeCompoundReply(try s.onPool(arguments))
        #expect(answered.statuses == [.ok, .ok, .ok, .ok])
    }

    @Test("RFC 8881 2.10.6.1.3: a COMPOUND run on the event loop is replayed from the reply cache, not run again")
    func eventLoopReplyIsReplayed() throws {
        let s = try Setup(tmpfs: false)
        try "cached".write(toFile: s.file("c"), atomically: false, encoding: .utf8)
        let fh = try s.handle("c")
        let arguments = s.sequenced([.putfh(fh), .read(NFS4ReadArgs(stateID: Self.anonymous, offset: 0, count: 6))],
                                    cacheThis: true)
        let first = try #require(try s.onEventLoop(arguments).reply)
        #expect(s.count(.read) == 1)
        let again = try #require(try s.onEventLoop(arguments).reply)
        #expect(Array(again.readableBytesView) == Array(first.readableBytesView))
        #expect(s.count(.read) == 1)
        // The pool's path replays it too.
        #expect(Array(try s.onPool(arguments).readableBytesView) == Array(first.readableBytesView))
        #expect(s.count(.read) == 1)
    }

    @Test("An error on the event loop is the pool's to answer: the same error reply as before")
    func errorsAreAnsweredByThePool() throws {
        let s = try Setup(tmpfs: false)
        try "x".write(toFile: s.file("e"), atomically: false, encoding: .utf8)
        let fh = try s.handle("e")
        // A READ under a stateid this server never issued: declined on the event loop, refused by the pool.
        let bogus = StateID(seqid: 1, otherHigh: 0xdead, otherLow: 0xbeef)
        let arguments = s.sequenced([.putfh(fh), .read(NFS4ReadArgs(stateID: bogus, offset: 0, count: 1))])
        let request = try Setup.request(arguments)
        var (reply, runner, _) = try s.onEventLoop(arguments)
        #expect(reply == nil && runner.next == 2)
        let proceeded = runner.proceed(request, blocking: true)
        let answered = try decodeCompoundReply(try #require(proceeded))
        // A stateid of another server instance: STALE_STATEID (§8.2.2), as the pool alone answers it.
        #expect(answered.statuses == [.ok, .ok, .staleStateid])
        let pool = try decodeCompoundReply(try s.onPool(s.sequenced([.putfh(fh), .read(NFS4ReadArgs(stateID: bogus, offset: 0, count: 1))])))
        #expect(pool.statuses == answered.statuses)
    }

    @Test("A COMPOUND larger than any event-loop WRITE goes to the pool whole, before SEQUENCE")
    func largeCompoundGoesToThePoolWhole() throws {
        let s = try Setup(tmpfs: false)
        try "".write(toFile: s.file("big"), atomically: false, encoding: .utf8)
        let fh = try s.handle("big")
        let data = ByteBuffer(repeating: 0x61, count: EventLoopLimits.maximumCompound + 1)
        let arguments = s.sequenced([.putfh(fh), .write(NFS4WriteArgs(stateID: Self.anonymous, offset: 0, stable: .unstable,
                                                                       data: data))])
        let (reply, runner, started) = try s.onEventLoop(arguments)
        #expect(reply == nil && !started && runner.next == 0 && runner.results.isEmpty)
        let written = try decodeCompoundReply(try s.onPool(arguments))
        #expect(written.statuses == [.ok, .ok, .ok])
        #expect(written.value(.write, NFS4WriteResOK.self)?.count == UInt32(EventLoopLimits.maximumCompound + 1))
    }
}
