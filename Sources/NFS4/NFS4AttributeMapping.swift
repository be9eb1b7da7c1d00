import Exports
import HostFS
import NFS4Wire

/// HostFS's attributes as fattr4 values, and a client's fattr4 as HostFS's
/// SetAttributes.
enum NFS4AttributeMapping {
    /// The change attribute (RFC 8881 §5.8.1.4): the ctime in nanoseconds.
    /// It must grow with every change, as the Linux client compares it as a
    /// counter (a smaller value is an older reply). HostFS has no i_version,
    /// so on a filesystem with coarse timestamps two changes in one tick share
    /// a value; the size and mtime the client also gets tell most of those
    /// apart, and the client's own changes refresh its cache from their replies.
    static func change(_ a: FileAttributes) -> UInt64 {
        UInt64(bitPattern: a.ctime.seconds) &* 1_000_000_000 &+ UInt64(a.ctime.nanoseconds)
    }

    static func changeInfo(_ wcc: WccData) -> ChangeInfo4 {
        let after = wcc.after.map(change) ?? 0
        guard let before = wcc.before else { return ChangeInfo4(atomic: false, before: after, after: after) }
        return ChangeInfo4(atomic: false, before: change(before), after: after)
    }

    /// Attributes that need the filesystem's statistics (statvfs).
    static let fsStatAttributes: Bitmap4 = [
        NFS4Attribute.filesAvail.rawValue, NFS4Attribute.filesFree.rawValue, NFS4Attribute.filesTotal.rawValue,
        NFS4Attribute.spaceAvail.rawValue, NFS4Attribute.spaceFree.rawValue, NFS4Attribute.spaceTotal.rawValue,
    ]

    /// What OPEN with EXCLUSIVE4_1 may set with the verifier (HostFS keeps the
    /// verifier in atime and mtime, as knfsd does, so not the times).
    static let exclusiveCreateAttributes = NFS4Attribute.writable.subtracting(
        [NFS4Attribute.timeAccessSet.rawValue, NFS4Attribute.timeModifySet.rawValue])

    static let maxIOSize: UInt64 = 1 << 20

    static func time(_ t: FSTime) -> NFSTime4 { NFSTime4(seconds: t.seconds, nseconds: t.nanoseconds) }

    /// Every attribute of `a` the table knows (the encoder keeps the requested ones).
    /// The fattr4 the client of `options` sees: owners mapped host -> guest
    /// (`map_uid`/`map_gid`, as NFSv3's fattr3).
    static func attributes(_ a: FileAttributes, handle: [UInt8]?, stat: FSStat?, leaseSeconds: UInt32,
                           for options: ExportOptions) -> NFS4Attributes {
        var r = NFS4Attributes()
        r.supportedAttrs = NFS4Attribute.all
        r.type = NFS4FileType(rawValue: a.type.rawValue)
        r.fhExpireType = NFS4Constants.fh4Persistent
        r.change = change(a)
        r.size = a.size
        r.linkSupport = true
        r.symlinkSupport = true
        r.namedAttr = false
        r.fsid = FSID4(major: a.fsid, minor: 0)
        r.uniqueHandles = true
        r.leaseTime = leaseSeconds
        r.rdattrError = .ok
        r.aclSupport = 0
        r.canSetTime = true
        r.caseInsensitive = false
        r.casePreserving = true
        r.chownRestricted = true
        if let handle { r.filehandle = NFS4FileHandle(handle) }
        r.fileid = a.fileid
        r.homogeneous = true
        r.maxFileSize = UInt64(Int64.max)
        r.maxLink = 65000
        r.maxName = 255
        r.maxRead = maxIOSize
        r.maxWrite = maxIOSize
        r.mode = a.mode & 0o7777
        r.noTrunc = true
        r.numLinks = a.nlink
        r.owner = NFS4Name(String(options.guestUID(a.uid)))
        r.ownerGroup = NFS4Name(String(options.guestGID(a.gid)))
        r.rawdev = SpecData4(specdata1: a.rdevMajor, specdata2: a.rdevMinor)
        r.spaceUsed = a.used
        r.timeAccess = time(a.atime)
        r.timeDelta = NFSTime4(seconds: 0, nseconds: 1)
        r.timeMetadata = time(a.ctime)
        r.timeModify = time(a.mtime)
        r.mountedOnFileid = a.fileid
        r.suppattrExclcreat = exclusiveCreateAttributes
        if let stat {
            r.filesAvail = stat.availableFiles
            r.filesFree = stat.freeFiles
            r.filesTotal = stat.totalFiles
            r.spaceAvail = stat.availableBytes
            r.spaceFree = stat.freeBytes
            r.spaceTotal = stat.totalBytes
        }
        return r
    }

    /// A client's owner or owner_group: numeric strings only (the Linux
    /// client sends them with AUTH_SYS); anything else is NFS4ERR_BADOWNER.
    static func id(_ name: NFS4Name) throws -> UInt32 {
        guard let string = name.string, let id = UInt32(string) else { throw NFS4Status.badowner }
        return id
    }

    static func timeChange(_ t: SetTime4?) -> TimeChange {
        switch t {
        case nil: return .dontChange
        case .serverTime?: return .serverTime
        case .clientTime(let t)?: return .client(FSTime(seconds: t.seconds, nanoseconds: t.nseconds))
        }
    }

    /// A client's fattr4 for SETATTR, CREATE and OPEN: the settable attributes,
    /// owners mapped guest -> host. An owner with no host id (see `IDMap`) is
    /// NFS4ERR_INVAL, as NFSv3 answers it.
    static func setAttributes(_ fattr: NFS4Fattr, from options: ExportOptions) throws -> (SetAttributes, Bitmap4) {
        let a = try NFS4Attributes(decoding: fattr, for: .set)
        let uid = try a.owner.map { try options.hostOwnerUID(id($0)) ?? { throw NFS4Status.inval }() }
        let gid = try a.ownerGroup.map { try options.hostOwnerGID(id($0)) ?? { throw NFS4Status.inval }() }
        let set = SetAttributes(mode: a.mode.map { $0 & 0o7777 }, uid: uid, gid: gid,
                                size: a.size, atime: timeChange(a.timeAccessSet), mtime: timeChange(a.timeModifySet))
        return (set, fattr.mask.trimmed())
    }
}
