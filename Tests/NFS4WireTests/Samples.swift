import NFS4Wire
import NIOCore
import XDR

// Sample values of every operation's arguments, shared by the tests.

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func encoded(_ value: some XDREncodable) -> ByteBuffer {
    var buffer = ByteBuffer()
    value.encode(xdr: &buffer)
    return buffer
}

func words(_ buffer: ByteBuffer) -> [UInt32] {
    var copy = buffer
    var result: [UInt32] = []
    while let word = copy.readInteger(endianness: .big, as: UInt32.self) { result.append(word) }
    return result
}

let sampleSession = SessionID(high: 0x0102_0304_0506_0708, low: 0x090a_0b0c_0d0e_0f10)
let sampleStateID = StateID(seqid: 2, otherHigh: 0xaabb_ccdd, otherLow: 0x1122_3344_5566_7788)
let sampleOwner = StateOwner4(clientID: 0x55, owner: Array("open id:\u{0}\u{1}".utf8))
let sampleHandle = NFS4FileHandle(Array(0..<40))
let sampleFattr: NFS4Fattr = {
    var attributes = NFS4Attributes()
    attributes.mode = 0o644
    attributes.size = 0
    return attributes.encode(requested: [NFS4Attribute.size.rawValue, NFS4Attribute.mode.rawValue])
}()
let sampleGSS = CallbackSecParms4.gss(service: .integrity, handleFromServer: [1, 2, 3], handleFromClient: [4, 5, 6, 7, 8])
let sampleSys = CallbackSecParms4.sys(CallbackAuthSys(stamp: 7, machineName: "guest", uid: 1000, gid: 1000, gids: [4, 27]))
let sampleChannel = ChannelAttrs(maxRequestSize: 1_049_620, maxResponseSize: 1_049_480, maxResponseSizeCached: 7584,
                                 maxOperations: 8, maxRequests: 64)

/// One value of each NFS4Operation case (`.unsupported` aside), with the
/// RFC section it comes from.
let sampleOperations: [(section: String, operation: NFS4Operation)] = [
    ("RFC 8881 18.46 SEQUENCE", .sequence(NFS4SequenceArgs(sessionID: sampleSession, sequenceID: 9, slotID: 3,
                                                            highestSlotID: 7, cacheThis: true))),
    ("RFC 8881 18.35 EXCHANGE_ID", .exchangeID(NFS4ExchangeIDArgs(
        clientOwner: ClientOwner4(verifier: Verifier4(0x5f3c_0000_0000_0001), ownerID: NFS4Opaque(Array("Linux NFSv4.2 guest".utf8))),
        flags: NFS4Constants.exchgidFlagSuppMovedRefer | NFS4Constants.exchgidFlagBindPrincStateid,
        stateProtect: .machineCredential(StateProtectOps4(mustEnforce: [40, 41, 42, 43, 44, 57], mustAllow: [45, 55])),
        clientImplID: NFSImplID4(domain: "kernel.org", name: "Linux 6.12", date: NFSTime4(seconds: 0, nseconds: 0))))),
    ("RFC 8881 18.35 EXCHANGE_ID with SP4_SSV", .exchangeID(NFS4ExchangeIDArgs(
        clientOwner: ClientOwner4(verifier: .zero, ownerID: NFS4Opaque([1])), flags: 0,
        stateProtect: .ssv(SSVSPParms4(ops: StateProtectOps4(mustEnforce: [], mustAllow: []), hashAlgorithms: [[1, 2]],
                                       encryptionAlgorithms: [[3], [4, 5, 6, 7, 8]], window: 2, numGSSHandles: 1)),
        clientImplID: nil))),
    ("RFC 8881 18.36 CREATE_SESSION", .createSession(NFS4CreateSessionArgs(
        clientID: 0xdead_beef, sequence: 1, flags: NFS4Constants.createSessionFlagConnBackChan,
        foreChannelAttrs: sampleChannel,
        backChannelAttrs: ChannelAttrs(maxRequestSize: 4096, maxResponseSize: 4096, maxResponseSizeCached: 0,
                                       maxOperations: 2, maxRequests: 1, rdmaIRD: 5),
        callbackProgram: 0x4000_0000, securityParameters: [.none, sampleSys, sampleGSS]))),
    ("RFC 8881 18.37 DESTROY_SESSION", .destroySession(sampleSession)),
    ("RFC 8881 18.50 DESTROY_CLIENTID", .destroyClientID(0x1234_5678_9abc)),
    ("RFC 8881 18.34 BIND_CONN_TO_SESSION", .bindConnToSession(NFS4BindConnToSessionArgs(
        sessionID: sampleSession, direction: .backOrBoth, useConnInRDMAMode: false))),
    ("RFC 8881 18.33 BACKCHANNEL_CTL", .backchannelCtl(NFS4BackchannelCtlArgs(callbackProgram: 0x4000_0001,
                                                                              securityParameters: [sampleSys]))),
    ("RFC 8881 18.51 RECLAIM_COMPLETE", .reclaimComplete(oneFS: false)),
    ("RFC 8881 18.45 SECINFO_NO_NAME", .secinfoNoName(.parent)),
    ("RFC 8881 18.29 SECINFO", .secinfo("export")),
    ("RFC 8881 18.21 PUTROOTFH", .putrootfh),
    ("RFC 8881 18.20 PUTPUBFH", .putpubfh),
    ("RFC 8881 18.19 PUTFH", .putfh(sampleHandle)),
    ("RFC 8881 18.8 GETFH", .getfh),
    ("RFC 8881 18.28 SAVEFH", .savefh),
    ("RFC 8881 18.27 RESTOREFH", .restorefh),
    ("RFC 8881 18.13 LOOKUP", .lookup("dir with spaces")),
    ("RFC 8881 18.14 LOOKUPP", .lookupp),
    ("RFC 8881 18.7 GETATTR", .getattr([1, 3, 4, 8, 20, 33, 55])),
    ("RFC 8881 18.30 SETATTR", .setattr(NFS4SetattrArgs(stateID: sampleStateID, attributes: sampleFattr))),
    ("RFC 8881 18.31 VERIFY", .verify(sampleFattr)),
    ("RFC 8881 18.15 NVERIFY", .nverify(sampleFattr)),
    ("RFC 8881 18.1 ACCESS", .access(NFS4Constants.accessRead | NFS4Constants.accessLookup)),
    ("RFC 8881 18.16 OPEN CLAIM_NULL UNCHECKED4", open(.create(.unchecked(sampleFattr)), .null("new file"))),
    ("RFC 8881 18.16 OPEN CLAIM_NULL GUARDED4", open(.create(.guarded(sampleFattr)), .null("f"))),
    ("RFC 8881 18.16 OPEN CLAIM_NULL EXCLUSIVE4", open(.create(.exclusive4(Verifier4(42))), .null("x"))),
    ("RFC 8881 18.16 OPEN CLAIM_NULL EXCLUSIVE4_1",
     open(.create(.exclusive4_1(verifier: Verifier4(43), attributes: sampleFattr)), .null("y"))),
    ("RFC 8881 18.16 OPEN CLAIM_FH", open(.noCreate, .fh)),
    ("RFC 8881 18.16 OPEN CLAIM_PREVIOUS", open(.noCreate, .previous(.write))),
    ("RFC 8881 18.16 OPEN CLAIM_DELEGATE_CUR", open(.noCreate, .delegateCur(delegateStateID: sampleStateID, file: "d"))),
    ("RFC 8881 18.16 OPEN CLAIM_DELEGATE_PREV", open(.noCreate, .delegatePrev("p"))),
    ("RFC 8881 18.16 OPEN CLAIM_DELEG_CUR_FH", open(.noCreate, .delegCurFH(delegateStateID: sampleStateID))),
    ("RFC 8881 18.16 OPEN CLAIM_DELEG_PREV_FH", open(.noCreate, .delegPrevFH)),
    ("RFC 8881 18.18 OPEN_DOWNGRADE", .openDowngrade(NFS4OpenDowngradeArgs(openStateID: sampleStateID, seqid: 0,
                                                                           shareAccess: 1, shareDeny: 0))),
    ("RFC 8881 18.2 CLOSE", .close(NFS4CloseArgs(seqid: 0, openStateID: sampleStateID))),
    ("RFC 8881 18.22 READ", .read(NFS4ReadArgs(stateID: .anonymous, offset: 1 << 40, count: 1 << 20))),
    ("RFC 8881 18.32 WRITE", .write(NFS4WriteArgs(stateID: sampleStateID, offset: 4096, stable: .fileSync,
                                                  data: buffer([1, 2, 3, 4, 5, 6, 7])))),
    ("RFC 8881 18.3 COMMIT", .commit(NFS4CommitArgs(offset: 0, count: 0))),
    ("RFC 8881 18.4 CREATE NF4DIR", .create(NFS4CreateArgs(objectType: .directory, name: "d", attributes: sampleFattr))),
    ("RFC 8881 18.4 CREATE NF4LNK", .create(NFS4CreateArgs(objectType: .symlink("../target"), name: "l",
                                                           attributes: .empty))),
    ("RFC 8881 18.4 CREATE NF4BLK", .create(NFS4CreateArgs(objectType: .blockDevice(SpecData4(specdata1: 8, specdata2: 1)),
                                                           name: "b", attributes: .empty))),
    ("RFC 8881 18.4 CREATE NF4CHR", .create(NFS4CreateArgs(objectType: .characterDevice(SpecData4(specdata1: 1, specdata2: 3)),
                                                           name: "c", attributes: .empty))),
    ("RFC 8881 18.4 CREATE NF4SOCK", .create(NFS4CreateArgs(objectType: .socket, name: "s", attributes: .empty))),
    ("RFC 8881 18.4 CREATE NF4FIFO", .create(NFS4CreateArgs(objectType: .fifo, name: "f", attributes: .empty))),
    ("RFC 8881 18.4 CREATE NF4REG (BADTYPE)", .create(NFS4CreateArgs(objectType: .other(1), name: "r", attributes: .empty))),
    ("RFC 8881 18.25 REMOVE", .remove("gone")),
    ("RFC 8881 18.26 RENAME", .rename(NFS4RenameArgs(oldName: "a", newName: "bcdef"))),
    ("RFC 8881 18.9 LINK", .link("hard")),
    ("RFC 8881 18.23 READDIR", .readdir(NFS4ReaddirArgs(cookie: 3, cookieVerifier: Verifier4(9), dirCount: 8192,
                                                        maxCount: 32768, attrRequest: [0, 1, 3, 20, 55]))),
    ("RFC 8881 18.24 READLINK", .readlink),
    ("RFC 8881 18.10 LOCK new lock owner", .lock(NFS4LockArgs(lockType: .writeBlocking, reclaim: false, offset: 0,
        length: .max, locker: .newLockOwner(OpenToLockOwner4(openSeqid: 0, openStateID: sampleStateID, lockSeqid: 0,
                                                             lockOwner: sampleOwner))))),
    ("RFC 8881 18.10 LOCK existing lock owner", .lock(NFS4LockArgs(lockType: .read, reclaim: true, offset: 10, length: 20,
        locker: .existingLockOwner(ExistLockOwner4(lockStateID: sampleStateID, lockSeqid: 0))))),
    ("RFC 8881 18.11 LOCKT", .lockt(NFS4LocktArgs(lockType: .write, offset: 1, length: 2, owner: sampleOwner))),
    ("RFC 8881 18.12 LOCKU", .locku(NFS4LockuArgs(lockType: .write, seqid: 0, lockStateID: sampleStateID, offset: 1,
                                                  length: 2))),
    ("RFC 8881 18.48 TEST_STATEID", .testStateid([sampleStateID, .anonymous, .readBypass])),
    ("RFC 8881 18.38 FREE_STATEID", .freeStateid(sampleStateID)),
    ("RFC 8881 18.6 DELEGRETURN", .delegreturn(sampleStateID)),
    ("RFC 7862 15.11 SEEK", .seek(NFS4SeekArgs(stateID: sampleStateID, offset: 100, what: .hole))),
    ("RFC 7862 15.1 ALLOCATE", .allocate(NFS4AllocateArgs(stateID: sampleStateID, offset: 0, length: 1 << 30))),
    ("RFC 7862 15.4 DEALLOCATE", .deallocate(NFS4AllocateArgs(stateID: sampleStateID, offset: 4096, length: 8192))),
    ("RFC 7862 15.2 COPY", .copy(NFS4CopyArgs(sourceStateID: sampleStateID, destinationStateID: .anonymous,
        sourceOffset: 0, destinationOffset: 0, count: 0, consecutive: true, synchronous: false,
        sourceServers: [.name("host"), .url("nfs://h/x"), .netaddr(netid: "tcp", address: "127.0.0.1.8.1")]))),
    ("RFC 7862 15.13 CLONE", .clone(NFS4CloneArgs(sourceStateID: sampleStateID, destinationStateID: sampleStateID,
                                                  sourceOffset: 0, destinationOffset: 65536, count: 65536))),
]

func open(_ how: OpenFlag4, _ claim: OpenClaim4) -> NFS4Operation {
    .open(NFS4OpenArgs(seqid: 0, shareAccess: NFS4Constants.shareAccessBoth | NFS4Constants.shareAccessWantNoDeleg,
                       shareDeny: NFS4Constants.shareDenyNone, owner: sampleOwner, openHow: how, claim: claim))
}

/// A COMPOUND as a client sends it.
func compound(_ operations: [NFS4Operation], minorVersion: UInt32 = 1, tag: [UInt8] = []) -> ByteBuffer {
    encoded(NFS4CompoundRequest(tag: tag, minorVersion: minorVersion, operations: operations))
}
