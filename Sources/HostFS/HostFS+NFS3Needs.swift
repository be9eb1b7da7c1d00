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
