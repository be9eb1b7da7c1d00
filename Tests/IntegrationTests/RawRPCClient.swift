import Foundation
import NIOCore
import ONCRPC
import XDR

/// A deliberately simple blocking RPC client over a TCP or Unix socket,
/// for sending both well-formed calls and bytes no client should send.
final class RawRPCClient {
    let fd: Int32
    private var nextXID: UInt32 = 1

    init(tcpPort: Int, host: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(tcpPort).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    init(unixPath: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(unixPath.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes + [0])
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPIPE) }
            offset += n
        }
    }

    func receiveExactly(_ count: Int) throws -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return nil }  // orderly close
            guard n > 0 else {
                if errno == ECONNRESET { return nil }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            got += n
        }
        return out
    }

    /// Reads one whole record; nil if the server closed the connection.
    func receiveRecord() throws -> ByteBuffer? {
        var record = ByteBuffer()
        while true {
            guard let header = try receiveExactly(4) else { return nil }
            let word = header.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let length = Int(word & ~RecordMarking.lastFragmentBit)
            guard let body = try receiveExactly(length) else { return nil }
            record.writeBytes(body)
            if word & RecordMarking.lastFragmentBit != 0 { return record }
        }
    }

    /// True once the server has closed this connection.
    func isClosedByServer() throws -> Bool {
        try receiveExactly(1) == nil
    }

    static func frame(_ body: ByteBuffer) -> [UInt8] {
        let header = RecordMarking.lastFragmentBit | UInt32(body.readableBytes)
        return withUnsafeBytes(of: header.bigEndian) { Array($0) } + Array(body.readableBytesView)
    }

    func call(program: UInt32, version: UInt32, procedure: UInt32,
              credential: RPCOpaqueAuth = AuthSysParameters(uid: 0, gid: 0).opaqueAuth,
              arguments: ByteBuffer = ByteBuffer()) throws -> RPCReplyBody {
        let xid = nextXID
        nextXID += 1
        var body = ByteBuffer()
        RPCMessage.call(xid: xid, rpcVersion: 2, program: program, version: version, procedure: procedure,
                        credential: credential, verifier: .none, arguments: arguments).encode(xdr: &body)
        try send(Self.frame(body))
        guard let record = try receiveRecord() else { throw POSIXError(.ECONNRESET) }
        guard case .reply(let replyXID, let reply, _) = try RPCMessage(record: record), replyXID == xid else {
            throw POSIXError(.EPROTO)
        }
        return reply
    }
}
