import Exports
import HostFS

// Conversions between HostFS values and NFSv3 wire values.

extension NFS3Time {
    /// nfstime3 holds 32-bit seconds: times outside 1970...2106 wrap, as in knfsd.
    public init(_ t: FSTime) {
        self.init(seconds: UInt32(truncatingIfNeeded: t.seconds), nseconds: t.nanoseconds)
    }
}

extension FSTime {
    public init(_ t: NFS3Time) {
        self.init(seconds: Int64(t.seconds), nanoseconds: min(t.nseconds, 999_999_999))
    }
}

extension NFS3FileType {
    init(_ t: FileType) {
        self = NFS3FileType(rawValue: t.rawValue) ?? .regular
    }
}

extension NFS3Attributes {
    /// fattr3 as the client of `options` sees it: owners mapped host -> guest
    /// (`map_uid`/`map_gid`), so every reply's attributes come through here.
    public init(_ a: FileAttributes, for options: ExportOptions) {
        self.init(type: NFS3FileType(a.type), mode: a.mode, nlink: a.nlink,
                  uid: options.guestUID(a.uid), gid: options.guestGID(a.gid),
                  size: a.size, used: a.used, rdev: NFS3SpecData(major: a.rdevMajor, minor: a.rdevMinor),
                  fsid: a.fsid, fileid: a.fileid,
                  atime: NFS3Time(a.atime), mtime: NFS3Time(a.mtime), ctime: NFS3Time(a.ctime))
    }
}

extension NFS3PostOpAttributes {
    init(_ a: FileAttributes?, for options: ExportOptions) {
        self.init(a.map { NFS3Attributes($0, for: options) })
    }
}

extension NFS3WccData {
    /// wcc_data from HostFS's before/after attributes; empty with `nowcc`.
    init(_ w: WccData, for options: ExportOptions) {
        guard !options.noWCC else {
            self = .none
            return
        }
        self.init(before: w.before.map { NFS3Attributes($0, for: options).wccAttributes },
                  after: w.after.map { NFS3Attributes($0, for: options) })
    }
}

extension TimeChange {
    init(_ t: NFS3SetTime) {
        switch t {
        case .dontChange: self = .dontChange
        case .serverTime: self = .serverTime
        case .clientTime(let time): self = .client(FSTime(time))
        }
    }
}

extension SetAttributes {
    /// sattr3 from the client of `options`: owners mapped guest -> host. An
    /// owner with no host id (see `IDMap`) is NFS3ERR_INVAL, as chown(2) in a
    /// user namespace refuses an unmapped id.
    public init(_ s: NFS3SetAttributes, from options: ExportOptions) throws {
        var uid = s.uid, gid = s.gid
        if let u = uid { uid = try options.hostOwnerUID(u) ?? { throw NFS3Status.inval }() }
        if let g = gid { gid = try options.hostOwnerGID(g) ?? { throw NFS3Status.inval }() }
        self.init(mode: s.mode, uid: uid, gid: gid, size: s.size,
                  atime: TimeChange(s.atime), mtime: TimeChange(s.mtime))
    }
}

extension WriteStability {
    init(_ s: NFS3StableHow) {
        switch s {
        case .unstable: self = .unstable
        case .dataSync: self = .dataSync
        case .fileSync: self = .fileSync
        }
    }
}

extension NFS3StableHow {
    init(_ s: WriteStability) {
        switch s {
        case .unstable: self = .unstable
        case .dataSync: self = .dataSync
        case .fileSync: self = .fileSync
        }
    }
}

/// A failure arm with nothing known: what a result carries when the call
/// failed before any attributes were taken.
public protocol NFS3FailureArm: XDRCodable, Sendable, Hashable {
    static var empty: Self { get }
}

import XDR

extension NFS3Empty: NFS3FailureArm { public static var empty: NFS3Empty { NFS3Empty() } }
extension NFS3PostOpAttributes: NFS3FailureArm { public static var empty: NFS3PostOpAttributes { .none } }
extension NFS3WccData: NFS3FailureArm { public static var empty: NFS3WccData { .none } }
extension NFS3RenameWcc: NFS3FailureArm { public static var empty: NFS3RenameWcc { .none } }
extension NFS3LinkWcc: NFS3FailureArm { public static var empty: NFS3LinkWcc { .none } }
