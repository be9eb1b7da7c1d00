import NIOCore
import XDR

// The back channel (RFC 8881 §20): the server is the caller. CB_COMPOUND4args
// encoding and CB_COMPOUND4res decoding for CB_SEQUENCE and CB_RECALL. CB_NULL
// is the NULL procedure (NFS4Constants.callbackProcedureNull) of the
// client's callback program: no arguments, no results.

/// referring_call4: a fore channel call the callback relates to.
public struct ReferringCall4: Sendable, Hashable, XDRCodable {
    public var sequenceID: UInt32
    public var slotID: UInt32
    public init(sequenceID: UInt32, slotID: UInt32) {
        self.sequenceID = sequenceID
        self.slotID = slotID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sequenceID = try buffer.readXDRUInt32()
        self.slotID = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(sequenceID)
        buffer.writeXDRUInt32(slotID)
    }
}

/// referring_call_list4.
public struct ReferringCallList4: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var calls: [ReferringCall4]
    public init(sessionID: SessionID, calls: [ReferringCall4]) {
        self.sessionID = sessionID
        self.calls = calls
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.calls = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount, minimumElementSize: 8) {
            try ReferringCall4(xdr: &$0)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDRArray(calls) { $1.encode(xdr: &$0) }
    }
}

/// CB_SEQUENCE4args (RFC 8881 §20.9).
public struct CBSequenceArgs: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var sequenceID: UInt32
    public var slotID: UInt32
    public var highestSlotID: UInt32
    public var cacheThis: Bool
    public var referringCallLists: [ReferringCallList4]
    public init(sessionID: SessionID, sequenceID: UInt32, slotID: UInt32, highestSlotID: UInt32, cacheThis: Bool,
                referringCallLists: [ReferringCallList4] = []) {
        self.sessionID = sessionID
        self.sequenceID = sequenceID
        self.slotID = slotID
        self.highestSlotID = highestSlotID
        self.cacheThis = cacheThis
        self.referringCallLists = referringCallLists
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.sequenceID = try buffer.readXDRUInt32()
        self.slotID = try buffer.readXDRUInt32()
        self.highestSlotID = try buffer.readXDRUInt32()
        self.cacheThis = try buffer.readXDRBool()
        self.referringCallLists = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount, minimumElementSize: 20) {
            try ReferringCallList4(xdr: &$0)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(sequenceID)
        buffer.writeXDRUInt32(slotID)
        buffer.writeXDRUInt32(highestSlotID)
        buffer.writeXDRBool(cacheThis)
        buffer.writeXDRArray(referringCallLists) { $1.encode(xdr: &$0) }
    }
}

/// CB_SEQUENCE4resok.
public struct CBSequenceResOK: Sendable, Hashable, XDRCodable {
    public var sessionID: SessionID
    public var sequenceID: UInt32
    public var slotID: UInt32
    public var highestSlotID: UInt32
    public var targetHighestSlotID: UInt32
    public init(sessionID: SessionID, sequenceID: UInt32, slotID: UInt32, highestSlotID: UInt32,
                targetHighestSlotID: UInt32) {
        self.sessionID = sessionID
        self.sequenceID = sequenceID
        self.slotID = slotID
        self.highestSlotID = highestSlotID
        self.targetHighestSlotID = targetHighestSlotID
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.sessionID = try SessionID(xdr: &buffer)
        self.sequenceID = try buffer.readXDRUInt32()
        self.slotID = try buffer.readXDRUInt32()
        self.highestSlotID = try buffer.readXDRUInt32()
        self.targetHighestSlotID = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        sessionID.encode(xdr: &buffer)
        buffer.writeXDRUInt32(sequenceID)
        buffer.writeXDRUInt32(slotID)
        buffer.writeXDRUInt32(highestSlotID)
        buffer.writeXDRUInt32(targetHighestSlotID)
    }
}

/// CB_RECALL4args (RFC 8881 §20.2): give the delegation back.
public struct CBRecallArgs: Sendable, Hashable, XDRCodable {
    public var stateID: StateID
    public var truncate: Bool
    public var fileHandle: NFS4FileHandle
    public init(stateID: StateID, truncate: Bool, fileHandle: NFS4FileHandle) {
        self.stateID = stateID
        self.truncate = truncate
        self.fileHandle = fileHandle
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.stateID = try StateID(xdr: &buffer)
        self.truncate = try buffer.readXDRBool()
        self.fileHandle = try NFS4FileHandle(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        stateID.encode(xdr: &buffer)
        buffer.writeXDRBool(truncate)
        fileHandle.encode(xdr: &buffer)
    }
}

/// A back channel operation the server sends (nfs_cb_argop4).
public enum CBOperation: Sendable, Hashable, XDRCodable {
    case sequence(CBSequenceArgs)
    case recall(CBRecallArgs)

    public var opcode: CBOpcode {
        switch self {
        case .sequence: return .sequence
        case .recall: return .recall
        }
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDREnum(CBOpcode.self) {
        case .sequence: self = .sequence(try CBSequenceArgs(xdr: &buffer))
        case .recall: self = .recall(try CBRecallArgs(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "nfs_cb_opnum4 sent by this server", value: other.rawValue)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(opcode)
        switch self {
        case .sequence(let args): args.encode(xdr: &buffer)
        case .recall(let args): args.encode(xdr: &buffer)
        }
    }
}

/// CB_COMPOUND4args.
public struct CBCompoundArgs: Sendable, Hashable, XDRCodable {
    public var tag: [UInt8]
    public var minorVersion: UInt32
    /// callback_ident: NFSv4.0's; a 4.1 client ignores it.
    public var callbackIdent: UInt32
    public var operations: [CBOperation]
    public init(tag: [UInt8] = [], minorVersion: UInt32, callbackIdent: UInt32 = 0, operations: [CBOperation]) {
        self.tag = tag
        self.minorVersion = minorVersion
        self.callbackIdent = callbackIdent
        self.operations = operations
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.tag = try buffer.readXDRVariableBytes(maxLength: NFS4DecodeLimits.defaultMaxTagLength)
        self.minorVersion = try buffer.readXDRUInt32()
        self.callbackIdent = try buffer.readXDRUInt32()
        self.operations = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount) { try CBOperation(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRVariableOpaque(tag)
        buffer.writeXDRUInt32(minorVersion)
        buffer.writeXDRUInt32(callbackIdent)
        buffer.writeXDRArray(operations) { $1.encode(xdr: &$0) }
    }
}

/// One back channel result (nfs_cb_resop4) of the operations above, or an
/// error status for any opcode (CB_ILLEGAL included).
public enum CBResult: Sendable, Hashable, XDRCodable {
    case sequence(NFS4Reply<CBSequenceResOK>)
    case recall(NFS4Status)
    /// An error result of another operation: what a client answers for an
    /// operation it does not know, CB_ILLEGAL with NFS4ERR_OP_ILLEGAL.
    case status(CBOpcode, NFS4Status)

    public var opcode: CBOpcode {
        switch self {
        case .sequence: return .sequence
        case .recall: return .recall
        case .status(let opcode, _): return opcode
        }
    }
    public var status: NFS4Status {
        switch self {
        case .sequence(let reply): return reply.status
        case .recall(let status), .status(_, let status): return status
        }
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        let opcode: CBOpcode = try buffer.readXDREnum()
        let status: NFS4Status = try buffer.readXDREnum()
        switch opcode {
        case .sequence: self = .sequence(status == .ok ? .ok(try CBSequenceResOK(xdr: &buffer)) : .error(status))
        case .recall: self = .recall(status)
        default:
            // The other operations' results have bodies on success; this
            // server never sends them, so only their errors can be read.
            guard status != .ok else {
                throw XDRError.invalidEnum(type: "nfs_cb_resop4 for an operation not sent", value: opcode.rawValue)
            }
            self = .status(opcode, status)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(opcode)
        switch self {
        case .sequence(let reply): reply.encode(xdr: &buffer) { $1.encode(xdr: &$0) }
        case .recall(let status): buffer.writeXDREnum(status)
        case .status(_, let status): buffer.writeXDREnum(status)
        }
    }
}

/// CB_COMPOUND4res.
public struct CBCompoundResponse: Sendable, Hashable, XDRCodable {
    public var status: NFS4Status
    public var tag: [UInt8]
    public var results: [CBResult]
    public init(status: NFS4Status, tag: [UInt8], results: [CBResult]) {
        self.status = status
        self.tag = tag
        self.results = results
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.status = try buffer.readXDREnum()
        self.tag = try buffer.readXDRVariableBytes(maxLength: NFS4DecodeLimits.defaultMaxTagLength)
        self.results = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount, minimumElementSize: 8) {
            try CBResult(xdr: &$0)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(status)
        buffer.writeXDRVariableOpaque(tag)
        buffer.writeXDRArray(results) { $1.encode(xdr: &$0) }
    }
}
