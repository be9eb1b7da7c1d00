#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Logging
import NIOCore
import NIOPosix

public enum ListenerError: Error, CustomStringConvertible {
    case vsockUnavailable(ListenSpec)
    case addressInUse(ListenSpec)
    case bindFailed(ListenSpec, Error)
    /// The kernel reported no usable peer address for an accepted connection.
    case unknownPeer

    public var description: String {
        switch self {
        case .vsockUnavailable(let spec):
            return "cannot listen on \(spec): this kernel has no AF_VSOCK support (load vhost_vsock on a VM host, or use --listen tcp:127.0.0.1:2049)"
        case .addressInUse(let spec):
            return "cannot listen on \(spec): address already in use (is another NFS server running? pick another port)"
        case .bindFailed(let spec, let error):
            return "cannot listen on \(spec): \(error)"
        case .unknownPeer:
            return "the kernel reported no peer address for a connection"
        }
    }
}

/// Binds listeners and names each accepted connection's peer from the kernel.
public enum Listener {
    /// Binds `spec`. For every accepted connection, `childInitializer` gets
    /// the channel and the peer identity the kernel reports for it; a
    /// connection whose identity cannot be read is closed. The listener accepts
    /// only while `budget` (shared by every listener of the process) has room.
    public static func bind(
        _ spec: ListenSpec,
        group: EventLoopGroup,
        budget: ConnectionBudget = .fromDescriptorLimit(keptForFiles: 0, listeners: 1, logger: Logger(label: "vsnfs")),
        childInitializer: @escaping @Sendable (Channel, PeerIdentity) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Channel> {
        if case .vsock = spec, vsnfs_vsock_available() == 0 {
            return group.next().makeFailedFuture(ListenerError.vsockUnavailable(spec))
        }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // One accept per read: the budget is asked before each.
            .serverChannelOption(.maxMessagesPerRead, value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptGate(budget: budget))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { channel in
                peerIdentity(of: channel, transport: spec).flatMap { peer in
                    childInitializer(channel, peer)
                }
            }
        let bound: EventLoopFuture<Channel>
        switch spec {
        case .vhostUser:
            // A device, not a socket NIO accepts on: VhostUserListener serves it.
            return group.next().makeFailedFuture(ListenerError.bindFailed(spec, ChannelError.operationUnsupported))
        case .vsock(let cid, let port):
            let address = VsockAddress(cid: cid.map { .init(rawValue: $0) } ?? .any, port: .init(rawValue: port))
            bound = bootstrap.bind(to: address)
        case .tcp(let host, let port):
            bound = bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1).bind(host: host, port: port)
        case .unix(let path):
            bound = bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
        case .hybrid(let udsPath, let port, _):
            // Whoever can connect to this socket is taken for the guest: owner only.
            // (A VMM running as another user needs the file's group or mode changed.)
            let path = ListenSpec.hybridSocketPath(udsPath: udsPath, port: port)
            bound = bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
                .flatMapThrowing { channel in
                    guard chmod(path, 0o600) == 0 else {
                        channel.close(promise: nil)
                        throw IOError(errnoCode: errno, reason: "chmod \(path)")
                    }
                    return channel
                }
        }
        return bound.flatMapErrorThrowing { error in
            if let io = error as? IOError, io.errnoCode == EADDRINUSE { throw ListenerError.addressInUse(spec) }
            if let io = error as? IOError, io.errnoCode == EAFNOSUPPORT { throw ListenerError.vsockUnavailable(spec) }
            throw ListenerError.bindFailed(spec, error)
        }
    }

    /// Reads the peer's identity from the kernel: SO_PEERNAME for vsock
    /// (the hypervisor-assigned CID), the socket's peer address for TCP,
    /// SO_PEERCRED for Unix sockets. A hybrid-vsock connection is the guest
    /// whose CID the listener was configured with (port 0: the VMM does not
    /// say which guest port the connection came from).
    public static func peerIdentity(of channel: Channel, transport: ListenSpec) -> EventLoopFuture<PeerIdentity> {
        guard let options = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        switch transport {
        case .vsock:
            let name: EventLoopFuture<sockaddr_vm> = options.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERNAME))
            return name.flatMapThrowing { name in
                guard name.svm_family == sa_family_t(AF_VSOCK) else { throw ListenerError.unknownPeer }
                return .vsock(cid: name.svm_cid, port: name.svm_port)
            }
        case .tcp:
            return channel.eventLoop.makeCompletedFuture { try inetIdentity(channel.remoteAddress) }
        case .vhostUser(_, let cid, _, _):
            // The CID this device was configured with; the guest's port is
            // known only to the device (VhostUserListener passes it on).
            return channel.eventLoop.makeSucceededFuture(.vsock(cid: cid, port: 0))
        case .unix:
            let cred: EventLoopFuture<vsnfs_ucred> = options.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            return cred.map { .unix(uid: $0.uid, gid: $0.gid, pid: $0.pid) }
        case .hybrid(_, _, let cid):
            return channel.eventLoop.makeSucceededFuture(.vsock(cid: cid, port: 0))
        }
    }

    static func inetIdentity(_ address: SocketAddress?) throws -> PeerIdentity {
        let port = UInt16(truncatingIfNeeded: address?.port ?? 0)
        switch address {
        case .v4(let a)?:
            return .inet(.v4(UInt32(bigEndian: a.address.sin_addr.s_addr)), port: port)
        case .v6(let a)?:
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            let hi = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let lo = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return .inet(IPAddress.v6(hi, lo).unmapped, port: port)
        default:
            throw ListenerError.unknownPeer
        }
    }
}
