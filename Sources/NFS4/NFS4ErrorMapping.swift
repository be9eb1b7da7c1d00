import HostFS
import NFS3
import NFS4Wire
import NFSCore

/// Host filesystem errors as nfsstat4: NFSv3's one table (knfsd's errno
/// mapping, NFS3ErrorMapping), whose codes NFSv4 shares (RFC 8881 §15.1
/// keeps NFSv3's numbers, NFS3ERR_JUKEBOX is NFS4ERR_DELAY), and NFSv4's own
/// answers where the versions differ.
enum NFS4ErrorMapping {
    static func status(for error: Error) -> NFS4Status {
        switch error {
        case let status as NFS4Status: return status
        case let refusal as CallRefusal:
            switch refusal {
            case .staleExport: return .stale
            case .noAccess: return .access
            case .readOnly: return .rofs
            }
        case RangeLockError.openMode: return .openmode
        case let decode as NFS4Attributes.DecodeError: return decode.status
        case FSError.invalidName: return .badname
        default:
            let v3 = NFS3ErrorMapping.status(for: error)
            switch v3 {
            case .nodev: return .nxio
            case .notSync: return .serverfault
            default: return NFS4Status(rawValue: v3.rawValue) ?? .serverfault
            }
        }
    }
}
