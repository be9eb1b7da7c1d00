import Glibc
import NIOCore

// Added by the NFSProtocols owner (helper "nfs3"), for the READ reply path:
// the NFS layer builds the reply header in the reply buffer and wants the
// file data read straight after it, so a 1 MiB READ is not copied again.

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
            if count > 0 {
                total = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(count)) { p in
                    var done = 0
                    while done < Int(count) {
                        let n = try sys { pread(fd, p.baseAddress! + done, Int(count) - done, off_t(offset) + off_t(done)) }
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

private func isTmpfs(_ fd: Int32) -> Bool {
    guard let fstatfs = fstatfsFunction else { return false }
    return withUnsafeTemporaryAllocation(byteCount: 512, alignment: 16) { p in
        fstatfs(fd, p.baseAddress) == 0 && p.load(as: Int.self) == TMPFS_MAGIC
    }
}

extension HostFileSystem {
    /// The handle's object if the open-file cache has it and it still lies inside its
    /// export (the checks of `acquire`'s cache hit); nil otherwise, and then `acquire`
    /// decides (resolve again, or stale). Referenced: call `cache.release`.
    func acquireIfCached(_ h: ObjectHandle) throws -> (Export, CachedObject)? {
        guard let ex = export(h.exportID) else { throw FSError.badHandle }
        guard let obj = cache.acquire(h.bytes) else { return nil }
        var st = Glibc.stat()
        if fstat(obj.pathFD, &st) != 0 || st.st_nlink == 0 || !ex.contains(fd: obj.pathFD) {
            cache.release(obj)
            return nil
        }
        return (ex, obj)
    }

    /// READ without blocking: the same result as `read(_:offset:count:appendingTo:as:)`,
    /// or nil (buffer untouched) when that would wait for the disk or for opening the object.
    public func readWithoutBlocking(_ h: ObjectHandle, offset: UInt64, count: UInt32, appendingTo buffer: inout ByteBuffer,
                                    as cred: Credentials) throws -> (count: Int, eof: Bool, attributes: FileAttributes)? {
        guard let preadv2 = preadv2Function, let (ex, obj) = try acquireIfCached(h) else { return nil }
        defer { cache.release(obj) }
        let st = try statOf(obj.pathFD)
        guard (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        try checkAccess(obj, st, R_OK, cred, ownerOverride: true)
        let fd = try cache.dataFD(obj, write: false)
        var total = 0
        if count > 0 {
            var wouldBlock = false
            total = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(count)) { p in
                var done = 0
                var flags = RWF_NOWAIT
                while done < Int(count) {
                    var iov = iovec(iov_base: p.baseAddress! + done, iov_len: Int(count) - done)
                    let n = preadv2(fd, &iov, 1, off_t(offset) + off_t(done), flags)
                    if n < 0 {
                        let e = errno
                        if e == EINTR { continue }
                        if e == EOPNOTSUPP && flags != 0 && isTmpfs(fd) { flags = 0; continue }
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

    /// GETATTR without blocking: nil unless the object is in the open-file cache.
    public func getattrWithoutBlocking(_ h: ObjectHandle) throws -> FileAttributes? {
        guard let (ex, obj) = try acquireIfCached(h) else { return nil }
        defer { cache.release(obj) }
        return try attributes(ex, fd: obj.pathFD)
    }
}
