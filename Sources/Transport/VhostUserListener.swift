import Logging
import NIOCore
import NIOPosix
import VirtioVsock

/// A `vhost-user:PATH:cid=N[:port=P]` listener: a vhost-user-vsock device for
/// one VM whose accepted guest connections become ordinary NIO channels.
///
/// The device hands each guest connection over as one end of a Unix socket
/// pair; NIO adopts that end (`ClientBootstrap.withConnectedSocket`), so the
/// RPC pipeline, back-pressure and the auth table apply unchanged. The peer
/// identity is `vsock:N:guest-port`, N from the spec, never from the guest.
public final class VhostUserListener: Sendable {
    public let spec: ListenSpec
    private let device: VhostUserVsockDevice

    /// Starts the device on the spec's socket. Guest connections to the spec's
    /// port go to `childInitializer`; connections to any other port are
    /// forwarded if the spec says forward=BASE, and reset otherwise.
    /// Guest connections count in `budget` (two descriptors each) while open;
    /// past it they are reset.
    public init(
        _ spec: ListenSpec,
        group: EventLoopGroup,
        logger: Logger,
        budget: ConnectionBudget,
        childInitializer: @escaping @Sendable (Channel, PeerIdentity) -> EventLoopFuture<Void>
    ) throws {
        guard case .vhostUser(let path, let cid, let port, let forward) = spec else {
            throw ListenerError.bindFailed(spec, ChannelError.operationUnsupported)
        }
        self.spec = spec
        let configuration = VhostUserVsockConfiguration(socketPath: path, guestCID: UInt64(cid), ports: [port],
                                                        forwardBase: forward)
        do {
            device = try VhostUserVsockDevice(
                configuration: configuration, logger: logger,
                admit: { budget.admitWithoutWaiting(descriptors: Self.descriptorsPerConnection) }
            ) { connection in
                let peer = PeerIdentity.vsock(cid: cid, port: connection.guestPort)
                ClientBootstrap(group: group)
                    .channelOption(.allowRemoteHalfClosure, value: false)
                    .channelInitializer { channel in childInitializer(channel, peer) }
                    .withConnectedSocket(connection.fd)
                    .whenComplete { result in
                        switch result {
                        case .success(let channel):
                            channel.closeFuture.whenComplete { _ in
                                budget.closed(descriptors: Self.descriptorsPerConnection)
                            }
                        case .failure(let error):
                            // Not closed here: NIO may already own (and close) the
                            // descriptor, depending on where adoption failed.
                            budget.closed(descriptors: Self.descriptorsPerConnection)
                            logger.warning("guest connection from \(peer) not adopted: \(error)")
                        }
                    }
            }
        } catch {
            throw ListenerError.bindFailed(spec, error)
        }
    }

    /// The socket pair's two ends: the device's and the channel's.
    static let descriptorsPerConnection = 2

    /// What the device is doing (front-end connected, connections, broken).
    public var status: VhostUserVsockStatus { device.status }

    /// Stops the device: the front-end's socket and every guest connection close.
    public func close() { device.shutdown() }
}
