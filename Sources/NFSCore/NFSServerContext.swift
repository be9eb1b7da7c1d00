import Exports
import HostFS
import Logging
import NIOPosix
import Transport

/// What every NFS protocol version and MOUNT share: the host filesystem (which
/// holds the one list of exports: the auth table and the opened roots, swapped
/// whole on reload) and the thread pool that runs every filesystem call.
///
/// The Server layer builds one and hands it to `MountProgram` and `NFS3Program`:
///
///     let fs = try HostFileSystem(exports: AuthTable(exports: exports), options: ...)
///     let server = NFSServerContext(hostFS: fs, threadPool: pool, logger: logger)
///     dispatcher.register(MountProgram(server: server))
///     dispatcher.register(NFS3Program(server: server))
///
/// On SIGHUP: `try server.replace(AuthTable(exports: newExports))`; the next
/// call of every connection is judged by the new table.
public final class NFSServerContext: Sendable {
    public let hostFS: HostFileSystem
    public let threadPool: NIOThreadPool
    public let logger: Logger
    /// NFSv4's share reservations, which NFSv3 READs, WRITEs and truncations meet.
    public let shareReservations = ShareReservations()
    /// What every modifying call asks first (NFSv4 delegations to recall).
    public let fileChanges = FileChangeGates()

    public init(hostFS: HostFileSystem, threadPool: NIOThreadPool, logger: Logger = Logger(label: "vsnfs.nfs")) {
        self.hostFS = hostFS
        self.threadPool = threadPool
        self.logger = logger
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

/// The RPC program numbers of the NFS family.
public enum NFSProgramNumber {
    public static let nfs: UInt32 = 100003
    public static let mount: UInt32 = 100005
}
