import Glibc
import NIOCore
import ONCRPC

/// Tests speak to the server through the same blocking client the product
/// uses (rpcbind registration, the mount helper's probe), plus two helpers
/// for bytes no client should send.
typealias RawRPCClient = BlockingRPCClient

extension BlockingRPCClient {
    convenience init(tcpPort: Int) throws {
        try self.init(ipv4: "127.0.0.1", port: tcpPort, timeoutSeconds: 60)
    }

    /// Connects over TCP from `source` (a loopback address such as 127.0.0.2, so a test
    /// can be another peer to a server that identifies TCP peers by address) to
    /// 127.0.0.1:`tcpPort`.
    convenience init(tcpPort: Int, from source: String, timeoutSeconds: Int = 60) throws {
        func address(_ host: String, _ port: Int) throws -> sockaddr_in {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { throw Error.system(call: "inet_pton \(host)", errno: EINVAL) }
            return a
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Error.system(call: "socket", errno: errno) }
        for (call, target) in [("bind \(source)", try address(source, 0)), ("connect 127.0.0.1:\(tcpPort)", try address("127.0.0.1", tcpPort))] {
            var target = target
            let rc = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                    call.hasPrefix("bind") ? bind(fd, p, socklen_t(MemoryLayout<sockaddr_in>.size))
                                           : connect(fd, p, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else { let e = errno; close(fd); throw Error.system(call: call, errno: e) }
        }
        self.init(connectedSocket: fd, timeoutSeconds: timeoutSeconds)
    }

    /// One record-marked fragment holding `body`.
    static func frame(_ body: ByteBuffer) -> [UInt8] {
        let header = RecordMarking.lastFragmentBit | UInt32(body.readableBytes)
        return withUnsafeBytes(of: header.bigEndian) { Array($0) } + Array(body.readableBytesView)
    }

    /// Calls with AUTH_SYS root unless told otherwise.
    func call(program: UInt32, version: UInt32, procedure: UInt32, arguments: ByteBuffer = ByteBuffer()) throws -> RPCReplyBody {
        try self.call(program: program, version: version, procedure: procedure,
                      credential: AuthSysParameters(uid: 0, gid: 0).opaqueAuth, arguments: arguments)
    }

    func isClosedByServer() throws -> Bool { try isClosedByPeer() }
}
