#if canImport(Glibc)
import Glibc
#endif
import Control
import CSupport
import Dispatch
import Exports
import HostFS
import Logging
import Mount3
import NFS3
import NFS4
import NFSCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import Transport

/// The whole server: exports, host filesystem, NFS and MOUNT programs, and
/// the listeners, with reload on SIGHUP and clean shutdown on SIGTERM/SIGINT.
public final class VSNFSServer: Sendable {
    public struct Configuration: Sendable {
        public var exports: ExportsSource
        /// Listeners, record size limit, calls in flight per connection.
        public var rpc: RPCServer.Configuration
        /// nil: /var/lib/vsnfs as root, else $XDG_STATE_HOME/vsnfs or ~/.local/state/vsnfs.
        public var stateDirectory: String?
        public var threads: Int
        public var openFiles: Int?
        /// Register NFS and MOUNT on the TCP listeners with the local rpcbind.
        public var registerWithRPCBind: Bool
        /// The control socket (`vsnfs status`, `vsnfs export ...`); nil: none.
        public var controlSocket: String?
        /// NFSv4.1 lease period (RFC 8881 §8.3): clients renew within it; a
        /// recalled delegation not returned within it is revoked.
        public var nfs4LeaseTime: Duration = .seconds(90)
        /// Offer NFSv4.1 read delegations (RFC 8881 §10.2).
        public var nfs4Delegations = true

        public init(exports: ExportsSource, rpc: RPCServer.Configuration = .init(),
                    stateDirectory: String? = nil, threads: Int = 16, openFiles: Int? = nil,
                    registerWithRPCBind: Bool = false, controlSocket: String? = nil) {
            self.controlSocket = controlSocket
            self.exports = exports
            self.rpc = rpc
            self.stateDirectory = stateDirectory
            self.threads = threads
            self.openFiles = openFiles
            self.registerWithRPCBind = registerWithRPCBind
        }
    }

    public let configuration: Configuration
    public let rpcServer: RPCServer
    public let context: NFSServerContext
    /// The NFSv4.1 program, for `vsnfs status`'s sessions.
    let nfs4: NFS4Program
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool
    let logger: Logger
    private let rpcbind: RPCBindRegistration?
    /// The exports as served: what the configuration gave (the base) and the
    /// runtime changes on top. Every change of the served exports (a reload,
    /// `export add`, `export remove`) is made under this lock, one at a time, and
    /// installed through `NFSServerContext.replace`. A pthread lock: it is held
    /// across HostFS opening the exports, and taken only by those rare changes.
    let exportsState: NIOLockedValueBox<ExportsState>
    let control = NIOLockedValueBox<ControlServer?>(nil)

    struct ExportsState {
        var base: [Export]
        var overlay = ExportOverlay()
        var served: [ServedExport]
    }

    private init(configuration: Configuration, rpcServer: RPCServer, context: NFSServerContext,
                 nfs4: NFS4Program, group: MultiThreadedEventLoopGroup, threadPool: NIOThreadPool,
                 rpcbind: RPCBindRegistration?, base: [Export], logger: Logger) {
        self.exportsState = NIOLockedValueBox(ExportsState(
            base: base, served: ExportOverlay().applied(to: base, baseOrigin: configuration.exports.origin).exports))
        self.rpcbind = rpcbind
        self.configuration = configuration
        self.rpcServer = rpcServer
        self.context = context
        self.nfs4 = nfs4
        self.group = group
        self.threadPool = threadPool
        self.logger = logger
    }

    /// Loads the exports, opens them, and binds every listener. Each failure
    /// is one line a person can act on.
    public static func start(configuration: Configuration, logger: Logger) async throws -> VSNFSServer {
        raiseDescriptorLimit(logger: logger)
        let exports = try configuration.exports.load()
        let stateDirectory = try configuration.stateDirectory ?? defaultStateDirectory()
        let hostFS: HostFileSystem
        do {
            hostFS = try HostFileSystem(
                exports: AuthTable(exports: exports),
                options: HostFSOptions(stateDirectory: stateDirectory, openFileLimit: configuration.openFiles),
                logger: Logger(label: "vsnfs.hostfs"))
        } catch let error as StateDirectoryError {
            throw StartError("\(error); create it (mkdir -p \(error.path), writable by this user) or pass --state-dir DIR")
        } catch {
            throw StartError("cannot open exports or state directory \(stateDirectory): \(error)")
        }
        let threadPool = NIOThreadPool(numberOfThreads: max(1, configuration.threads))
        threadPool.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let context = NFSServerContext(hostFS: hostFS, threadPool: threadPool, logger: Logger(label: "vsnfs.nfs"))
        let nfs4 = NFS4Program(server: context, leaseTime: configuration.nfs4LeaseTime,
                               delegations: configuration.nfs4Delegations, timers: group.next())
        let programs: [any RPCProgram] = [MountProgram(server: context), NFS3Program(server: context), nfs4]
        let rpcServer = RPCServer(
            configuration: configuration.rpc,
            programs: programs, group: group, keptForFiles: hostFS.openFileLimit, logger: logger)
        var rpcbind: RPCBindRegistration?
        do {
            try await rpcServer.start()
            if configuration.registerWithRPCBind {
                let registration = RPCBindRegistration(programs: rpcServer.servedVersions,
                                                       listeners: rpcServer.listeningSpecs)
                do {
                    try registration.register()
                } catch {
                    throw StartError("cannot register with rpcbind at \(registration.socketPath): \(error) (is rpcbind running?)")
                }
                rpcbind = registration
                logger.info("registered \(registration.entries.count) program version(s) with rpcbind")
                for spec in registration.unregistered {
                    logger.warning("not registered with rpcbind: \(spec) (rpcbind keeps one address per program, version and transport; clients of this listener give its port)")
                }
            }
        } catch {
            await rpcServer.stop()
            try? await group.shutdownGracefully()
            try? await threadPool.shutdownGracefully()
            throw error
        }
        for export in exports {
            logger.info("exporting \(export.hostPath) as \(export.mountPath)")
        }
        let server = VSNFSServer(configuration: configuration, rpcServer: rpcServer, context: context,
                                 nfs4: nfs4, group: group, threadPool: threadPool, rpcbind: rpcbind, base: exports, logger: logger)
        if let path = configuration.controlSocket {
            do {
                let control = try await ControlServer.start(path: path, group: group, logger: logger) {
                    [weak server] request in
                    guard let server else { return .failure("the server is shutting down") }
                    return await server.answer(request)
                }
                server.control.withLockedValue { $0 = control }
            } catch {
                await server.shutdown()
                throw error
            }
        }
        return server
    }

    /// Re-reads the exports and swaps the auth table, runtime changes
    /// (`vsnfs export add/remove`) replayed on top; live connections are
    /// judged by the new table from their next call. A bad file keeps the
    /// old table and logs every error.
    public func reload() {
        self.exportsState.withLockedValue { state in
            do {
                let base = try self.configuration.exports.load()
                let (served, skipped) = state.overlay.applied(to: base, baseOrigin: self.configuration.exports.origin)
                try self.context.replace(AuthTable(exports: served.map(\.export)))
                state.base = base
                state.served = served
                for change in skipped { self.logger.warning("a runtime export change no longer applies: \(change)") }
                self.logger.notice("reloaded exports: \(served.count) export(s)")
            } catch {
                self.logger.error("reload failed, keeping the previous exports:\n\(error)")
            }
        }
    }

    /// Applies a runtime change (`vsnfs export add/remove`) on top of the exports
    /// served now, and keeps it across reloads. Throws, changing nothing, if it
    /// does not apply or HostFS cannot open the export. Blocks: not on an event loop.
    public func change(_ change: ExportOverlay.Change) throws -> [ServedExport] {
        try self.exportsState.withLockedValue { state in
            var overlay = state.overlay
            let served = try overlay.record(change, base: state.base, baseOrigin: self.configuration.exports.origin)
            try self.context.replace(AuthTable(exports: served.map(\.export)))
            state.overlay = overlay
            state.served = served
            return served
        }
    }

    /// The exports served now, with where each client rule came from.
    public var servedExports: [ServedExport] { self.exportsState.withLockedValue { $0.served } }

    /// Closes the control socket, listeners and connections, and stops the threads.
    public func shutdown() async {
        if let control = self.control.withLockedValue({ c -> ControlServer? in defer { c = nil }; return c }) {
            await control.close()
        }
        self.rpcbind?.unregister()
        // Connections first, while their event loops run; then the pool, whose calls
        // still complete on live loops; then the loops.
        await self.rpcServer.stop()
        try? await self.threadPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
    }

    /// Serves until SIGTERM or SIGINT; SIGHUP reloads the exports. Signals
    /// that arrived while the server was starting are acted on here.
    public func run(until signals: SignalEvents) async {
        for await signo in signals.events {
            if signo == SIGHUP {
                self.reload()
                continue
            }
            self.logger.notice("signal \(signo): shutting down")
            break
        }
        await self.shutdown()
    }

    public static func defaultStateDirectory() throws -> String {
        if geteuid() == 0 { return "/var/lib/vsnfs" }
        if let xdg = getenv("XDG_STATE_HOME").map({ String(cString: $0) }), xdg.hasPrefix("/") { return xdg + "/vsnfs" }
        if let home = getenv("HOME").map({ String(cString: $0) }), home.hasPrefix("/") { return home + "/.local/state/vsnfs" }
        throw StartError("no state directory: set --state-dir, XDG_STATE_HOME or HOME")
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as Go's runtime does for every
/// server: the usual soft limit of 1,024 holds about 460 connections once the open-file
/// cache has its half, while the hard limit an administrator set is what they meant to
/// allow. Connections and cached files are both budgeted from the result.
func raiseDescriptorLimit(logger: Logger) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    let soft = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
        logger.debug("raised the file descriptor limit from \(soft) to \(limit.rlim_max)")
    }
}

public struct StartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// SIGTERM, SIGINT and SIGHUP as a stream. Create it before the server
/// starts: from then on no signal is lost or acted on by its default
/// disposition, even one that arrives while listeners are still binding.
///
/// `@unchecked Sendable`: its one mutable part, the dispatch source, is set up
/// in `init` and then touched only by Dispatch on its own queue; Dispatch's
/// source types are not marked Sendable on Linux, so the compiler cannot see it.
public final class SignalEvents: @unchecked Sendable {
    public let events: AsyncStream<Int32>
    private let source: DispatchSourceRead

    public init(_ signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]) {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.events = stream
        let fd = vsnfs_signal_pipe(signals, Int32(signals.count))
        precondition(fd >= 0, "cannot install signal handlers: \(String(cString: strerror(-fd)))")
        // The handler only writes a byte; the pipe holds it until this
        // source reads it, however late the source is armed.
        self.source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue(label: "vsnfs.signals"))
        self.source.setEventHandler {
            var byte: UInt8 = 0
            while read(fd, &byte, 1) == 1 { continuation.yield(Int32(byte)) }
        }
        self.source.resume()
    }
}
