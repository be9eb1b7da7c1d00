import Exports
import HostFS
import ONCRPC
import Transport

/// Why a call was refused before it reached the filesystem. Each protocol
/// maps these to its own statuses (NFSv3: STALE, ACCES, ROFS).
public enum CallRefusal: Error, Sendable, Hashable {
    /// The handle is this server's, but the export it names is gone (removed by a reload).
    case staleExport
    /// The peer may not use this export.
    case noAccess
    /// A change on an export the peer has read-only.
    case readOnly
}

/// Who is calling, with what rights, on which export: settled once per call,
/// the same way for every NFS version.
public struct CallAuthorization: Sendable {
    public let access: ExportAccess
    public let credentials: Credentials

    /// Finds the handle's export in the *current* auth table and the peer's
    /// access to it, refuses changes on read-only exports, and squashes the
    /// credential. The one permission check of every NFS version.
    public static func authorize(_ handle: ObjectHandle, modifies: Bool, table: AuthTable, peer: PeerIdentity,
                                 credential: RPCCredential) throws(CallRefusal) -> CallAuthorization {
        // A handle this server made whose export a reload removed: the object is gone.
        guard let index = table.exportIndex(id: handle.exportID) else { throw .staleExport }
        guard let access = table.access(for: peer, exportAt: index) else { throw .noAccess }
        if modifies && access.readOnly { throw .readOnly }
        let mapped: MappedIdentity
        switch credential {
        case .sys(let p): mapped = access.map(uid: p.uid, gid: p.gid, gids: p.gids)
        case .none: mapped = MappedIdentity(uid: access.anonUID, gid: access.anonGID, gids: [])
        }
        return CallAuthorization(access: access,
                                 credentials: Credentials(uid: mapped.uid, gid: mapped.gid, groups: mapped.gids))
    }
}
