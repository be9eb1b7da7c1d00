import NIOCore
import XDR

// COMPOUND4res encoding (RFC 8881 §16.2): nfs_resop4 for every operation
// NFS4Operation decodes, and the whole reply.

/// A result whose error arm is void: the OK value, or a status other than NFS4_OK.
public enum NFS4Reply<OK: Sendable & Hashable>: Sendable, Hashable {
    case ok(OK)
    case error(NFS4Status)

    public var status: NFS4Status {
        switch self {
        case .ok: return .ok
        case .error(let status): return status
        }
    }

    func encode(xdr buffer: inout ByteBuffer, _ body: (inout ByteBuffer, OK) -> Void) {
        switch self {
        case .ok(let value):
            buffer.writeXDREnum(NFS4Status.ok)
            body(&buffer, value)
        case .error(let status):
            precondition(status != .ok, "an error result needs an error status")
            buffer.writeXDREnum(status)
        }
    }
}

/// LOCK4res and LOCKT4res: NFS4ERR_DENIED carries the conflicting lock.
public enum NFS4LockReply<OK: Sendable & Hashable>: Sendable, Hashable {
    case ok(OK)
    case denied(LockDenied4)
    case error(NFS4Status)

    public var status: NFS4Status {
        switch self {
        case .ok: return .ok
        case .denied: return .denied
        case .error(let status): return status
        }
    }
}

/// COPY4res: NFS4ERR_OFFLOAD_NO_REQS carries the requirements the server can meet.
public enum NFS4CopyReply: Sendable, Hashable {
    case ok(NFS4CopyResOK)
    case noRequirements(CopyRequirements4)
    case error(NFS4Status)

    public var status: NFS4Status {
        switch self {
        case .ok: return .ok
        case .noRequirements: return .offloadNoReqs
        case .error(let status): return status
        }
    }
}

/// READDIR4resok: the entries already encoded against the client's byte
/// budget (NFS4DirectoryListWriter), the cookie verifier and eof.
public struct NFS4ReaddirResOK: Sendable, Hashable {
    public var cookieVerifier: Verifier4
    /// The entry4 list's XDR: for each entry `TRUE, cookie, name, fattr4`,
    /// without the closing FALSE (written here).
    public var entries: ByteBuffer
    public var eof: Bool
    public init(cookieVerifier: Verifier4, entries: ByteBuffer, eof: Bool) {
        self.cookieVerifier = cookieVerifier
        self.entries = entries
        self.eof = eof
    }
    public init(cookieVerifier: Verifier4, list: NFS4DirectoryListWriter, eof: Bool) {
        self.init(cookieVerifier: cookieVerifier, entries: list.entries, eof: eof)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        cookieVerifier.encode(xdr: &buffer)
        var entries = self.entries
        buffer.writeBuffer(&entries)
        buffer.writeXDRBool(false)
        buffer.writeXDRBool(eof)
    }
}

/// Encodes READDIR's entry4 list against the client's limits (RFC 8881
/// §18.23.2): `maxcount` bounds the whole READDIR4resok, `dircount` the
/// cookies and names alone (zero: no separate bound). An entry that would
/// cross either is not written; when the first does not fit the server
/// answers NFS4ERR_TOOSMALL.
public struct NFS4DirectoryListWriter: Sendable {
    public private(set) var entries: ByteBuffer
    public private(set) var count = 0
    /// Bytes of the READDIR4resok so far: the verifier, the list's closing FALSE and eof.
    public private(set) var resokSize = 8 + 4 + 4
    private var dirBytes = 0
    private let maxCount: Int
    private let dirCount: Int

    public init(maxCount: UInt32, dirCount: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.maxCount = Int(maxCount)
        self.dirCount = dirCount == 0 ? Int.max : Int(dirCount)
        self.entries = allocator.buffer(capacity: min(Int(maxCount), 64 * 1024))
    }

    /// The XDR size of an entry (with its leading TRUE), and of its cookie and name alone.
    public static func size(name: NFS4Name, attributes: NFS4Fattr) -> (entry: Int, dir: Int) {
        let nameSize = 4 + name.bytes.count + xdrPadding(name.bytes.count)
        let values = attributes.values.readableBytes
        let fattrSize = 4 + 4 * attributes.mask.words.count + 4 + values + xdrPadding(values)
        return (4 + 8 + nameSize + fattrSize, 8 + nameSize)
    }

    /// Appends the entry if it fits both budgets; returns false, writing
    /// nothing, when it does not (the list is then full).
    public mutating func append(cookie: UInt64, name: NFS4Name, attributes: NFS4Fattr) -> Bool {
        let (entrySize, dirSize) = Self.size(name: name, attributes: attributes)
        guard resokSize + entrySize <= maxCount, dirBytes + dirSize <= dirCount else { return false }
        entries.writeXDRBool(true)
        entries.writeXDRUInt64(cookie)
        name.encode(xdr: &entries)
        attributes.encode(xdr: &entries)
        resokSize += entrySize
        dirBytes += dirSize
        count += 1
        return true
    }
}

/// One operation's result (nfs_resop4).
public enum NFS4Result: Sendable, Hashable, XDREncodable {
    case sequence(NFS4Reply<NFS4SequenceResOK>)
    case exchangeID(NFS4Reply<NFS4ExchangeIDResOK>)
    case createSession(NFS4Reply<NFS4CreateSessionResOK>)
    case bindConnToSession(NFS4Reply<NFS4BindConnToSessionResOK>)
    case secinfo(NFS4Reply<[SecInfo4]>)
    case secinfoNoName(NFS4Reply<[SecInfo4]>)
    case getfh(NFS4Reply<NFS4FileHandle>)
    case getattr(NFS4Reply<NFS4Fattr>)
    /// SETATTR4res: attrsset is sent whatever the status.
    case setattr(NFS4Status, attributesSet: Bitmap4)
    case access(NFS4Reply<NFS4AccessResOK>)
    case open(NFS4Reply<NFS4OpenResOK>)
    case openDowngrade(NFS4Reply<StateID>)
    case close(NFS4Reply<StateID>)
    case read(NFS4Reply<NFS4ReadResOK>)
    case write(NFS4Reply<NFS4WriteResOK>)
    case commit(NFS4Reply<Verifier4>)
    case create(NFS4Reply<NFS4CreateResOK>)
    case remove(NFS4Reply<ChangeInfo4>)
    case rename(NFS4Reply<NFS4RenameResOK>)
    case link(NFS4Reply<ChangeInfo4>)
    case readdir(NFS4Reply<NFS4ReaddirResOK>)
    case readlink(NFS4Reply<NFS4Name>)
    case lock(NFS4LockReply<StateID>)
    case lockt(NFS4LockReply<NFS4Empty>)
    case locku(NFS4Reply<StateID>)
    case testStateid(NFS4Reply<[NFS4Status]>)
    case seek(NFS4Reply<NFS4SeekResOK>)
    case copy(NFS4CopyReply)
    /// A result that is a status alone: every result of PUTFH, PUTROOTFH,
    /// PUTPUBFH, SAVEFH, RESTOREFH, LOOKUP, LOOKUPP, VERIFY, NVERIFY,
    /// DESTROY_SESSION, DESTROY_CLIENTID, BACKCHANNEL_CTL, RECLAIM_COMPLETE,
    /// FREE_STATEID, DELEGRETURN, ALLOCATE, DEALLOCATE, CLONE; the error
    /// results of the others (SETATTR's with an empty attrsset); OP_ILLEGAL;
    /// NOTSUPP for unsupported operations.
    case status(NFS4Opcode, NFS4Status)

    /// The result for an operation that failed before it ran.
    public static func failed(_ opcode: NFS4Opcode, _ status: NFS4Status) -> NFS4Result {
        .status(opcode, status)
    }

    public var opcode: NFS4Opcode {
        switch self {
        case .sequence: return .sequence
        case .exchangeID: return .exchangeID
        case .createSession: return .createSession
        case .bindConnToSession: return .bindConnToSession
        case .secinfo: return .secinfo
        case .secinfoNoName: return .secinfoNoName
        case .getfh: return .getfh
        case .getattr: return .getattr
        case .setattr: return .setattr
        case .access: return .access
        case .open: return .open
        case .openDowngrade: return .openDowngrade
        case .close: return .close
        case .read: return .read
        case .write: return .write
        case .commit: return .commit
        case .create: return .create
        case .remove: return .remove
        case .rename: return .rename
        case .link: return .link
        case .readdir: return .readdir
        case .readlink: return .readlink
        case .lock: return .lock
        case .lockt: return .lockt
        case .locku: return .locku
        case .testStateid: return .testStateid
        case .seek: return .seek
        case .copy: return .copy
        case .status(let opcode, _): return opcode
        }
    }

    public var status: NFS4Status {
        switch self {
        case .sequence(let r): return r.status
        case .exchangeID(let r): return r.status
        case .createSession(let r): return r.status
        case .bindConnToSession(let r): return r.status
        case .secinfo(let r), .secinfoNoName(let r): return r.status
        case .getfh(let r): return r.status
        case .getattr(let r): return r.status
        case .setattr(let status, _): return status
        case .access(let r): return r.status
        case .open(let r): return r.status
        case .openDowngrade(let r), .close(let r), .locku(let r): return r.status
        case .read(let r): return r.status
        case .write(let r): return r.status
        case .commit(let r): return r.status
        case .create(let r): return r.status
        case .remove(let r), .link(let r): return r.status
        case .rename(let r): return r.status
        case .readdir(let r): return r.status
        case .readlink(let r): return r.status
        case .lock(let r): return r.status
        case .lockt(let r): return r.status
        case .testStateid(let r): return r.status
        case .seek(let r): return r.status
        case .copy(let r): return r.status
        case .status(_, let status): return status
        }
    }

    /// Operations whose NFS4_OK result is void.
    static let voidOnSuccess: Set<NFS4Opcode> = [
        .putfh, .putrootfh, .putpubfh, .savefh, .restorefh, .lookup, .lookupp, .verify, .nverify,
        .destroySession, .destroyClientid, .backchannelCtl, .reclaimComplete, .freeStateid, .delegreturn,
        .allocate, .deallocate, .clone, .lockt,
    ]

    /// nfs_resop4: the opcode, the status, the arm the status selects.
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(opcode)
        switch self {
        case .sequence(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .exchangeID(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .createSession(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .bindConnToSession(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .secinfo(let r), .secinfoNoName(let r):
            r.encode(xdr: &buffer) { buffer, flavors in buffer.writeXDRArray(flavors) { $1.encode(xdr: &$0) } }
        case .getfh(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .getattr(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .setattr(let status, let attributesSet):
            buffer.writeXDREnum(status)
            attributesSet.encode(xdr: &buffer)
        case .access(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .open(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .openDowngrade(let r), .close(let r), .locku(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .read(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .write(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .commit(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .create(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .remove(let r), .link(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .rename(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .readdir(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .readlink(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .lock(let r): Self.encodeLock(r, into: &buffer) { $1.encode(xdr: &$0) }
        case .lockt(let r): Self.encodeLock(r, into: &buffer) { _, _ in }
        case .testStateid(let r):
            r.encode(xdr: &buffer) { buffer, codes in buffer.writeXDRArray(codes) { $0.writeXDREnum($1) } }
        case .seek(let r): r.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .copy(let r):
            buffer.writeXDREnum(r.status)
            switch r {
            case .ok(let resok): resok.encode(xdr: &buffer)
            case .noRequirements(let requirements): requirements.encode(xdr: &buffer)
            case .error(let status):
                precondition(status != .ok && status != .offloadNoReqs, "COPY's \(status.rfcName) has its own arm")
            }
        case .status(let opcode, let status):
            precondition(status != .ok || Self.voidOnSuccess.contains(opcode),
                         "\(opcode)'s NFS4_OK result has a body: use its own case")
            precondition(!(status == .denied && (opcode == .lock || opcode == .lockt)),
                         "LOCK/LOCKT's NFS4ERR_DENIED carries LOCK4denied: use .lock/.lockt")
            precondition(!(status == .offloadNoReqs && opcode == .copy), "use .copy(.noRequirements)")
            buffer.writeXDREnum(status)
            if opcode == .setattr { Bitmap4(words: []).encode(xdr: &buffer) }
        }
    }

    private static func encodeLock<OK>(_ reply: NFS4LockReply<OK>, into buffer: inout ByteBuffer,
                                       _ body: (inout ByteBuffer, OK) -> Void) {
        buffer.writeXDREnum(reply.status)
        switch reply {
        case .ok(let value): body(&buffer, value)
        case .denied(let denied): denied.encode(xdr: &buffer)
        case .error(let status): precondition(status != .ok && status != .denied, "LOCK's \(status.rfcName) has its own arm")
        }
    }
}

/// A void result body (LOCKT's NFS4_OK arm).
public struct NFS4Empty: Sendable, Hashable {
    public init() {}
}

/// COMPOUND4res: the status of the last result, the request's tag, the results.
public struct NFS4CompoundResponse: Sendable, Hashable, XDREncodable {
    public var status: NFS4Status
    public var tag: [UInt8]
    public var results: [NFS4Result]

    /// The reply to a COMPOUND that ran `results` (the last one's status is
    /// the COMPOUND's, RFC 8881 §16.2.3).
    public init(tag: [UInt8], results: [NFS4Result]) {
        self.status = results.last?.status ?? .ok
        self.tag = tag
        self.results = results
    }

    public init(status: NFS4Status, tag: [UInt8], results: [NFS4Result]) {
        self.status = status
        self.tag = tag
        self.results = results
    }

    /// The reply to a COMPOUND of a minor version not served: the status, no results.
    public static func minorVersionMismatch(tag: [UInt8]) -> NFS4CompoundResponse {
        NFS4CompoundResponse(status: .minorVersMismatch, tag: tag, results: [])
    }

    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(status)
        buffer.writeXDRVariableOpaque(tag)
        buffer.writeXDRArray(results) { $1.encode(xdr: &$0) }
    }
}
