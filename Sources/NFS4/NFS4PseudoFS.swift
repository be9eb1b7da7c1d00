import Exports
import HostFS
import NFS4Wire
import NFSCore
import Transport

/// A current or saved filehandle: a directory of the pseudo file system
/// (its path from `/`), or an object of an export.
enum NFS4Node: Sendable, Hashable {
    case pseudo([[UInt8]])
    case object(ObjectHandle)
}

/// The pseudo file system one peer sees (RFC 8881 §7): the exports it may
/// use at their mount paths, and the directories on the way to them. An
/// export at `/` is the root itself. Built from the current auth table for
/// each COMPOUND that needs it, so a reload changes what the next call sees.
struct NFS4PseudoFS {
    let fs: HostFileSystem
    /// The visible exports: mount path components and export id.
    let exports: [(path: [[UInt8]], id: UInt32)]
    /// The mount paths of the exports this peer may not use.
    let hidden: [[[UInt8]]]

    init(server: NFSServerContext, peer: PeerIdentity) {
        let table = server.authTable
        self.fs = server.hostFS
        let paths = table.exports.map { ExportPaths.components(Array($0.mountPath.utf8)) }
        let visible = table.exports.indices.map { table.access(for: peer, exportAt: $0) != nil }
        self.exports = table.exports.indices.filter { visible[$0] }.map { (paths[$0], table.ids[$0]) }
        self.hidden = table.exports.indices.filter { !visible[$0] }.map { paths[$0] }
    }

    /// What `path` names: an export's root, a pseudo directory on the way to
    /// one, or nothing. A path on the way to or at an export the peer may not
    /// use is NFS4ERR_ACCESS, as MOUNT's MNT answers it (the guest's mount
    /// then says it was refused); any other, NFS4ERR_NOENT. READDIR lists
    /// neither.
    func node(at path: [[UInt8]]) throws -> NFS4Node {
        if let export = exports.first(where: { $0.path == path }) {
            return .object(try fs.rootHandle(exportID: export.id))
        }
        if path.isEmpty || exports.contains(where: { Self.isBelow(path, $0.path) }) {
            return .pseudo(path)
        }
        if hidden.contains(where: { $0 == path || Self.isBelow(path, $0) }) { throw NFS4Status.access }
        throw NFS4Status.noent
    }

    /// Whether `path` is a proper prefix of `exportPath`.
    static func isBelow(_ path: [[UInt8]], _ exportPath: [[UInt8]]) -> Bool {
        exportPath.count > path.count && Array(exportPath.prefix(path.count)) == path
    }

    var root: NFS4Node {
        get throws { try node(at: []) }
    }

    /// The names in the pseudo directory at `path`, sorted.
    func children(of path: [[UInt8]]) -> [[UInt8]] {
        Set(exports.filter { Self.isBelow(path, $0.path) }
            .map { $0.path[path.count] }).sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// The mount path of the export with this id, if the peer sees it.
    func mountPath(exportID: UInt32) -> [[UInt8]]? {
        exports.first { $0.id == exportID }?.path
    }

    // MARK: Handles

    /// The name a pseudo directory's handle carries: FNV-1a of its path.
    static func digest(_ path: [[UInt8]]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for component in path {
            for byte in [0x2F] + component {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
        }
        return hash
    }

    func handle(_ node: NFS4Node) -> NFS4FileHandle {
        switch node {
        case .pseudo(let path): return NFS4FileHandle(fs.pseudoHandle(name: Self.digest(path)))
        case .object(let h): return NFS4FileHandle(h.bytes)
        }
    }

    /// PUTFH: an object handle (checked by HostFS: BADHANDLE), or a pseudo
    /// directory this peer can still see (else STALE).
    func node(handle: NFS4FileHandle) throws -> NFS4Node {
        if let name = fs.pseudoHandleName(handle.bytes) {
            var candidates: Set<[[UInt8]]> = [[]]
            for export in exports where !export.path.isEmpty {
                for length in 0..<export.path.count { candidates.insert(Array(export.path.prefix(length))) }
            }
            guard let path = candidates.first(where: { Self.digest($0) == name }) else { throw NFS4Status.stale }
            return .pseudo(path)
        }
        return .object(try fs.decodeHandle(handle.bytes))
    }

    // MARK: Attributes

    /// The fsid pseudo directories report: none an export has (HostFS's fsids
    /// are the export's id or the device's).
    static let fsid = FSID4(major: UInt64.max, minor: UInt64.max)

    /// A pseudo directory's attributes: read-only, owned by root.
    func attributes(_ path: [[UInt8]], epoch: UInt32) -> NFS4Attributes {
        var a = NFS4Attributes()
        a.type = .directory
        a.change = UInt64(epoch)
        a.size = 4096
        a.fsid = Self.fsid
        a.fileid = Self.digest(path) | 1 << 63
        a.mountedOnFileid = a.fileid
        a.mode = 0o555
        a.numLinks = UInt32(2 + children(of: path).count)
        a.owner = NFS4Name("0")
        a.ownerGroup = NFS4Name("0")
        a.rawdev = SpecData4(specdata1: 0, specdata2: 0)
        a.spaceUsed = 4096
        let time = NFSTime4(seconds: 0, nseconds: 0)
        a.timeAccess = time
        a.timeMetadata = time
        a.timeModify = time
        return a
    }
}
