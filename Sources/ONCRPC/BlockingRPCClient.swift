#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A small blocking RPC client over a connected stream socket, for places
/// that make a handful of calls and want no event loop: registering with
/// rpcbind at start-up, probing a server from the mount helper, tests.
public final class BlockingRPCClient {
    public let fd: Int32
    private var nextXID = UInt32.random(in: 1...UInt32.max / 2)
    private let maximumRecordSize: Int

    public enum Error: Swift.Error, Hashable, CustomStringConvertible {
        case system(call: String, errno: Int32)
        case closedByPeer
        case unexpectedReply(xid: UInt32)
        case recordTooLarge(Int)

        public var description: String {
            switch self {
            case .system(let call, let e): return "\(call): \(String(cString: strerror(e)))"
            case .closedByPeer: return "connection closed by the server"
            case .unexpectedReply(let xid): return "reply with unexpected xid \(xid)"
            case .recordTooLarge(let size): return "reply of \(size) bytes is larger than expected"
            }
        }
    }

    /// Takes ownership of a connected socket.
    public init(connectedSocket fd: Int32, timeoutSeconds: Int = 10,
                maximumRecordSize: Int = RecordMarking.defaultMaximumRecordSize) {
        self.fd = fd
        self.maximumRecordSize = maximumRecordSize
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(self.fd) }

    /// Connects to a Unix stream socket.
    public convenience init(unixPath: String, timeoutSeconds: Int = 10) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(unixPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Error.system(call: "connect \(unixPath)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path + [0]) }
        let fd = try Self.connectedSocket(family: AF_UNIX, to: address, naming: unixPath)
        self.init(connectedSocket: fd, timeoutSeconds: timeoutSeconds)
    }

    /// Connects over TCP to an IPv4 address (`127.0.0.1`).
    public convenience init(ipv4 host: String, port: Int, timeoutSeconds: Int = 10) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw Error.system(call: "connect \(host)", errno: EINVAL)
        }
        let fd = try Self.connectedSocket(family: AF_INET, to: address, naming: "\(host):\(port)")
        self.init(connectedSocket: fd, timeoutSeconds: timeoutSeconds)
    }

    /// A stream socket of `family` connected to `address` (a sockaddr_*).
    private static func connectedSocket<Address>(family: Int32, to address: Address, naming name: String) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Error.system(call: "socket", errno: errno) }
        var address = address
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<Address>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw Error.system(call: "connect \(name)", errno: e)
        }
        return fd
    }

    /// True once the peer has closed (or reset) the connection; consumes a
    /// byte if the peer sent one instead.
    public func isClosedByPeer() throws -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(self.fd, &byte, 1, 0)
            if n == 0 { return true }
            if n > 0 { return false }
            if errno == EINTR { continue }
            if errno == ECONNRESET { return true }
            throw Error.system(call: "recv", errno: errno)
        }
    }

    /// Sends bytes as they are (already record-marked).
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Error.system(call: "send", errno: errno) }
            offset += n
        }
    }

    private func receiveExactly(_ count: Int, into buffer: inout ByteBuffer) throws {
        var remaining = count
        var chunk = [UInt8](repeating: 0, count: min(count, 64 * 1024))
        while remaining > 0 {
            let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, min(remaining, $0.count), 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw Error.closedByPeer }
            guard n > 0 else { throw Error.system(call: "recv", errno: errno) }
            buffer.writeBytes(chunk[0..<n])
            remaining -= n
        }
    }

    /// Reads one whole record.
    public func receiveRecord() throws -> ByteBuffer {
        var record = ByteBuffer()
        while true {
            var header = ByteBuffer()
            try receiveExactly(4, into: &header)
            let word = header.readInteger(endianness: .big, as: UInt32.self)!
            let length = Int(word & ~RecordMarking.lastFragmentBit)
            guard record.readableBytes + length <= self.maximumRecordSize else {
                throw Error.recordTooLarge(record.readableBytes + length)
            }
            try receiveExactly(length, into: &record)
            if word & RecordMarking.lastFragmentBit != 0 { return record }
        }
    }

    /// One record-marked call.
    public static func encodeCall(xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
                                  credential: RPCOpaqueAuth, arguments: ByteBuffer) -> [UInt8] {
        var body = ByteBuffer()
        body.writeInteger(UInt32(0), endianness: .big)
        RPCMessage.call(xid: xid, rpcVersion: RPCDispatcher.rpcVersion, program: program, version: version,
                        procedure: procedure, credential: credential, verifier: .none,
                        arguments: arguments).encode(xdr: &body)
        body.setInteger(RecordMarking.singleFragmentHeader(length: body.readableBytes - 4)!, at: 0, endianness: .big)
        return Array(body.readableBytesView)
    }

    /// Makes a call and waits for its reply.
    public func call(program: UInt32, version: UInt32, procedure: UInt32,
                     credential: RPCOpaqueAuth = .none, arguments: ByteBuffer = ByteBuffer()) throws -> RPCReplyBody {
        let xid = self.nextXID
        self.nextXID &+= 1
        try self.send(Self.encodeCall(xid: xid, program: program, version: version, procedure: procedure,
                                      credential: credential, arguments: arguments))
        let message = try RPCMessage(record: try self.receiveRecord())
        guard case .reply(let replyXID, let body, _) = message, replyXID == xid else {
            throw Error.unexpectedReply(xid: message.xid)
        }
        return body
    }
}
