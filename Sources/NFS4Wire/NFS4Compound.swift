import NIOCore
import XDR

// COMPOUND4args decoding (RFC 8881 §16.2) and COMPOUND4args encoding (a
// client's, for tests and fuzzing).
//
// The decoder walks the operations in order and stops at the first one it
// cannot take: RFC 8881 §15.2 has the server answer every operation up to and
// including the failing one, so `NFS4CompoundRequest.failure` names its index,
// the resop to answer with and the status:
//   - an opcode outside the minor version:         OP_ILLEGAL, resop OP_ILLEGAL
//   - arguments that do not decode (or run out):   NFS4ERR_BADXDR
//   - a valid operation whose arguments this layer
//     can neither decode nor skip:                 NFS4ERR_NOTSUPP
//   - more operations than `maxOperations`:        NFS4ERR_TOO_MANY_OPS, at the first operation
//   - more bytes than `maxRequestSize`:            NFS4ERR_REQ_TOO_BIG, at the first operation
// (the last two are returned in SEQUENCE's result when the first operation is
// SEQUENCE, RFC 8881 §2.10.6.4 and §18.46.3). A header that cannot be read
// (tag, minorversion, numops) throws: the RPC layer answers GARBAGE_ARGS.

/// What a COMPOUND may hold: a session's negotiated fore channel limits
/// (ca_maxoperations, ca_maxrequestsize) or the server's own before one exists.
public struct NFS4DecodeLimits: Sendable, Hashable {
    public var maxOperations: Int
    /// In bytes, the RPC header included (ca_maxrequestsize counts it).
    public var maxRequestSize: Int
    public var maxTagLength: Int

    public init(maxOperations: Int, maxRequestSize: Int, maxTagLength: Int = NFS4DecodeLimits.defaultMaxTagLength) {
        self.maxOperations = maxOperations
        self.maxRequestSize = maxRequestSize
        self.maxTagLength = maxTagLength
    }

    /// Linux nfsd's NFSD4_MAX_TAGLEN.
    public static let defaultMaxTagLength = 128
    /// Before a session: room for a 1 MiB WRITE and the operations around it.
    public static let server = NFS4DecodeLimits(maxOperations: 64, maxRequestSize: (1 << 20) + 8192)

    /// A session's fore channel attributes as limits.
    public init(foreChannel: ChannelAttrs, maxTagLength: Int = NFS4DecodeLimits.defaultMaxTagLength) {
        self.init(maxOperations: Int(foreChannel.maxOperations), maxRequestSize: Int(foreChannel.maxRequestSize),
                  maxTagLength: maxTagLength)
    }
}

/// Why decoding stopped: the reply's last result is `opcode` with `status`, at `index`.
public struct NFS4DecodeFailure: Sendable, Hashable, CustomStringConvertible {
    /// The operation's position; the operations before it decoded.
    public var index: Int
    /// The resop to answer with (`.illegal` for an opcode outside the protocol).
    public var opcode: NFS4Opcode
    public var status: NFS4Status
    /// For logs: what was wrong.
    public var reason: String

    public init(index: Int, opcode: NFS4Opcode, status: NFS4Status, reason: String) {
        self.index = index
        self.opcode = opcode
        self.status = status
        self.reason = reason
    }

    public var description: String { "operation \(index) (\(opcode)): \(status.rfcName): \(reason)" }

    /// The result to answer the failing operation with.
    public var result: NFS4Result { .failed(opcode, status) }
}

/// The header of a COMPOUND that could not be read, or broke a limit before
/// any operation: the RPC layer answers GARBAGE_ARGS.
public struct NFS4CompoundHeaderError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public var description: String { "COMPOUND header: \(reason)" }
}

/// A decoded COMPOUND4args.
public struct NFS4CompoundRequest: Sendable, Hashable, XDREncodable {
    /// Echoed in the reply, as sent.
    public var tag: [UInt8]
    public var minorVersion: UInt32
    /// The operations that decoded, in order.
    public var operations: [NFS4Operation]
    /// numops as sent.
    public var declaredOperationCount: UInt32
    /// Where and why decoding stopped before `declaredOperationCount` operations.
    public var failure: NFS4DecodeFailure?

    /// NFS4ERR_MINOR_VERS_MISMATCH when the minor version is not 1 or 2: the
    /// reply then carries that status and no results (RFC 8881 §16.2.3).
    public var minorVersionMismatch: Bool { !NFS4Constants.supportedMinorVersions.contains(minorVersion) }

    public init(tag: [UInt8], minorVersion: UInt32, operations: [NFS4Operation],
                declaredOperationCount: UInt32? = nil, failure: NFS4DecodeFailure? = nil) {
        self.tag = tag
        self.minorVersion = minorVersion
        self.operations = operations
        self.declaredOperationCount = declaredOperationCount ?? UInt32(operations.count)
        self.failure = failure
    }

    /// Decodes COMPOUND4args from `buffer` (the call's arguments).
    /// `rpcHeaderSize`: the bytes of the RPC call header before them, which
    /// count against `limits.maxRequestSize`.
    public init(decoding buffer: ByteBuffer, limits: NFS4DecodeLimits = .server, rpcHeaderSize: Int = 0) throws {
        var buffer = buffer
        let requestSize = rpcHeaderSize + buffer.readableBytes
        do {
            self.tag = try buffer.readXDRVariableBytes(maxLength: limits.maxTagLength)
            self.minorVersion = try buffer.readXDRUInt32()
            self.declaredOperationCount = try buffer.readXDRUInt32()
        } catch {
            throw NFS4CompoundHeaderError(reason: "\(error)")
        }
        self.operations = []
        self.failure = nil
        if minorVersionMismatch || declaredOperationCount == 0 { return }

        func firstOpcode() -> NFS4Opcode {
            buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self)
                .flatMap { NFS4Opcode.valid($0, minorVersion: minorVersion) } ?? .illegal
        }
        if requestSize > limits.maxRequestSize {
            failure = NFS4DecodeFailure(index: 0, opcode: firstOpcode(), status: .reqTooBig,
                                        reason: "\(requestSize) bytes, more than ca_maxrequestsize \(limits.maxRequestSize)")
            return
        }
        if Int(declaredOperationCount) > limits.maxOperations {
            failure = NFS4DecodeFailure(index: 0, opcode: firstOpcode(), status: .tooManyOps,
                                        reason: "\(declaredOperationCount) operations, more than ca_maxoperations \(limits.maxOperations)")
            return
        }
        operations.reserveCapacity(Int(declaredOperationCount))
        for index in 0..<Int(declaredOperationCount) {
            guard let raw = try? buffer.readXDRUInt32() else {
                failure = NFS4DecodeFailure(index: index, opcode: .illegal, status: .badxdr,
                                            reason: "the COMPOUND ends before operation \(index) of \(declaredOperationCount)")
                return
            }
            guard let opcode = NFS4Opcode.valid(raw, minorVersion: minorVersion) else {
                failure = NFS4DecodeFailure(index: index, opcode: .illegal, status: .opIllegal,
                                            reason: "opcode \(raw) is not an operation of NFSv4.\(minorVersion)")
                return
            }
            do {
                guard let operation = try NFS4Operation.decode(opcode, from: &buffer) else {
                    failure = NFS4DecodeFailure(index: index, opcode: opcode, status: .notsupp,
                                                reason: "\(opcode) is not supported")
                    return
                }
                operations.append(operation)
            } catch {
                failure = NFS4DecodeFailure(index: index, opcode: opcode, status: .badxdr,
                                            reason: "\(opcode) arguments: \(error)")
                return
            }
        }
    }

    /// COMPOUND4args as a client sends it. Only meaningful for requests
    /// without `.unsupported` operations (whose arguments were not kept).
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDRVariableOpaque(tag)
        buffer.writeXDRUInt32(minorVersion)
        buffer.writeXDRArray(operations) { $1.encode(xdr: &$0) }
    }
}
