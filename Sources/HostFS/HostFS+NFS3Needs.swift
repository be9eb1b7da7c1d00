import CSupport
import Glibc
import NIOCore

// For the NFS layers' READ reply path:
// the NFS layer builds the reply header in the reply buffer and wants the
// file data read straight after it, so a 1 MiB READ is not copied again.

/// NFS offsets and sizes are unsigned 64-bit, off_t is signed: the off_t of `offset`
/// when `offset + length` is within off_t (no file reaches past it), else nil. The one
/// conversion of a client's offset: `off_t(offset)` traps from 2^63 up.
func fileOffset(_ offset: UInt64, length: Int = 0) -> off_t? {
    let end = offset.addingReportingOverflow(UInt64(length))
    guard !end.overflow, end.partialValue <= UInt64(off_t.max) else { return nil }
    return off_t(offset)
}

/// What a READ of `count` bytes at `offset` may read, trimmed as knfsd trims it: no
/// further than the largest offset (the kernel refuses a range past it, EINVAL), and
/// nothing from past it (0 bytes, then eof).
func readRange(offset: UInt64, count: UInt32) -> (start: off_t, count: Int) {
    guard let start = fileOffset(offset) else { return (off_t.max, 0) }
    return (start, Int(min(UInt64(count), UInt64(off_t.max) - offset)))
}

extension HostFileSystem {
    /// READ `count` bytes at `offset`, appended to `buffer` (at its writer
    /// index). Same checks as `read(_:offset:count:allocator:as:)`.
    /// Returns the bytes appended, whether they reach end of file, and the
    /// attributes after the read.
    public func read(_ h: ObjectHandle, offset: UInt64, count: UInt32, appendingTo buffer: inout ByteBuffer,
                     as cred: Credentials) throws -> (count: Int, eof: Bool, attributes: FileAttributes) {
        try withObject(h) { ex, obj in
            let st = try self.statOf(obj.pathFD)
            switch st.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw FSError.errno(EISDIR)
            default: throw FSError.errno(EINVAL)
            }
            try self.checkAccess(obj, st, R_OK, cred, ownerOverride: true)
            let fd = try self.cache.dataFD(obj, write: false)
            var total = 0
            let (start, length) = readRange(offset: offset, count: count)
            if length > 0 {
                total = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { p in
                    var done = 0
                    while done < length {
                        let n = try sys { pread(fd, p.baseAddress! + done, length - done, start + off_t(done)) }
                        if n == 0 { break }
                        done += n
                    }
                    return done
                }
            }
            let after = try self.attributes(ex, fd: obj.pathFD)
            return (total, offset + UInt64(total) >= after.size, after)
        }
    }
}

// Added by the benchmark owner (issue 5): calls the event loop may serve
// itself because they cannot block. Each returns nil when it would have to
// wait (object not in the open-file cache, data not in the page cache); the
// caller then runs the ordinary method on the thread pool, which also gives
// every error. This saves two thread hops (event loop -> pool -> event loop)
// per call, which dominate small READs and GETATTRs.

/// preadv2(2), found once at run time: Swift's Glibc module does not declare it.
private typealias PReadV2 = @convention(c) (Int32, UnsafePointer<iovec>?, Int32, off_t, Int32) -> Int
private let preadv2Function: PReadV2? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "preadv2") else { return nil }  // RTLD_DEFAULT
    return unsafeBitCast(symbol, to: PReadV2.self)
}()
/// preadv2 flag: fail with EAGAIN instead of waiting for I/O (linux/fs.h).
private let RWF_NOWAIT: Int32 = 0x0000_0008
/// statfs f_type of tmpfs (linux/magic.h): its pages are memory, so a read never waits
/// for a disk, but before Linux 6.6 it refuses RWF_NOWAIT (EOPNOTSUPP).
private let TMPFS_MAGIC = 0x0102_1994

/// fstatfs(2), found at run time (Swift's Glibc module has no sys/vfs.h). Only f_type,
/// the first word of struct statfs on Linux, is read; the buffer is larger than the struct.
private typealias FStatFS = @convention(c) (Int32, UnsafeMutableRawPointer?) -> Int32
private let fstatfsFunction: FStatFS? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fstatfs") else { return nil }
    return unsafeBitCast(symbol, to: FStatFS.self)
}()

func isTmpfs(_ fd: Int32) -> Bool {
    guard let fstatfs = fstatfsFunction else { return false }
    return withUnsafeTemporaryAllocation(byteCount: 512, alignment: 16) { p in
        fstatfs(fd, p.baseAddress) == 0 && p.load(as: Int.self) == TMPFS_MAGIC
    }
}

extension HostFileSystem {
    /// The handle's object if the open-file cache has it and it passes `cacheHit`'s
    /// checks; nil otherwise, and then `acquire` decides (resolve again, or stale).
    /// Referenced: call `cache.release`. Also returns the object's stat, taken as the
    /// check's first step, which callers use instead of a second fstat.
    func acquireIfCached(_ h: ObjectHandle) throws -> (Export, CachedObject, Glibc.stat)? {
        guard let ex = export(h.exportID) else { throw FSError.stale }
        guard case .usable(let obj, let st) = cacheHit(ex, h) else { return nil }
        return (ex, obj, st)
    }

    /// READ without blocking: the same result as `read(_:offset:count:appendingTo:as:)`,
    /// or nil (buffer untouched) when that would wait for the disk or for opening the object.
    public func readWithoutBlocking(_ h: ObjectHandle, offset: UInt64, count: UInt32, appendingTo buffer: inout ByteBuffer,
                                    as cred: Credentials) throws -> (count: Int, eof: Bool, attributes: FileAttributes)? {
        guard let preadv2 = preadv2Function, let (ex, obj, st) = try acquireIfCached(h) else { return nil }
        defer { cache.release(obj) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        try checkAccess(obj, st, R_OK, cred, ownerOverride: true)
        let fd = try cache.dataFD(obj, write: false)
        var total = 0
        let (start, length) = readRange(offset: offset, count: count)
        if length > 0 {
            var wouldBlock = false
            total = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { p in
                var done = 0
                // tmpfs data is memory: a plain read never waits for a disk, and
                // before Linux 6.6 tmpfs refuses RWF_NOWAIT (one wasted syscall per READ).
                let flags = ex.isMemoryBacked ? 0 : RWF_NOWAIT
                while done < length {
                    var iov = iovec(iov_base: p.baseAddress! + done, iov_len: length - done)
                    let n = preadv2(fd, &iov, 1, start + off_t(done), flags)
                    if n < 0 {
                        let e = errno
                        if e == EINTR { continue }
                        if e == EAGAIN || e == EOPNOTSUPP { wouldBlock = true; return 0 }
                        throw FSError.errno(e)
                    }
                    if n == 0 { break }
                    done += n
                }
                return done
            }
            if wouldBlock { return nil }
        }
        let after = try attributes(ex, fd: obj.pathFD)
        return (total, offset + UInt64(total) >= after.size, after)
    }

    /// WRITE without blocking: the same result as `write(_:offset:data:stability:as:)`,
    /// or nil when that could wait: the object is not in the open-file cache, or its data
    /// is not memory (tmpfs), where a write, and the fsync of a stable one, may wait for a
    /// disk. On tmpfs the data is copied into memory pages and fsync has nothing to flush,
    /// so the call costs no more than a READ of the same size does on the event loop. (It
    /// takes the inode lock, which another writer of the file holds only for its own copy.)
    /// Errors are thrown before anything is written (checks) or by the write itself; the
    /// caller answers every error on the ordinary path, which repeats the write at the same
    /// offset with the same data.
    public func writeWithoutBlocking(_ h: ObjectHandle, offset: UInt64, data: ByteBuffer, stability: WriteStability,
                                     as cred: Credentials) throws -> WriteResult? {
        // An unknown export is the pool's to answer (BADHANDLE), like every other refusal.
        guard let ex = export(h.exportID), ex.isMemoryBacked, case .usable(let obj, let st) = cacheHit(ex, h) else { return nil }
        defer { cache.release(obj) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return try write(ex, obj, st, offset: offset, data: data, stability: stability, as: cred)
    }

    /// GETATTR without blocking: nil unless the object is in the open-file cache.
    public func getattrWithoutBlocking(_ h: ObjectHandle) throws -> FileAttributes? {
        guard let (ex, obj, st) = try acquireIfCached(h) else { return nil }
        cache.release(obj)
        return FileAttributes(st, exportID: ex.root.id)
    }

    /// LOOKUP without blocking: the same answer as `lookup(_:_:as:)`, or nil when that
    /// would wait (directory not in the open-file cache, name not in the dentry cache,
    /// an index record to write, kernel older than 5.12) or when the answer is an error
    /// other than "no such name"; the ordinary method then answers.
    ///
    /// The name is opened with openat2(RESOLVE_CACHED) under the caller's (squashed)
    /// identity, as the ordinary path opens it with openat: the kernel checks search
    /// permission on the directory exactly as there. An RCU-walk permission check that
    /// fails or would sleep (ACLs not cached) gives EAGAIN, so denials are answered by
    /// the ordinary path. Symlinks are opened, never followed (O_NOFOLLOW, as there);
    /// mount points (RESOLVE_NO_XDEV), "." and ".." go to the ordinary path.
    /// Kernel handles only: inode handles read the generation through a real open.
    public func lookupWithoutBlocking(_ dirHandle: ObjectHandle, _ name: [UInt8], as cred: Credentials) throws -> LookupWithoutBlocking? {
        try Self.checkName(name, creating: false)
        guard name != [0x2E], name != [0x2E, 0x2E] else { return nil }
        guard let (ex, dir, dirStat) = try acquireIfCached(dirHandle) else { return nil }
        defer { cache.release(dir) }
        guard dir.isDirectory, ex.mode == .kernel else { return nil }
        let fd = try ident.run(cred) {
            withName(name) { hostfs_openat2_cached(dir.pathFD, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        }
        if fd == -ENOENT {
            // A cached negative dentry, found after the search permission check passed.
            return .absent(directory: FileAttributes(dirStat, exportID: ex.root.id))
        }
        guard fd >= 0 else { return nil }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_dev) == ex.dev,
              ex.index?.knows(ino: UInt64(st.st_ino), parent: dir.inode.ino, name: name) ?? true else {
            close(fd)
            return nil
        }
        let directory = WccData(before: nil, after: FileAttributes(dirStat, exportID: ex.root.id))
        // A handle that cannot be made here is the ordinary path's to report.
        return (try? node(ex, dir: dir, name: name, fd: fd, st: st, directory: directory)).map { .found($0) }
    }
}

/// What `lookupWithoutBlocking` found: the object, or that the name does not exist
/// (with the directory's attributes, which NFS returns with NFS3ERR_NOENT).
public enum LookupWithoutBlocking: Sendable {
    case found(NodeResult)
    case absent(directory: FileAttributes)
}
