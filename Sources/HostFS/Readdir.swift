import CSupport
import Glibc

public struct DirectoryEntry: Sendable, Hashable {
    public var fileid: UInt64
    public var name: [UInt8]
    /// Where the next READDIR continues after this entry (the getdents64 d_off).
    public var cookie: UInt64
    /// READDIRPLUS only (nil when it could not be taken).
    public var attributes: FileAttributes?
    /// READDIRPLUS only (nil for objects that get no handle, e.g. mount points).
    public var handle: ObjectHandle?
}

public struct DirectoryListing: Sendable {
    public var entries: [DirectoryEntry]
    public var eof: Bool
    public var cookieVerifier: UInt64
    public var directoryAttributes: FileAttributes
}

extension HostFileSystem {
    /// XDR bytes of one READDIR entry3: value_follows + fileid + name + cookie.
    public static func readdirEntrySize(nameLength n: Int) -> Int { 4 + 8 + 4 + ((n + 3) & ~3) + 8 }

    /// XDR bytes of one READDIRPLUS entryplus3: entry3 + post_op_attr (fattr3 is 84 bytes) + post_op_fh3.
    public static func readdirplusEntrySize(nameLength n: Int, handleLength: Int?) -> Int {
        readdirEntrySize(nameLength: n) + 4 + 84 + (handleLength.map { 4 + 4 + (($0 + 3) & ~3) } ?? 4)
    }

    /// The cookie verifier of a directory: fixed for the directory (cookies are getdents64
    /// offsets, which stay valid while entries come and go), different between directories.
    func cookieVerifier(_ ex: Export, _ dir: CachedObject) -> UInt64 {
        var b: [UInt8] = Array("cookieverf".utf8)
        b.appendBE(ex.root.id)
        b.appendBE(dir.inode.dev)
        b.appendBE(dir.inode.ino)
        let v = codec.mac(b[...])
        return v == 0 ? 1 : v
    }

    /// READDIR / READDIRPLUS from `cookie` (0 = start).
    ///
    /// Entries are added while the sum of their XDR sizes (`readdirEntrySize` or
    /// `readdirplusEntrySize`) stays within `maxBytes`, and for `plus` the sum of their
    /// READDIR sizes within `dirBytes` (dircount). The caller subtracts its fixed reply
    /// overhead from maxcount before calling. "." and ".." are listed as the kernel returns
    /// them ("..": the root itself at the export root). A cookie verifier that is neither 0 nor
    /// this directory's throws `.badCookie`; a budget too small for one entry `.tooSmall`.
    public func readdir(_ dirHandle: ObjectHandle, cookie: UInt64, cookieVerifier verifier: UInt64, maxBytes: Int,
                        dirBytes: Int? = nil, plus: Bool, as cred: Credentials) throws -> DirectoryListing {
        try withObject(dirHandle) { ex, dir in
            try requireDirectory(dir)
            let expected = cookieVerifier(ex, dir)
            if cookie != 0 && verifier != 0 && verifier != expected { throw FSError.badCookie }
            let atRoot = dir.inode == ex.rootInode
            let dirAttrs = try attributes(ex, fd: dir.pathFD)
            var entries: [DirectoryEntry] = []
            entries.reserveCapacity(min(8192, maxBytes / (plus ? 128 : 32)))
            var eof = true
            // The kernel checks, as the caller, read permission (the names) and search
            // permission (attributes and handles for READDIRPLUS), as knfsd does: read without
            // search lists names only. The server opens and reads the directory, so that
            // handles never depend on who asked. (Opening "." from the O_PATH fd as the caller
            // would need search permission too.)
            let (readable, canSearch) = try ident.run(cred) {
                (hostfs_access_fd(dir.pathFD, R_OK), plus && hostfs_access_fd(dir.pathFD, X_OK) == 0)
            }
            if readable < 0 { throw FSError.errno(-readable) }
            let fd = try sys { openat(dir.pathFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { close(fd) }
            do {
                if cookie != 0 {
                    guard lseek(fd, off_t(Int64(bitPattern: cookie)), SEEK_SET) >= 0 else { throw FSError.badCookie }
                }
                var used = 0, dirUsed = 0
                // Where each handed-out object was seen, for the inode index (one lock per call).
                var links: [(ino: UInt64, parent: UInt64, name: [UInt8])] = []
                defer { ex.index?.record(links) }
                // getdents64 bytes per reply byte seen so far: each getdents64 call asks for
                // about what the rest of the budget holds, not a full buffer of entries of
                // which most would be read only to be dropped (and read again next call).
                var readBytes = 0, replyBytes = 0
                try scanEntries(fd, nextReadSize: {
                    let left = maxBytes - used
                    // Before any entry: at least 24 record bytes for a reply entry of at most
                    // 188 (READDIRPLUS, 64-byte handle) or 28 (READDIR) bytes.
                    guard replyBytes > 0 else { return plus ? left / 8 : left }
                    return left * readBytes / replyBytes + left * readBytes / replyBytes / 8 + 64
                }) { e in
                    let isDot = e.name.count == 1 && e.name[0] == 0x2E
                    let isDotDot = e.name.count == 2 && e.name[0] == 0x2E && e.name[1] == 0x2E
                    var size = Self.readdirEntrySize(nameLength: e.name.count)
                    let dsize = size
                    // Cheap refusal before any syscall: not even the entry without attributes fits.
                    if used + size > maxBytes || (dirBytes.map { dirUsed + dsize > $0 } ?? false)
                        || (plus && used + Self.readdirplusEntrySize(nameLength: e.name.count, handleLength: nil) > maxBytes) {
                        eof = false
                        return false
                    }
                    var entry = DirectoryEntry(fileid: e.ino, name: Array(e.name), cookie: UInt64(bitPattern: e.off))
                    if isDotDot && atRoot { entry.fileid = ex.ino }
                    if plus {
                        if isDot || (isDotDot && atRoot) {
                            entry.attributes = dirAttrs
                            entry.handle = atRoot ? ex.rootHandle : dirHandle
                            if isDot { entry.handle = dirHandle }
                        } else if canSearch && isDotDot {
                            // The parent by descriptor, checked to lie inside the export (the
                            // directory may have left it since it was acquired): else name only.
                            if let f = try? openParent(ex, dir) {
                                defer { close(f) }
                                var st = Glibc.stat()
                                if fstat(f, &st) == 0, UInt64(st.st_dev) == ex.dev {
                                    entry.attributes = FileAttributes(st, exportID: ex.root.id)
                                    entry.fileid = UInt64(st.st_ino)
                                    entry.handle = try? makeHandle(ex, fd: f, st: st, parentIno: nil, name: nil)
                                }
                            }
                        } else if canSearch {
                            // (A mount point inside the export gets neither: exports do not cross mounts.)
                            if ex.mode == .kernel {
                                if let (st, h) = kernelEntry(ex, dirFD: dir.pathFD, name: e.cName) {
                                    entry.attributes = FileAttributes(st, exportID: ex.root.id)
                                    entry.fileid = UInt64(st.st_ino)
                                    entry.handle = h
                                    if h != nil { links.append((UInt64(st.st_ino), dir.inode.ino, entry.name)) }
                                }
                            } else {
                                let f = openat(dir.pathFD, e.cName, O_PATH | O_NOFOLLOW | O_CLOEXEC)
                                if f >= 0 {
                                    defer { close(f) }
                                    var st = Glibc.stat()
                                    if fstat(f, &st) == 0, UInt64(st.st_dev) == ex.dev {
                                        entry.attributes = FileAttributes(st, exportID: ex.root.id)
                                        entry.fileid = UInt64(st.st_ino)
                                        entry.handle = try? makeHandle(ex, fd: f, st: st, parentIno: dir.inode.ino, name: entry.name)
                                    }
                                }
                            }
                        }
                        size = Self.readdirplusEntrySize(nameLength: e.name.count, handleLength: entry.handle?.bytes.count)
                    }
                    if used + size > maxBytes {
                        eof = false
                        return false
                    }
                    used += size
                    dirUsed += dsize
                    readBytes += e.recordLength
                    replyBytes += size
                    entries.append(entry)
                    return true
                }
            }
            if entries.isEmpty && !eof { throw FSError.tooSmall }
            return DirectoryListing(entries: entries, eof: eof, cookieVerifier: expected, directoryAttributes: dirAttrs)
        }
    }
}
