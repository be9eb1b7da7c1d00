import NIOCore
import XDR

// The operations' argument structures, field for field as RFC 8881 §18 and
// RFC 7862 §15 define them. Discriminated unions are in NFS4Unions.swift.

// MARK: Session and client operations (RFC 8881 §18.33-18.51)

/// SEQUENCE4args (RFC 8881 §18.46).
public struct NFS4SequenceArgs: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var sequenceID: UInt32
    public var slotID: UInt32
    public var highestSlotID: UInt32
    public var cacheThis: Bool
    public init(sessionID: SessionID, sequenceID: UInt32, slotID: UInt32, highestSlotID: UInt32, cacheThis: Bool) {
        self.sessionID = sessionID
        self.sequenceID = sequenceID
        self.slotID = slotID
        self.highestSlotID = highestSlotID
        self.cacheThis = cacheThis
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.sequenceID = try buffer.readXDRUInt32()
        self.slotID = try buffer.readXDRUInt32()
        self.highestSlotID = try buffer.readXDRUInt32()
        self.cacheThis = try buffer.readXDRBool()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(sequenceID)
        buffer.writeXDRUInt32(slotID)
        buffer.writeXDRUInt32(highestSlotID)
        buffer.writeXDRBool(cacheThis)
    }
}

/// client_owner4: the client's boot verifier and its long-lived owner string.
public struct ClientOwner4: Sendable, Hashable, XDRCodable {
    public var verifier: Verifier4
    public var ownerID: NFS4Opaque
    public init(verifier: Verifier4, ownerID: NFS4Opaque) {
        self.verifier = verifier
        self.ownerID = ownerID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.verifier = try Verifier4(xdr: &buffer)
        self.ownerID = try NFS4Opaque(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        verifier.encode(xdr: &buffer)
        ownerID.encode(xdr: &buffer)
    }
}

/// EXCHANGE_ID4args (RFC 8881 §18.35).
public struct NFS4ExchangeIDArgs: Sendable, Hashable, XDRCodable {
    public var clientOwner: ClientOwner4
    public var flags: UInt32
    public var stateProtect: StateProtect4A
    /// eia_client_impl_id<1>
    public var clientImplID: NFSImplID4?
    public init(clientOwner: ClientOwner4, flags: UInt32, stateProtect: StateProtect4A, clientImplID: NFSImplID4?) {
        self.clientOwner = clientOwner
        self.flags = flags
        self.stateProtect = stateProtect
        self.clientImplID = clientImplID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.clientOwner = try ClientOwner4(xdr: &buffer)
        self.flags = try buffer.readXDRUInt32()
        self.stateProtect = try StateProtect4A(xdr: &buffer)
        self.clientImplID = try buffer.readXDRArray(maxCount: 1) { try NFSImplID4(xdr: &$0) }.first
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        clientOwner.encode(xdr: &buffer)
        buffer.writeXDRUInt32(flags)
        stateProtect.encode(xdr: &buffer)
        buffer.writeXDRArray(clientImplID.map { [$0] } ?? []) { $1.encode(xdr: &$0) }
    }
}

/// CREATE_SESSION4args (RFC 8881 §18.36).
public struct NFS4CreateSessionArgs: Sendable, Hashable, XDRCodable {
    public var clientID: UInt64
    public var sequence: UInt32
    public var flags: UInt32
    public var foreChannelAttrs: ChannelAttrs
    public var backChannelAttrs: ChannelAttrs
    public var callbackProgram: UInt32
    public var securityParameters: [CallbackSecParms4]
    public init(clientID: UInt64, sequence: UInt32, flags: UInt32, foreChannelAttrs: ChannelAttrs, backChannelAttrs: ChannelAttrs, callbackProgram: UInt32, securityParameters: [CallbackSecParms4]) {
        self.clientID = clientID
        self.sequence = sequence
        self.flags = flags
        self.foreChannelAttrs = foreChannelAttrs
        self.backChannelAttrs = backChannelAttrs
        self.callbackProgram = callbackProgram
        self.securityParameters = securityParameters
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.clientID = try buffer.readXDRUInt64()
        self.sequence = try buffer.readXDRUInt32()
        self.flags = try buffer.readXDRUInt32()
        self.foreChannelAttrs = try ChannelAttrs(xdr: &buffer)
        self.backChannelAttrs = try ChannelAttrs(xdr: &buffer)
        self.callbackProgram = try buffer.readXDRUInt32()
        self.securityParameters = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount) { try CallbackSecParms4(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(clientID)
        buffer.writeXDRUInt32(sequence)
        buffer.writeXDRUInt32(flags)
        foreChannelAttrs.encode(xdr: &buffer)
        backChannelAttrs.encode(xdr: &buffer)
        buffer.writeXDRUInt32(callbackProgram)
        buffer.writeXDRArray(securityParameters) { $1.encode(xdr: &$0) }
    }
}

/// BIND_CONN_TO_SESSION4args (RFC 8881 §18.34).
public struct NFS4BindConnToSessionArgs: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var direction: ChannelDirFromClient4
    public var useConnInRDMAMode: Bool
    public init(sessionID: SessionID, direction: ChannelDirFromClient4, useConnInRDMAMode: Bool) {
        self.sessionID = sessionID
        self.direction = direction
        self.useConnInRDMAMode = useConnInRDMAMode
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.direction = try buffer.readXDREnum()
        self.useConnInRDMAMode = try buffer.readXDRBool()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDREnum(direction)
        buffer.writeXDRBool(useConnInRDMAMode)
    }
}

/// BACKCHANNEL_CTL4args (RFC 8881 §18.33).
public struct NFS4BackchannelCtlArgs: Sendable, Hashable, XDRCodable {
    public var callbackProgram: UInt32
    public var securityParameters: [CallbackSecParms4]
    public init(callbackProgram: UInt32, securityParameters: [CallbackSecParms4]) {
        self.callbackProgram = callbackProgram
        self.securityParameters = securityParameters
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.callbackProgram = try buffer.readXDRUInt32()
        self.securityParameters = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount) { try CallbackSecParms4(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(callbackProgram)
        buffer.writeXDRArray(securityParameters) { $1.encode(xdr: &$0) }
    }
}

// MARK: File operations

/// SETATTR4args (RFC 8881 §18.30).
public struct NFS4SetattrArgs: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var attributes: NFS4Fattr
    public init(stateID: StateID, attributes: NFS4Fattr) {
        self.stateID = stateID
        self.attributes = attributes
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.attributes = try NFS4Fattr(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        attributes.encode(xdr: &buffer)
    }
}

/// OPEN4args (RFC 8881 §18.16).
public struct NFS4OpenArgs: Sendable, Hashable, XDRCodable {
    /// ignored in 4.1
    public var seqid: UInt32
    /// OPEN4_SHARE_ACCESS_* with the 4.1 want flags
    public var shareAccess: UInt32
    public var shareDeny: UInt32
    public var owner: StateOwner4
    public var openHow: OpenFlag4
    public var claim: OpenClaim4
    public init(seqid: UInt32, shareAccess: UInt32, shareDeny: UInt32, owner: StateOwner4, openHow: OpenFlag4, claim: OpenClaim4) {
        self.seqid = seqid
        self.shareAccess = shareAccess
        self.shareDeny = shareDeny
        self.owner = owner
        self.openHow = openHow
        self.claim = claim
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.seqid = try buffer.readXDRUInt32()
        self.shareAccess = try buffer.readXDRUInt32()
        self.shareDeny = try buffer.readXDRUInt32()
        self.owner = try StateOwner4(xdr: &buffer)
        self.openHow = try OpenFlag4(xdr: &buffer)
        self.claim = try OpenClaim4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(seqid)
        buffer.writeXDRUInt32(shareAccess)
        buffer.writeXDRUInt32(shareDeny)
        owner.encode(xdr: &buffer)
        openHow.encode(xdr: &buffer)
        claim.encode(xdr: &buffer)
    }
}

/// OPEN_DOWNGRADE4args (RFC 8881 §18.18).
public struct NFS4OpenDowngradeArgs: Sendable, Hashable, XDRCodable {
    public var openStateID: StateID
    public var seqid: UInt32
    public var shareAccess: UInt32
    public var shareDeny: UInt32
    public init(openStateID: StateID, seqid: UInt32, shareAccess: UInt32, shareDeny: UInt32) {
        self.openStateID = openStateID
        self.seqid = seqid
        self.shareAccess = shareAccess
        self.shareDeny = shareDeny
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.openStateID = try StateID(xdr: &buffer)
        self.seqid = try buffer.readXDRUInt32()
        self.shareAccess = try buffer.readXDRUInt32()
        self.shareDeny = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        openStateID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(seqid)
        buffer.writeXDRUInt32(shareAccess)
        buffer.writeXDRUInt32(shareDeny)
    }
}

/// CLOSE4args (RFC 8881 §18.2).
public struct NFS4CloseArgs: Sendable, Hashable, XDRCodable {
    public var seqid: UInt32
    public var openStateID: StateID
    public init(seqid: UInt32, openStateID: StateID) {
        self.seqid = seqid
        self.openStateID = openStateID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.seqid = try buffer.readXDRUInt32()
        self.openStateID = try StateID(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(seqid)
        openStateID.encode(xdr: &buffer)
    }
}

/// READ4args (RFC 8881 §18.22).
public struct NFS4ReadArgs: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var offset: UInt64
    public var count: UInt32
    public init(stateID: StateID, offset: UInt64, count: UInt32) {
        self.stateID = stateID
        self.offset = offset
        self.count = count
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt32(count)
    }
}

/// WRITE4args (RFC 8881 §18.32). The data is a slice of the request: no copy.
public struct NFS4WriteArgs: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var offset: UInt64
    public var stable: StableHow4
    public var data: ByteBuffer
    public init(stateID: StateID, offset: UInt64, stable: StableHow4, data: ByteBuffer) {
        self.stateID = stateID
        self.offset = offset
        self.stable = stable
        self.data = data
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.stable = try buffer.readXDREnum()
        self.data = try buffer.readXDRVariableOpaque(maxLength: NFS4Limits.maxDataLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDREnum(stable)
        buffer.writeXDRVariableOpaque(data)
    }
}

/// COMMIT4args (RFC 8881 §18.3).
public struct NFS4CommitArgs: Sendable, Hashable, XDRCodable {
    public var offset: UInt64
    public var count: UInt32
    public init(offset: UInt64, count: UInt32) {
        self.offset = offset
        self.count = count
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.offset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt32(count)
    }
}

/// CREATE4args (RFC 8881 §18.4).
public struct NFS4CreateArgs: Sendable, Hashable, XDRCodable {
    public var objectType: CreateType4
    public var name: NFS4Name
    public var attributes: NFS4Fattr
    public init(objectType: CreateType4, name: NFS4Name, attributes: NFS4Fattr) {
        self.objectType = objectType
        self.name = name
        self.attributes = attributes
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.objectType = try CreateType4(xdr: &buffer)
        self.name = try NFS4Name(xdr: &buffer)
        self.attributes = try NFS4Fattr(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        objectType.encode(xdr: &buffer)
        name.encode(xdr: &buffer)
        attributes.encode(xdr: &buffer)
    }
}

/// RENAME4args (RFC 8881 §18.26).
public struct NFS4RenameArgs: Sendable, Hashable, XDRCodable {
    public var oldName: NFS4Name
    public var newName: NFS4Name
    public init(oldName: NFS4Name, newName: NFS4Name) {
        self.oldName = oldName
        self.newName = newName
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.oldName = try NFS4Name(xdr: &buffer)
        self.newName = try NFS4Name(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        oldName.encode(xdr: &buffer)
        newName.encode(xdr: &buffer)
    }
}

/// READDIR4args (RFC 8881 §18.23).
public struct NFS4ReaddirArgs: Sendable, Hashable, XDRCodable {
    public var cookie: UInt64
    public var cookieVerifier: Verifier4
    /// bytes of cookies and names the client wants at most
    public var dirCount: UInt32
    /// bytes of the whole READDIR4resok at most
    public var maxCount: UInt32
    public var attrRequest: Bitmap4
    public init(cookie: UInt64, cookieVerifier: Verifier4, dirCount: UInt32, maxCount: UInt32, attrRequest: Bitmap4) {
        self.cookie = cookie
        self.cookieVerifier = cookieVerifier
        self.dirCount = dirCount
        self.maxCount = maxCount
        self.attrRequest = attrRequest
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.cookie = try buffer.readXDRUInt64()
        self.cookieVerifier = try Verifier4(xdr: &buffer)
        self.dirCount = try buffer.readXDRUInt32()
        self.maxCount = try buffer.readXDRUInt32()
        self.attrRequest = try Bitmap4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(cookie)
        cookieVerifier.encode(xdr: &buffer)
        buffer.writeXDRUInt32(dirCount)
        buffer.writeXDRUInt32(maxCount)
        attrRequest.encode(xdr: &buffer)
    }
}

/// open_to_lock_owner4: the first lock of a lock owner, from an open.
public struct OpenToLockOwner4: Sendable, Hashable, XDRCodable {
    public var openSeqid: UInt32
    public var openStateID: StateID
    public var lockSeqid: UInt32
    public var lockOwner: StateOwner4
    public init(openSeqid: UInt32, openStateID: StateID, lockSeqid: UInt32, lockOwner: StateOwner4) {
        self.openSeqid = openSeqid
        self.openStateID = openStateID
        self.lockSeqid = lockSeqid
        self.lockOwner = lockOwner
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.openSeqid = try buffer.readXDRUInt32()
        self.openStateID = try StateID(xdr: &buffer)
        self.lockSeqid = try buffer.readXDRUInt32()
        self.lockOwner = try StateOwner4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(openSeqid)
        openStateID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(lockSeqid)
        lockOwner.encode(xdr: &buffer)
    }
}

/// exist_lock_owner4: a lock owner that already has a stateid.
public struct ExistLockOwner4: Sendable, Hashable, XDRCodable {
    public var lockStateID: StateID
    public var lockSeqid: UInt32
    public init(lockStateID: StateID, lockSeqid: UInt32) {
        self.lockStateID = lockStateID
        self.lockSeqid = lockSeqid
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.lockStateID = try StateID(xdr: &buffer)
        self.lockSeqid = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        lockStateID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(lockSeqid)
    }
}

/// LOCK4args (RFC 8881 §18.10).
public struct NFS4LockArgs: Sendable, Hashable, XDRCodable {
    public var lockType: NFS4LockType
    public var reclaim: Bool
    public var offset: UInt64
    public var length: UInt64
    public var locker: Locker4
    public init(lockType: NFS4LockType, reclaim: Bool, offset: UInt64, length: UInt64, locker: Locker4) {
        self.lockType = lockType
        self.reclaim = reclaim
        self.offset = offset
        self.length = length
        self.locker = locker
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.lockType = try buffer.readXDREnum()
        self.reclaim = try buffer.readXDRBool()
        self.offset = try buffer.readXDRUInt64()
        self.length = try buffer.readXDRUInt64()
        self.locker = try Locker4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(lockType)
        buffer.writeXDRBool(reclaim)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt64(length)
        locker.encode(xdr: &buffer)
    }
}

/// LOCKT4args (RFC 8881 §18.11).
public struct NFS4LocktArgs: Sendable, Hashable, XDRCodable {
    public var lockType: NFS4LockType
    public var offset: UInt64
    public var length: UInt64
    public var owner: StateOwner4
    public init(lockType: NFS4LockType, offset: UInt64, length: UInt64, owner: StateOwner4) {
        self.lockType = lockType
        self.offset = offset
        self.length = length
        self.owner = owner
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.lockType = try buffer.readXDREnum()
        self.offset = try buffer.readXDRUInt64()
        self.length = try buffer.readXDRUInt64()
        self.owner = try StateOwner4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(lockType)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt64(length)
        owner.encode(xdr: &buffer)
    }
}

/// LOCKU4args (RFC 8881 §18.12).
public struct NFS4LockuArgs: Sendable, Hashable, XDRCodable {
    public var lockType: NFS4LockType
    public var seqid: UInt32
    public var lockStateID: StateID
    public var offset: UInt64
    public var length: UInt64
    public init(lockType: NFS4LockType, seqid: UInt32, lockStateID: StateID, offset: UInt64, length: UInt64) {
        self.lockType = lockType
        self.seqid = seqid
        self.lockStateID = lockStateID
        self.offset = offset
        self.length = length
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.lockType = try buffer.readXDREnum()
        self.seqid = try buffer.readXDRUInt32()
        self.lockStateID = try StateID(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.length = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(lockType)
        buffer.writeXDRUInt32(seqid)
        lockStateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt64(length)
    }
}

// MARK: NFSv4.2 (RFC 7862)

/// SEEK4args (RFC 7862 §15.11).
public struct NFS4SeekArgs: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var offset: UInt64
    public var what: DataContent4
    public init(stateID: StateID, offset: UInt64, what: DataContent4) {
        self.stateID = stateID
        self.offset = offset
        self.what = what
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.what = try buffer.readXDREnum()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDREnum(what)
    }
}

/// ALLOCATE4args and DEALLOCATE4args (RFC 7862 §15.1, §15.4).
public struct NFS4AllocateArgs: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var offset: UInt64
    public var length: UInt64
    public init(stateID: StateID, offset: UInt64, length: UInt64) {
        self.stateID = stateID
        self.offset = offset
        self.length = length
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.length = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt64(length)
    }
}

/// COPY4args (RFC 7862 §15.2).
public struct NFS4CopyArgs: Sendable, Hashable, XDRCodable {
    public var sourceStateID: StateID
    public var destinationStateID: StateID
    public var sourceOffset: UInt64
    public var destinationOffset: UInt64
    public var count: UInt64
    public var consecutive: Bool
    public var synchronous: Bool
    /// empty: an intra-server copy
    public var sourceServers: [NetLoc4]
    public init(sourceStateID: StateID, destinationStateID: StateID, sourceOffset: UInt64, destinationOffset: UInt64, count: UInt64, consecutive: Bool, synchronous: Bool, sourceServers: [NetLoc4]) {
        self.sourceStateID = sourceStateID
        self.destinationStateID = destinationStateID
        self.sourceOffset = sourceOffset
        self.destinationOffset = destinationOffset
        self.count = count
        self.consecutive = consecutive
        self.synchronous = synchronous
        self.sourceServers = sourceServers
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sourceStateID = try StateID(xdr: &buffer)
        self.destinationStateID = try StateID(xdr: &buffer)
        self.sourceOffset = try buffer.readXDRUInt64()
        self.destinationOffset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt64()
        self.consecutive = try buffer.readXDRBool()
        self.synchronous = try buffer.readXDRBool()
        self.sourceServers = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount) { try NetLoc4(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sourceStateID.encode(xdr: &buffer)
        destinationStateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(sourceOffset)
        buffer.writeXDRUInt64(destinationOffset)
        buffer.writeXDRUInt64(count)
        buffer.writeXDRBool(consecutive)
        buffer.writeXDRBool(synchronous)
        buffer.writeXDRArray(sourceServers) { $1.encode(xdr: &$0) }
    }
}

/// CLONE4args (RFC 7862 §15.13).
public struct NFS4CloneArgs: Sendable, Hashable, XDRCodable {
    public var sourceStateID: StateID
    public var destinationStateID: StateID
    public var sourceOffset: UInt64
    public var destinationOffset: UInt64
    public var count: UInt64
    public init(sourceStateID: StateID, destinationStateID: StateID, sourceOffset: UInt64, destinationOffset: UInt64, count: UInt64) {
        self.sourceStateID = sourceStateID
        self.destinationStateID = destinationStateID
        self.sourceOffset = sourceOffset
        self.destinationOffset = destinationOffset
        self.count = count
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sourceStateID = try StateID(xdr: &buffer)
        self.destinationStateID = try StateID(xdr: &buffer)
        self.sourceOffset = try buffer.readXDRUInt64()
        self.destinationOffset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sourceStateID.encode(xdr: &buffer)
        destinationStateID.encode(xdr: &buffer)
        buffer.writeXDRUInt64(sourceOffset)
        buffer.writeXDRUInt64(destinationOffset)
        buffer.writeXDRUInt64(count)
    }
}
