import NFS3
import NIOCore
import XDR

// MOUNT v3 (RFC 1813 appendix I) wire types.

public enum MountLimits {
    /// MNTPATHLEN.
    public static let maxPathLength = 1024
    /// MNTNAMLEN.
    public static let maxNameLength = 255
    /// FHSIZE3.
    public static let maxHandleSize = 64
    /// Entries accepted when decoding a mount or export list (replies only).
    static let maxListEntries = 1 << 16
}

/// MOUNT v3 procedure numbers.
public enum MountProcedure: UInt32, Sendable, Hashable, CaseIterable {
    case null = 0, mnt = 1, dump = 2, umnt = 3, umntall = 4, export = 5
}

/// mountstat3.
public enum MountStatus: UInt32, Sendable, Hashable, Error {
    case ok = 0
    case perm = 1
    case noent = 2
    case io = 5
    case acces = 13
    case notdir = 20
    case inval = 22
    case nametoolong = 63
    case notsupp = 10004
    case serverfault = 10006
}

/// dirpath argument of MNT and UMNT.
public struct MountPathArgs: Sendable, Hashable, XDRCodable {
    public var path: NFS3Name
    public init(path: NFS3Name) { self.path = path }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.path = try NFS3Name(xdr: &buffer, maxLength: MountLimits.maxPathLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) { path.encode(xdr: &buffer) }
}

/// mountres3.
public enum MountMntResult: Sendable, Hashable, XDRCodable {
    case ok(handle: NFS3FileHandle, authFlavors: [UInt32])
    case fail(MountStatus)

    public init(xdr buffer: inout ByteBuffer) throws {
        let status: MountStatus = try buffer.readXDREnum()
        if status == .ok {
            let handle = try NFS3FileHandle(xdr: &buffer)
            let flavors = try buffer.readXDRArray(maxCount: 64) { try $0.readXDRUInt32() }
            self = .ok(handle: handle, authFlavors: flavors)
        } else {
            self = .fail(status)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .ok(let handle, let flavors):
            buffer.writeXDREnum(MountStatus.ok)
            handle.encode(xdr: &buffer)
            buffer.writeXDRArray(flavors) { $0.writeXDRUInt32($1) }
        case .fail(let status):
            buffer.writeXDREnum(status)
        }
    }
}

/// One mountbody of DUMP.
public struct MountEntry: Sendable, Hashable {
    public var hostname: NFS3Name
    public var directory: NFS3Name
    public init(hostname: NFS3Name, directory: NFS3Name) {
        self.hostname = hostname
        self.directory = directory
    }
}

/// mountlist (DUMP result).
public struct MountDumpResult: Sendable, Hashable, XDRCodable {
    public var entries: [MountEntry]
    public init(entries: [MountEntry]) { self.entries = entries }
    public init(xdr buffer: inout ByteBuffer) throws {
        var entries: [MountEntry] = []
        while try buffer.readXDRBool() {
            guard entries.count < MountLimits.maxListEntries else {
                throw XDRError.lengthExceedsLimit(length: UInt32(entries.count), limit: MountLimits.maxListEntries)
            }
            let host = try NFS3Name(xdr: &buffer, maxLength: MountLimits.maxNameLength)
            let dir = try NFS3Name(xdr: &buffer, maxLength: MountLimits.maxPathLength)
            entries.append(MountEntry(hostname: host, directory: dir))
        }
        self.entries = entries
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        for e in entries {
            buffer.writeXDRBool(true)
            e.hostname.encode(xdr: &buffer)
            e.directory.encode(xdr: &buffer)
        }
        buffer.writeXDRBool(false)
    }
}

/// One exportnode of EXPORT.
public struct MountExportEntry: Sendable, Hashable {
    public var directory: NFS3Name
    public var groups: [NFS3Name]
    public init(directory: NFS3Name, groups: [NFS3Name]) {
        self.directory = directory
        self.groups = groups
    }
}

/// exports (EXPORT result).
public struct MountExportResult: Sendable, Hashable, XDRCodable {
    public var exports: [MountExportEntry]
    public init(exports: [MountExportEntry]) { self.exports = exports }
    public init(xdr buffer: inout ByteBuffer) throws {
        var exports: [MountExportEntry] = []
        var total = 0
        while try buffer.readXDRBool() {
            let dir = try NFS3Name(xdr: &buffer, maxLength: MountLimits.maxPathLength)
            var groups: [NFS3Name] = []
            while try buffer.readXDRBool() {
                groups.append(try NFS3Name(xdr: &buffer, maxLength: MountLimits.maxNameLength))
                total += 1
                guard total < MountLimits.maxListEntries else {
                    throw XDRError.lengthExceedsLimit(length: UInt32(total), limit: MountLimits.maxListEntries)
                }
            }
            exports.append(MountExportEntry(directory: dir, groups: groups))
            total += 1
            guard total < MountLimits.maxListEntries else {
                throw XDRError.lengthExceedsLimit(length: UInt32(total), limit: MountLimits.maxListEntries)
            }
        }
        self.exports = exports
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        for e in exports {
            buffer.writeXDRBool(true)
            e.directory.encode(xdr: &buffer)
            for g in e.groups {
                buffer.writeXDRBool(true)
                g.encode(xdr: &buffer)
            }
            buffer.writeXDRBool(false)
        }
        buffer.writeXDRBool(false)
    }
}
