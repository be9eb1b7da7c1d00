import Glibc
import HostFS
import NFSCore

/// The one table from host filesystem errors to NFSv3 statuses.
///
/// errno values follow knfsd's `nfserrno()` table, with two deliberate
/// differences: descriptor exhaustion (EMFILE, ENFILE) answers
/// NFS3ERR_JUKEBOX so the client retries later instead of failing the
/// application, and ELOOP (a symlink met where a file was expected, since
/// the server never follows symlinks for a client) answers NFS3ERR_INVAL.
/// Anything not listed is NFS3ERR_IO.
public enum NFS3ErrorMapping {
    public static func status(for error: Error) -> NFS3Status {
        switch error {
        case let status as NFS3Status: return status
        case let fsError as FSError: return status(for: fsError)
        case let refusal as CallRefusal:
            switch refusal {
            case .staleExport: return .stale
            case .noAccess: return .acces
            case .readOnly: return .rofs
            }
        default: return .serverfault
        }
    }

    public static func status(for error: FSError) -> NFS3Status {
        switch error {
        case .errno(let e): return status(errno: e)
        case .stale: return .stale
        case .badHandle: return .badhandle
        case .invalidName: return .inval
        case .notSupported: return .notsupp
        case .otherFilesystem: return .xdev
        case .badCookie: return .badCookie
        case .tooSmall: return .toosmall
        case .notSync: return .notSync
        case .serverFault: return .serverfault
        }
    }

    public static func status(errno e: Int32) -> NFS3Status {
        switch e {
        case 0: return .ok
        case EPERM, ENOKEY: return .perm
        case ENOENT: return .noent
        case EIO, ETXTBSY, EREMOTEIO, EUCLEAN: return .io
        case ENXIO: return .nxio
        case EACCES: return .acces
        case EEXIST: return .exist
        case EXDEV: return .xdev
        case ENODEV: return .nodev
        case ENOTDIR: return .notdir
        case EISDIR: return .isdir
        case EINVAL, ELOOP: return .inval
        case EFBIG, E2BIG: return .fbig
        case ENOSPC: return .nospc
        case EROFS: return .rofs
        case EMLINK: return .mlink
        case ENAMETOOLONG: return .nametoolong
        case ENOTEMPTY: return .notempty
        case EDQUOT: return .dquot
        case ESTALE, EBADF: return .stale
        case EOPNOTSUPP, ENOTTY: return .notsupp  // ENOTSUP == EOPNOTSUPP on Linux
        case EAGAIN, ENOMEM, EMFILE, ENFILE, ETIMEDOUT, EINTR: return .jukebox
        default: return .io
        }
    }
}
