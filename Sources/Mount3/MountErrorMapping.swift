import NFS3

/// MOUNT v3's statuses, from the NFSv3 mapping of the same errors.
extension MountStatus {
    /// MOUNT v3 status for an error met while resolving a mount path.
    static func mapping(_ error: Error) -> MountStatus {
        switch NFS3ErrorMapping.status(for: error) {
        case .ok: return .ok
        case .perm: return .perm
        case .noent, .stale: return .noent
        case .acces: return .acces
        case .notdir: return .notdir
        case .inval: return .inval
        case .nametoolong: return .nametoolong
        case .notsupp: return .notsupp
        case .io: return .io
        default: return .serverfault
        }
    }
}
