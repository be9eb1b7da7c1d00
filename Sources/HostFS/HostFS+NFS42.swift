import CSupport
import Glibc

/// NFSv4.2's data operations (RFC 7862): SEEK, ALLOCATE, DEALLOCATE, COPY
/// (within this server, synchronous) and CLONE, each on regular files with the
/// caller's permissions checked as for READ and WRITE.
extension HostFileSystem {
    /// A regular file's data fd, after the permission check of READ (R_OK) or WRITE (W_OK).
    private func dataFile<T>(_ h: ObjectHandle, write: Bool, as cred: Credentials,
                             _ body: (Int32, FileAttributes) throws -> T) throws -> T {
        try withObjectStat(h) { ex, obj, st in
            switch st.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw FSError.errno(EISDIR)
            default: throw FSError.errno(EINVAL)
            }
            try checkAccess(obj, st, write ? W_OK : R_OK, cred, ownerOverride: true)
            return try body(try cache.dataFD(obj, write: write), FileAttributes(st, exportID: ex.root.id))
        }
    }

    /// SEEK: the first data (or hole, `hole`) at or after `offset`, and whether
    /// that is the end of the file. ENXIO when there is none (as lseek says).
    public func seek(_ h: ObjectHandle, offset: UInt64, hole: Bool, as cred: Credentials) throws -> (eof: Bool, offset: UInt64) {
        try dataFile(h, write: false, as: cred) { fd, attributes in
            guard let start = fileOffset(offset) else { throw FSError.errno(ENXIO) }
            let found = try shim { hostfs_seek_data(fd, Int64(start), hole ? 1 : 0) }
            return (UInt64(found) >= attributes.size, UInt64(found))
        }
    }

    /// ALLOCATE (`punchHole` false) or DEALLOCATE (true, the size kept) of a range.
    public func allocate(_ h: ObjectHandle, offset: UInt64, length: UInt64, punchHole: Bool, as cred: Credentials) throws {
        guard length > 0, length <= UInt64(Int64.max), let start = fileOffset(offset, length: Int(length)) else {
            throw FSError.errno(EFBIG)
        }
        try dataFile(h, write: true, as: cred) { fd, _ in
            _ = try shim { hostfs_fallocate(fd, punchHole ? 1 : 0, Int64(start), Int64(length)) }
        }
    }

    /// COPY of `count` bytes (0: to the source's end) from `source` to `destination`,
    /// both in this server's exports; returns the bytes copied.
    public func copy(from source: ObjectHandle, offset sourceOffset: UInt64, to destination: ObjectHandle,
                     offset destinationOffset: UInt64, count: UInt64, as cred: Credentials) throws -> UInt64 {
        try dataFile(source, write: false, as: cred) { src, sourceAttributes in
            try dataFile(destination, write: true, as: cred) { dst, _ in
                guard sourceOffset <= sourceAttributes.size else { throw FSError.errno(EINVAL) }
                let wanted = count == 0 ? sourceAttributes.size - sourceOffset : count
                // Both ranges within off_t (copy_file_range's offsets), checked before any arithmetic.
                guard wanted <= UInt64(Int64.max), fileOffset(sourceOffset, length: Int(wanted)) != nil,
                      fileOffset(destinationOffset, length: Int(wanted)) != nil else { throw FSError.errno(EFBIG) }
                var done: UInt64 = 0
                while done < wanted {
                    let n = try shim { hostfs_copy_range(src, Int64(sourceOffset + done), dst,
                                                         Int64(destinationOffset + done), wanted - done) }
                    if n == 0 { break }
                    done += UInt64(n)
                }
                return done
            }
        }
    }

    /// CLONE (reflink) of a range; FSError.notSupported where the filesystem cannot.
    public func clone(from source: ObjectHandle, offset sourceOffset: UInt64, to destination: ObjectHandle,
                      offset destinationOffset: UInt64, count: UInt64, as cred: Credentials) throws {
        try dataFile(source, write: false, as: cred) { src, _ in
            try dataFile(destination, write: true, as: cred) { dst, _ in
                let r = hostfs_clone_range(src, Int64(bitPattern: sourceOffset), dst, Int64(bitPattern: destinationOffset), count)
                if r == -EOPNOTSUPP || r == -EXDEV || r == -ENOTTY || r == -EINVAL { throw FSError.notSupported }
                _ = try shim { r }
            }
        }
    }
}
