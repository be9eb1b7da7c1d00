import NIOCore
import XDR

// The discriminated unions of the operations' arguments and results. A
// discriminant outside the declared arms (with no default arm) is
// XDRError.invalidEnum, which the COMPOUND decoder answers NFS4ERR_BADXDR.

/// fattr4: the attribute mask and the attribute values as sent (attrlist4).
/// `NFS4Attributes` decodes and encodes the values.
public struct NFS4Fattr: Sendable, Hashable, XDRCodable {
    public var mask: Bitmap4
    /// attrlist4: the XDR of each attribute in `mask`, ascending, as a slice.
    public var values: ByteBuffer
    public init(mask: Bitmap4, values: ByteBuffer) {
        self.mask = mask
        self.values = values
    }
    public static let empty = NFS4Fattr(mask: Bitmap4(words: []), values: ByteBuffer())
    public init(xdr buffer: inout ByteBuffer) throws {
        self.mask = try Bitmap4(xdr: &buffer)
        self.values = try buffer.readXDRVariableOpaque(maxLength: NFS4Limits.maxDataLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        mask.encode(xdr: &buffer)
        buffer.writeXDRVariableOpaque(values)
    }
}

/// ssv_sp_parms4: SP4_SSV's parameters.
public struct SSVSPParms4: Sendable, Hashable, XDRCodable {
    public var ops: StateProtectOps4
    public var hashAlgorithms: [[UInt8]]
    public var encryptionAlgorithms: [[UInt8]]
    public var window: UInt32
    public var numGSSHandles: UInt32
    public init(ops: StateProtectOps4, hashAlgorithms: [[UInt8]], encryptionAlgorithms: [[UInt8]], window: UInt32,
                numGSSHandles: UInt32) {
        self.ops = ops
        self.hashAlgorithms = hashAlgorithms
        self.encryptionAlgorithms = encryptionAlgorithms
        self.window = window
        self.numGSSHandles = numGSSHandles
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.ops = try StateProtectOps4(xdr: &buffer)
        self.hashAlgorithms = try buffer.readNFS4OpaqueArray()
        self.encryptionAlgorithms = try buffer.readNFS4OpaqueArray()
        self.window = try buffer.readXDRUInt32()
        self.numGSSHandles = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        ops.encode(xdr: &buffer)
        buffer.writeNFS4OpaqueArray(hashAlgorithms)
        buffer.writeNFS4OpaqueArray(encryptionAlgorithms)
        buffer.writeXDRUInt32(window)
        buffer.writeXDRUInt32(numGSSHandles)
    }
}

/// state_protect4_a: EXCHANGE_ID's state protection request (SP4_NONE = 0,
/// SP4_MACH_CRED = 1, SP4_SSV = 2).
public enum StateProtect4A: Sendable, Hashable, XDRCodable {
    case none
    case machineCredential(StateProtectOps4)
    case ssv(SSVSPParms4)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 0: self = .none
        case 1: self = .machineCredential(try StateProtectOps4(xdr: &buffer))
        case 2: self = .ssv(try SSVSPParms4(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "state_protect_how4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .none: buffer.writeXDRUInt32(0)
        case .machineCredential(let ops):
            buffer.writeXDRUInt32(1)
            ops.encode(xdr: &buffer)
        case .ssv(let parms):
            buffer.writeXDRUInt32(2)
            parms.encode(xdr: &buffer)
        }
    }
}

/// ssv_prot_info4: the server's SP4_SSV answer.
public struct SSVProtInfo4: Sendable, Hashable, XDRCodable {
    public var ops: StateProtectOps4
    public var hashAlgorithm: UInt32
    public var encryptionAlgorithm: UInt32
    public var ssvLength: UInt32
    public var window: UInt32
    public var handles: [[UInt8]]
    public init(ops: StateProtectOps4, hashAlgorithm: UInt32, encryptionAlgorithm: UInt32, ssvLength: UInt32,
                window: UInt32, handles: [[UInt8]]) {
        self.ops = ops
        self.hashAlgorithm = hashAlgorithm
        self.encryptionAlgorithm = encryptionAlgorithm
        self.ssvLength = ssvLength
        self.window = window
        self.handles = handles
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.ops = try StateProtectOps4(xdr: &buffer)
        self.hashAlgorithm = try buffer.readXDRUInt32()
        self.encryptionAlgorithm = try buffer.readXDRUInt32()
        self.ssvLength = try buffer.readXDRUInt32()
        self.window = try buffer.readXDRUInt32()
        self.handles = try buffer.readNFS4OpaqueArray()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        ops.encode(xdr: &buffer)
        buffer.writeXDRUInt32(hashAlgorithm)
        buffer.writeXDRUInt32(encryptionAlgorithm)
        buffer.writeXDRUInt32(ssvLength)
        buffer.writeXDRUInt32(window)
        buffer.writeNFS4OpaqueArray(handles)
    }
}

/// state_protect4_r: EXCHANGE_ID's state protection answer.
public enum StateProtect4R: Sendable, Hashable, XDRCodable {
    case none
    case machineCredential(StateProtectOps4)
    case ssv(SSVProtInfo4)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 0: self = .none
        case 1: self = .machineCredential(try StateProtectOps4(xdr: &buffer))
        case 2: self = .ssv(try SSVProtInfo4(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "state_protect_how4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .none: buffer.writeXDRUInt32(0)
        case .machineCredential(let ops):
            buffer.writeXDRUInt32(1)
            ops.encode(xdr: &buffer)
        case .ssv(let info):
            buffer.writeXDRUInt32(2)
            info.encode(xdr: &buffer)
        }
    }
}

/// createhow4 (RFC 8881 §18.16.1).
public enum CreateHow4: Sendable, Hashable, XDRCodable {
    case unchecked(NFS4Fattr)
    case guarded(NFS4Fattr)
    case exclusive4(Verifier4)
    /// EXCLUSIVE4_1: the verifier and the attributes to set with it.
    case exclusive4_1(verifier: Verifier4, attributes: NFS4Fattr)
    public var mode: CreateMode4 {
        switch self {
        case .unchecked: return .unchecked
        case .guarded: return .guarded
        case .exclusive4: return .exclusive4
        case .exclusive4_1: return .exclusive4_1
        }
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDREnum(CreateMode4.self) {
        case .unchecked: self = .unchecked(try NFS4Fattr(xdr: &buffer))
        case .guarded: self = .guarded(try NFS4Fattr(xdr: &buffer))
        case .exclusive4: self = .exclusive4(try Verifier4(xdr: &buffer))
        case .exclusive4_1:
            self = .exclusive4_1(verifier: try Verifier4(xdr: &buffer), attributes: try NFS4Fattr(xdr: &buffer))
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(mode)
        switch self {
        case .unchecked(let attributes), .guarded(let attributes): attributes.encode(xdr: &buffer)
        case .exclusive4(let verifier): verifier.encode(xdr: &buffer)
        case .exclusive4_1(let verifier, let attributes):
            verifier.encode(xdr: &buffer)
            attributes.encode(xdr: &buffer)
        }
    }
}

/// openflag4: OPEN4_NOCREATE (0) or OPEN4_CREATE (1) with a createhow4.
public enum OpenFlag4: Sendable, Hashable, XDRCodable {
    case noCreate
    case create(CreateHow4)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 0: self = .noCreate
        case 1: self = .create(try CreateHow4(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "opentype4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .noCreate: buffer.writeXDRUInt32(0)
        case .create(let how):
            buffer.writeXDRUInt32(1)
            how.encode(xdr: &buffer)
        }
    }
}

/// open_claim4 (RFC 8881 §18.16): every claim type, the _FH forms of 4.1 included.
public enum OpenClaim4: Sendable, Hashable, XDRCodable {
    /// CLAIM_NULL: the name in the current (directory) filehandle.
    case null(NFS4Name)
    /// CLAIM_PREVIOUS: reclaim after a server restart; the current filehandle is the file.
    case previous(OpenDelegationType4)
    /// CLAIM_DELEGATE_CUR: open under a delegation the client holds.
    case delegateCur(delegateStateID: StateID, file: NFS4Name)
    /// CLAIM_DELEGATE_PREV: reclaim a delegation after a client restart.
    case delegatePrev(NFS4Name)
    /// CLAIM_FH: the current filehandle is the file.
    case fh
    /// CLAIM_DELEG_CUR_FH.
    case delegCurFH(delegateStateID: StateID)
    /// CLAIM_DELEG_PREV_FH.
    case delegPrevFH
    public var type: OpenClaimType4 {
        switch self {
        case .null: return .null
        case .previous: return .previous
        case .delegateCur: return .delegateCur
        case .delegatePrev: return .delegatePrev
        case .fh: return .fh
        case .delegCurFH: return .delegCurFH
        case .delegPrevFH: return .delegPrevFH
        }
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDREnum(OpenClaimType4.self) {
        case .null: self = .null(try NFS4Name(xdr: &buffer))
        case .previous: self = .previous(try buffer.readXDREnum())
        case .delegateCur: self = .delegateCur(delegateStateID: try StateID(xdr: &buffer), file: try NFS4Name(xdr: &buffer))
        case .delegatePrev: self = .delegatePrev(try NFS4Name(xdr: &buffer))
        case .fh: self = .fh
        case .delegCurFH: self = .delegCurFH(delegateStateID: try StateID(xdr: &buffer))
        case .delegPrevFH: self = .delegPrevFH
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(type)
        switch self {
        case .null(let name), .delegatePrev(let name): name.encode(xdr: &buffer)
        case .previous(let type): buffer.writeXDREnum(type)
        case .delegateCur(let stateID, let file):
            stateID.encode(xdr: &buffer)
            file.encode(xdr: &buffer)
        case .fh, .delegPrevFH: break
        case .delegCurFH(let stateID): stateID.encode(xdr: &buffer)
        }
    }
}

/// createtype4 (RFC 8881 §18.4): CREATE makes anything but a regular file.
/// Its default arm is void, so a regular file or another type decodes as
/// `.other` and the server answers NFS4ERR_BADTYPE.
public enum CreateType4: Sendable, Hashable, XDRCodable {
    case symlink(NFS4Name)
    case blockDevice(SpecData4)
    case characterDevice(SpecData4)
    case socket
    case fifo
    case directory
    case other(UInt32)
    public init(xdr buffer: inout ByteBuffer) throws {
        let raw = try buffer.readXDRUInt32()
        switch NFS4FileType(rawValue: raw) {
        case .symlink: self = .symlink(try NFS4Name(xdr: &buffer))
        case .blockDevice: self = .blockDevice(try SpecData4(xdr: &buffer))
        case .characterDevice: self = .characterDevice(try SpecData4(xdr: &buffer))
        case .socket: self = .socket
        case .fifo: self = .fifo
        case .directory: self = .directory
        default: self = .other(raw)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .symlink(let target):
            buffer.writeXDREnum(NFS4FileType.symlink)
            target.encode(xdr: &buffer)
        case .blockDevice(let spec):
            buffer.writeXDREnum(NFS4FileType.blockDevice)
            spec.encode(xdr: &buffer)
        case .characterDevice(let spec):
            buffer.writeXDREnum(NFS4FileType.characterDevice)
            spec.encode(xdr: &buffer)
        case .socket: buffer.writeXDREnum(NFS4FileType.socket)
        case .fifo: buffer.writeXDREnum(NFS4FileType.fifo)
        case .directory: buffer.writeXDREnum(NFS4FileType.directory)
        case .other(let raw): buffer.writeXDRUInt32(raw)
        }
    }
}

/// locker4: a new lock owner (from an open) or an existing one.
public enum Locker4: Sendable, Hashable, XDRCodable {
    case newLockOwner(OpenToLockOwner4)
    case existingLockOwner(ExistLockOwner4)
    public init(xdr buffer: inout ByteBuffer) throws {
        if try buffer.readXDRBool() {
            self = .newLockOwner(try OpenToLockOwner4(xdr: &buffer))
        } else {
            self = .existingLockOwner(try ExistLockOwner4(xdr: &buffer))
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .newLockOwner(let owner):
            buffer.writeXDRBool(true)
            owner.encode(xdr: &buffer)
        case .existingLockOwner(let owner):
            buffer.writeXDRBool(false)
            owner.encode(xdr: &buffer)
        }
    }
}

/// netloc4 (RFC 7862 §4.1.4): NL4_NAME (1), NL4_URL (2), NL4_NETADDR (3).
public enum NetLoc4: Sendable, Hashable, XDRCodable {
    case name(NFS4Name)
    case url(NFS4Name)
    case netaddr(netid: NFS4Name, address: NFS4Name)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 1: self = .name(try NFS4Name(xdr: &buffer))
        case 2: self = .url(try NFS4Name(xdr: &buffer))
        case 3: self = .netaddr(netid: try NFS4Name(xdr: &buffer), address: try NFS4Name(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "netloc_type4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .name(let name):
            buffer.writeXDRUInt32(1)
            name.encode(xdr: &buffer)
        case .url(let url):
            buffer.writeXDRUInt32(2)
            url.encode(xdr: &buffer)
        case .netaddr(let netid, let address):
            buffer.writeXDRUInt32(3)
            netid.encode(xdr: &buffer)
            address.encode(xdr: &buffer)
        }
    }
}

/// nfs_space_limit4: NFS_LIMIT_SIZE (1) or NFS_LIMIT_BLOCKS (2).
public enum SpaceLimit4: Sendable, Hashable, XDRCodable {
    case size(UInt64)
    case blocks(count: UInt32, bytesPerBlock: UInt32)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 1: self = .size(try buffer.readXDRUInt64())
        case 2: self = .blocks(count: try buffer.readXDRUInt32(), bytesPerBlock: try buffer.readXDRUInt32())
        case let other: throw XDRError.invalidEnum(type: "limit_by4", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .size(let size):
            buffer.writeXDRUInt32(1)
            buffer.writeXDRUInt64(size)
        case .blocks(let count, let bytesPerBlock):
            buffer.writeXDRUInt32(2)
            buffer.writeXDRUInt32(count)
            buffer.writeXDRUInt32(bytesPerBlock)
        }
    }
}

/// open_none_delegation4: why no delegation (OPEN_DELEGATE_NONE_EXT). Only
/// WND4_CONTENTION and WND4_RESOURCE carry a bool.
public enum OpenNoneDelegation4: Sendable, Hashable, XDRCodable {
    case contention(serverWillPushDelegation: Bool)
    case resource(serverWillSignalAvailable: Bool)
    case other(WhyNoDelegation4)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDREnum(WhyNoDelegation4.self) {
        case .contention: self = .contention(serverWillPushDelegation: try buffer.readXDRBool())
        case .resource: self = .resource(serverWillSignalAvailable: try buffer.readXDRBool())
        case let why: self = .other(why)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .contention(let push):
            buffer.writeXDREnum(WhyNoDelegation4.contention)
            buffer.writeXDRBool(push)
        case .resource(let signal):
            buffer.writeXDREnum(WhyNoDelegation4.resource)
            buffer.writeXDRBool(signal)
        case .other(let why):
            precondition(why != .contention && why != .resource, "WND4_CONTENTION/RESOURCE carry a bool")
            buffer.writeXDREnum(why)
        }
    }
}

/// open_delegation4: none, read, write, or none with a reason (4.1).
public enum OpenDelegation4: Sendable, Hashable, XDRCodable {
    case none
    case read(OpenReadDelegation4)
    case write(OpenWriteDelegation4)
    case noneExt(OpenNoneDelegation4)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDREnum(OpenDelegationType4.self) {
        case .none: self = .none
        case .read: self = .read(try OpenReadDelegation4(xdr: &buffer))
        case .write: self = .write(try OpenWriteDelegation4(xdr: &buffer))
        case .noneExt: self = .noneExt(try OpenNoneDelegation4(xdr: &buffer))
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .none: buffer.writeXDREnum(OpenDelegationType4.none)
        case .read(let delegation):
            buffer.writeXDREnum(OpenDelegationType4.read)
            delegation.encode(xdr: &buffer)
        case .write(let delegation):
            buffer.writeXDREnum(OpenDelegationType4.write)
            delegation.encode(xdr: &buffer)
        case .noneExt(let why):
            buffer.writeXDREnum(OpenDelegationType4.noneExt)
            why.encode(xdr: &buffer)
        }
    }
}

/// secinfo4: a flavor, with RPCSEC_GSS's oid, qop and service.
public enum SecInfo4: Sendable, Hashable, XDRCodable {
    case flavor(UInt32)
    case rpcsecGSS(oid: [UInt8], qop: UInt32, service: RPCGSSService)
    public init(xdr buffer: inout ByteBuffer) throws {
        let flavor = try buffer.readXDRUInt32()
        if flavor == NFS4Constants.rpcsecGSS {
            self = .rpcsecGSS(oid: try buffer.readXDRVariableBytes(maxLength: NFS4Limits.maxSecurityOpaque),
                              qop: try buffer.readXDRUInt32(), service: try buffer.readXDREnum())
        } else {
            self = .flavor(flavor)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .flavor(let flavor):
            precondition(flavor != NFS4Constants.rpcsecGSS, "RPCSEC_GSS needs its oid, qop and service")
            buffer.writeXDRUInt32(flavor)
        case .rpcsecGSS(let oid, let qop, let service):
            buffer.writeXDRUInt32(NFS4Constants.rpcsecGSS)
            buffer.writeXDRVariableOpaque(oid)
            buffer.writeXDRUInt32(qop)
            buffer.writeXDREnum(service)
        }
    }
}
