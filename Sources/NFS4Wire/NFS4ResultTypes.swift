import NIOCore
import XDR

// The resok4 structures of the operations' results (RFC 8881 §18, RFC 7862 §15).
// They encode only in the server; they decode too, for tests and clients.

// MARK: Session and client operations

/// SEQUENCE4resok.
public struct NFS4SequenceResOK: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var sequenceID: UInt32
    public var slotID: UInt32
    public var highestSlotID: UInt32
    public var targetHighestSlotID: UInt32
    /// SEQ4_STATUS_*
    public var statusFlags: UInt32
    public init(sessionID: SessionID, sequenceID: UInt32, slotID: UInt32, highestSlotID: UInt32, targetHighestSlotID: UInt32, statusFlags: UInt32) {
        self.sessionID = sessionID
        self.sequenceID = sequenceID
        self.slotID = slotID
        self.highestSlotID = highestSlotID
        self.targetHighestSlotID = targetHighestSlotID
        self.statusFlags = statusFlags
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.sequenceID = try buffer.readXDRUInt32()
        self.slotID = try buffer.readXDRUInt32()
        self.highestSlotID = try buffer.readXDRUInt32()
        self.targetHighestSlotID = try buffer.readXDRUInt32()
        self.statusFlags = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(sequenceID)
        buffer.writeXDRUInt32(slotID)
        buffer.writeXDRUInt32(highestSlotID)
        buffer.writeXDRUInt32(targetHighestSlotID)
        buffer.writeXDRUInt32(statusFlags)
    }
}

/// server_owner4.
public struct ServerOwner4: Sendable, Hashable, XDRCodable {
    public var minorID: UInt64
    public var majorID: NFS4Opaque
    public init(minorID: UInt64, majorID: NFS4Opaque) {
        self.minorID = minorID
        self.majorID = majorID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.minorID = try buffer.readXDRUInt64()
        self.majorID = try NFS4Opaque(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(minorID)
        majorID.encode(xdr: &buffer)
    }
}

/// EXCHANGE_ID4resok.
public struct NFS4ExchangeIDResOK: Sendable, Hashable, XDRCodable {
    public var clientID: UInt64
    public var sequenceID: UInt32
    public var flags: UInt32
    public var stateProtect: StateProtect4R
    public var serverOwner: ServerOwner4
    public var serverScope: NFS4Opaque
    public var serverImplID: NFSImplID4?
    public init(clientID: UInt64, sequenceID: UInt32, flags: UInt32, stateProtect: StateProtect4R, serverOwner: ServerOwner4, serverScope: NFS4Opaque, serverImplID: NFSImplID4?) {
        self.clientID = clientID
        self.sequenceID = sequenceID
        self.flags = flags
        self.stateProtect = stateProtect
        self.serverOwner = serverOwner
        self.serverScope = serverScope
        self.serverImplID = serverImplID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.clientID = try buffer.readXDRUInt64()
        self.sequenceID = try buffer.readXDRUInt32()
        self.flags = try buffer.readXDRUInt32()
        self.stateProtect = try StateProtect4R(xdr: &buffer)
        self.serverOwner = try ServerOwner4(xdr: &buffer)
        self.serverScope = try NFS4Opaque(xdr: &buffer)
        self.serverImplID = try buffer.readXDRArray(maxCount: 1) { try NFSImplID4(xdr: &$0) }.first
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(clientID)
        buffer.writeXDRUInt32(sequenceID)
        buffer.writeXDRUInt32(flags)
        stateProtect.encode(xdr: &buffer)
        serverOwner.encode(xdr: &buffer)
        serverScope.encode(xdr: &buffer)
        buffer.writeXDRArray(serverImplID.map { [$0] } ?? []) { $1.encode(xdr: &$0) }
    }
}

/// CREATE_SESSION4resok.
public struct NFS4CreateSessionResOK: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var sequence: UInt32
    public var flags: UInt32
    public var foreChannelAttrs: ChannelAttrs
    public var backChannelAttrs: ChannelAttrs
    public init(sessionID: SessionID, sequence: UInt32, flags: UInt32, foreChannelAttrs: ChannelAttrs, backChannelAttrs: ChannelAttrs) {
        self.sessionID = sessionID
        self.sequence = sequence
        self.flags = flags
        self.foreChannelAttrs = foreChannelAttrs
        self.backChannelAttrs = backChannelAttrs
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.sequence = try buffer.readXDRUInt32()
        self.flags = try buffer.readXDRUInt32()
        self.foreChannelAttrs = try ChannelAttrs(xdr: &buffer)
        self.backChannelAttrs = try ChannelAttrs(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(sequence)
        buffer.writeXDRUInt32(flags)
        foreChannelAttrs.encode(xdr: &buffer)
        backChannelAttrs.encode(xdr: &buffer)
    }
}

/// BIND_CONN_TO_SESSION4resok.
public struct NFS4BindConnToSessionResOK: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var direction: ChannelDirFromServer4
    public var useConnInRDMAMode: Bool
    public init(sessionID: SessionID, direction: ChannelDirFromServer4, useConnInRDMAMode: Bool) {
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

// MARK: File operations

/// ACCESS4resok.
public struct NFS4AccessResOK: Sendable, Hashable, XDRCodable {
    public var supported: UInt32
    public var access: UInt32
    public init(supported: UInt32, access: UInt32) {
        self.supported = supported
        self.access = access
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.supported = try buffer.readXDRUInt32()
        self.access = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(supported)
        buffer.writeXDRUInt32(access)
    }
}

/// open_read_delegation4.
public struct OpenReadDelegation4: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var recall: Bool
    public var permissions: NFSACE4
    public init(stateID: StateID, recall: Bool, permissions: NFSACE4) {
        self.stateID = stateID
        self.recall = recall
        self.permissions = permissions
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.recall = try buffer.readXDRBool()
        self.permissions = try NFSACE4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRBool(recall)
        permissions.encode(xdr: &buffer)
    }
}

/// open_write_delegation4.
public struct OpenWriteDelegation4: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var recall: Bool
    public var spaceLimit: SpaceLimit4
    public var permissions: NFSACE4
    public init(stateID: StateID, recall: Bool, spaceLimit: SpaceLimit4, permissions: NFSACE4) {
        self.stateID = stateID
        self.recall = recall
        self.spaceLimit = spaceLimit
        self.permissions = permissions
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.recall = try buffer.readXDRBool()
        self.spaceLimit = try SpaceLimit4(xdr: &buffer)
        self.permissions = try NFSACE4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRBool(recall)
        spaceLimit.encode(xdr: &buffer)
        permissions.encode(xdr: &buffer)
    }
}

/// OPEN4resok.
public struct NFS4OpenResOK: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var changeInfo: ChangeInfo4
    /// OPEN4_RESULT_*
    public var resultFlags: UInt32
    public var attrSet: Bitmap4
    public var delegation: OpenDelegation4
    public init(stateID: StateID, changeInfo: ChangeInfo4, resultFlags: UInt32, attrSet: Bitmap4, delegation: OpenDelegation4) {
        self.stateID = stateID
        self.changeInfo = changeInfo
        self.resultFlags = resultFlags
        self.attrSet = attrSet
        self.delegation = delegation
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.changeInfo = try ChangeInfo4(xdr: &buffer)
        self.resultFlags = try buffer.readXDRUInt32()
        self.attrSet = try Bitmap4(xdr: &buffer)
        self.delegation = try OpenDelegation4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        changeInfo.encode(xdr: &buffer)
        buffer.writeXDRUInt32(resultFlags)
        attrSet.encode(xdr: &buffer)
        delegation.encode(xdr: &buffer)
    }
}

/// READ4resok. The data is a slice of the buffer it was read into: no copy until the reply is written.
public struct NFS4ReadResOK: Sendable, Hashable, XDRCodable {
    public var eof: Bool
    public var data: ByteBuffer
    public init(eof: Bool, data: ByteBuffer) {
        self.eof = eof
        self.data = data
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.eof = try buffer.readXDRBool()
        self.data = try buffer.readXDRVariableOpaque(maxLength: NFS4Limits.maxDataLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRBool(eof)
        buffer.writeXDRVariableOpaque(data)
    }
}

/// WRITE4resok.
public struct NFS4WriteResOK: Sendable, Hashable, XDRCodable {
    public var count: UInt32
    public var committed: StableHow4
    public var verifier: Verifier4
    public init(count: UInt32, committed: StableHow4, verifier: Verifier4) {
        self.count = count
        self.committed = committed
        self.verifier = verifier
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.count = try buffer.readXDRUInt32()
        self.committed = try buffer.readXDREnum()
        self.verifier = try Verifier4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(count)
        buffer.writeXDREnum(committed)
        verifier.encode(xdr: &buffer)
    }
}

/// CREATE4resok.
public struct NFS4CreateResOK: Sendable, Hashable, XDRCodable {
    public var changeInfo: ChangeInfo4
    public var attrSet: Bitmap4
    public init(changeInfo: ChangeInfo4, attrSet: Bitmap4) {
        self.changeInfo = changeInfo
        self.attrSet = attrSet
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.changeInfo = try ChangeInfo4(xdr: &buffer)
        self.attrSet = try Bitmap4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        changeInfo.encode(xdr: &buffer)
        attrSet.encode(xdr: &buffer)
    }
}

/// RENAME4resok.
public struct NFS4RenameResOK: Sendable, Hashable, XDRCodable {
    public var sourceChangeInfo: ChangeInfo4
    public var targetChangeInfo: ChangeInfo4
    public init(sourceChangeInfo: ChangeInfo4, targetChangeInfo: ChangeInfo4) {
        self.sourceChangeInfo = sourceChangeInfo
        self.targetChangeInfo = targetChangeInfo
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sourceChangeInfo = try ChangeInfo4(xdr: &buffer)
        self.targetChangeInfo = try ChangeInfo4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sourceChangeInfo.encode(xdr: &buffer)
        targetChangeInfo.encode(xdr: &buffer)
    }
}

/// LOCK4denied: the conflicting lock.
public struct LockDenied4: Sendable, Hashable, XDRCodable {
    public var offset: UInt64
    public var length: UInt64
    public var lockType: NFS4LockType
    public var owner: StateOwner4
    public init(offset: UInt64, length: UInt64, lockType: NFS4LockType, owner: StateOwner4) {
        self.offset = offset
        self.length = length
        self.lockType = lockType
        self.owner = owner
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.offset = try buffer.readXDRUInt64()
        self.length = try buffer.readXDRUInt64()
        self.lockType = try buffer.readXDREnum()
        self.owner = try StateOwner4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt64(length)
        buffer.writeXDREnum(lockType)
        owner.encode(xdr: &buffer)
    }
}

/// SEEK4resok.
public struct NFS4SeekResOK: Sendable, Hashable, XDRCodable {
    public var eof: Bool
    public var offset: UInt64
    public init(eof: Bool, offset: UInt64) {
        self.eof = eof
        self.offset = offset
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.eof = try buffer.readXDRBool()
        self.offset = try buffer.readXDRUInt64()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRBool(eof)
        buffer.writeXDRUInt64(offset)
    }
}

/// write_response4 (RFC 7862 §15.2).
public struct WriteResponse4: Sendable, Hashable, XDRCodable {
    /// wr_callback_id<1>: set for an asynchronous copy
    public var callbackID: StateID?
    public var count: UInt64
    public var committed: StableHow4
    public var verifier: Verifier4
    public init(callbackID: StateID?, count: UInt64, committed: StableHow4, verifier: Verifier4) {
        self.callbackID = callbackID
        self.count = count
        self.committed = committed
        self.verifier = verifier
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.callbackID = try buffer.readXDRArray(maxCount: 1) { try StateID(xdr: &$0) }.first
        self.count = try buffer.readXDRUInt64()
        self.committed = try buffer.readXDREnum()
        self.verifier = try Verifier4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRArray(callbackID.map { [$0] } ?? []) { $1.encode(xdr: &$0) }
        buffer.writeXDRUInt64(count)
        buffer.writeXDREnum(committed)
        verifier.encode(xdr: &buffer)
    }
}

/// copy_requirements4.
public struct CopyRequirements4: Sendable, Hashable, XDRCodable {
    public var consecutive: Bool
    public var synchronous: Bool
    public init(consecutive: Bool, synchronous: Bool) {
        self.consecutive = consecutive
        self.synchronous = synchronous
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.consecutive = try buffer.readXDRBool()
        self.synchronous = try buffer.readXDRBool()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRBool(consecutive)
        buffer.writeXDRBool(synchronous)
    }
}

/// COPY4resok.
public struct NFS4CopyResOK: Sendable, Hashable, XDRCodable {
    public var response: WriteResponse4
    public var requirements: CopyRequirements4
    public init(response: WriteResponse4, requirements: CopyRequirements4) {
        self.response = response
        self.requirements = requirements
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.response = try WriteResponse4(xdr: &buffer)
        self.requirements = try CopyRequirements4(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        response.encode(xdr: &buffer)
        requirements.encode(xdr: &buffer)
    }
}
