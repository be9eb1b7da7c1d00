import Foundation
import NFS4Wire
import NIOCore
import ONCRPC
import XDR

/// One result of a COMPOUND4res, decoded as far as the tests need.
struct NFS4TestResult {
    var opcode: UInt32
    var status: NFS4Status
    var value: Any?

    func `as`<T>(_ type: T.Type) -> T? { value as? T }
}

struct NFS4TestReply {
    var status: NFS4Status
    var tag: [UInt8]
    var results: [NFS4TestResult]
    /// The COMPOUND4res bytes as received.
    var bytes: [UInt8]

    var statuses: [NFS4Status] { results.map(\.status) }
    func value<T>(_ opcode: NFS4Opcode, _ type: T.Type) -> T? {
        results.first { $0.opcode == opcode.rawValue }?.as(type)
    }
}

/// READDIR4resok's names.
struct NFS4TestDirectory {
    var names: [String]
    var eof: Bool
}

enum NFS4TestDecodeError: Error { case unexpected(String) }

/// Decodes COMPOUND4res: every result the tests' operations produce.
func decodeCompoundReply(_ buffer: ByteBuffer) throws -> NFS4TestReply {
    var b = buffer
    let bytes = Array(buffer.readableBytesView)
    guard let status = NFS4Status(rawValue: try b.readXDRUInt32()) else { throw NFS4TestDecodeError.unexpected("status") }
    let tag = try b.readXDRVariableBytes(maxLength: 1024)
    let count = try b.readXDRUInt32()
    var results: [NFS4TestResult] = []
    for _ in 0..<count {
        let raw = try b.readXDRUInt32()
        guard let st = NFS4Status(rawValue: try b.readXDRUInt32()) else { throw NFS4TestDecodeError.unexpected("op status") }
        var value: Any?
        let op = NFS4Opcode(rawValue: raw)
        if op == .setattr {
            value = try Bitmap4(xdr: &b)
        } else if st == .ok {
            switch op {
            case .sequence: value = try NFS4SequenceResOK(xdr: &b)
            case .exchangeID: value = try NFS4ExchangeIDResOK(xdr: &b)
            case .createSession: value = try NFS4CreateSessionResOK(xdr: &b)
            case .bindConnToSession: value = try NFS4BindConnToSessionResOK(xdr: &b)
            case .getfh: value = try NFS4FileHandle(xdr: &b)
            case .getattr: value = try NFS4Fattr(xdr: &b)
            case .access: value = try NFS4AccessResOK(xdr: &b)
            case .open: value = try NFS4OpenResOK(xdr: &b)
            case .close, .openDowngrade, .locku, .lock: value = try StateID(xdr: &b)
            case .read: value = try NFS4ReadResOK(xdr: &b)
            case .write: value = try NFS4WriteResOK(xdr: &b)
            case .commit: value = try Verifier4(xdr: &b)
            case .create: value = try NFS4CreateResOK(xdr: &b)
            case .remove, .link: value = try ChangeInfo4(xdr: &b)
            case .rename: value = try NFS4RenameResOK(xdr: &b)
            case .readlink: value = try NFS4Name(xdr: &b)
            case .secinfo, .secinfoNoName:
                value = try b.readXDRArray(maxCount: 16, minimumElementSize: 4) { try SecInfo4(xdr: &$0) }
            case .seek: value = try NFS4SeekResOK(xdr: &b)
            case .copy: value = try NFS4CopyResOK(xdr: &b)
            case .testStateid:
                value = try b.readXDRArray(maxCount: 1024, minimumElementSize: 4) { try $0.readXDRUInt32() }
            case .readdir:
                _ = try Verifier4(xdr: &b)
                var names: [String] = []
                while try b.readXDRBool() {
                    _ = try b.readXDRUInt64()
                    names.append(String(decoding: try NFS4Name(xdr: &b).bytes, as: UTF8.self))
                    _ = try NFS4Fattr(xdr: &b)
                }
                value = NFS4TestDirectory(names: names, eof: try b.readXDRBool())
            default: break  // void results
            }
        } else if st == .denied && (op == .lock || op == .lockt) {
            value = try LockDenied4(xdr: &b)
        }
        results.append(NFS4TestResult(opcode: raw, status: st, value: value))
    }
    return NFS4TestReply(status: status, tag: tag, results: results, bytes: bytes)
}

/// An NFSv4.1 client speaking through the project's blocking RPC client: one
/// session, slot 0, a sequence ID it keeps.
final class NFS4TestClient {
    let rpc: RawRPCClient
    var credential: RPCOpaqueAuth
    var clientID: ClientID = 0
    var sessionID = SessionID(high: 0, low: 0)
    var sequenceID: UInt32 = 0
    let owner: [UInt8]

    init(_ rpc: RawRPCClient, owner: String = "nfs4-test-\(UUID().uuidString)", uid: UInt32 = 0, gid: UInt32 = 0) {
        self.rpc = rpc
        self.owner = Array(owner.utf8)
        self.credential = AuthSysParameters(machineName: Array("nfs4test".utf8), uid: uid, gid: gid).opaqueAuth
    }

    /// COMPOUND4args bytes for these operations.
    static func arguments(_ operations: [NFS4Operation], minorVersion: UInt32 = 1, tag: String = "t") -> ByteBuffer {
        var b = ByteBuffer()
        NFS4CompoundRequest(tag: Array(tag.utf8), minorVersion: minorVersion, operations: operations).encode(xdr: &b)
        return b
    }

    func raw(_ arguments: ByteBuffer) throws -> RPCReplyBody {
        try rpc.call(program: 100_003, version: 4, procedure: 1, credential: credential, arguments: arguments)
    }

    func send(_ arguments: ByteBuffer) throws -> NFS4TestReply {
        guard case .success(let results) = try raw(arguments) else {
            throw NFS4TestDecodeError.unexpected("the COMPOUND was not accepted")
        }
        return try decodeCompoundReply(results)
    }

    func compound(_ operations: [NFS4Operation], minorVersion: UInt32 = 1) throws -> NFS4TestReply {
        try send(Self.arguments(operations, minorVersion: minorVersion))
    }

    /// EXCHANGE_ID then CREATE_SESSION (each alone, as RFC 8881 has them).
    @discardableResult
    func establishSession(maxOperations: UInt32 = 16) throws -> NFS4TestReply {
        let exchange = try compound([.exchangeID(NFS4ExchangeIDArgs(
            clientOwner: ClientOwner4(verifier: Verifier4(42), ownerID: NFS4Opaque(owner)), flags: 0,
            stateProtect: .none, clientImplID: nil))])
        guard let ok = exchange.value(.exchangeID, NFS4ExchangeIDResOK.self) else {
            throw NFS4TestDecodeError.unexpected("EXCHANGE_ID: \(exchange.statuses)")
        }
        clientID = ok.clientID
        let attrs = ChannelAttrs(maxRequestSize: 1 << 20, maxResponseSize: 1 << 20, maxResponseSizeCached: 64 << 10,
                                 maxOperations: maxOperations, maxRequests: 8)
        let session = try compound([.createSession(NFS4CreateSessionArgs(
            clientID: ok.clientID, sequence: ok.sequenceID, flags: 0, foreChannelAttrs: attrs, backChannelAttrs: attrs,
            callbackProgram: 0x4000_0000, securityParameters: [.none]))])
        guard let created = session.value(.createSession, NFS4CreateSessionResOK.self) else {
            throw NFS4TestDecodeError.unexpected("CREATE_SESSION: \(session.statuses)")
        }
        sessionID = created.sessionID
        sequenceID = 0
        return session
    }

    /// SEQUENCE (slot 0, the next sequence ID) and the operations, as COMPOUND4args.
    func sequencedArguments(_ operations: [NFS4Operation], cacheThis: Bool = false, slot: UInt32 = 0,
                            minorVersion: UInt32 = 1) -> ByteBuffer {
        sequenceID += 1
        let sequence = NFS4Operation.sequence(NFS4SequenceArgs(sessionID: sessionID, sequenceID: sequenceID, slotID: slot,
                                                               highestSlotID: slot, cacheThis: cacheThis))
        return Self.arguments([sequence] + operations, minorVersion: minorVersion)
    }

    func sequenced(_ operations: [NFS4Operation], cacheThis: Bool = false, minorVersion: UInt32 = 1) throws -> NFS4TestReply {
        try send(sequencedArguments(operations, cacheThis: cacheThis, minorVersion: minorVersion))
    }

    /// The handle of `path` (components below the pseudo-root).
    func handle(_ path: [String]) throws -> NFS4FileHandle {
        let reply = try sequenced([.putrootfh] + path.map { .lookup(NFS4Name($0)) } + [.getfh])
        guard let fh = reply.value(.getfh, NFS4FileHandle.self) else {
            throw NFS4TestDecodeError.unexpected("LOOKUP \(path): \(reply.statuses)")
        }
        return fh
    }

    /// The names in the directory at `path`.
    func list(_ path: [String]) throws -> NFS4TestReply {
        try sequenced([.putrootfh] + path.map { .lookup(NFS4Name($0)) } + [
            .readdir(NFS4ReaddirArgs(cookie: 0, cookieVerifier: .zero, dirCount: 8192, maxCount: 32768,
                                     attrRequest: [NFS4Attribute.type.rawValue, NFS4Attribute.fileid.rawValue])),
        ])
    }

    /// OPEN (CLAIM_NULL) of `name` in `directory`.
    func open(_ directory: NFS4FileHandle, _ name: String, access: UInt32, deny: UInt32 = 0, create: Bool = false,
              owner: String = "open-owner") throws -> NFS4TestReply {
        let how: OpenFlag4 = create ? .create(.unchecked(NFS4Fattr(mask: [], values: ByteBuffer()))) : .noCreate
        return try sequenced([.putfh(directory), .open(NFS4OpenArgs(
            seqid: 0, shareAccess: access, shareDeny: deny, owner: StateOwner4(clientID: clientID, owner: Array(owner.utf8)),
            openHow: how, claim: .null(NFS4Name(name)))), .getfh])
    }
}
