import Exports
import HostFS
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Transport

/// What MOUNT v3 and NFSv3 share: the host filesystem (which holds the one
/// list of exports: the auth table and the opened roots, swapped whole on
/// reload), the thread pool that runs every filesystem call, and the MOUNT list.
///
/// The Server layer builds one and hands it to `MountProgram` and `NFSProgram`:
///
///     let fs = try HostFileSystem(exports: AuthTable(exports: exports), options: ...)
///     let server = NFSServerContext(hostFS: fs, threadPool: pool, logger: logger)
///     dispatcher.register(MountProgram(server: server))
///     dispatcher.register(NFSProgram(server: server))
///
/// On SIGHUP: `try server.replace(AuthTable(exports: newExports))`; the next
/// call of every connection is judged by the new table.
public final class NFSServerContext: Sendable {
    public let hostFS: HostFileSystem
    public let threadPool: NIOThreadPool
    public let logger: Logger
    let mounts: Mutex<[MountRecord]>

    public init(hostFS: HostFileSystem, threadPool: NIOThreadPool, logger: Logger = Logger(label: "vsnfs.nfs")) {
        self.hostFS = hostFS
        self.threadPool = threadPool
        self.logger = logger
        self.mounts = Mutex([])
    }

    /// The current auth table (HostFS's, so it always names the exports HostFS serves).
    public var authTable: AuthTable { hostFS.exportTable }

    /// Installs a new auth table (SIGHUP reload): HostFS opens the exports it
    /// names and swaps both at once; calls already running finish under the
    /// old table. Throws (and keeps the old table) if HostFS cannot open an export.
    public func replace(_ table: AuthTable) throws {
        try hostFS.setExports(table)
    }
}

/// One MNT a client made and has not unmounted (for DUMP).
struct MountRecord: Hashable, Sendable {
    /// The peer's host part: `vsock:3`, `127.0.0.1`, `unix`.
    var host: String
    var path: [UInt8]
}

extension PeerIdentity {
    /// The peer without its port, as MOUNT DUMP and `vsnfs status` name clients.
    public var mountHostName: String {
        switch self {
        case .vsock(let cid, _): return "vsock:\(cid)"
        case .inet(let address, _): return address.unmapped.description
        case .unix: return "unix"
        }
    }
}
