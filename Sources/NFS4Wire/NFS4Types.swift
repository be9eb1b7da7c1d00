import NIOCore
import XDR

// The basic data types of RFC 8881 §3 and the small structures every
// operation shares, each with one decoder (`init(xdr:)`) and one encoder
// (`encode(xdr:)`). Variable-length fields are bounded (NFS4Limits) and, as
// everywhere in XDR, checked against the bytes received before anything is
// allocated.

/// Bounds this wire layer puts on variable-length fields the protocol leaves open.
public enum NFS4Limits {
    /// component4, linktext4, utf8 strings: PATH_MAX. Whether a name is too
    /// long for the file system (NFS4ERR_NAMETOOLONG) is the server's call.
    public static let maxComponentLength = 4096
    /// bitmap4 words: attributes go up to 82, three words; eight leave room.
    public static let maxBitmapWords = 8
    /// Array counts the protocol leaves unbounded (stateids in TEST_STATEID,
    /// security flavors, server names); the bytes received bound them too.
    public static let maxArrayCount = 1024
    /// The security oids and GSS handles of EXCHANGE_ID/CREATE_SESSION.
    public static let maxSecurityOpaque = 1024
    /// WRITE and READ data: the request or reply size bounds it first.
    public static let maxDataLength = 64 << 20
}

// MARK: - Fixed-size identifiers

/// verifier4: 8 opaque bytes, kept in a UInt64 (big-endian order on the wire).
public struct Verifier4: Sendable, Hashable, XDRCodable {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public static let zero = Verifier4(0)
    public init(xdr buffer: inout ByteBuffer) throws { self.value = try buffer.readXDRUInt64() }
    public func encode(xdr buffer: inout ByteBuffer) { buffer.writeXDRUInt64(value) }
}

/// sessionid4: 16 opaque bytes.
public struct SessionID: Sendable, Hashable, XDRCodable {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
    public init(bytes: [UInt8]) {
        precondition(bytes.count == NFS4Constants.sessionIDSize)
        self.high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        self.low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.high = try buffer.readXDRUInt64()
        self.low = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(high)
        buffer.writeXDRUInt64(low)
    }
}

/// clientid4 (RFC 8881 §3.2): a 64-bit value the server hands out.
public typealias ClientID = UInt64

/// stateid4 (RFC 8881 §8.2): a sequence number and 12 bytes the server chose.
public struct StateID: Sendable, Hashable, XDRCodable {
    public var seqid: UInt32
    /// The 12-byte `other` field, as a 4-byte and an 8-byte part.
    public var otherHigh: UInt32
    public var otherLow: UInt64

    public init(seqid: UInt32, otherHigh: UInt32, otherLow: UInt64) {
        self.seqid = seqid
        self.otherHigh = otherHigh
        self.otherLow = otherLow
    }

    public init(seqid: UInt32, other: [UInt8]) {
        precondition(other.count == NFS4Constants.otherSize)
        self.seqid = seqid
        self.otherHigh = other[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
        self.otherLow = other[4..<12].reduce(0) { $0 << 8 | UInt64($1) }
    }

    public var other: [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: otherHigh >> (24 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: otherLow >> (56 - 8 * $0)) }
    }

    public init(xdr buffer: inout ByteBuffer) throws {
        self.seqid = try buffer.readXDRUInt32()
        self.otherHigh = try buffer.readXDRUInt32()
        self.otherLow = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(seqid)
        buffer.writeXDRUInt32(otherHigh)
        buffer.writeXDRUInt64(otherLow)
    }

    private var otherIsZero: Bool { otherHigh == 0 && otherLow == 0 }
    private var otherIsOnes: Bool { otherHigh == .max && otherLow == .max }

    // The special stateids (RFC 8881 §8.2.3).
    /// All zeros: the anonymous stateid (I/O with no open or lock state).
    public static let anonymous = StateID(seqid: 0, otherHigh: 0, otherLow: 0)
    /// All ones: READ bypass (reads that bypass locks and share denial).
    public static let readBypass = StateID(seqid: .max, otherHigh: .max, otherLow: .max)
    /// seqid 1, other zero: "the current stateid" of the COMPOUND.
    public static let current = StateID(seqid: 1, otherHigh: 0, otherLow: 0)
    /// seqid NFS4_UINT32_MAX, other zero: the invalid stateid, never valid.
    public static let invalid = StateID(seqid: .max, otherHigh: 0, otherLow: 0)

    public enum Special: Sendable, Hashable {
        case anonymous, readBypass, current, invalid
        /// `other` all zeros or all ones with any other seqid: reserved, NFS4ERR_BAD_STATEID.
        case reserved
    }

    /// Which special stateid this is, or nil for one the server issued.
    public var special: Special? {
        if otherIsZero {
            switch seqid {
            case 0: return .anonymous
            case 1: return .current
            case .max: return .invalid
            default: return .reserved
            }
        }
        if otherIsOnes { return seqid == .max ? .readBypass : .reserved }
        return nil
    }
}

// MARK: - Variable-length basics

/// nfs_fh4: an opaque file handle of at most NFS4_FHSIZE (128) bytes.
public struct NFS4FileHandle: Sendable, Hashable, XDRCodable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.bytes = try buffer.readXDRVariableBytes(maxLength: NFS4Constants.fhSize)
    }
    public func encode(xdr buffer: inout ByteBuffer) { buffer.writeXDRVariableOpaque(bytes) }
}

/// component4 / linktext4 / utf8str_*: bytes the RFC says are UTF-8. They are
/// kept as sent; the server checks them (NFS4ERR_INVAL, BADCHAR, BADNAME,
/// NAMETOOLONG) where it uses them.
public struct NFS4Name: Sendable, Hashable, XDRCodable, ExpressibleByStringLiteral {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }
    /// The name as a String, or nil when it is not UTF-8.
    public var string: String? { String(validating: bytes, as: UTF8.self) }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.bytes = try buffer.readXDRVariableBytes(maxLength: NFS4Limits.maxComponentLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) { buffer.writeXDRVariableOpaque(bytes) }
}

/// An opaque<NFS4_OPAQUE_LIMIT> (owners, server scope, major ids).
public struct NFS4Opaque: Sendable, Hashable, XDRCodable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.bytes = try buffer.readXDRVariableBytes(maxLength: NFS4Constants.opaqueLimit)
    }
    public func encode(xdr buffer: inout ByteBuffer) { buffer.writeXDRVariableOpaque(bytes) }
}

/// bitmap4: a counted array of 32-bit words; bit n is attribute (or
/// operation) n, in word n / 32.
public struct Bitmap4: Sendable, Hashable, XDRCodable, ExpressibleByArrayLiteral {
    public var words: [UInt32]

    public init(words: [UInt32]) { self.words = words }
    /// The bitmap with exactly these bits set.
    public init<S: Sequence>(bits: S) where S.Element == Int {
        self.words = []
        for bit in bits { insert(bit) }
    }
    public init(arrayLiteral elements: Int...) { self.init(bits: elements) }

    public func contains(_ bit: Int) -> Bool {
        let word = bit / 32
        return bit >= 0 && word < words.count && words[word] & (1 << UInt32(bit % 32)) != 0
    }
    public mutating func insert(_ bit: Int) {
        precondition(bit >= 0)
        let word = bit / 32
        if word >= words.count { words.append(contentsOf: repeatElement(0, count: word + 1 - words.count)) }
        words[word] |= 1 << UInt32(bit % 32)
    }
    public mutating func remove(_ bit: Int) {
        let word = bit / 32
        guard bit >= 0, word < words.count else { return }
        words[word] &= ~(1 << UInt32(bit % 32))
    }
    /// The set bits, ascending.
    public var bits: [Int] {
        var result: [Int] = []
        for (index, word) in words.enumerated() where word != 0 {
            for bit in 0..<32 where word & (1 << UInt32(bit)) != 0 { result.append(index * 32 + bit) }
        }
        return result
    }
    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }
    public func intersection(_ other: Bitmap4) -> Bitmap4 {
        Bitmap4(words: zip(words, other.words).map { $0 & $1 }).trimmed()
    }
    public func union(_ other: Bitmap4) -> Bitmap4 {
        let count = max(words.count, other.words.count)
        return Bitmap4(words: (0..<count).map {
            ($0 < words.count ? words[$0] : 0) | ($0 < other.words.count ? other.words[$0] : 0)
        })
    }
    public func subtracting(_ other: Bitmap4) -> Bitmap4 {
        Bitmap4(words: words.enumerated().map { $1 & ~($0 < other.words.count ? other.words[$0] : 0) }).trimmed()
    }
    /// The same bits without trailing zero words.
    public func trimmed() -> Bitmap4 {
        var words = self.words
        while words.last == 0 { words.removeLast() }
        return Bitmap4(words: words)
    }

    public init(xdr buffer: inout ByteBuffer) throws {
        self.words = try buffer.readXDRArray(maxCount: NFS4Limits.maxBitmapWords) { try $0.readXDRUInt32() }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRArray(words) { $0.writeXDRUInt32($1) }
    }
}

/// nfstime4 (RFC 8881 §3.3.1).
public struct NFSTime4: Sendable, Hashable, XDRCodable {
    public var seconds: Int64
    public var nseconds: UInt32
    public init(seconds: Int64, nseconds: UInt32) {
        self.seconds = seconds
        self.nseconds = nseconds
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.seconds = try buffer.readXDRInt64()
        self.nseconds = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRInt64(seconds)
        buffer.writeXDRUInt32(nseconds)
    }
}

/// settime4: the server's clock, or a time the client gives.
public enum SetTime4: Sendable, Hashable, XDRCodable {
    case serverTime
    case clientTime(NFSTime4)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 0: self = .serverTime                       // SET_TO_SERVER_TIME4
        case 1: self = .clientTime(try NFSTime4(xdr: &buffer)) // SET_TO_CLIENT_TIME4
        case let other: throw XDRError.invalidEnum(type: "time_how4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .serverTime: buffer.writeXDRUInt32(0)
        case .clientTime(let time):
            buffer.writeXDRUInt32(1)
            time.encode(xdr: &buffer)
        }
    }
}

/// change_info4 (RFC 8881 §3.3.9).
public struct ChangeInfo4: Sendable, Hashable, XDRCodable {
    public var atomic: Bool
    public var before: UInt64
    public var after: UInt64
    public init(atomic: Bool, before: UInt64, after: UInt64) {
        self.atomic = atomic
        self.before = before
        self.after = after
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.atomic = try buffer.readXDRBool()
        self.before = try buffer.readXDRUInt64()
        self.after = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRBool(atomic)
        buffer.writeXDRUInt64(before)
        buffer.writeXDRUInt64(after)
    }
}

/// fsid4 (RFC 8881 §3.3.8).
public struct FSID4: Sendable, Hashable, XDRCodable {
    public var major: UInt64
    public var minor: UInt64
    public init(major: UInt64, minor: UInt64) {
        self.major = major
        self.minor = minor
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.major = try buffer.readXDRUInt64()
        self.minor = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(major)
        buffer.writeXDRUInt64(minor)
    }
}

/// specdata4: a device's major and minor numbers.
public struct SpecData4: Sendable, Hashable, XDRCodable {
    public var specdata1: UInt32
    public var specdata2: UInt32
    public init(specdata1: UInt32, specdata2: UInt32) {
        self.specdata1 = specdata1
        self.specdata2 = specdata2
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.specdata1 = try buffer.readXDRUInt32()
        self.specdata2 = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(specdata1)
        buffer.writeXDRUInt32(specdata2)
    }
}

/// nfs_ftype4 (RFC 8881 §5.8.1.2).
public enum NFS4FileType: UInt32, Sendable, Hashable, CaseIterable {
    case regular = 1, directory, blockDevice, characterDevice, symlink, socket, fifo, attributeDirectory, namedAttribute
}

/// stable_how4.
public enum StableHow4: UInt32, Sendable, Hashable, CaseIterable {
    case unstable = 0, dataSync = 1, fileSync = 2
}

/// nfs_lock_type4 (RFC 8881 §18.10).
public enum NFS4LockType: UInt32, Sendable, Hashable, CaseIterable {
    case read = 1, write = 2, readBlocking = 3, writeBlocking = 4
}

/// createmode4 (RFC 8881 §18.16), EXCLUSIVE4_1 included.
public enum CreateMode4: UInt32, Sendable, Hashable, CaseIterable {
    case unchecked = 0, guarded = 1, exclusive4 = 2, exclusive4_1 = 3
}

/// open_claim_type4.
public enum OpenClaimType4: UInt32, Sendable, Hashable, CaseIterable {
    case null = 0, previous = 1, delegateCur = 2, delegatePrev = 3, fh = 4, delegCurFH = 5, delegPrevFH = 6
}

/// open_delegation_type4 (OPEN_DELEGATE_NONE_EXT is 4.1's).
public enum OpenDelegationType4: UInt32, Sendable, Hashable, CaseIterable {
    case none = 0, read = 1, write = 2, noneExt = 3
}

/// why_no_delegation4.
public enum WhyNoDelegation4: UInt32, Sendable, Hashable, CaseIterable {
    case notWanted = 0, contention, resource, notSuppFtype, writeDelegNotSuppFtype, notSuppUpgrade,
         notSuppDowngrade, cancelled, isDir
}

/// secinfo_style4 (RFC 8881 §18.45).
public enum SecinfoStyle4: UInt32, Sendable, Hashable, CaseIterable {
    case currentFH = 0, parent = 1
}

/// channel_dir_from_client4 (RFC 8881 §18.34).
public enum ChannelDirFromClient4: UInt32, Sendable, Hashable, CaseIterable {
    case fore = 0x1, back = 0x2, foreOrBoth = 0x3, backOrBoth = 0x7
}

/// channel_dir_from_server4.
public enum ChannelDirFromServer4: UInt32, Sendable, Hashable, CaseIterable {
    case fore = 0x1, back = 0x2, both = 0x3
}

/// data_content4 (RFC 7862 §15.11, SEEK).
public enum DataContent4: UInt32, Sendable, Hashable, CaseIterable {
    case data = 0, hole = 1
}

/// rpc_gss_svc_t.
public enum RPCGSSService: UInt32, Sendable, Hashable, CaseIterable {
    case none = 1, integrity = 2, privacy = 3
}

// MARK: - Shared structures

/// channel_attrs4 (RFC 8881 §18.36).
public struct ChannelAttrs: Sendable, Hashable, XDRCodable {
    public var headerPadSize: UInt32
    public var maxRequestSize: UInt32
    public var maxResponseSize: UInt32
    public var maxResponseSizeCached: UInt32
    public var maxOperations: UInt32
    public var maxRequests: UInt32
    /// ca_rdma_ird<1>.
    public var rdmaIRD: UInt32?

    public init(headerPadSize: UInt32 = 0, maxRequestSize: UInt32, maxResponseSize: UInt32,
                maxResponseSizeCached: UInt32, maxOperations: UInt32, maxRequests: UInt32, rdmaIRD: UInt32? = nil) {
        self.headerPadSize = headerPadSize
        self.maxRequestSize = maxRequestSize
        self.maxResponseSize = maxResponseSize
        self.maxResponseSizeCached = maxResponseSizeCached
        self.maxOperations = maxOperations
        self.maxRequests = maxRequests
        self.rdmaIRD = rdmaIRD
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.headerPadSize = try buffer.readXDRUInt32()
        self.maxRequestSize = try buffer.readXDRUInt32()
        self.maxResponseSize = try buffer.readXDRUInt32()
        self.maxResponseSizeCached = try buffer.readXDRUInt32()
        self.maxOperations = try buffer.readXDRUInt32()
        self.maxRequests = try buffer.readXDRUInt32()
        self.rdmaIRD = try buffer.readXDRArray(maxCount: 1) { try $0.readXDRUInt32() }.first
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(headerPadSize)
        buffer.writeXDRUInt32(maxRequestSize)
        buffer.writeXDRUInt32(maxResponseSize)
        buffer.writeXDRUInt32(maxResponseSizeCached)
        buffer.writeXDRUInt32(maxOperations)
        buffer.writeXDRUInt32(maxRequests)
        buffer.writeXDRArray(rdmaIRD.map { [$0] } ?? []) { $0.writeXDRUInt32($1) }
    }
}

/// state_owner4 (open_owner4, lock_owner4): the client id and an opaque owner.
public struct StateOwner4: Sendable, Hashable, XDRCodable {
    public var clientID: ClientID
    public var owner: NFS4Opaque
    public init(clientID: ClientID, owner: [UInt8]) {
        self.clientID = clientID
        self.owner = NFS4Opaque(owner)
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.clientID = try buffer.readXDRUInt64()
        self.owner = try NFS4Opaque(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(clientID)
        owner.encode(xdr: &buffer)
    }
}

/// nfs_impl_id4: the implementation's domain, name and build date.
public struct NFSImplID4: Sendable, Hashable, XDRCodable {
    public var domain: NFS4Name
    public var name: NFS4Name
    public var date: NFSTime4
    public init(domain: NFS4Name, name: NFS4Name, date: NFSTime4) {
        self.domain = domain
        self.name = name
        self.date = date
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.domain = try NFS4Name(xdr: &buffer)
        self.name = try NFS4Name(xdr: &buffer)
        self.date = try NFSTime4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        domain.encode(xdr: &buffer)
        name.encode(xdr: &buffer)
        date.encode(xdr: &buffer)
    }
}

/// nfsace4 (RFC 8881 §6.2.1), as delegations carry it.
public struct NFSACE4: Sendable, Hashable, XDRCodable {
    public var type: UInt32
    public var flag: UInt32
    public var accessMask: UInt32
    public var who: NFS4Name
    public init(type: UInt32, flag: UInt32, accessMask: UInt32, who: NFS4Name) {
        self.type = type
        self.flag = flag
        self.accessMask = accessMask
        self.who = who
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.type = try buffer.readXDRUInt32()
        self.flag = try buffer.readXDRUInt32()
        self.accessMask = try buffer.readXDRUInt32()
        self.who = try NFS4Name(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(type)
        buffer.writeXDRUInt32(flag)
        buffer.writeXDRUInt32(accessMask)
        who.encode(xdr: &buffer)
    }
}

/// authsys_parms (RFC 5531 Appendix A), as callback_sec_parms4 carries it.
public struct CallbackAuthSys: Sendable, Hashable, XDRCodable {
    public var stamp: UInt32
    public var machineName: NFS4Name
    public var uid: UInt32
    public var gid: UInt32
    public var gids: [UInt32]
    public init(stamp: UInt32, machineName: NFS4Name, uid: UInt32, gid: UInt32, gids: [UInt32]) {
        self.stamp = stamp
        self.machineName = machineName
        self.uid = uid
        self.gid = gid
        self.gids = gids
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stamp = try buffer.readXDRUInt32()
        self.machineName = NFS4Name(try buffer.readXDRVariableBytes(maxLength: 255))
        self.uid = try buffer.readXDRUInt32()
        self.gid = try buffer.readXDRUInt32()
        self.gids = try buffer.readXDRArray(maxCount: 16) { try $0.readXDRUInt32() }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(stamp)
        machineName.encode(xdr: &buffer)
        buffer.writeXDRUInt32(uid)
        buffer.writeXDRUInt32(gid)
        buffer.writeXDRArray(gids) { $0.writeXDRUInt32($1) }
    }
}

/// callback_sec_parms4: how the server authenticates its callbacks.
public enum CallbackSecParms4: Sendable, Hashable, XDRCodable {
    case none
    case sys(CallbackAuthSys)
    case gss(service: RPCGSSService, handleFromServer: [UInt8], handleFromClient: [UInt8])
    /// Another flavor's body cannot be skipped: it is XDRError.invalidEnum (BADXDR).
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case NFS4Constants.authNone: self = .none
        case NFS4Constants.authSys: self = .sys(try CallbackAuthSys(xdr: &buffer))
        case NFS4Constants.rpcsecGSS:
            let service: RPCGSSService = try buffer.readXDREnum()
            let fromServer = try buffer.readXDRVariableBytes(maxLength: NFS4Limits.maxSecurityOpaque)
            let fromClient = try buffer.readXDRVariableBytes(maxLength: NFS4Limits.maxSecurityOpaque)
            self = .gss(service: service, handleFromServer: fromServer, handleFromClient: fromClient)
        case let other: throw XDRError.invalidEnum(type: "callback_sec_parms4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .none: buffer.writeXDRUInt32(NFS4Constants.authNone)
        case .sys(let parms):
            buffer.writeXDRUInt32(NFS4Constants.authSys)
            parms.encode(xdr: &buffer)
        case .gss(let service, let fromServer, let fromClient):
            buffer.writeXDRUInt32(NFS4Constants.rpcsecGSS)
            buffer.writeXDREnum(service)
            buffer.writeXDRVariableOpaque(fromServer)
            buffer.writeXDRVariableOpaque(fromClient)
        }
    }
}

/// state_protect_ops4: the operations SP4_MACH_CRED/SP4_SSV cover.
public struct StateProtectOps4: Sendable, Hashable, XDRCodable {
    public var mustEnforce: Bitmap4
    public var mustAllow: Bitmap4
    public init(mustEnforce: Bitmap4, mustAllow: Bitmap4) {
        self.mustEnforce = mustEnforce
        self.mustAllow = mustAllow
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.mustEnforce = try Bitmap4(xdr: &buffer)
        self.mustAllow = try Bitmap4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        mustEnforce.encode(xdr: &buffer)
        mustAllow.encode(xdr: &buffer)
    }
}

extension ByteBuffer {
    /// An array of opaque<> items (sec_oid4<>, gsshandle4_t<>), each bounded.
    mutating func readNFS4OpaqueArray() throws -> [[UInt8]] {
        try readXDRArray(maxCount: NFS4Limits.maxArrayCount) {
            try $0.readXDRVariableBytes(maxLength: NFS4Limits.maxSecurityOpaque)
        }
    }
    mutating func writeNFS4OpaqueArray(_ items: [[UInt8]]) {
        writeXDRArray(items) { $0.writeXDRVariableOpaque($1) }
    }
}
