#if canImport(Glibc)
import Glibc
#endif
import CSupport

/// A failure the user can act on, printed as one line.
struct MountError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 32   // mount(8): mount failure
    init(_ d: String, exitCode: Int32 = 32) { description = d; self.exitCode = exitCode }
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
        throw MountError("no vsock transport reaches CID \(cid) (is a vsock device attached to this VM? for CID 1 load vsock_loopback)")
    case ECONNREFUSED, ECONNRESET:
        throw MountError("nothing is listening at vsock CID \(cid) port \(port) (is `vsnfs serve` running with --listen vsock:\(port)?)")
    case ETIMEDOUT, EINTR:
        throw MountError("no answer from vsock CID \(cid) port \(port) (timed out connecting)")
    default:
        throw MountError("cannot connect to vsock CID \(cid) port \(port): \(errnoText(e))")
    }
}

/// ONC RPC over one connection, just enough to probe a server.
enum RPCProbe {
    static func appendUInt32(_ v: UInt32, to b: inout [UInt8]) {
        b += [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }

    /// A CALL with AUTH_SYS (uid 0), record-marked as one fragment.
    static func call(xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32, args: [UInt8]) -> [UInt8] {
        var m: [UInt8] = []
        for v in [xid, 0, 2, program, version, procedure] { appendUInt32(v, to: &m) }
        // AUTH_SYS: stamp, machinename "vsnfs-mount" (11 bytes + 1 pad), uid, gid, gids<>
        var cred: [UInt8] = []
        appendUInt32(0, to: &cred)
        let name = Array("vsnfs-mount".utf8)
        appendUInt32(UInt32(name.count), to: &cred)
        cred += name + [UInt8](repeating: 0, count: (4 - name.count % 4) % 4)
        for v: UInt32 in [0, 0, 0] { appendUInt32(v, to: &cred) }
        appendUInt32(1, to: &m); appendUInt32(UInt32(cred.count), to: &m); m += cred
        appendUInt32(0, to: &m); appendUInt32(0, to: &m)   // verifier AUTH_NONE
        m += args
        var record: [UInt8] = []
        appendUInt32(0x8000_0000 | UInt32(m.count), to: &record)
        return record + m
    }

    enum Outcome: Equatable {
        case success(body: [UInt8])
        case progUnavailable, progMismatch(low: UInt32, high: UInt32), procUnavailable, garbageArgs, systemError
        case denied(authError: Bool)
    }

    /// Sends one call and reads its reply (first fragment only; probes are small).
    static func roundTrip(fd: Int32, request: [UInt8]) -> Outcome? {
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + sent, request.count - sent) }
            if n <= 0 { return nil }
            sent += n
        }
        func readExactly(_ count: Int) -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: count), got = 0
            while got < count {
                let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
                if n <= 0 { return nil }
                got += n
            }
            return out
        }
        guard let mark = readExactly(4) else { return nil }
        let length = Int(be32(mark, 0) & 0x7fff_ffff)
        guard length >= 12, length <= 1 << 20, let body = readExactly(length) else { return nil }
        // xid, REPLY(1), reply_stat
        guard be32(body, 4) == 1 else { return nil }
        if be32(body, 8) == 1 { return .denied(authError: body.count >= 16 && be32(body, 12) == 1) }
        // accepted: verifier (flavor, length, body), accept_stat
        guard body.count >= 24 else { return nil }
        let verfLength = Int(be32(body, 16))
        let statOffset = 20 + (verfLength + 3) / 4 * 4
        guard body.count >= statOffset + 4 else { return nil }
        switch be32(body, statOffset) {
        case 0: return .success(body: Array(body[(statOffset + 4)...]))
        case 1: return .progUnavailable
        case 2:
            guard body.count >= statOffset + 12 else { return .progMismatch(low: 0, high: 0) }
            return .progMismatch(low: be32(body, statOffset + 4), high: be32(body, statOffset + 8))
        case 3: return .procUnavailable
        case 4: return .garbageArgs
        default: return .systemError
        }
    }

    static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        guard b.count >= o + 4 else { return 0 }
        return UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
}

/// What the server at CID:port offers, and who it sees us as.
struct ServerProbe {
    var offersV41: Bool
    /// Our CID as the server sees it (getsockname on the connection).
    var localCID: UInt32?

    /// An NFSv4 COMPOUND with minorversion 1 and no operations: NFS4_OK means
    /// the server speaks NFSv4.1; anything else (PROG_MISMATCH from a v3-only
    /// server, NFS4ERR_MINOR_VERS_MISMATCH, ...) means it does not.
    static func run(cid: UInt32, port: UInt32) throws -> ServerProbe {
        let fd = try connectVsock(cid: cid, port: port)
        defer { close(fd) }
        _ = vsnfs_set_timeouts(fd, 5000)
        let local = vsnfs_vsock_local_cid_of(fd)
        var args: [UInt8] = []
        RPCProbe.appendUInt32(0, to: &args)   // tag<> (empty)
        RPCProbe.appendUInt32(1, to: &args)   // minorversion
        RPCProbe.appendUInt32(0, to: &args)   // argarray<> (no ops)
        let request = RPCProbe.call(xid: 0x7673_6e66, program: 100003, version: 4, procedure: 1, args: args)
        var offers = false
        if case .success(let body)? = RPCProbe.roundTrip(fd: fd, request: request) {
            offers = RPCProbe.be32(body, 0) == 0   // COMPOUND4res.status == NFS4_OK
        }
        return ServerProbe(offersV41: offers, localCID: local >= 0 ? UInt32(local) : nil)
    }
}
