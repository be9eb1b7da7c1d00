import Glibc
import NIOConcurrencyHelpers

/// Who holds a byte-range lock: an NFSv4 lock-owner (its client and the
/// opaque owner it named).
public struct LockOwnerKey: Hashable, Sendable {
    public var clientID: UInt64
    public var owner: [UInt8]
    public init(clientID: UInt64, owner: [UInt8]) {
        self.clientID = clientID
        self.owner = owner
    }
}

public enum RangeLockType: Sendable, Hashable {
    case read, write
}

/// The lock that refused a request (LOCK4denied, LOCKT's answer). The
/// kernel does not say which owner holds an open-file-description lock, so
/// neither does this.
public struct RangeLockConflict: Sendable, Hashable {
    public var offset: UInt64
    /// UInt64.max: to the end of the file.
    public var length: UInt64
    public var type: RangeLockType
}

public enum RangeLockError: Error, Sendable, Hashable {
    /// A write lock on a file the owner could only open for reading (NFS4ERR_OPENMODE).
    case openMode
}

/// Byte-range locks held as the host kernel's open-file-description locks
/// (`F_OFD_SETLK`): each lock-owner gets its own open file of the file, so
/// owners conflict with each other exactly as the kernel judges it, and with
/// every process on the host that locks the same file with `fcntl` (POSIX or
/// OFD locks). Closing an owner's file releases its locks, so a client whose
/// lease ends loses them all at once.
///
/// Locks never wait here: NFSv4 clients poll (a blocking LOCK that conflicts
/// answers NFS4ERR_DENIED and the client retries).
public final class ByteRangeLocks: Sendable {
    struct Key: Hashable {
        var owner: LockOwnerKey
        var inode: InodeKey
    }

    struct Held {
        var fd: Int32
        var writable: Bool
    }

    private let fs: HostFileSystem
    /// Owners' open files. Locked only to look up, insert or remove: the
    /// fcntl calls run outside it.
    private let held = NIOLockedValueBox<[Key: Held]>([:])

    public init(fs: HostFileSystem) {
        self.fs = fs
    }

    // Linux's fcntl commands for open-file-description locks (fcntl(2)).
    static let getLock: Int32 = 36  // F_OFD_GETLK
    static let setLock: Int32 = 37  // F_OFD_SETLK

    /// Takes (or changes) `owner`'s lock on [offset, offset + length) of the
    /// file; returns nil when granted, else the lock in the way.
    /// `length` UInt64.max means to the end of the file.
    public func lock(_ h: ObjectHandle, owner: LockOwnerKey, type: RangeLockType, offset: UInt64,
                     length: UInt64) throws -> RangeLockConflict? {
        let (key, fd, opened) = try descriptor(h, owner: owner, write: type == .write, keep: true)
        var fl = Self.flockValue(type == .write ? F_WRLCK : F_RDLCK, offset: offset, length: length)
        if fcntl(fd, Self.setLock, &fl) == 0 { return nil }
        let e = errno
        // A file opened for this lock alone holds nothing: close it again. (One
        // owner's LOCKs are serialized by the client: NFSv4 lock-owners carry
        // seqids, so a concurrent first LOCK of the same owner does not race this.)
        defer { if opened { forget(key) } }
        guard e == EAGAIN || e == EACCES else { throw FSError.errno(e) }
        return try self.conflict(fd, type: type, offset: offset, length: length)
            ?? RangeLockConflict(offset: offset, length: length, type: .write)
    }

    /// LOCKT: the lock that would refuse `owner` this lock, or nil.
    public func test(_ h: ObjectHandle, owner: LockOwnerKey, type: RangeLockType, offset: UInt64,
                     length: UInt64) throws -> RangeLockConflict? {
        // The owner's own file when it has one (F_OFD_GETLK then ignores the
        // owner's own locks, as LOCKT must), else a file opened for the question.
        let (_, fd, opened) = try descriptor(h, owner: owner, write: false, keep: false)
        defer { if opened { Glibc.close(fd) } }
        return try conflict(fd, type: type, offset: offset, length: length)
    }

    /// LOCKU: releases `owner`'s locks in the range.
    public func unlock(_ h: ObjectHandle, owner: LockOwnerKey, offset: UInt64, length: UInt64) throws {
        let inode = try fs.withObject(h) { _, obj in obj.inode }
        guard let current = held.withLockedValue({ $0[Key(owner: owner, inode: inode)] }) else { return }
        var fl = Self.flockValue(F_UNLCK, offset: offset, length: length)
        if fcntl(current.fd, Self.setLock, &fl) != 0 { throw FSError.current }
    }

    /// Releases every lock of `owner` (RELEASE_LOCKOWNER, FREE_STATEID of its last lock).
    public func release(owner: LockOwnerKey) {
        close(held.withLockedValue { map in
            let keys = map.keys.filter { $0.owner == owner }
            return keys.compactMap { map.removeValue(forKey: $0)?.fd }
        })
    }

    /// Releases every lock of a client (lease expired, client gone).
    public func releaseClient(_ clientID: UInt64) {
        close(held.withLockedValue { map in
            let keys = map.keys.filter { $0.owner.clientID == clientID }
            return keys.compactMap { map.removeValue(forKey: $0)?.fd }
        })
    }

    /// Open files held for lock-owners.
    public var descriptorCount: Int { held.withLockedValue { $0.count } }

    // MARK: -

    /// The owner's open file of the file (`opened`: made by this call),
    /// opened for reading and writing when the server may (the protocol checked
    /// the client's own access at OPEN), else for reading. `keep`: remember it
    /// for the owner; else the caller closes a file this call opened.
    private func descriptor(_ h: ObjectHandle, owner: LockOwnerKey, write: Bool,
                            keep: Bool) throws -> (key: Key, fd: Int32, opened: Bool) {
        try fs.withObject(h) { _, obj -> (Key, Int32, Bool) in
            guard !obj.isDirectory else { throw FSError.errno(EISDIR) }
            let key = Key(owner: owner, inode: obj.inode)
            if let current = held.withLockedValue({ $0[key] }) {
                if write && !current.writable { throw RangeLockError.openMode }
                return (key, current.fd, false)
            }
            var writable = true
            var fd = procReopen(obj.pathFD, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            if fd < 0 && (errno == EACCES || errno == EROFS || errno == ETXTBSY) {
                writable = false
                fd = procReopen(obj.pathFD, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            }
            if fd < 0 { throw FSError.current }
            if write && !writable {
                Glibc.close(fd)
                throw RangeLockError.openMode
            }
            guard keep else { return (key, fd, true) }
            let raced = held.withLockedValue { map -> Int32? in
                if let raced = map[key] { return raced.fd }
                map[key] = Held(fd: fd, writable: writable)
                return nil
            }
            if let raced {
                Glibc.close(fd)
                return (key, raced, false)
            }
            return (key, fd, true)
        }
    }

    /// Closes the owner's file of `key` (its locks go with it).
    private func forget(_ key: Key) {
        close(held.withLockedValue { $0.removeValue(forKey: key).map { [$0.fd] } ?? [] })
    }

    private func conflict(_ fd: Int32, type: RangeLockType, offset: UInt64,
                          length: UInt64) throws -> RangeLockConflict? {
        var fl = Self.flockValue(type == .write ? F_WRLCK : F_RDLCK, offset: offset, length: length)
        if fcntl(fd, Self.getLock, &fl) != 0 { throw FSError.current }
        if fl.l_type == Int16(F_UNLCK) { return nil }
        return RangeLockConflict(offset: UInt64(fl.l_start), length: fl.l_len == 0 ? .max : UInt64(fl.l_len),
                                 type: fl.l_type == Int16(F_WRLCK) ? .write : .read)
    }

    private func close(_ fds: [Int32]) {
        for fd in fds { Glibc.close(fd) }
    }

    /// A `struct flock` for the range (offsets past off_t's range, and ranges
    /// running past it, lock to the end of the file, as knfsd does). OFD
    /// locks need l_pid 0.
    static func flockValue(_ type: Int32, offset: UInt64, length: UInt64) -> flock {
        var fl = flock()
        fl.l_type = Int16(type)
        fl.l_whence = Int16(SEEK_SET)
        let maxOffset = UInt64(Int64.max)
        fl.l_start = off_t(min(offset, maxOffset))
        if length == .max || length == 0 || offset > maxOffset || length > maxOffset - min(offset, maxOffset) {
            fl.l_len = 0
        } else {
            fl.l_len = off_t(length)
        }
        fl.l_pid = 0
        return fl
    }
}
