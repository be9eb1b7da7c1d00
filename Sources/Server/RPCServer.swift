import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import Transport

/// Listens on every configured transport and serves the given RPC programs
/// on each accepted connection.
public final class RPCServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: [ListenSpec]
        public var maximumRecordSize: Int
        public var maximumCallsInFlight: Int

        public init(listen: [ListenSpec] = [ListenSpec.defaultSpec],
                    maximumRecordSize: Int = RecordMarking.defaultMaximumRecordSize,
                    maximumCallsInFlight: Int = RPCConnectionHandler.defaultMaximumCallsInFlight) {
            self.listen = listen
            self.maximumRecordSize = maximumRecordSize
            self.maximumCallsInFlight = maximumCallsInFlight
        }
    }

    public let configuration: Configuration
    private let dispatcher: RPCDispatcher
    /// Every (program, version) this server answers.
    public var servedVersions: [(program: UInt32, version: UInt32)] { dispatcher.registeredVersions }
    private let group: EventLoopGroup
    private let logger: Logger
    private let channels = NIOLockedValueBox<[(ListenSpec, Channel)]>([])
    private let devices = NIOLockedValueBox<[VhostUserListener]>([])
    /// Established connections, so that `stop` closes each while the event loops and
    /// the thread pool still run: a connection the group's shutdown cut off mid-call
    /// kept its handler and everything it reaches alive to the end of the process.
    private let connections = ConnectionRegistry()

    /// Connections held at once, across every listener.
    public let connectionBudget: ConnectionBudget

    /// `keptForFiles`: descriptors the connections must leave to the open-file cache.
    public init(configuration: Configuration, programs: [any RPCProgram], group: EventLoopGroup,
                keptForFiles: Int = 0, logger: Logger) {
        self.configuration = configuration
        self.dispatcher = RPCDispatcher(programs: programs)
        self.group = group
        self.logger = logger
        self.connectionBudget = .fromDescriptorLimit(keptForFiles: keptForFiles,
                                                     listeners: configuration.listen.count, logger: logger)
    }

    /// Binds every listener, or none: if one fails, those already bound are closed.
    public func start() async throws {
        var bound: [(ListenSpec, Channel)] = []
        var devices: [VhostUserListener] = []
        do {
            for spec in self.configuration.listen {
                if case .vhostUser = spec {
                    devices.append(try VhostUserListener(spec, group: self.group, logger: self.logger,
                                                         budget: self.connectionBudget) {
                        [dispatcher, configuration, logger, connections] channel, peer in
                        connections.add(channel, peer: peer, listener: spec)
                        return Self.configureConnection(channel: channel, peer: peer, dispatcher: dispatcher,
                                                        configuration: configuration, logger: logger)
                    })
                    self.logger.info("listening on \(spec)")
                    continue
                }
                let channel = try await Listener.bind(spec, group: self.group, budget: self.connectionBudget) {
                    [dispatcher, configuration, logger, connections] channel, peer in
                    connections.add(channel, peer: peer, listener: spec)
                    return Self.configureConnection(channel: channel, peer: peer, dispatcher: dispatcher,
                                                    configuration: configuration, logger: logger)
                }.get()
                bound.append((spec, channel))
                self.logger.info("listening on \(Self.describe(spec, channel))")
            }
        } catch {
            for (_, channel) in bound { try? await channel.close() }
            for device in devices { device.close() }
            throw error
        }
        self.channels.withLockedValue { $0 = bound }
        let budget = self.connectionBudget
        self.logger.info("accepting up to \(budget.limit) connections at once (file descriptor limit \(budget.descriptorLimit), \(budget.keptForFiles) kept for open files)")
        self.devices.withLockedValue { $0 = devices }
    }

    /// The bound listeners, with the real port when port 0 was asked for.
    public var listeningSpecs: [ListenSpec] {
        self.channels.withLockedValue { $0.map { spec, channel in Self.withBoundPort(spec, channel) } }
            + self.devices.withLockedValue { $0.map(\.spec) }
    }

    /// Closes the listeners, then every established connection (calls in flight
    /// finish into closed connections). Call before the event loops and the thread
    /// pool shut down.
    public func stop() async {
        let channels = self.channels.withLockedValue { c -> [(ListenSpec, Channel)] in defer { c = [] }; return c }
        for (_, channel) in channels { try? await channel.close() }
        let devices = self.devices.withLockedValue { d -> [VhostUserListener] in defer { d = [] }; return d }
        for device in devices { device.close() }
        for connection in self.connections.all() { try? await connection.channel.close() }
    }

    /// One established connection as `vsnfs status` shows it.
    public struct ConnectionSnapshot: Sendable {
        public var peer: PeerIdentity
        /// The listener it arrived on (with the real port of a `tcp:HOST:0` listener).
        public var listener: ListenSpec
        public var connectedSeconds: Int
        /// Calls received, by operation, with the names their programs give them.
        public var operations: [(operation: RPCOperation, program: String, procedure: String, count: Int)]
        /// Calls past the counters' bounds (see `RPCOperationCounts`).
        public var otherCalls: Int
    }

    /// Every established connection and its call counts, read on each connection's
    /// own event loop (the counts live there, unlocked). Do not call on an event loop.
    public func connectionSnapshots() async -> [ConnectionSnapshot] {
        let now = NIODeadline.now()
        let entries = self.connections.all()
        // Asked of every loop at once, then gathered.
        let counts = entries.map { entry in
            let channel = entry.channel
            return channel.eventLoop.submit { () -> RPCOperationCounts in
                (try? channel.pipeline.syncOperations.handler(type: RPCConnectionHandler.self))?.operationCounts
                    ?? RPCOperationCounts()
            }
        }
        var snapshots: [ConnectionSnapshot] = []
        for (entry, counted) in zip(entries, counts) {
            let counts = (try? await counted.get()) ?? RPCOperationCounts()
            let operations = counts.counted.sorted { $0.key < $1.key }.map { operation, count in
                let names = self.dispatcher.names(of: operation)
                return (operation, names.program, names.procedure, count)
            }
            snapshots.append(ConnectionSnapshot(
                peer: entry.peer, listener: Self.withBoundPort(entry.listener, entry.channel),
                connectedSeconds: Int((now - entry.since).nanoseconds / 1_000_000_000), operations: operations,
                otherCalls: counts.others))
        }
        return snapshots
    }

    static func configureConnection(channel: Channel, peer: PeerIdentity, dispatcher: RPCDispatcher,
                                    configuration: Configuration, logger: Logger) -> EventLoopFuture<Void> {
        logger.debug("connection from \(peer)")
        return channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(ByteToMessageHandler(RecordMarkingDecoder(maximumRecordSize: configuration.maximumRecordSize)))
            try sync.addHandler(RPCConnectionHandler(peer: peer, dispatcher: dispatcher,
                                                     maximumCallsInFlight: configuration.maximumCallsInFlight,
                                                     logger: logger))
        }
    }

    /// A TCP spec with the port its listener (or a connection it accepted) is bound to:
    /// the real one when port 0 was asked for.
    private static func withBoundPort(_ spec: ListenSpec, _ channel: Channel) -> ListenSpec {
        if case .tcp(let host, _) = spec, let port = channel.localAddress?.port { return .tcp(host: host, port: port) }
        return spec
    }

    private static func describe(_ spec: ListenSpec, _ channel: Channel) -> String {
        if case .tcp = spec { return Self.withBoundPort(spec, channel).description }
        if case .hybrid(let udsPath, let port, _) = spec {
            return "\(spec) (socket \(ListenSpec.hybridSocketPath(udsPath: udsPath, port: port)))"
        }
        return spec.description
    }
}

/// The open connections of a server, each removed when it closes. A pthread lock
/// (NIO's), not `Synchronization.Mutex`: every event loop takes it as connections
/// open and close, and Mutex's contended path is invisible to the thread sanitizer.
final class ConnectionRegistry: Sendable {
    struct Entry: Sendable {
        var channel: Channel
        var peer: PeerIdentity
        var listener: ListenSpec
        var since: NIODeadline
    }

    private let open = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])

    func add(_ channel: Channel, peer: PeerIdentity, listener: ListenSpec) {
        let id = ObjectIdentifier(channel)
        let entry = Entry(channel: channel, peer: peer, listener: listener, since: .now())
        self.open.withLockedValue { $0[id] = entry }
        channel.closeFuture.whenComplete { [self] _ in self.open.withLockedValue { _ = $0.removeValue(forKey: id) } }
    }

    /// Oldest first.
    func all() -> [Entry] { self.open.withLockedValue { $0.values.sorted { $0.since < $1.since } } }
}
