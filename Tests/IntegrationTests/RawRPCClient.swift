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
