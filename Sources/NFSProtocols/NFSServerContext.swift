import Exports
import HostFS
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Transport

/// What MOUNT v3 and NFSv3 share: the host filesystem, the thread pool that
/// runs every filesystem call, the exports with their stable ids, the
/// current auth table (swapped whole on reload), and the MOUNT list.
///
/// The Server layer builds one and hands it to `MountProgram` and `NFSProgram`:
///
///     let table = AuthTable(exports: exports)
///     let fs = try HostFileSystem(exports: NFSServerContext.exportRoots(for: exports), options: ...)
///     let server = NFSServerContext(authTable: table, hostFS: fs, threadPool: pool, logger: logger)
///     dispatcher.register(MountProgram(server: server))
///     dispatcher.register(NFSProgram(server: server))
///
/// On SIGHUP: `try server.replace(AuthTable(exports: newExports))`; the next
/// call of every connection is judged by the new table.
public final class NFSServerContext: Sendable {
    public let hostFS: HostFileSystem
    public let threadPool: NIOThreadPool
    public let logger: Logger

    /// The table and the export id -> index map derived from it, swapped together.
    struct Snapshot: Sendable {
        let table: AuthTable
        let ids: [UInt32]
        let indexByID: [UInt32: Int]

        init(table: AuthTable) {
            self.table = table
            self.ids = table.exports.map(NFSServerContext.exportID(for:))
            var byID: [UInt32: Int] = [:]
            for (index, id) in ids.enumerated() where byID[id] == nil { byID[id] = index }
            self.indexByID = byID
        }
    }

    private let snapshotBox: Mutex<Snapshot>
    let mounts: Mutex<[MountRecord]>

    public init(authTable: AuthTable, hostFS: HostFileSystem, threadPool: NIOThreadPool,
                logger: Logger = Logger(label: "vsnfs.nfs")) {
        self.hostFS = hostFS
        self.threadPool = threadPool
        self.logger = logger
        self.snapshotBox = Mutex(Snapshot(table: authTable))
        self.mounts = Mutex([])
    }

    public convenience init(exports: [Export], hostFS: HostFileSystem, threadPool: NIOThreadPool,
                            logger: Logger = Logger(label: "vsnfs.nfs")) {
        self.init(authTable: AuthTable(exports: exports), hostFS: hostFS, threadPool: threadPool, logger: logger)
    }

    /// The current auth table.
    public var authTable: AuthTable { snapshotBox.withLock { $0.table } }

    var snapshot: Snapshot { snapshotBox.withLock { $0 } }

    /// Installs a new auth table (SIGHUP reload) and tells HostFS about the
    /// exports it names; calls already running finish under the old table.
    /// Throws (and keeps the old table) if HostFS cannot open an export.
    public func replace(_ table: AuthTable) throws {
        try hostFS.setExports(Self.exportRoots(for: table.exports))
        snapshotBox.withLock { $0 = Snapshot(table: table) }
    }

    // MARK: export ids

    /// The id that goes into every file handle of `export`: `fsid=N` if given,
    /// else a hash of the host path with the top bit set (so it never meets an
    /// explicit fsid below 2^31). Stable across restarts while the exports
    /// file names the same directory.
    public static func exportID(for export: Export) -> UInt32 {
        if let fsid = export.fsid { return fsid }
        var hash: UInt32 = 2_166_136_261  // FNV-1a
        for byte in export.hostPath.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash | 0x8000_0000
    }

    /// What HostFS needs to open `exports`.
    public static func exportRoots(for exports: [Export]) -> [ExportRoot] {
        exports.map { ExportRoot(id: exportID(for: $0), hostPath: $0.hostPath) }
    }
}

/// One MNT a client made and has not unmounted (for DUMP).
struct MountRecord: Hashable, Sendable {
    /// The peer's host part: `vsock:3`, `127.0.0.1`, `unix`.
    var host: String
    var path: [UInt8]
}

extension PeerIdentity {
    /// The peer without its port, as MOUNT DUMP names clients.
    var mountHostName: String {
        switch self {
        case .vsock(let cid, _): return "vsock:\(cid)"
        case .inet(let address, _): return address.unmapped.description
        case .unix: return "unix"
        }
    }
}
