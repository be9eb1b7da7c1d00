// libFuzzer target: NFSv4.1/4.2 COMPOUND4args decoding (NFS4CompoundRequest),
// the fattr4 decoding the operations that carry one get, COMPOUND4res
// encoding of a reply to what decoded, and CB_COMPOUND4res decoding.
//
// Input: the arguments of a COMPOUND call (after the RPC header).
// Checked beyond "no crash":
//   - the operations that decoded re-encode to a COMPOUND that decodes to the
//     same operations with no failure (encode . decode is idempotent);
//   - a failure names the operation after the last one decoded;
//   - an fattr4 that decodes for VERIFY re-encodes to the same values;
//   - the reply (a result per operation, then the failure's) encodes, with
//     the COMPOUND status the last result's, and decodes to what re-encodes
//     to the same bytes.
//
// VSNFS_FUZZ_WRITE_SEEDS=DIR writes a few COMPOUNDs a Linux client sends to
// DIR/FuzzCompound, then exits.
import FuzzDriver
import Foundation
import NFS4Wire
import NIOCore
import XDR

/// Small limits, so inputs reach them.
let limits = NFS4DecodeLimits(maxOperations: 16, maxRequestSize: 12288, maxTagLength: 64)

func encoded(_ value: some XDREncodable) -> ByteBuffer {
    var buffer = ByteBuffer()
    value.encode(xdr: &buffer)
    return buffer
}

/// The fattr4 an operation carries, and what it is for.
func attributes(of operation: NFS4Operation) -> [(NFS4Fattr, NFS4Attributes.Purpose)] {
    switch operation {
    case .setattr(let args): return [(args.attributes, .set)]
    case .create(let args): return [(args.attributes, .set)]
    case .verify(let fattr), .nverify(let fattr): return [(fattr, .verify)]
    case .open(let args):
        switch args.openHow {
        case .create(.unchecked(let fattr)), .create(.guarded(let fattr)), .create(.exclusive4_1(_, let fattr)):
            return [(fattr, .set)]
        default: return []
        }
    default: return []
    }
}

/// A reply as a server that failed every operation with SERVERFAULT would
/// send it (void results succeed): every result arm's encoder runs.
func reply(to request: NFS4CompoundRequest) -> NFS4CompoundResponse {
    var results: [NFS4Result] = request.operations.map { operation in
        switch operation {
        case .unsupported(let opcode): return .failed(opcode, .notsupp)
        case .getfh: return .getfh(.ok(NFS4FileHandle([1, 2, 3])))
        case .read(let args):
            return .read(.ok(NFS4ReadResOK(eof: true, data: ByteBuffer(repeating: 0, count: Int(args.count % 64)))))
        case .testStateid(let ids): return .testStateid(.ok(ids.map { $0.special == nil ? .badStateid : .ok }))
        case let other:
            return .failed(other.opcode, [.putfh, .putrootfh, .savefh, .lookupp].contains(other.opcode) ? .ok : .serverfault)
        }
    }
    if let failure = request.failure { results.append(failure.result) }
    return NFS4CompoundResponse(tag: request.tag, results: results)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCompound(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count))

    var callbackReply = input
    if let decoded = try? CBCompoundResponse(xdr: &callbackReply) {
        var again = encoded(decoded)
        precondition((try? CBCompoundResponse(xdr: &again)) == decoded, "a CB_COMPOUND4res does not survive a round trip")
    }

    guard let request = try? NFS4CompoundRequest(decoding: input, limits: limits) else { return 0 }
    if request.minorVersionMismatch {
        precondition(request.operations.isEmpty && request.failure == nil)
        return 0
    }
    if let failure = request.failure {
        precondition(failure.index == request.operations.count, "the failure is not at the operation after the decoded ones")
        precondition(failure.status != .ok)
    } else {
        precondition(request.operations.count == Int(request.declaredOperationCount))
    }

    // Re-encode what decoded (an unsupported operation's arguments were not kept: stop before it).
    let known = Array(request.operations.prefix { if case .unsupported = $0 { return false } else { return true } })
    let reencoded = NFS4CompoundRequest(tag: request.tag, minorVersion: request.minorVersion, operations: known)
    guard let again = try? NFS4CompoundRequest(decoding: encoded(reencoded), limits: NFS4DecodeLimits.server) else {
        preconditionFailure("decoded operations do not decode once re-encoded")
    }
    precondition(again.failure == nil && again.operations == known, "encode(decode(x)) decodes to something else")

    for operation in known {
        for (fattr, purpose) in attributes(of: operation) {
            guard let decoded = try? NFS4Attributes(decoding: fattr, for: purpose) else { continue }
            let back = decoded.encode(requested: fattr.mask)
            if purpose == .verify {
                // (Byte equality would be too strict: padding bytes need not be zero on the way in.)
                precondition(back.mask == fattr.mask, "VERIFY attributes lost a bit")
                precondition((try? NFS4Attributes(decoding: back, for: .verify)) == decoded,
                             "VERIFY attributes re-encode to other values")
            }
        }
    }

    let response = reply(to: request)
    let bytes = encoded(response)
    precondition(bytes.readableBytes >= 12 + request.tag.count)
    precondition(response.status == (response.results.last?.status ?? .ok))
    var replyBytes = bytes
    guard let decodedReply = try? NFS4CompoundResponse(xdr: &replyBytes) else {
        preconditionFailure("the reply does not decode")
    }
    precondition(encoded(decodedReply) == bytes, "the reply re-encodes differently")
    return 0
}

/// COMPOUNDs a Linux 4.1/4.2 client sends, as seeds.
func seeds() -> [String: ByteBuffer] {
    let session = SessionID(high: 0x5f3c_6a21_0000_0001, low: 2)
    let sequence = NFS4Operation.sequence(NFS4SequenceArgs(sessionID: session, sequenceID: 1, slotID: 0, highestSlotID: 0,
                                                           cacheThis: false))
    let stateID = StateID(seqid: 1, otherHigh: 1, otherLow: 2)
    let owner = StateOwner4(clientID: 1, owner: Array("open id:\u{0}\u{0}\u{0}\u{1}".utf8))
    var createAttributes = NFS4Attributes()
    createAttributes.mode = 0o644
    var modeValues = ByteBuffer()
    modeValues.writeXDRUInt32(0o644)
    let setMode = NFS4Fattr(mask: [33], values: modeValues)
    var supported = NFS4Attributes()
    supported.supportedAttrs = NFS4Attribute.all
    supported.type = .directory
    supported.fsid = FSID4(major: 1, minor: 0)
    func request(_ operations: [NFS4Operation], minor: UInt32 = 1) -> ByteBuffer {
        encoded(NFS4CompoundRequest(tag: [], minorVersion: minor, operations: operations))
    }
    return [
        "exchange-id": request([.exchangeID(NFS4ExchangeIDArgs(
            clientOwner: ClientOwner4(verifier: Verifier4(1), ownerID: NFS4Opaque(Array("Linux NFSv4.2 guest".utf8))),
            flags: 0x101, stateProtect: .none,
            clientImplID: NFSImplID4(domain: "kernel.org", name: "Linux", date: NFSTime4(seconds: 0, nseconds: 0))))]),
        "create-session": request([.createSession(NFS4CreateSessionArgs(
            clientID: 1, sequence: 1, flags: 3,
            foreChannelAttrs: ChannelAttrs(maxRequestSize: 1_049_620, maxResponseSize: 1_049_480, maxResponseSizeCached: 7584,
                                           maxOperations: 8, maxRequests: 64),
            backChannelAttrs: ChannelAttrs(maxRequestSize: 4096, maxResponseSize: 4096, maxResponseSizeCached: 0,
                                           maxOperations: 2, maxRequests: 16),
            callbackProgram: 0x4000_0000,
            securityParameters: [.sys(CallbackAuthSys(stamp: 0, machineName: "guest", uid: 0, gid: 0, gids: []))]))]),
        "mount": request([sequence, .putrootfh, .getfh, .getattr([0, 1, 8, 19, 75]), .secinfoNoName(.currentFH)]),
        "open-write": request([sequence, .putfh(NFS4FileHandle(Array(0..<32))),
                               .open(NFS4OpenArgs(seqid: 0, shareAccess: 2, shareDeny: 0, owner: owner,
                                                  openHow: .create(.exclusive4_1(verifier: Verifier4(7), attributes: setMode)),
                                                  claim: .null("file"))),
                               .getfh, .write(NFS4WriteArgs(stateID: .current, offset: 0, stable: .unstable,
                                                            data: ByteBuffer(bytes: Array("hello\n".utf8)))),
                               .getattr([3, 4])], minor: 2),
        "readdir": request([sequence, .putfh(NFS4FileHandle([1])),
                            .readdir(NFS4ReaddirArgs(cookie: 0, cookieVerifier: .zero, dirCount: 8192, maxCount: 32768,
                                                     attrRequest: [1, 3, 4, 20, 33, 35, 36, 37, 53, 55]))]),
        "lock": request([sequence, .putfh(NFS4FileHandle([1])),
                         .lock(NFS4LockArgs(lockType: .write, reclaim: false, offset: 0, length: .max,
                                            locker: .newLockOwner(OpenToLockOwner4(openSeqid: 0, openStateID: stateID,
                                                                                   lockSeqid: 0, lockOwner: owner)))),
                         .locku(NFS4LockuArgs(lockType: .write, seqid: 0, lockStateID: stateID, offset: 0, length: .max))]),
        "setattr-verify": request([sequence, .putfh(NFS4FileHandle([1])),
                                   .verify(supported.encode(requested: NFS4Attribute.all)),
                                   .setattr(NFS4SetattrArgs(stateID: .anonymous, attributes: setMode)),
                                   .create(NFS4CreateArgs(objectType: .directory, name: "d", attributes: setMode))]),
        "copy-seek": request([sequence, .putfh(NFS4FileHandle([1])), .savefh, .putfh(NFS4FileHandle([2])),
                              .copy(NFS4CopyArgs(sourceStateID: stateID, destinationStateID: stateID, sourceOffset: 0,
                                                 destinationOffset: 0, count: 0, consecutive: true, synchronous: true,
                                                 sourceServers: [])),
                              .seek(NFS4SeekArgs(stateID: stateID, offset: 0, what: .data)),
                              .clone(NFS4CloneArgs(sourceStateID: stateID, destinationStateID: stateID, sourceOffset: 0,
                                                   destinationOffset: 0, count: 0))], minor: 2),
        "callback-reply": encoded(CBCompoundResponse(status: .ok, tag: [], results: [
            .sequence(.ok(CBSequenceResOK(sessionID: session, sequenceID: 1, slotID: 0, highestSlotID: 0,
                                          targetHighestSlotID: 0))),
            .recall(.ok)])),
    ]
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> CInt {
    if let dir = ProcessInfo.processInfo.environment["VSNFS_FUZZ_WRITE_SEEDS"] {
        let path = dir + "/FuzzCompound"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, bytes) in seeds() {
            try! Data(bytes.readableBytesView).write(to: URL(fileURLWithPath: "\(path)/\(name)"))
        }
        exit(0)
    }
    return 0
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzCompound_main")
public func fuzzCompoundMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzCompound)
}
