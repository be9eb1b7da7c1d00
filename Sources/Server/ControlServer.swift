#if canImport(Glibc)
import Glibc
#endif
import Control
import Logging
import NIOCore
import NIOPosix
import Transport

/// The control socket of a running server (`vsnfs status`, `vsnfs export
/// ...`): a Unix socket, 0600 in a 0700 directory, that answers one JSON
/// request line with one JSON line and closes. Only the server's own user
/// and root are answered (SO_PEERCRED); anyone else is closed unanswered.
/// Requests run off the event loops (`answer` hops to the thread pool for
/// file-system work); nothing here is on the NFS call path.
final class ControlServer: Sendable {
    let path: String
    private let channel: Channel
    /// The socket file this server bound, so that `close` removes it only if
    /// nobody has replaced it since.
    private let inode: UInt64

    private init(path: String, channel: Channel, inode: UInt64) {
        self.path = path
        self.channel = channel
        self.inode = inode
    }

    /// Largest request line accepted.
    static let maximumRequestLength = 1 << 20

    static func start(path: String, group: EventLoopGroup, logger: Logger,
                      answer: @escaping @Sendable (ControlRequest) async -> ControlResponse) async throws -> ControlServer {
        try ControlSocket.prepareToBind(path)
        let spec = ListenSpec.unix(path: path)
        let serverUID = geteuid()
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    Listener.peerIdentity(of: channel, transport: spec).flatMapThrowing { peer in
                        guard case .unix(let uid, _, _) = peer, uid == serverUID || uid == 0 else {
                            logger.warning("control socket: refused \(peer) (only uid \(serverUID) and root may use it)")
                            channel.close(promise: nil)
                            return
                        }
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(ByteToMessageHandler(LineDecoder(maximumLength: maximumRequestLength)))
                        try sync.addHandler(ControlRequestHandler(answer: answer, logger: logger))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        } catch {
            throw StartError("cannot listen on the control socket \(path): \(error)")
        }
        var st = stat()
        guard chmod(path, 0o600) == 0, stat(path, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            throw StartError("cannot set the mode of the control socket \(path): \(reason)")
        }
        logger.info("control socket \(path)")
        return ControlServer(path: path, channel: channel, inode: UInt64(st.st_ino))
    }

    func close() async {
        try? await self.channel.close()
        var st = stat()
        if stat(self.path, &st) == 0, UInt64(st.st_ino) == self.inode { unlink(self.path) }
    }
}

/// Whole lines (without their newline); a longer line than allowed closes the connection.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maximumLength: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: 0x0A) else {
            if buffer.readableBytes > maximumLength { throw ControlSocketError("control request longer than \(maximumLength) bytes") }
            return .needMoreData
        }
        let line = buffer.readSlice(length: newline - buffer.readerIndex)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}

/// One request, one answer, then the connection closes.
final class ControlRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let answer: @Sendable (ControlRequest) async -> ControlResponse
    private let logger: Logger
    private var answered = false

    init(answer: @escaping @Sendable (ControlRequest) async -> ControlResponse, logger: Logger) {
        self.answer = answer
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }
        self.answered = true
        let line = self.unwrapInboundIn(data)
        let channel = context.channel
        let answer = self.answer
        let request: ControlRequest
        do {
            request = try ControlRequest(jsonLine: line.readableBytesView)
        } catch {
            Self.reply(.failure("cannot read the request: \(error)"), on: channel)
            return
        }
        let answered = channel.eventLoop.makePromise(of: ControlResponse.self)
        answered.completeWithTask { await answer(request) }
        answered.futureResult.whenSuccess { response in Self.reply(response, on: channel) }
    }

    static func reply(_ response: ControlResponse, on channel: Channel) {
        let bytes = response.jsonLine()
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.logger.debug("control connection closed: \(error)")
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ControlRequestHandler: Sendable {}
