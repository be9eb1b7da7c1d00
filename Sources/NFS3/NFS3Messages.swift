import NIOCore
import XDR

// Arguments and results of the 22 NFSv3 procedures (RFC 1813 §3.3).
// Results are `NFS3Result<OK, Fail>`: the status, then one of the arms.

/// NFSv3 procedure numbers.
public enum NFS3Procedure: UInt32, Sendable, Hashable, CaseIterable {
    case null = 0, getattr, setattr, lookup, access, readlink, read, write, create, mkdir, symlink,
         mknod, remove, rmdir, rename, link, readdir, readdirplus, fsstat, fsinfo, pathconf, commit

    /// True for the procedures that change the filesystem (refused with
    /// NFS3ERR_ROFS on read-only exports). COMMIT changes nothing a client
    /// can see and is answered everywhere.
    public var modifies: Bool {
        switch self {
        case .setattr, .write, .create, .mkdir, .symlink, .mknod, .remove, .rmdir, .rename, .link:
            return true
        default:
            return false
        }
    }
}

/// Arguments made of a single handle: GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF.
public struct NFS3HandleArgs: Sendable, Hashable, XDRCodable {
    public var object: NFS3FileHandle
    public init(object: NFS3FileHandle) { self.object = object }
    public init(xdr buffer: inout ByteBuffer) throws { self.object = try NFS3FileHandle(xdr: &buffer) }
    public func encode(xdr buffer: inout ByteBuffer) { object.encode(xdr: &buffer) }
}

// MARK: GETATTR (1)

public typealias NFS3GetAttrArgs = NFS3HandleArgs
public typealias NFS3GetAttrResult = NFS3Result<NFS3Attributes, NFS3Empty>

// MARK: SETATTR (2)

public struct NFS3SetAttrArgs: Sendable, Hashable, XDRCodable {
    public var object: NFS3FileHandle
    public var newAttributes: NFS3SetAttributes
    /// sattrguard3: the ctime the object must still have.
    public var guardCtime: NFS3Time?
    public init(object: NFS3FileHandle, newAttributes: NFS3SetAttributes, guardCtime: NFS3Time? = nil) {
        self.object = object
        self.newAttributes = newAttributes
        self.guardCtime = guardCtime
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.object = try NFS3FileHandle(xdr: &buffer)
        self.newAttributes = try NFS3SetAttributes(xdr: &buffer)
        self.guardCtime = try buffer.readXDROptional { try NFS3Time(xdr: &$0) }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        object.encode(xdr: &buffer)
        newAttributes.encode(xdr: &buffer)
        buffer.writeXDROptional(guardCtime) { $1.encode(xdr: &$0) }
    }
}

public typealias NFS3SetAttrResult = NFS3Result<NFS3WccData, NFS3WccData>

// MARK: LOOKUP (3)

public typealias NFS3LookupArgs = NFS3DirOpArgs

public struct NFS3LookupOK: Sendable, Hashable, XDRCodable {
    public var object: NFS3FileHandle
    public var objectAttributes: NFS3PostOpAttributes
    public var directoryAttributes: NFS3PostOpAttributes
    public init(object: NFS3FileHandle, objectAttributes: NFS3PostOpAttributes, directoryAttributes: NFS3PostOpAttributes) {
        self.object = object
        self.objectAttributes = objectAttributes
        self.directoryAttributes = directoryAttributes
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.object = try NFS3FileHandle(xdr: &buffer)
        self.objectAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.directoryAttributes = try NFS3PostOpAttributes(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        object.encode(xdr: &buffer)
        objectAttributes.encode(xdr: &buffer)
        directoryAttributes.encode(xdr: &buffer)
    }
}

public typealias NFS3LookupResult = NFS3Result<NFS3LookupOK, NFS3PostOpAttributes>

// MARK: ACCESS (4)

public struct NFS3AccessArgs: Sendable, Hashable, XDRCodable {
    public var object: NFS3FileHandle
    public var access: UInt32
    public init(object: NFS3FileHandle, access: UInt32) {
        self.object = object
        self.access = access
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.object = try NFS3FileHandle(xdr: &buffer)
        self.access = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        object.encode(xdr: &buffer)
        buffer.writeXDRUInt32(access)
    }
}

public struct NFS3AccessOK: Sendable, Hashable, XDRCodable {
    public var objectAttributes: NFS3PostOpAttributes
    public var access: UInt32
    public init(objectAttributes: NFS3PostOpAttributes, access: UInt32) {
        self.objectAttributes = objectAttributes
        self.access = access
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.objectAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.access = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        objectAttributes.encode(xdr: &buffer)
        buffer.writeXDRUInt32(access)
    }
}

public typealias NFS3AccessResult = NFS3Result<NFS3AccessOK, NFS3PostOpAttributes>

// MARK: READLINK (5)

public typealias NFS3ReadlinkArgs = NFS3HandleArgs

public struct NFS3ReadlinkOK: Sendable, Hashable, XDRCodable {
    public var symlinkAttributes: NFS3PostOpAttributes
    public var data: NFS3Name
    public init(symlinkAttributes: NFS3PostOpAttributes, data: NFS3Name) {
        self.symlinkAttributes = symlinkAttributes
        self.data = data
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.symlinkAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.data = try NFS3Name(xdr: &buffer, maxLength: NFS3Limits.maxPathLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        symlinkAttributes.encode(xdr: &buffer)
        data.encode(xdr: &buffer)
    }
}

public typealias NFS3ReadlinkResult = NFS3Result<NFS3ReadlinkOK, NFS3PostOpAttributes>

// MARK: READ (6)

public struct NFS3ReadArgs: Sendable, Hashable, XDRCodable {
    public var file: NFS3FileHandle
    public var offset: UInt64
    /// As sent; the server clamps it to rtmax.
    public var count: UInt32
    public init(file: NFS3FileHandle, offset: UInt64, count: UInt32) {
        self.file = file
        self.offset = offset
        self.count = count
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.file = try NFS3FileHandle(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        file.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt32(count)
    }
}

public struct NFS3ReadOK: Sendable, Hashable, XDRCodable {
    public var fileAttributes: NFS3PostOpAttributes
    public var count: UInt32
    public var eof: Bool
    public var data: ByteBuffer
    public init(fileAttributes: NFS3PostOpAttributes, count: UInt32, eof: Bool, data: ByteBuffer) {
        self.fileAttributes = fileAttributes
        self.count = count
        self.eof = eof
        self.data = data
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.fileAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.count = try buffer.readXDRUInt32()
        self.eof = try buffer.readXDRBool()
        self.data = try buffer.readXDRVariableOpaque(maxLength: Int(NFS3Limits.maxReadSize))
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        fileAttributes.encode(xdr: &buffer)
        buffer.writeXDRUInt32(count)
        buffer.writeXDRBool(eof)
        buffer.writeXDRVariableOpaque(data)
    }
}

public typealias NFS3ReadResult = NFS3Result<NFS3ReadOK, NFS3PostOpAttributes>

// MARK: WRITE (7)

public struct NFS3WriteArgs: Sendable, Hashable, XDRCodable {
    public var file: NFS3FileHandle
    public var offset: UInt64
    public var count: UInt32
    public var stable: NFS3StableHow
    /// A slice of the received record (no copy); at most wtmax bytes.
    public var data: ByteBuffer
    public init(file: NFS3FileHandle, offset: UInt64, count: UInt32, stable: NFS3StableHow, data: ByteBuffer) {
        self.file = file
        self.offset = offset
        self.count = count
        self.stable = stable
        self.data = data
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.file = try NFS3FileHandle(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt32()
        self.stable = try buffer.readXDREnum()
        self.data = try buffer.readXDRVariableOpaque(maxLength: Int(NFS3Limits.maxWriteSize))
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        file.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt32(count)
        buffer.writeXDREnum(stable)
        buffer.writeXDRVariableOpaque(data)
    }
}

public struct NFS3WriteOK: Sendable, Hashable, XDRCodable {
    public var fileWcc: NFS3WccData
    public var count: UInt32
    public var committed: NFS3StableHow
    public var verifier: NFS3Verifier
    public init(fileWcc: NFS3WccData, count: UInt32, committed: NFS3StableHow, verifier: NFS3Verifier) {
        self.fileWcc = fileWcc
        self.count = count
        self.committed = committed
        self.verifier = verifier
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.fileWcc = try NFS3WccData(xdr: &buffer)
        self.count = try buffer.readXDRUInt32()
        self.committed = try buffer.readXDREnum()
        self.verifier = try NFS3Verifier(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        fileWcc.encode(xdr: &buffer)
        buffer.writeXDRUInt32(count)
        buffer.writeXDREnum(committed)
        verifier.encode(xdr: &buffer)
    }
}

public typealias NFS3WriteResult = NFS3Result<NFS3WriteOK, NFS3WccData>

// MARK: CREATE (8)

/// createhow3.
public enum NFS3CreateHow: Sendable, Hashable, XDRCodable {
    case unchecked(NFS3SetAttributes)
    case guarded(NFS3SetAttributes)
    case exclusive(NFS3Verifier)
    public init(xdr buffer: inout ByteBuffer) throws {
        switch try buffer.readXDRUInt32() {
        case 0: self = .unchecked(try NFS3SetAttributes(xdr: &buffer))
        case 1: self = .guarded(try NFS3SetAttributes(xdr: &buffer))
        case 2: self = .exclusive(try NFS3Verifier(xdr: &buffer))
        case let other: throw XDRError.invalidEnum(type: "createmode3", value: other)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .unchecked(let a):
            buffer.writeXDRUInt32(0)
            a.encode(xdr: &buffer)
        case .guarded(let a):
            buffer.writeXDRUInt32(1)
            a.encode(xdr: &buffer)
        case .exclusive(let v):
            buffer.writeXDRUInt32(2)
            v.encode(xdr: &buffer)
        }
    }
}

public struct NFS3CreateArgs: Sendable, Hashable, XDRCodable {
    public var whereTo: NFS3DirOpArgs
    public var how: NFS3CreateHow
    public init(whereTo: NFS3DirOpArgs, how: NFS3CreateHow) {
        self.whereTo = whereTo
        self.how = how
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.whereTo = try NFS3DirOpArgs(xdr: &buffer)
        self.how = try NFS3CreateHow(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        whereTo.encode(xdr: &buffer)
        how.encode(xdr: &buffer)
    }
}

/// CREATE3resok, MKDIR3resok, SYMLINK3resok, MKNOD3resok.
public struct NFS3NewObjectOK: Sendable, Hashable, XDRCodable {
    /// post_op_fh3.
    public var object: NFS3FileHandle?
    public var objectAttributes: NFS3PostOpAttributes
    public var directoryWcc: NFS3WccData
    public init(object: NFS3FileHandle?, objectAttributes: NFS3PostOpAttributes, directoryWcc: NFS3WccData) {
        self.object = object
        self.objectAttributes = objectAttributes
        self.directoryWcc = directoryWcc
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.object = try buffer.readXDROptional { try NFS3FileHandle(xdr: &$0) }
        self.objectAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.directoryWcc = try NFS3WccData(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDROptional(object) { $1.encode(xdr: &$0) }
        objectAttributes.encode(xdr: &buffer)
        directoryWcc.encode(xdr: &buffer)
    }
}

public typealias NFS3CreateResult = NFS3Result<NFS3NewObjectOK, NFS3WccData>

// MARK: MKDIR (9)

public struct NFS3MkdirArgs: Sendable, Hashable, XDRCodable {
    public var whereTo: NFS3DirOpArgs
    public var attributes: NFS3SetAttributes
    public init(whereTo: NFS3DirOpArgs, attributes: NFS3SetAttributes) {
        self.whereTo = whereTo
        self.attributes = attributes
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.whereTo = try NFS3DirOpArgs(xdr: &buffer)
        self.attributes = try NFS3SetAttributes(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        whereTo.encode(xdr: &buffer)
        attributes.encode(xdr: &buffer)
    }
}

public typealias NFS3MkdirResult = NFS3Result<NFS3NewObjectOK, NFS3WccData>

// MARK: SYMLINK (10)

public struct NFS3SymlinkArgs: Sendable, Hashable, XDRCodable {
    public var whereTo: NFS3DirOpArgs
    public var attributes: NFS3SetAttributes
    public var target: NFS3Name
    public init(whereTo: NFS3DirOpArgs, attributes: NFS3SetAttributes, target: NFS3Name) {
        self.whereTo = whereTo
        self.attributes = attributes
        self.target = target
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.whereTo = try NFS3DirOpArgs(xdr: &buffer)
        self.attributes = try NFS3SetAttributes(xdr: &buffer)
        self.target = try NFS3Name(xdr: &buffer, maxLength: NFS3Limits.maxPathLength)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        whereTo.encode(xdr: &buffer)
        attributes.encode(xdr: &buffer)
        target.encode(xdr: &buffer)
    }
}

public typealias NFS3SymlinkResult = NFS3Result<NFS3NewObjectOK, NFS3WccData>

// MARK: MKNOD (11)

/// mknoddata3.
public enum NFS3MknodData: Sendable, Hashable, XDRCodable {
    case characterDevice(NFS3SetAttributes, NFS3SpecData)
    case blockDevice(NFS3SetAttributes, NFS3SpecData)
    case socket(NFS3SetAttributes)
    case fifo(NFS3SetAttributes)
    /// Any other ftype3 (REG, DIR, LNK): void arm; answered NFS3ERR_BADTYPE.
    case other(NFS3FileType)

    public init(xdr buffer: inout ByteBuffer) throws {
        let type: NFS3FileType = try buffer.readXDREnum()
        switch type {
        case .characterDevice: self = .characterDevice(try NFS3SetAttributes(xdr: &buffer), try NFS3SpecData(xdr: &buffer))
        case .blockDevice: self = .blockDevice(try NFS3SetAttributes(xdr: &buffer), try NFS3SpecData(xdr: &buffer))
        case .socket: self = .socket(try NFS3SetAttributes(xdr: &buffer))
        case .fifo: self = .fifo(try NFS3SetAttributes(xdr: &buffer))
        default: self = .other(type)
        }
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        switch self {
        case .characterDevice(let a, let s):
            buffer.writeXDREnum(NFS3FileType.characterDevice)
            a.encode(xdr: &buffer)
            s.encode(xdr: &buffer)
        case .blockDevice(let a, let s):
            buffer.writeXDREnum(NFS3FileType.blockDevice)
            a.encode(xdr: &buffer)
            s.encode(xdr: &buffer)
        case .socket(let a):
            buffer.writeXDREnum(NFS3FileType.socket)
            a.encode(xdr: &buffer)
        case .fifo(let a):
            buffer.writeXDREnum(NFS3FileType.fifo)
            a.encode(xdr: &buffer)
        case .other(let t):
            buffer.writeXDREnum(t)
        }
    }
}

public struct NFS3MknodArgs: Sendable, Hashable, XDRCodable {
    public var whereTo: NFS3DirOpArgs
    public var what: NFS3MknodData
    public init(whereTo: NFS3DirOpArgs, what: NFS3MknodData) {
        self.whereTo = whereTo
        self.what = what
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.whereTo = try NFS3DirOpArgs(xdr: &buffer)
        self.what = try NFS3MknodData(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        whereTo.encode(xdr: &buffer)
        what.encode(xdr: &buffer)
    }
}

public typealias NFS3MknodResult = NFS3Result<NFS3NewObjectOK, NFS3WccData>

// MARK: REMOVE (12), RMDIR (13)

public typealias NFS3RemoveArgs = NFS3DirOpArgs
public typealias NFS3RemoveResult = NFS3Result<NFS3WccData, NFS3WccData>
public typealias NFS3RmdirArgs = NFS3DirOpArgs
public typealias NFS3RmdirResult = NFS3Result<NFS3WccData, NFS3WccData>

// MARK: RENAME (14)

public struct NFS3RenameArgs: Sendable, Hashable, XDRCodable {
    public var from: NFS3DirOpArgs
    public var to: NFS3DirOpArgs
    public init(from: NFS3DirOpArgs, to: NFS3DirOpArgs) {
        self.from = from
        self.to = to
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.from = try NFS3DirOpArgs(xdr: &buffer)
        self.to = try NFS3DirOpArgs(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        from.encode(xdr: &buffer)
        to.encode(xdr: &buffer)
    }
}

/// RENAME3resok and RENAME3resfail.
public struct NFS3RenameWcc: Sendable, Hashable, XDRCodable {
    public var fromDirectoryWcc: NFS3WccData
    public var toDirectoryWcc: NFS3WccData
    public init(fromDirectoryWcc: NFS3WccData, toDirectoryWcc: NFS3WccData) {
        self.fromDirectoryWcc = fromDirectoryWcc
        self.toDirectoryWcc = toDirectoryWcc
    }
    public static let none = NFS3RenameWcc(fromDirectoryWcc: .none, toDirectoryWcc: .none)
    public init(xdr buffer: inout ByteBuffer) throws {
        self.fromDirectoryWcc = try NFS3WccData(xdr: &buffer)
        self.toDirectoryWcc = try NFS3WccData(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        fromDirectoryWcc.encode(xdr: &buffer)
        toDirectoryWcc.encode(xdr: &buffer)
    }
}

public typealias NFS3RenameResult = NFS3Result<NFS3RenameWcc, NFS3RenameWcc>

// MARK: LINK (15)

public struct NFS3LinkArgs: Sendable, Hashable, XDRCodable {
    public var file: NFS3FileHandle
    public var link: NFS3DirOpArgs
    public init(file: NFS3FileHandle, link: NFS3DirOpArgs) {
        self.file = file
        self.link = link
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.file = try NFS3FileHandle(xdr: &buffer)
        self.link = try NFS3DirOpArgs(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        file.encode(xdr: &buffer)
        link.encode(xdr: &buffer)
    }
}

/// LINK3resok and LINK3resfail.
public struct NFS3LinkWcc: Sendable, Hashable, XDRCodable {
    public var fileAttributes: NFS3PostOpAttributes
    public var linkDirectoryWcc: NFS3WccData
    public init(fileAttributes: NFS3PostOpAttributes, linkDirectoryWcc: NFS3WccData) {
        self.fileAttributes = fileAttributes
        self.linkDirectoryWcc = linkDirectoryWcc
    }
    public static let none = NFS3LinkWcc(fileAttributes: .none, linkDirectoryWcc: .none)
    public init(xdr buffer: inout ByteBuffer) throws {
        self.fileAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.linkDirectoryWcc = try NFS3WccData(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        fileAttributes.encode(xdr: &buffer)
        linkDirectoryWcc.encode(xdr: &buffer)
    }
}

public typealias NFS3LinkResult = NFS3Result<NFS3LinkWcc, NFS3LinkWcc>

// MARK: READDIR (16)

public struct NFS3ReaddirArgs: Sendable, Hashable, XDRCodable {
    public var directory: NFS3FileHandle
    public var cookie: UInt64
    public var cookieVerifier: NFS3Verifier
    /// Maximum size of READDIR3resok in bytes.
    public var count: UInt32
    public init(directory: NFS3FileHandle, cookie: UInt64, cookieVerifier: NFS3Verifier, count: UInt32) {
        self.directory = directory
        self.cookie = cookie
        self.cookieVerifier = cookieVerifier
        self.count = count
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.directory = try NFS3FileHandle(xdr: &buffer)
        self.cookie = try buffer.readXDRUInt64()
        self.cookieVerifier = try NFS3Verifier(xdr: &buffer)
        self.count = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        directory.encode(xdr: &buffer)
        buffer.writeXDRUInt64(cookie)
        cookieVerifier.encode(xdr: &buffer)
        buffer.writeXDRUInt32(count)
    }
}

/// entry3.
public struct NFS3DirEntry: Sendable, Hashable {
    public var fileid: UInt64
    public var name: NFS3Name
    public var cookie: UInt64
    public init(fileid: UInt64, name: NFS3Name, cookie: UInt64) {
        self.fileid = fileid
        self.name = name
        self.cookie = cookie
    }
    /// Bytes this entry takes in XDR, with its value_follows word.
    var xdrSize: Int { 4 + 8 + name.xdrSize + 8 }
}

/// A directory listing is an XDR linked list: each entry is preceded by
/// TRUE, the list ends with FALSE. More than this many entries in a reply
/// is refused when decoding (a 1 MiB reply holds fewer than 50,000).
let maxDecodedDirectoryEntries = 1 << 17

public struct NFS3ReaddirOK: Sendable, Hashable, XDRCodable {
    public var directoryAttributes: NFS3PostOpAttributes
    public var cookieVerifier: NFS3Verifier
    public var entries: [NFS3DirEntry]
    public var eof: Bool
    public init(directoryAttributes: NFS3PostOpAttributes, cookieVerifier: NFS3Verifier, entries: [NFS3DirEntry], eof: Bool) {
        self.directoryAttributes = directoryAttributes
        self.cookieVerifier = cookieVerifier
        self.entries = entries
        self.eof = eof
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.directoryAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.cookieVerifier = try NFS3Verifier(xdr: &buffer)
        var entries: [NFS3DirEntry] = []
        while try buffer.readXDRBool() {
            guard entries.count < maxDecodedDirectoryEntries else {
                throw XDRError.lengthExceedsLimit(length: UInt32(entries.count), limit: maxDecodedDirectoryEntries)
            }
            let fileid = try buffer.readXDRUInt64()
            let name = try NFS3Name(xdr: &buffer, maxLength: NFS3Limits.maxNameLength)
            let cookie = try buffer.readXDRUInt64()
            entries.append(NFS3DirEntry(fileid: fileid, name: name, cookie: cookie))
        }
        self.entries = entries
        self.eof = try buffer.readXDRBool()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        directoryAttributes.encode(xdr: &buffer)
        cookieVerifier.encode(xdr: &buffer)
        for e in entries {
            buffer.writeXDRBool(true)
            buffer.writeXDRUInt64(e.fileid)
            e.name.encode(xdr: &buffer)
            buffer.writeXDRUInt64(e.cookie)
        }
        buffer.writeXDRBool(false)
        buffer.writeXDRBool(eof)
    }
}

public typealias NFS3ReaddirResult = NFS3Result<NFS3ReaddirOK, NFS3PostOpAttributes>

// MARK: READDIRPLUS (17)

public struct NFS3ReaddirPlusArgs: Sendable, Hashable, XDRCodable {
    public var directory: NFS3FileHandle
    public var cookie: UInt64
    public var cookieVerifier: NFS3Verifier
    /// Bytes of directory information (fileid, name, cookie) wanted.
    public var dirCount: UInt32
    /// Maximum size of READDIRPLUS3resok in bytes.
    public var maxCount: UInt32
    public init(directory: NFS3FileHandle, cookie: UInt64, cookieVerifier: NFS3Verifier, dirCount: UInt32, maxCount: UInt32) {
        self.directory = directory
        self.cookie = cookie
        self.cookieVerifier = cookieVerifier
        self.dirCount = dirCount
        self.maxCount = maxCount
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.directory = try NFS3FileHandle(xdr: &buffer)
        self.cookie = try buffer.readXDRUInt64()
        self.cookieVerifier = try NFS3Verifier(xdr: &buffer)
        self.dirCount = try buffer.readXDRUInt32()
        self.maxCount = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        directory.encode(xdr: &buffer)
        buffer.writeXDRUInt64(cookie)
        cookieVerifier.encode(xdr: &buffer)
        buffer.writeXDRUInt32(dirCount)
        buffer.writeXDRUInt32(maxCount)
    }
}

/// entryplus3.
public struct NFS3DirEntryPlus: Sendable, Hashable {
    public var fileid: UInt64
    public var name: NFS3Name
    public var cookie: UInt64
    public var attributes: NFS3PostOpAttributes
    /// post_op_fh3.
    public var handle: NFS3FileHandle?
    public init(fileid: UInt64, name: NFS3Name, cookie: UInt64, attributes: NFS3PostOpAttributes, handle: NFS3FileHandle?) {
        self.fileid = fileid
        self.name = name
        self.cookie = cookie
        self.attributes = attributes
        self.handle = handle
    }
    /// Bytes counted against dircount (fileid, name, cookie).
    var directoryInfoSize: Int { 8 + name.xdrSize + 8 }
    /// Bytes this entry takes in XDR, with its value_follows word.
    var xdrSize: Int {
        4 + directoryInfoSize + attributes.xdrSize + 4
            + (handle.map { 4 + $0.bytes.readableBytes + xdrPadding($0.bytes.readableBytes) } ?? 0)
    }
}

public struct NFS3ReaddirPlusOK: Sendable, Hashable, XDRCodable {
    public var directoryAttributes: NFS3PostOpAttributes
    public var cookieVerifier: NFS3Verifier
    public var entries: [NFS3DirEntryPlus]
    public var eof: Bool
    public init(directoryAttributes: NFS3PostOpAttributes, cookieVerifier: NFS3Verifier, entries: [NFS3DirEntryPlus], eof: Bool) {
        self.directoryAttributes = directoryAttributes
        self.cookieVerifier = cookieVerifier
        self.entries = entries
        self.eof = eof
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.directoryAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.cookieVerifier = try NFS3Verifier(xdr: &buffer)
        var entries: [NFS3DirEntryPlus] = []
        while try buffer.readXDRBool() {
            guard entries.count < maxDecodedDirectoryEntries else {
                throw XDRError.lengthExceedsLimit(length: UInt32(entries.count), limit: maxDecodedDirectoryEntries)
            }
            let fileid = try buffer.readXDRUInt64()
            let name = try NFS3Name(xdr: &buffer, maxLength: NFS3Limits.maxNameLength)
            let cookie = try buffer.readXDRUInt64()
            let attributes = try NFS3PostOpAttributes(xdr: &buffer)
            let handle = try buffer.readXDROptional { try NFS3FileHandle(xdr: &$0) }
            entries.append(NFS3DirEntryPlus(fileid: fileid, name: name, cookie: cookie, attributes: attributes, handle: handle))
        }
        self.entries = entries
        self.eof = try buffer.readXDRBool()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        directoryAttributes.encode(xdr: &buffer)
        cookieVerifier.encode(xdr: &buffer)
        // One capacity check and one copy per entry instead of ~30 checked writes: a
        // 64 KiB reply holds some 400 entries.
        for e in entries {
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: e.xdrSize) { p in
                var w = XDRRawWriter(p.baseAddress!)
                w.u32(1)
                w.u64(e.fileid)
                w.opaque(e.name.bytes)
                w.u64(e.cookie)
                if let a = e.attributes.attributes {
                    w.u32(1)
                    a.write(to: &w)
                } else {
                    w.u32(0)
                }
                if let h = e.handle {
                    w.u32(1)
                    h.bytes.withUnsafeReadableBytes { w.opaque($0) }
                } else {
                    w.u32(0)
                }
                return w.count
            }
        }
        buffer.writeXDRBool(false)
        buffer.writeXDRBool(eof)
    }
}

public typealias NFS3ReaddirPlusResult = NFS3Result<NFS3ReaddirPlusOK, NFS3PostOpAttributes>

// MARK: FSSTAT (18)

public typealias NFS3FSStatArgs = NFS3HandleArgs

public struct NFS3FSStatOK: Sendable, Hashable, XDRCodable {
    public var objectAttributes: NFS3PostOpAttributes
    public var totalBytes: UInt64
    public var freeBytes: UInt64
    public var availableBytes: UInt64
    public var totalFiles: UInt64
    public var freeFiles: UInt64
    public var availableFiles: UInt64
    public var invariantSeconds: UInt32
    public init(objectAttributes: NFS3PostOpAttributes, totalBytes: UInt64, freeBytes: UInt64, availableBytes: UInt64,
                totalFiles: UInt64, freeFiles: UInt64, availableFiles: UInt64, invariantSeconds: UInt32) {
        self.objectAttributes = objectAttributes
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
        self.availableBytes = availableBytes
        self.totalFiles = totalFiles
        self.freeFiles = freeFiles
        self.availableFiles = availableFiles
        self.invariantSeconds = invariantSeconds
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.objectAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.totalBytes = try buffer.readXDRUInt64()
        self.freeBytes = try buffer.readXDRUInt64()
        self.availableBytes = try buffer.readXDRUInt64()
        self.totalFiles = try buffer.readXDRUInt64()
        self.freeFiles = try buffer.readXDRUInt64()
        self.availableFiles = try buffer.readXDRUInt64()
        self.invariantSeconds = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        objectAttributes.encode(xdr: &buffer)
        buffer.writeXDRUInt64(totalBytes)
        buffer.writeXDRUInt64(freeBytes)
        buffer.writeXDRUInt64(availableBytes)
        buffer.writeXDRUInt64(totalFiles)
        buffer.writeXDRUInt64(freeFiles)
        buffer.writeXDRUInt64(availableFiles)
        buffer.writeXDRUInt32(invariantSeconds)
    }
}

public typealias NFS3FSStatResult = NFS3Result<NFS3FSStatOK, NFS3PostOpAttributes>

// MARK: FSINFO (19)

public typealias NFS3FSInfoArgs = NFS3HandleArgs

public struct NFS3FSInfoOK: Sendable, Hashable, XDRCodable {
    public static let propertyLink: UInt32 = 0x0001
    public static let propertySymlink: UInt32 = 0x0002
    public static let propertyHomogeneous: UInt32 = 0x0008
    public static let propertyCanSetTime: UInt32 = 0x0010

    public var objectAttributes: NFS3PostOpAttributes
    public var rtmax: UInt32
    public var rtpref: UInt32
    public var rtmult: UInt32
    public var wtmax: UInt32
    public var wtpref: UInt32
    public var wtmult: UInt32
    public var dtpref: UInt32
    public var maxFileSize: UInt64
    public var timeDelta: NFS3Time
    public var properties: UInt32
    public init(objectAttributes: NFS3PostOpAttributes, rtmax: UInt32, rtpref: UInt32, rtmult: UInt32,
                wtmax: UInt32, wtpref: UInt32, wtmult: UInt32, dtpref: UInt32, maxFileSize: UInt64,
                timeDelta: NFS3Time, properties: UInt32) {
        self.objectAttributes = objectAttributes
        self.rtmax = rtmax
        self.rtpref = rtpref
        self.rtmult = rtmult
        self.wtmax = wtmax
        self.wtpref = wtpref
        self.wtmult = wtmult
        self.dtpref = dtpref
        self.maxFileSize = maxFileSize
        self.timeDelta = timeDelta
        self.properties = properties
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.objectAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.rtmax = try buffer.readXDRUInt32()
        self.rtpref = try buffer.readXDRUInt32()
        self.rtmult = try buffer.readXDRUInt32()
        self.wtmax = try buffer.readXDRUInt32()
        self.wtpref = try buffer.readXDRUInt32()
        self.wtmult = try buffer.readXDRUInt32()
        self.dtpref = try buffer.readXDRUInt32()
        self.maxFileSize = try buffer.readXDRUInt64()
        self.timeDelta = try NFS3Time(xdr: &buffer)
        self.properties = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        objectAttributes.encode(xdr: &buffer)
        buffer.writeXDRUInt32(rtmax)
        buffer.writeXDRUInt32(rtpref)
        buffer.writeXDRUInt32(rtmult)
        buffer.writeXDRUInt32(wtmax)
        buffer.writeXDRUInt32(wtpref)
        buffer.writeXDRUInt32(wtmult)
        buffer.writeXDRUInt32(dtpref)
        buffer.writeXDRUInt64(maxFileSize)
        timeDelta.encode(xdr: &buffer)
        buffer.writeXDRUInt32(properties)
    }
}

public typealias NFS3FSInfoResult = NFS3Result<NFS3FSInfoOK, NFS3PostOpAttributes>

// MARK: PATHCONF (20)

public typealias NFS3PathConfArgs = NFS3HandleArgs

public struct NFS3PathConfOK: Sendable, Hashable, XDRCodable {
    public var objectAttributes: NFS3PostOpAttributes
    public var linkMax: UInt32
    public var nameMax: UInt32
    public var noTrunc: Bool
    public var chownRestricted: Bool
    public var caseInsensitive: Bool
    public var casePreserving: Bool
    public init(objectAttributes: NFS3PostOpAttributes, linkMax: UInt32, nameMax: UInt32, noTrunc: Bool,
                chownRestricted: Bool, caseInsensitive: Bool, casePreserving: Bool) {
        self.objectAttributes = objectAttributes
        self.linkMax = linkMax
        self.nameMax = nameMax
        self.noTrunc = noTrunc
        self.chownRestricted = chownRestricted
        self.caseInsensitive = caseInsensitive
        self.casePreserving = casePreserving
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.objectAttributes = try NFS3PostOpAttributes(xdr: &buffer)
        self.linkMax = try buffer.readXDRUInt32()
        self.nameMax = try buffer.readXDRUInt32()
        self.noTrunc = try buffer.readXDRBool()
        self.chownRestricted = try buffer.readXDRBool()
        self.caseInsensitive = try buffer.readXDRBool()
        self.casePreserving = try buffer.readXDRBool()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        objectAttributes.encode(xdr: &buffer)
        buffer.writeXDRUInt32(linkMax)
        buffer.writeXDRUInt32(nameMax)
        buffer.writeXDRBool(noTrunc)
        buffer.writeXDRBool(chownRestricted)
        buffer.writeXDRBool(caseInsensitive)
        buffer.writeXDRBool(casePreserving)
    }
}

public typealias NFS3PathConfResult = NFS3Result<NFS3PathConfOK, NFS3PostOpAttributes>

// MARK: COMMIT (21)

public struct NFS3CommitArgs: Sendable, Hashable, XDRCodable {
    public var file: NFS3FileHandle
    public var offset: UInt64
    public var count: UInt32
    public init(file: NFS3FileHandle, offset: UInt64, count: UInt32) {
        self.file = file
        self.offset = offset
        self.count = count
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.file = try NFS3FileHandle(xdr: &buffer)
        self.offset = try buffer.readXDRUInt64()
        self.count = try buffer.readXDRUInt32()
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        file.encode(xdr: &buffer)
        buffer.writeXDRUInt64(offset)
        buffer.writeXDRUInt32(count)
    }
}

public struct NFS3CommitOK: Sendable, Hashable, XDRCodable {
    public var fileWcc: NFS3WccData
    public var verifier: NFS3Verifier
    public init(fileWcc: NFS3WccData, verifier: NFS3Verifier) {
        self.fileWcc = fileWcc
        self.verifier = verifier
    }
    public init(xdr buffer: inout ByteBuffer) throws {
        self.fileWcc = try NFS3WccData(xdr: &buffer)
        self.verifier = try NFS3Verifier(xdr: &buffer)
    }
    public func encode(xdr buffer: inout ByteBuffer) {
        fileWcc.encode(xdr: &buffer)
        verifier.encode(xdr: &buffer)
    }
}

public typealias NFS3CommitResult = NFS3Result<NFS3CommitOK, NFS3WccData>
