import NIOCore
import XDR

// fattr4 (RFC 8881 §5): the attributes this server knows, an encoder from
// an NFS4Attributes value and a requested bitmap to (the bitmap returned,
// attrlist4) in ascending attribute order, and a decoder of the fattr4 a
// client sends (SETATTR, CREATE, OPEN's createattrs, VERIFY, NVERIFY).

/// How an attribute's value is written (its XDR type).
public enum NFS4AttributeType: Sendable, Hashable {
    case bitmap, fileType, uint32, uint64, bool, fsid, status, fileHandle, utf8, specData, time, setTime
}

/// The attributes known here: the REQUIRED set and the RECOMMENDED ones the
/// Linux client asks for. Any other bit is NFS4ERR_ATTRNOTSUPP when set.
public enum NFS4Attribute: Int, Sendable, Hashable, CaseIterable {
    case supportedAttrs = 0
    case type = 1
    case fhExpireType = 2
    case change = 3
    case size = 4
    case linkSupport = 5
    case symlinkSupport = 6
    case namedAttr = 7
    case fsid = 8
    case uniqueHandles = 9
    case leaseTime = 10
    case rdattrError = 11
    case aclSupport = 13
    case canSetTime = 15
    case caseInsensitive = 16
    case casePreserving = 17
    case chownRestricted = 18
    case filehandle = 19
    case fileid = 20
    case filesAvail = 21
    case filesFree = 22
    case filesTotal = 23
    case homogeneous = 26
    case maxFileSize = 27
    case maxLink = 28
    case maxName = 29
    case maxRead = 30
    case maxWrite = 31
    case mode = 33
    case noTrunc = 34
    case numLinks = 35
    case owner = 36
    case ownerGroup = 37
    case rawdev = 41
    case spaceAvail = 42
    case spaceFree = 43
    case spaceTotal = 44
    case spaceUsed = 45
    case timeAccess = 47
    case timeAccessSet = 48
    case timeDelta = 51
    case timeMetadata = 52
    case timeModify = 53
    case timeModifySet = 54
    case mountedOnFileid = 55
    case suppattrExclcreat = 75

    /// The RFC's name.
    public var name: String {
        var name = ""
        for character in String(describing: self) {
            if character.isUppercase { name.append("_") }
            name.append(contentsOf: character.lowercased())
        }
        switch self {
        case .fsid: return "fsid"
        case .fileid: return "fileid"
        case .filehandle: return "filehandle"
        case .mountedOnFileid: return "mounted_on_fileid"
        case .canSetTime: return "cansettime"
        case .maxFileSize: return "maxfilesize"
        case .maxLink: return "maxlink"
        case .maxName: return "maxname"
        case .maxRead: return "maxread"
        case .maxWrite: return "maxwrite"
        case .numLinks: return "numlinks"
        case .aclSupport: return "aclsupport"
        case .suppattrExclcreat: return "suppattr_exclcreat"
        default: return name
        }
    }

    /// REQUIRED (RFC 8881 §5.6) rather than RECOMMENDED (§5.7).
    public var isRequired: Bool {
        switch self {
        case .supportedAttrs, .type, .fhExpireType, .change, .size, .linkSupport, .symlinkSupport, .namedAttr,
             .fsid, .uniqueHandles, .leaseTime, .rdattrError, .filehandle, .suppattrExclcreat:
            return true
        default:
            return false
        }
    }

    public var type: NFS4AttributeType {
        switch self {
        case .supportedAttrs, .suppattrExclcreat: return .bitmap
        case .type: return .fileType
        case .fhExpireType, .leaseTime, .aclSupport, .maxLink, .maxName, .mode, .numLinks: return .uint32
        case .change, .size, .fileid, .filesAvail, .filesFree, .filesTotal, .maxFileSize, .maxRead, .maxWrite,
             .spaceAvail, .spaceFree, .spaceTotal, .spaceUsed, .mountedOnFileid:
            return .uint64
        case .linkSupport, .symlinkSupport, .namedAttr, .uniqueHandles, .canSetTime, .caseInsensitive,
             .casePreserving, .chownRestricted, .homogeneous, .noTrunc:
            return .bool
        case .fsid: return .fsid
        case .rdattrError: return .status
        case .filehandle: return .fileHandle
        case .owner, .ownerGroup: return .utf8
        case .rawdev: return .specData
        case .timeAccess, .timeDelta, .timeMetadata, .timeModify: return .time
        case .timeAccessSet, .timeModifySet: return .setTime
        }
    }

    /// Attributes SETATTR may set (size, mode, owner, owner_group, the _set times).
    public var isWritable: Bool {
        switch self {
        case .size, .mode, .owner, .ownerGroup, .timeAccessSet, .timeModifySet: return true
        default: return false
        }
    }

    /// Write-only: GETATTR, READDIR and VERIFY asking for one get NFS4ERR_INVAL.
    public var isWriteOnly: Bool { self == .timeAccessSet || self == .timeModifySet }

    /// Every attribute of this table, as supported_attrs reports it.
    public static let all = Bitmap4(bits: allCases.map(\.rawValue))
    /// Those SETATTR may set.
    public static let writable = Bitmap4(bits: allCases.filter(\.isWritable).map(\.rawValue))
    /// The write-only ones.
    public static let writeOnly = Bitmap4(bits: allCases.filter(\.isWriteOnly).map(\.rawValue))
}

/// Attribute values, each optional: the ones present and requested are
/// encoded; a decoded fattr4 sets the ones it carried.
public struct NFS4Attributes: Sendable, Hashable {
    public var supportedAttrs: Bitmap4?
    public var type: NFS4FileType?
    public var fhExpireType: UInt32?
    public var change: UInt64?
    public var size: UInt64?
    public var linkSupport: Bool?
    public var symlinkSupport: Bool?
    public var namedAttr: Bool?
    public var fsid: FSID4?
    public var uniqueHandles: Bool?
    public var leaseTime: UInt32?
    public var rdattrError: NFS4Status?
    public var aclSupport: UInt32?
    public var canSetTime: Bool?
    public var caseInsensitive: Bool?
    public var casePreserving: Bool?
    public var chownRestricted: Bool?
    public var filehandle: NFS4FileHandle?
    public var fileid: UInt64?
    public var filesAvail: UInt64?
    public var filesFree: UInt64?
    public var filesTotal: UInt64?
    public var homogeneous: Bool?
    public var maxFileSize: UInt64?
    public var maxLink: UInt32?
    public var maxName: UInt32?
    public var maxRead: UInt64?
    public var maxWrite: UInt64?
    public var mode: UInt32?
    public var noTrunc: Bool?
    public var numLinks: UInt32?
    public var owner: NFS4Name?
    public var ownerGroup: NFS4Name?
    public var rawdev: SpecData4?
    public var spaceAvail: UInt64?
    public var spaceFree: UInt64?
    public var spaceTotal: UInt64?
    public var spaceUsed: UInt64?
    public var timeAccess: NFSTime4?
    public var timeAccessSet: SetTime4?
    public var timeDelta: NFSTime4?
    public var timeMetadata: NFSTime4?
    public var timeModify: NFSTime4?
    public var timeModifySet: SetTime4?
    public var mountedOnFileid: UInt64?
    public var suppattrExclcreat: Bitmap4?

    public init() {}

    /// The attributes that have a value.
    public var present: Bitmap4 {
        Bitmap4(bits: NFS4Attribute.allCases.filter { has($0) }.map(\.rawValue))
    }

    private func has(_ attribute: NFS4Attribute) -> Bool {
        var scratch = ByteBuffer()
        return write(attribute, into: &scratch)
    }

    /// Writes one attribute's value; false (writing nothing) when it has none.
    private func write(_ attribute: NFS4Attribute, into buffer: inout ByteBuffer) -> Bool {
        func put<T>(_ value: T?, _ body: (inout ByteBuffer, T) -> Void) -> Bool {
            guard let value else { return false }
            body(&buffer, value)
            return true
        }
        func u32(_ value: UInt32?) -> Bool { put(value) { $0.writeXDRUInt32($1) } }
        func u64(_ value: UInt64?) -> Bool { put(value) { $0.writeXDRUInt64($1) } }
        func bool(_ value: Bool?) -> Bool { put(value) { $0.writeXDRBool($1) } }
        func xdr<T: XDREncodable>(_ value: T?) -> Bool { put(value) { $1.encode(xdr: &$0) } }
        switch attribute {
        case .supportedAttrs: return xdr(supportedAttrs)
        case .type: return put(type) { $0.writeXDREnum($1) }
        case .fhExpireType: return u32(fhExpireType)
        case .change: return u64(change)
        case .size: return u64(size)
        case .linkSupport: return bool(linkSupport)
        case .symlinkSupport: return bool(symlinkSupport)
        case .namedAttr: return bool(namedAttr)
        case .fsid: return xdr(fsid)
        case .uniqueHandles: return bool(uniqueHandles)
        case .leaseTime: return u32(leaseTime)
        case .rdattrError: return put(rdattrError) { $0.writeXDREnum($1) }
        case .aclSupport: return u32(aclSupport)
        case .canSetTime: return bool(canSetTime)
        case .caseInsensitive: return bool(caseInsensitive)
        case .casePreserving: return bool(casePreserving)
        case .chownRestricted: return bool(chownRestricted)
        case .filehandle: return xdr(filehandle)
        case .fileid: return u64(fileid)
        case .filesAvail: return u64(filesAvail)
        case .filesFree: return u64(filesFree)
        case .filesTotal: return u64(filesTotal)
        case .homogeneous: return bool(homogeneous)
        case .maxFileSize: return u64(maxFileSize)
        case .maxLink: return u32(maxLink)
        case .maxName: return u32(maxName)
        case .maxRead: return u64(maxRead)
        case .maxWrite: return u64(maxWrite)
        case .mode: return u32(mode)
        case .noTrunc: return bool(noTrunc)
        case .numLinks: return u32(numLinks)
        case .owner: return xdr(owner)
        case .ownerGroup: return xdr(ownerGroup)
        case .rawdev: return xdr(rawdev)
        case .spaceAvail: return u64(spaceAvail)
        case .spaceFree: return u64(spaceFree)
        case .spaceTotal: return u64(spaceTotal)
        case .spaceUsed: return u64(spaceUsed)
        case .timeAccess: return xdr(timeAccess)
        case .timeAccessSet: return xdr(timeAccessSet)
        case .timeDelta: return xdr(timeDelta)
        case .timeMetadata: return xdr(timeMetadata)
        case .timeModify: return xdr(timeModify)
        case .timeModifySet: return xdr(timeModifySet)
        case .mountedOnFileid: return u64(mountedOnFileid)
        case .suppattrExclcreat: return xdr(suppattrExclcreat)
        }
    }

    /// Reads one attribute's value from attrlist4.
    private mutating func read(_ attribute: NFS4Attribute, from buffer: inout ByteBuffer) throws {
        switch attribute {
        case .supportedAttrs: supportedAttrs = try Bitmap4(xdr: &buffer)
        case .type: type = try buffer.readXDREnum()
        case .fhExpireType: fhExpireType = try buffer.readXDRUInt32()
        case .change: change = try buffer.readXDRUInt64()
        case .size: size = try buffer.readXDRUInt64()
        case .linkSupport: linkSupport = try buffer.readXDRBool()
        case .symlinkSupport: symlinkSupport = try buffer.readXDRBool()
        case .namedAttr: namedAttr = try buffer.readXDRBool()
        case .fsid: fsid = try FSID4(xdr: &buffer)
        case .uniqueHandles: uniqueHandles = try buffer.readXDRBool()
        case .leaseTime: leaseTime = try buffer.readXDRUInt32()
        case .rdattrError: rdattrError = try buffer.readXDREnum()
        case .aclSupport: aclSupport = try buffer.readXDRUInt32()
        case .canSetTime: canSetTime = try buffer.readXDRBool()
        case .caseInsensitive: caseInsensitive = try buffer.readXDRBool()
        case .casePreserving: casePreserving = try buffer.readXDRBool()
        case .chownRestricted: chownRestricted = try buffer.readXDRBool()
        case .filehandle: filehandle = try NFS4FileHandle(xdr: &buffer)
        case .fileid: fileid = try buffer.readXDRUInt64()
        case .filesAvail: filesAvail = try buffer.readXDRUInt64()
        case .filesFree: filesFree = try buffer.readXDRUInt64()
        case .filesTotal: filesTotal = try buffer.readXDRUInt64()
        case .homogeneous: homogeneous = try buffer.readXDRBool()
        case .maxFileSize: maxFileSize = try buffer.readXDRUInt64()
        case .maxLink: maxLink = try buffer.readXDRUInt32()
        case .maxName: maxName = try buffer.readXDRUInt32()
        case .maxRead: maxRead = try buffer.readXDRUInt64()
        case .maxWrite: maxWrite = try buffer.readXDRUInt64()
        case .mode: mode = try buffer.readXDRUInt32()
        case .noTrunc: noTrunc = try buffer.readXDRBool()
        case .numLinks: numLinks = try buffer.readXDRUInt32()
        case .owner: owner = try NFS4Name(xdr: &buffer)
        case .ownerGroup: ownerGroup = try NFS4Name(xdr: &buffer)
        case .rawdev: rawdev = try SpecData4(xdr: &buffer)
        case .spaceAvail: spaceAvail = try buffer.readXDRUInt64()
        case .spaceFree: spaceFree = try buffer.readXDRUInt64()
        case .spaceTotal: spaceTotal = try buffer.readXDRUInt64()
        case .spaceUsed: spaceUsed = try buffer.readXDRUInt64()
        case .timeAccess: timeAccess = try NFSTime4(xdr: &buffer)
        case .timeAccessSet: timeAccessSet = try SetTime4(xdr: &buffer)
        case .timeDelta: timeDelta = try NFSTime4(xdr: &buffer)
        case .timeMetadata: timeMetadata = try NFSTime4(xdr: &buffer)
        case .timeModify: timeModify = try NFSTime4(xdr: &buffer)
        case .timeModifySet: timeModifySet = try SetTime4(xdr: &buffer)
        case .mountedOnFileid: mountedOnFileid = try buffer.readXDRUInt64()
        case .suppattrExclcreat: suppattrExclcreat = try Bitmap4(xdr: &buffer)
        }
    }

    /// fattr4 for GETATTR/READDIR: of the `requested` attributes, those this
    /// table knows and this value has, in ascending order. Write-only
    /// attributes are never returned (the server answers a request naming one
    /// NFS4ERR_INVAL: `NFS4Attribute.writeOnly`).
    public func encode(requested: Bitmap4, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> NFS4Fattr {
        var values = allocator.buffer(capacity: 256)
        var returned = Bitmap4(words: [])
        for bit in requested.bits {
            guard let attribute = NFS4Attribute(rawValue: bit), !attribute.isWriteOnly else { continue }
            if write(attribute, into: &values) { returned.insert(bit) }
        }
        return NFS4Fattr(mask: returned, values: values)
    }

    /// What a client's fattr4 is for: the checks differ (RFC 8881 §18.30.4, §18.31.3).
    public enum Purpose: Sendable, Hashable {
        /// SETATTR, CREATE, OPEN's createattrs: only writable attributes.
        case set
        /// VERIFY and NVERIFY: any readable attribute but rdattr_error.
        case verify
    }

    /// Why a client's fattr4 was refused, with the status to answer.
    public struct DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
        public var status: NFS4Status
        public var reason: String
        public var description: String { "\(status.rfcName): \(reason)" }
    }

    /// Decodes a client's fattr4. Errors, checked in this order:
    /// NFS4ERR_ATTRNOTSUPP for a bit this table does not know;
    /// NFS4ERR_INVAL for a read-only attribute to set, or a write-only one
    /// (or rdattr_error) to verify; NFS4ERR_BADXDR when the values do not
    /// decode or bytes are left over.
    public init(decoding fattr: NFS4Fattr, for purpose: Purpose) throws(DecodeError) {
        self.init()
        var attributes: [NFS4Attribute] = []
        for bit in fattr.mask.bits {
            guard let attribute = NFS4Attribute(rawValue: bit) else {
                throw DecodeError(status: .attrnotsupp, reason: "attribute \(bit) is not supported")
            }
            attributes.append(attribute)
        }
        for attribute in attributes {
            switch purpose {
            case .set where !attribute.isWritable:
                throw DecodeError(status: .inval, reason: "\(attribute.name) cannot be set")
            case .verify where attribute.isWriteOnly || attribute == .rdattrError:
                throw DecodeError(status: .inval, reason: "\(attribute.name) cannot be verified")
            default: break
            }
        }
        var values = fattr.values
        for attribute in attributes {
            do {
                try read(attribute, from: &values)
            } catch {
                throw DecodeError(status: .badxdr, reason: "\(attribute.name): \(error)")
            }
        }
        guard values.readableBytes == 0 else {
            throw DecodeError(status: .badxdr, reason: "\(values.readableBytes) bytes after the last attribute")
        }
    }
}
