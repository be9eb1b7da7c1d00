// libFuzzer target: NFSv4.1/4.2 COMPOUNDs run by a whole server (the
// FuzzServer fixture: `vsnfs serve` in this process on a Unix socket, a
// read-write and a read-only export), in a session the target keeps up:
// SEQUENCE, the slot's reply cache, the pseudo-root, the handles, the state
// tables (opens, share reservations, lock stateids, host OFD locks), the
// HostFS calls and the reply's encoding, as for a real client.
//
// Input:
//   byte 0  bit 0 clear: sequenced: the rest is COMPOUND4args without its
//           SEQUENCE (tag, minorversion, numops, operations); the target
//           inserts a SEQUENCE of its session (slot 0, the next sequence ID)
//           and adds one to numops. Bit 0 set: the rest is sent as it is
//           (EXCHANGE_ID, CREATE_SESSION, DESTROY_*, raw garbage).
//   byte 1  the credential (FuzzServer's fuzzCredential)
//   rest    as above; placeholder handles ("RWFH", "ROFH", "FIFH" as a
//           4-byte opaque) are replaced by real ones.
//
// Checked beyond "no crash": every call is answered on a connection that
// stays open; an accepted COMPOUND's reply decodes (status, tag as sent, no
// more results than operations plus the SEQUENCE the target added) and its
// status is its last result's.
//
// VSNFS_FUZZ_WRITE_SEEDS=DIR writes seed inputs made by the product's encoders to
// DIR/FuzzNFS4, then exits.
import FuzzDriver
import FuzzServer
import Foundation
import NFS4Wire
import NIOCore
import ONCRPC
import XDR

let fixture = FuzzServer(name: "nfs4")

/// The target's own client: one connection, one session, re-established when
/// an input ended it (DESTROY_SESSION, DESTROY_CLIENTID, a new EXCHANGE_ID).
/// `nonisolated(unsafe)`: libFuzzer calls the entry point from its one thread.
nonisolated(unsafe) var connection: BlockingRPCClient?
nonisolated(unsafe) var session: (id: SessionID, sequenceID: UInt32)?

func encoded(_ value: some XDREncodable) -> ByteBuffer {
    var buffer = ByteBuffer()
    value.encode(xdr: &buffer)
    return buffer
}

let root = AuthSysParameters(machineName: Array("fuzz".utf8), uid: 0, gid: 0).opaqueAuth

/// One COMPOUND by the target itself; its reply's results, or nil if refused.
func compound(_ operations: [NFS4Operation]) -> NFS4CompoundResponseHeader? {
    let body = callAndWait(connection!, program: 100_003, version: 4, procedure: 1, credential: root,
                           arguments: encoded(NFS4CompoundRequest(tag: [], minorVersion: 1, operations: operations)))
    guard case .success(var results) = body else { return nil }
    return try? NFS4CompoundResponseHeader(decoding: &results)
}

/// EXCHANGE_ID then CREATE_SESSION, as a Linux client does.
func establishSession() {
    let owner = ClientOwner4(verifier: Verifier4(UInt64(getpid())), ownerID: NFS4Opaque(Array("fuzz client".utf8)))
    let exchange = callAndWait(connection!, program: 100_003, version: 4, procedure: 1, credential: root, arguments: encoded(
        NFS4CompoundRequest(tag: [], minorVersion: 1, operations: [.exchangeID(NFS4ExchangeIDArgs(
            clientOwner: owner, flags: 0, stateProtect: .none, clientImplID: nil))])))
    guard case .success(var exchanged) = exchange,
          let header = try? NFS4CompoundResponseHeader(decoding: &exchanged), header.status == .ok,
          (try? exchanged.readXDRUInt32()) == NFS4Opcode.exchangeID.rawValue, (try? exchanged.readXDRUInt32()) == 0,
          let ok = try? NFS4ExchangeIDResOK(xdr: &exchanged) else {
        preconditionFailure("EXCHANGE_ID failed: \(exchange)")
    }
    let attrs = ChannelAttrs(maxRequestSize: 1 << 20, maxResponseSize: 1 << 20, maxResponseSizeCached: 64 << 10,
                             maxOperations: 16, maxRequests: 1)
    let create = callAndWait(connection!, program: 100_003, version: 4, procedure: 1, credential: root, arguments: encoded(
        NFS4CompoundRequest(tag: [], minorVersion: 1, operations: [.createSession(NFS4CreateSessionArgs(
            clientID: ok.clientID, sequence: ok.sequenceID, flags: 0, foreChannelAttrs: attrs, backChannelAttrs: attrs,
            callbackProgram: 0x4000_0000, securityParameters: [.none]))])))
    guard case .success(var created) = create,
          let createHeader = try? NFS4CompoundResponseHeader(decoding: &created), createHeader.status == .ok,
          (try? created.readXDRUInt32()) == NFS4Opcode.createSession.rawValue, (try? created.readXDRUInt32()) == 0,
          let made = try? NFS4CreateSessionResOK(xdr: &created) else {
        preconditionFailure("CREATE_SESSION failed: \(create)")
    }
    session = (made.sessionID, 0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNFS4(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count)
    guard input.count >= 2 else { return 0 }
    if connection == nil { connection = try! BlockingRPCClient(unixPath: fixture.socketPath) }
    if session == nil { establishSession() }
    var rest = ByteBuffer(bytes: fixture.substituteHandles(Array(input.dropFirst(2))))
    let credential = fuzzCredential(input[1])
    var arguments: ByteBuffer
    var sentOperations: Int?
    var sequenced = false
    if input[0] & 1 == 0 {
        // tag, minorversion, numops: SEQUENCE goes first.
        guard let tag = try? rest.readXDRVariableBytes(maxLength: 64), let minor = try? rest.readXDRUInt32(),
              let numops = try? rest.readXDRUInt32(), numops < 64 else { return 0 }
        session!.sequenceID &+= 1
        arguments = ByteBuffer()
        _ = arguments.writeXDRVariableOpaque(tag)
        _ = arguments.writeXDRUInt32(minor)
        _ = arguments.writeXDRUInt32(numops + 1)
        NFS4Operation.sequence(NFS4SequenceArgs(sessionID: session!.id, sequenceID: session!.sequenceID, slotID: 0,
                                                highestSlotID: 0, cacheThis: input[0] & 2 != 0)).encode(xdr: &arguments)
        arguments.writeBuffer(&rest)
        sentOperations = Int(numops) + 1
        sequenced = true
    } else {
        arguments = rest
        var peek = rest
        if (try? peek.readXDRVariableBytes(maxLength: 1 << 20)) != nil, (try? peek.readXDRUInt32()) != nil,
           let numops = try? peek.readXDRUInt32() {
            sentOperations = Int(numops)
        }
    }
    let body = callAndWait(connection!, program: 100_003, version: 4, procedure: 1, credential: credential,
                           arguments: arguments)
    guard case .success(var results) = body else {
        if sequenced { session!.sequenceID &-= 1 }
        return 0
    }
    guard let header = try? NFS4CompoundResponseHeader(decoding: &results) else {
        preconditionFailure("an accepted COMPOUND's reply does not decode: \(Array(results.readableBytesView))")
    }
    if let sentOperations, header.resultCount > max(sentOperations, 1) {
        preconditionFailure("\(header.resultCount) results for \(sentOperations) operations")
    }
    if sequenced {
        // SEQUENCE's own status: the first result's. Anything but OK means the
        // server did not take the sequence ID, or the session is gone.
        let sequenceOK = header.resultCount > 0 && (try? results.readXDRUInt32()) == NFS4Opcode.sequence.rawValue
            && (try? results.readXDRUInt32()) == 0
        if !sequenceOK {
            session!.sequenceID &-= 1
            if header.status == .badsession || header.status == .deadsession { session = nil }
        }
    } else if header.status == .ok {
        // A raw EXCHANGE_ID may have replaced our client: check the session still works.
        if compound([.sequence(NFS4SequenceArgs(sessionID: session!.id, sequenceID: session!.sequenceID &+ 1, slotID: 0,
                                                highestSlotID: 0, cacheThis: false))])?.status == .ok {
            session!.sequenceID &+= 1
        } else {
            session = nil
        }
    }
    return 0
}

/// COMPOUND4res's head: status, tag, the result count. What follows are the results.
struct NFS4CompoundResponseHeader {
    enum HeaderError: Error { case unknownStatus }
    var status: NFS4Status
    var resultCount: Int

    init(decoding buffer: inout ByteBuffer) throws {
        guard let status = NFS4Status(rawValue: try buffer.readXDRUInt32()) else { throw HeaderError.unknownStatus }
        _ = try buffer.readXDRVariableBytes(maxLength: 1 << 20)
        self.status = status
        self.resultCount = Int(try buffer.readXDRUInt32())
    }
}

// MARK: - Seeds

func seeds() -> [String: [UInt8]] {
    func handle(_ name: String) -> NFS4FileHandle { NFS4FileHandle(Array(name.utf8)) }
    func body(_ operations: [NFS4Operation], minor: UInt32 = 1) -> [UInt8] {
        Array(encoded(NFS4CompoundRequest(tag: [], minorVersion: minor, operations: operations)).readableBytesView)
    }
    let owner = StateOwner4(clientID: 0, owner: Array("open id:fuzz".utf8))
    var modeValues = ByteBuffer()
    modeValues.writeXDRUInt32(0o644)
    let setMode = NFS4Fattr(mask: [33], values: modeValues)
    let lockOwner = StateOwner4(clientID: 0, owner: Array("lock id:fuzz".utf8))
    let sequenced: [String: [NFS4Operation]] = [
        "root": [.putrootfh, .getfh, .getattr([0, 1, 8, 19, 75]), .readdir(NFS4ReaddirArgs(
            cookie: 0, cookieVerifier: .zero, dirCount: 8192, maxCount: 32768, attrRequest: [1, 3, 4, 20, 33, 35]))],
        "getattr": [.putfh(handle("RWFH")), .getattr([0, 1, 3, 4, 8, 20, 33, 35, 36, 37, 45, 47, 52, 53, 55]),
                    .access(0x3f), .lookup(NFS4Name("file")), .getfh, .lookupp],
        "open-read": [.putfh(handle("RWFH")), .open(NFS4OpenArgs(seqid: 0, shareAccess: 1, shareDeny: 0, owner: owner,
                                                                 openHow: .noCreate, claim: .null("file"))),
                      .read(NFS4ReadArgs(stateID: .current, offset: 0, count: 4096)), .close(NFS4CloseArgs(seqid: 0, openStateID: .current))],
        "open-create-write": [.putfh(handle("RWFH")),
                              .open(NFS4OpenArgs(seqid: 0, shareAccess: 3, shareDeny: 2, owner: owner,
                                                 openHow: .create(.guarded(setMode)), claim: .null("new"))),
                              .write(NFS4WriteArgs(stateID: .current, offset: 0, stable: .fileSync,
                                                   data: ByteBuffer(bytes: Array("hello\n".utf8)))),
                              .commit(NFS4CommitArgs(offset: 0, count: 0)),
                              .lock(NFS4LockArgs(lockType: .write, reclaim: false, offset: 0, length: 10,
                                                 locker: .newLockOwner(OpenToLockOwner4(
                                                     openSeqid: 0, openStateID: .current, lockSeqid: 0,
                                                     lockOwner: lockOwner)))),
                              .lockt(NFS4LocktArgs(lockType: .read, offset: 0, length: .max, owner: lockOwner)),
                              .locku(NFS4LockuArgs(lockType: .write, seqid: 0, lockStateID: .current, offset: 0,
                                                   length: 10)),
                              .close(NFS4CloseArgs(seqid: 0, openStateID: .current))],
        "namespace": [.putfh(handle("RWFH")), .create(NFS4CreateArgs(objectType: .directory, name: "d", attributes: setMode)),
                      .putfh(handle("RWFH")), .savefh, .putfh(handle("RWFH")),
                      .rename(NFS4RenameArgs(oldName: NFS4Name("file"), newName: NFS4Name("moved"))), .link(NFS4Name("hard")),
                      .remove(NFS4Name("hard")), .readlink],
        "setattr-ro": [.putfh(handle("ROFH")), .setattr(NFS4SetattrArgs(stateID: .anonymous, attributes: setMode)),
                       .verify(setMode), .nverify(setMode)],
        "state": [.testStateid([.anonymous, .current, StateID(seqid: 1, otherHigh: 1, otherLow: 2)]),
                  .freeStateid(StateID(seqid: 1, otherHigh: 1, otherLow: 2)), .reclaimComplete(oneFS: false),
                  .secinfoNoName(.currentFH), .putpubfh, .secinfo(NFS4Name("x"))],
    ]
    let v42: [String: [NFS4Operation]] = [
        "v42": [.putfh(handle("FIFH")), .seek(NFS4SeekArgs(stateID: .anonymous, offset: 0, what: .data)),
                .allocate(NFS4AllocateArgs(stateID: .anonymous, offset: 0, length: 4096)),
                .deallocate(NFS4AllocateArgs(stateID: .anonymous, offset: 0, length: 2)),
                .savefh, .putfh(handle("FIFH")),
                .copy(NFS4CopyArgs(sourceStateID: .anonymous, destinationStateID: .anonymous, sourceOffset: 0,
                                   destinationOffset: 8, count: 4, consecutive: true, synchronous: true, sourceServers: [])),
                .clone(NFS4CloneArgs(sourceStateID: .anonymous, destinationStateID: .anonymous, sourceOffset: 0,
                                     destinationOffset: 0, count: 0))],
    ]
    var out: [String: [UInt8]] = [:]
    for (name, operations) in sequenced { out[name] = [0, 1] + body(operations) }
    for (name, operations) in v42 { out[name] = [2, 2] + body(operations, minor: 2) }
    out["raw-exchange-id"] = [1, 1] + body([.exchangeID(NFS4ExchangeIDArgs(
        clientOwner: ClientOwner4(verifier: Verifier4(1), ownerID: NFS4Opaque(Array("other".utf8))), flags: 0x101,
        stateProtect: .none, clientImplID: nil))])
    out["raw-destroy"] = [1, 1] + body([.destroySession(SessionID(high: 1, low: 2))])
    out["raw-v0"] = [1, 1] + body([.putrootfh], minor: 0)
    return out
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> CInt {
    if let dir = ProcessInfo.processInfo.environment["VSNFS_FUZZ_WRITE_SEEDS"] {
        let path = dir + "/FuzzNFS4"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, bytes) in seeds() {
            precondition(FileManager.default.createFile(atPath: "\(path)/\(name)", contents: Data(bytes)))
        }
        exit(0)
    }
    _ = fixture
    return 0
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzNFS4_main")
public func fuzzNFS4Main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzNFS4)
}
