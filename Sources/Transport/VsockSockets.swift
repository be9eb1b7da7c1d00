#if canImport(Glibc)
import Glibc
#endif
import CSupport

/// One AF_VSOCK socket as the kernel's vsock_diag reports it (for `vsnfs doctor`
/// and `vsnfs status`) (bound,
/// listening or connected sockets; unbound ones are not reported).
public struct VsockSocket: Hashable, Sendable, CustomStringConvertible {
    public enum State: Hashable, Sendable, CustomStringConvertible {
        case listening, established, connecting, closing, closed
        case other(UInt8)

        /// vsock keeps its state in sk_state with the TCP state numbers.
        init(kernel: UInt8) {
            switch kernel {
            case 1: self = .established   // TCP_ESTABLISHED
            case 2: self = .connecting    // TCP_SYN_SENT
            case 7: self = .closed        // TCP_CLOSE
            case 10: self = .listening    // TCP_LISTEN
            case 11: self = .closing      // TCP_CLOSING
            default: self = .other(kernel)
            }
        }

        public var description: String {
            switch self {
            case .listening: return "listening"
            case .established: return "established"
            case .connecting: return "connecting"
            case .closing: return "closing"
            case .closed: return "closed"
            case .other(let n): return "state \(n)"
            }
        }
    }

    /// SOCK_STREAM (1), SOCK_DGRAM (2) or SOCK_SEQPACKET (5).
    public var type: UInt8
    public var state: State
    public var localCID: UInt32
    public var localPort: UInt32
    public var peerCID: UInt32
    public var peerPort: UInt32
    public var inode: UInt32

    public static let anyCID = UInt32.max

    public var description: String {
        func address(_ cid: UInt32, _ port: UInt32) -> String { (cid == Self.anyCID ? "*" : "\(cid)") + ":\(port)" }
        let local = address(localCID, localPort)
        return state == .listening ? "\(local) listening" : "\(local) \(state) with \(address(peerCID, peerPort))"
    }
}

public enum SocketDiagnosticsError: Error, Equatable, CustomStringConvertible {
    /// libnl-3.so.200 could not be loaded (the detail is dlopen's reason).
    case libnlMissing(String)
    /// The kernel has no socket diagnostics for AF_VSOCK: vsock_diag is not
    /// loaded or not built (or the kernel has no vsock at all).
    case vsockDiagUnavailable
    case failed(String)

    public var description: String {
        switch self {
        case .libnlMissing: return "libnl-3 not installed (apt-get install libnl-3-200)"
        case .vsockDiagUnavailable: return "the kernel has no vsock socket diagnostics (vsock_diag not loaded: modprobe vsock_diag)"
        case .failed(let why): return "vsock socket diagnostics failed: \(why)"
        }
    }
}

/// Every bound, listening and connected AF_VSOCK socket on this machine, from
/// the kernel's NETLINK_SOCK_DIAG (the vsock_diag module) through libnl-3.
public func listVsockSockets() throws -> [VsockSocket] {
    // struct vsock_diag_req: sdiag_family, sdiag_protocol, pad, vdiag_states
    // (every state), vdiag_ino, vdiag_show, vdiag_cookie[2].
    var request = [UInt8](repeating: 0, count: 24)
    request[0] = UInt8(AF_VSOCK)
    request.replaceSubrange(4..<8, with: [0xff, 0xff, 0xff, 0xff])
    return try VsockDiagReply.parse(sockDiagDump(request))
}

/// Runs one sock_diag dump and returns the kernel's reply messages as received.
func sockDiagDump(_ request: [UInt8]) throws -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>?
    var length = 0
    var error = [CChar](repeating: 0, count: 256)
    let rc = request.withUnsafeBytes { req in
        vsnfs_sock_diag_dump(req.baseAddress, req.count, &out, &length, &error, error.count)
    }
    guard rc == 0, let out else {
        let why = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw rc == VSNFS_DIAG_NO_LIBRARY ? SocketDiagnosticsError.libnlMissing(why) : .failed(why)
    }
    defer { free(out) }
    return Array(UnsafeBufferPointer(start: out, count: length))
}

/// The reply to a vsock_diag dump: netlink messages, each a struct
/// vsock_diag_msg, ended by NLMSG_DONE or an NLMSG_ERROR.
enum VsockDiagReply {
    static let nlmsgError: UInt16 = 2
    static let nlmsgDone: UInt16 = 3
    static let sockDiagByFamily: UInt16 = 20
    static let headerSize = 16
    static let messageSize = 32 // struct vsock_diag_msg

    static func parse(_ bytes: [UInt8]) throws -> [VsockSocket] {
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        var sockets: [VsockSocket] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let length = Int(u32(offset))
            let type = UInt16(bytes[offset + 4]) | UInt16(bytes[offset + 5]) << 8
            guard length >= headerSize, offset + length <= bytes.count else {
                throw SocketDiagnosticsError.failed("truncated netlink message")
            }
            let body = offset + headerSize
            switch type {
            case nlmsgDone:
                return sockets
            case nlmsgError:
                guard length >= headerSize + 4 else { throw SocketDiagnosticsError.failed("truncated netlink error") }
                let code = -Int32(bitPattern: u32(body))
                if code == 0 { return sockets }
                // sock_diag answers ENOENT when no module handles the family.
                if code == ENOENT { throw SocketDiagnosticsError.vsockDiagUnavailable }
                throw SocketDiagnosticsError.failed(String(cString: strerror(code)))
            case sockDiagByFamily:
                guard length >= headerSize + messageSize else {
                    throw SocketDiagnosticsError.failed("short vsock_diag message")
                }
                sockets.append(VsockSocket(
                    type: bytes[body + 1], state: .init(kernel: bytes[body + 2]),
                    localCID: u32(body + 4), localPort: u32(body + 8),
                    peerCID: u32(body + 12), peerPort: u32(body + 16), inode: u32(body + 20)))
            default:
                break
            }
            offset += (length + 3) & ~3 // NLMSG_ALIGN
        }
        throw SocketDiagnosticsError.failed("the dump ended without NLMSG_DONE")
    }
}
