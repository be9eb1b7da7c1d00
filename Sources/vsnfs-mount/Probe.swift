#if canImport(Glibc)
import Glibc
#endif
import CSupport
import NIOCore
import ONCRPC
import XDR

/// A failure the user can act on, printed as one line.
struct MountError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 32   // mount(8): mount failure
    /// The server or the vsock device may just not be up yet: worth another try at boot (--auto).
    var transient = false
    init(_ d: String, exitCode: Int32 = 32, transient: Bool = false) {
        description = d; self.exitCode = exitCode; self.transient = transient
    }
}

func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

/// Opens a vsock connection to the server, turning each failure into a message
/// that says what is wrong in this guest or at the server.
func connectVsock(cid: UInt32, port: UInt32, timeoutMs: Int32 = 5000) throws -> Int32 {
    let fd = vsnfs_vsock_connect(cid, port, timeoutMs, 0)
    if fd >= 0 { return fd }
    let e = -fd
    switch e {
    case EAFNOSUPPORT:
        throw MountError("this guest kernel has no AF_VSOCK support (load vsock and a transport: vmw_vsock_virtio_transport, or vsock_loopback for CID 1)")
    case ENODEV, ENETUNREACH, EHOSTUNREACH:
        throw MountError("no vsock transport reaches CID \(cid) (is a vsock device attached to this VM? for CID 1 load vsock_loopback)",
                         transient: true)
    case ECONNREFUSED, ECONNRESET:
        throw MountError("nothing is listening at vsock CID \(cid) port \(port) (is `vsnfs serve` running with --listen vsock:\(port)?)",
                         transient: true)
    case ETIMEDOUT, EINTR:
        throw MountError("no answer from vsock CID \(cid) port \(port) (timed out connecting)", transient: true)
    default:
        throw MountError("cannot connect to vsock CID \(cid) port \(port): \(errnoText(e))")
    }
}

/// What the server at CID:port offers, and who it sees us as.
struct ServerProbe {
    var offersV41: Bool
    var offersV42: Bool
    /// Our CID as the server sees it (getsockname on the connection).
    var localCID: UInt32?

    /// NFSv4 COMPOUNDs with minorversion 1 and 2 and no operations: NFS4_OK
    /// means the server speaks that minor version; anything else
    /// (PROG_MISMATCH from a v3-only server, NFS4ERR_MINOR_VERS_MISMATCH, ...)
    /// means it does not.
    static func run(cid: UInt32, port: UInt32) throws -> ServerProbe {
        // The client owns the fd from here and closes it.
        let client = BlockingRPCClient(connectedSocket: try connectVsock(cid: cid, port: port), timeoutSeconds: 5,
                                       maximumRecordSize: 1 << 20)
        let local = vsnfs_vsock_local_cid_of(client.fd)
        func offers(minorVersion: UInt32) -> Bool {
            var args = ByteBuffer()
            args.writeXDRVariableOpaque([UInt8]())  // tag<> (empty)
            args.writeXDRUInt32(minorVersion)
            args.writeXDRUInt32(0)                  // argarray<> (no ops)
            guard case .success(var results)? = try? client.call(
                program: 100_003, version: 4, procedure: 1,
                credential: AuthSysParameters(machineName: Array("vsnfs-mount".utf8), uid: 0, gid: 0).opaqueAuth,
                arguments: args) else { return false }
            return (try? results.readXDRUInt32()) == 0  // COMPOUND4res.status == NFS4_OK
        }
        let v41 = offers(minorVersion: 1)
        return ServerProbe(offersV41: v41, offersV42: v41 && offers(minorVersion: 2),
                           localCID: local >= 0 ? UInt32(local) : nil)
    }

    func offers(_ version: MountRequest.Version) -> Bool {
        switch version {
        case .v3: return true
        case .v41: return offersV41
        case .v42: return offersV42
        }
    }
}
