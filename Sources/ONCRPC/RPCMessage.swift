import NIOCore
import XDR

/// RPC protocol constants (RFC 5531 §9).
public enum RPCMessageType: UInt32, Sendable { case call = 0, reply = 1 }
public enum RPCReplyStatus: UInt32, Sendable { case accepted = 0, denied = 1 }

/// accept_stat (RFC 5531 §9).
public enum RPCAcceptStatus: UInt32, Sendable {
    case success = 0, programUnavailable = 1, programMismatch = 2,
         procedureUnavailable = 3, garbageArguments = 4, systemError = 5
}

/// reject_stat (RFC 5531 §9).
public enum RPCRejectStatus: UInt32, Sendable { case rpcMismatch = 0, authError = 1 }

/// auth_stat (RFC 5531 §9).
public enum RPCAuthStatus: UInt32, Sendable, Error {
    case ok = 0
    /// Bad credential (seal broken); also what knfsd answers for a flavor it does not speak.
    case badCredential = 1
    case rejectedCredential = 2
    case badVerifier = 3
    case rejectedVerifier = 4
    case tooWeak = 5
    case invalidResponse = 6
    case failed = 7
}

/// auth_flavor values this server knows by name.
public enum RPCAuthFlavor {
    public static let none: UInt32 = 0
    public static let sys: UInt32 = 1
    public static let short: UInt32 = 2
    public static let dh: UInt32 = 3
    public static let rpcsecGSS: UInt32 = 6
}

/// opaque_auth: a flavor and at most 400 bytes of body (RFC 5531 §8.2).
public struct RPCOpaqueAuth: Hashable, Sendable {
    public static let maxBodyLength = 400
    public var flavor: UInt32
    public var body: ByteBuffer

    public init(flavor: UInt32, body: ByteBuffer) {
        self.flavor = flavor
        self.body = body
    }

    public static let none = RPCOpaqueAuth(flavor: RPCAuthFlavor.none, body: ByteBuffer())

    public init(xdr buffer: inout ByteBuffer) throws {
        self.flavor = try buffer.readXDRUInt32()
        self.body = try buffer.readXDRVariableOpaque(maxLength: Self.maxBodyLength)
    }

    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(self.flavor)
        buffer.writeXDRVariableOpaque(self.body)
    }
}

/// authsys_parms (RFC 5531 appendix A), with the RFC's bounds: a machine
/// name of at most 255 bytes and at most 16 supplementary groups.
public struct AuthSysParameters: Hashable, Sendable {
    public static let maxMachineNameLength = 255
    public static let maxGroups = 16

    public var stamp: UInt32
    public var machineName: [UInt8]
    public var uid: UInt32
    public var gid: UInt32
    public var gids: [UInt32]

    public init(stamp: UInt32 = 0, machineName: [UInt8] = [], uid: UInt32, gid: UInt32, gids: [UInt32] = []) {
        self.stamp = stamp
        self.machineName = machineName
        self.uid = uid
        self.gid = gid
        self.gids = gids
    }

    /// Decodes the credential body; the body must hold exactly one authsys_parms.
    public init(credentialBody: ByteBuffer) throws {
        var body = credentialBody
        self.stamp = try body.readXDRUInt32()
        self.machineName = try body.readXDRVariableBytes(maxLength: Self.maxMachineNameLength)
        self.uid = try body.readXDRUInt32()
        self.gid = try body.readXDRUInt32()
        self.gids = try body.readXDRArray(maxCount: Self.maxGroups) { try $0.readXDRUInt32() }
        guard body.readableBytes == 0 else {
            throw XDRError.lengthExceedsLimit(length: UInt32(body.readableBytes), limit: 0)
        }
    }

    public var opaqueAuth: RPCOpaqueAuth {
        var body = ByteBuffer()
        body.writeXDRUInt32(self.stamp)
        body.writeXDRVariableOpaque(self.machineName)
        body.writeXDRUInt32(self.uid)
        body.writeXDRUInt32(self.gid)
        body.writeXDRArray(self.gids) { $0.writeXDRUInt32($1) }
        return RPCOpaqueAuth(flavor: RPCAuthFlavor.sys, body: body)
    }
}

/// The caller's credential, once checked.
public enum RPCCredential: Hashable, Sendable {
    case none
    case sys(AuthSysParameters)
}

/// A decoded call header plus its undecoded arguments (a slice of the record).
public struct RPCCall: Sendable {
    public var xid: UInt32
    public var program: UInt32
    public var version: UInt32
    public var procedure: UInt32
    public var credential: RPCCredential
    public var arguments: ByteBuffer

    public init(xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
                credential: RPCCredential, arguments: ByteBuffer) {
        self.xid = xid
        self.program = program
        self.version = version
        self.procedure = procedure
        self.credential = credential
        self.arguments = arguments
    }
}

/// What a reply says, short of the procedure's own results.
public enum RPCReplyBody: Hashable, Sendable {
    case success(results: ByteBuffer)
    case programUnavailable
    case programMismatch(low: UInt32, high: UInt32)
    case procedureUnavailable
    case garbageArguments
    case systemError
    case rpcMismatch(low: UInt32, high: UInt32)
    case authError(RPCAuthStatus)
}

/// A whole RPC message as it crosses the wire (without record marking).
public enum RPCMessage: Sendable {
    /// A call: header fields and the raw credential, as received (not yet checked).
    case call(xid: UInt32, rpcVersion: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
              credential: RPCOpaqueAuth, verifier: RPCOpaqueAuth, arguments: ByteBuffer)
    case reply(xid: UInt32, body: RPCReplyBody, verifier: RPCOpaqueAuth)

    public var xid: UInt32 {
        switch self {
        case .call(let xid, _, _, _, _, _, _, _): return xid
        case .reply(let xid, _, _): return xid
        }
    }
}

public enum RPCMessageError: Error, Hashable, Sendable {
    /// msg_type, reply_stat, accept_stat or reject_stat not in the protocol.
    case invalidDiscriminant(field: String, value: UInt32)
}

extension RPCMessage {
    /// Decodes one record. Throws if the record is not an RPC message at
    /// all (the caller cannot even answer it); a call whose credential is
    /// bad still decodes, and is answered with AUTH_ERROR by the dispatcher.
    public init(record: ByteBuffer) throws {
        var buffer = record
        let xid = try buffer.readXDRUInt32()
        let type = try buffer.readXDRUInt32()
        switch RPCMessageType(rawValue: type) {
        case .call:
            let rpcVersion = try buffer.readXDRUInt32()
            let program = try buffer.readXDRUInt32()
            let version = try buffer.readXDRUInt32()
            let procedure = try buffer.readXDRUInt32()
            let credential = try RPCOpaqueAuth(xdr: &buffer)
            let verifier = try RPCOpaqueAuth(xdr: &buffer)
            self = .call(xid: xid, rpcVersion: rpcVersion, program: program, version: version,
                         procedure: procedure, credential: credential, verifier: verifier, arguments: buffer)
        case .reply:
            let status = try buffer.readXDRUInt32()
            switch RPCReplyStatus(rawValue: status) {
            case .accepted:
                let verifier = try RPCOpaqueAuth(xdr: &buffer)
                let accept = try buffer.readXDRUInt32()
                let body: RPCReplyBody
                switch RPCAcceptStatus(rawValue: accept) {
                case .success: body = .success(results: buffer)
                case .programUnavailable: body = .programUnavailable
                case .programMismatch:
                    body = .programMismatch(low: try buffer.readXDRUInt32(), high: try buffer.readXDRUInt32())
                case .procedureUnavailable: body = .procedureUnavailable
                case .garbageArguments: body = .garbageArguments
                case .systemError: body = .systemError
                case nil: throw RPCMessageError.invalidDiscriminant(field: "accept_stat", value: accept)
                }
                self = .reply(xid: xid, body: body, verifier: verifier)
            case .denied:
                let reject = try buffer.readXDRUInt32()
                switch RPCRejectStatus(rawValue: reject) {
                case .rpcMismatch:
                    self = .reply(xid: xid, body: .rpcMismatch(low: try buffer.readXDRUInt32(), high: try buffer.readXDRUInt32()),
                                  verifier: .none)
                case .authError:
                    let raw = try buffer.readXDRUInt32()
                    guard let stat = RPCAuthStatus(rawValue: raw) else {
                        throw RPCMessageError.invalidDiscriminant(field: "auth_stat", value: raw)
                    }
                    self = .reply(xid: xid, body: .authError(stat), verifier: .none)
                case nil: throw RPCMessageError.invalidDiscriminant(field: "reject_stat", value: reject)
                }
            case nil: throw RPCMessageError.invalidDiscriminant(field: "reply_stat", value: status)
            }
        case nil:
            throw RPCMessageError.invalidDiscriminant(field: "msg_type", value: type)
        }
    }

    /// Encodes the message (header and body, without the record mark).
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .call(let xid, let rpcVersion, let program, let version, let procedure, let credential, let verifier, let arguments):
            buffer.writeXDRUInt32(xid)
            buffer.writeXDREnum(RPCMessageType.call)
            buffer.writeXDRUInt32(rpcVersion)
            buffer.writeXDRUInt32(program)
            buffer.writeXDRUInt32(version)
            buffer.writeXDRUInt32(procedure)
            credential.encode(xdr: &buffer)
            verifier.encode(xdr: &buffer)
            var args = arguments
            buffer.writeBuffer(&args)
        case .reply(let xid, let body, let verifier):
            RPCMessage.encodeReplyHeader(xid: xid, body: body, verifier: verifier, into: &buffer)
            if case .success(var results) = body { buffer.writeBuffer(&results) }
        }
    }

    /// Writes a reply's header; for `.success` everything but the results.
    public static func encodeReplyHeader(xid: UInt32, body: RPCReplyBody, verifier: RPCOpaqueAuth = .none,
                                         into buffer: inout ByteBuffer) {
        buffer.writeXDRUInt32(xid)
        buffer.writeXDREnum(RPCMessageType.reply)
        func accepted(_ status: RPCAcceptStatus) {
            buffer.writeXDREnum(RPCReplyStatus.accepted)
            verifier.encode(xdr: &buffer)
            buffer.writeXDREnum(status)
        }
        switch body {
        case .success: accepted(.success)
        case .programUnavailable: accepted(.programUnavailable)
        case .programMismatch(let low, let high):
            accepted(.programMismatch)
            buffer.writeXDRUInt32(low)
            buffer.writeXDRUInt32(high)
        case .procedureUnavailable: accepted(.procedureUnavailable)
        case .garbageArguments: accepted(.garbageArguments)
        case .systemError: accepted(.systemError)
        case .rpcMismatch(let low, let high):
            buffer.writeXDREnum(RPCReplyStatus.denied)
            buffer.writeXDREnum(RPCRejectStatus.rpcMismatch)
            buffer.writeXDRUInt32(low)
            buffer.writeXDRUInt32(high)
        case .authError(let status):
            buffer.writeXDREnum(RPCReplyStatus.denied)
            buffer.writeXDREnum(RPCRejectStatus.authError)
            buffer.writeXDREnum(status)
        }
    }
}
