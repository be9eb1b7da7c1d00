import CSupport
import Glibc
import NIOCore

extension HostFileSystem {
    // MARK: helpers

    func statOf(_ fd: Int32) throws -> Glibc.stat {
        var st = Glibc.stat()
        _ = try sys { fstat(fd, &st) }
        return st
    }

    func attributes(_ ex: Export, fd: Int32) throws -> FileAttributes {
        FileAttributes(try statOf(fd), exportID: ex.root.id)
    }

    func attributesIfPossible(_ ex: Export, fd: Int32) -> FileAttributes? {
        try? attributes(ex, fd: fd)
    }

    /// Names from clients: never empty, never containing '/' or NUL; when `creating`
    /// (or removing/renaming), never "." or "..".
    static func checkName(_ name: [UInt8], creating: Bool) throws {
        guard !name.isEmpty, !name.contains(0), !name.contains(0x2F) else { throw FSError.invalidName }
        guard name.count <= 255 else { throw FSError.errno(ENAMETOOLONG) }
        if creating && (name == [0x2E] || name == [0x2E, 0x2E]) { throw FSError.invalidName }
    }

    /// The one permission check for data access: as root, the caller's identity asks the
    /// kernel (faccessat, AT_EACCESS); the owner may always read/write their own file (as
    /// knfsd allows, for files created with modes like 0444). Unprivileged, opening the
    /// data fd as the server's user is the check.
    func checkAccess(_ obj: CachedObject, _ st: Glibc.stat, _ mode: Int32, _ cred: Credentials, ownerOverride: Bool) throws {
        guard ident.enabled else { return }
        if ownerOverride && st.st_uid == cred.uid { return }
        try ident.run(cred) { _ = try shim { hostfs_access_fd(obj.pathFD, mode) } }
    }

    func requireDirectory(_ obj: CachedObject) throws {
        guard obj.isDirectory else { throw FSError.errno(ENOTDIR) }
    }

    /// Apply attributes to an object (SETATTR, and the attributes given to CREATE etc.).
    func apply(_ a: SetAttributes, to obj: CachedObject, _ cred: Credentials) throws {
        if let size = a.size {
            let st = try statOf(obj.pathFD)
            switch st.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw FSError.errno(EISDIR)
            default: throw FSError.errno(EINVAL)
            }
            try checkAccess(obj, st, W_OK, cred, ownerOverride: true)
            guard let length = fileOffset(size) else { throw FSError.errno(EFBIG) }
            let fd = try cache.dataFD(obj, write: true)
            _ = try sys { ftruncate(fd, length) }
        }
        guard a.uid != nil || a.gid != nil || a.mode != nil || a.atime != .dontChange || a.mtime != .dontChange else {
            return
        }
        // chmod and utimensat cannot take an O_PATH fd, and /proc/self/fd/N
        // cannot be followed once the thread's fsuid is a client's (setfsuid
        // makes the process non-dumpable; Linux 6.1 then refuses the link).
        // So a real fd is opened as the server, and fchmod/futimens run as
        // the client: the kernel still checks ownership as the client.
        let realFD = try openForAttributes(obj)
        defer { if realFD >= 0 { close(realFD) } }
        let proc = "/proc/self/fd/\(obj.pathFD)"
        try ident.run(cred) {
            if a.uid != nil || a.gid != nil {
                let u = a.uid.map { uid_t($0) } ?? uid_t.max
                let g = a.gid.map { gid_t($0) } ?? gid_t.max
                _ = try sys { fchownat(obj.pathFD, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
            }
            if let m = a.mode {
                // After chown, which may clear set-id bits.
                _ = try sys { realFD >= 0 ? fchmod(realFD, mode_t(m & 0o7777)) : chmod(proc, mode_t(m & 0o7777)) }
            }
            if a.atime != .dontChange || a.mtime != .dontChange {
                func ts(_ c: TimeChange) -> timespec {
                    switch c {
                    case .dontChange: return timespec(tv_sec: 0, tv_nsec: Int(UTIME_OMIT))
                    case .serverTime: return timespec(tv_sec: 0, tv_nsec: Int(UTIME_NOW))
                    case .client(let t): return t.timespec
                    }
                }
                var times = [ts(a.atime), ts(a.mtime)]
                _ = try sys { realFD >= 0 ? futimens(realFD, &times) : utimensat(AT_FDCWD, proc, &times, 0) }
            }
        }
    }

    /// A real (non-O_PATH) fd on `obj`, opened with the server's identity, for
    /// fchmod/futimens; -1 for objects that must not be opened (devices and
    /// sockets: opening a device has side effects) or cannot be (symlinks),
    /// which fall back to their /proc/self/fd path.
    func openForAttributes(_ obj: CachedObject) throws -> Int32 {
        let type = try statOf(obj.pathFD).st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFDIR || type == S_IFIFO else { return -1 }
        let flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (type == S_IFDIR ? O_DIRECTORY : 0)
        return try sys { open("/proc/self/fd/\(obj.pathFD)", flags) }
    }

    /// Register a new object (fd is O_PATH, given to the cache) and build the result.
    func node(_ ex: Export, dir: CachedObject, name: [UInt8], fd: Int32, dirBefore: FileAttributes?) throws -> NodeResult {
        let st: Glibc.stat
        do { st = try statOf(fd) } catch { close(fd); throw error }
        return try node(ex, dir: dir, name: name, fd: fd, st: st,
                        directory: WccData(before: dirBefore, after: attributesIfPossible(ex, fd: dir.pathFD)))
    }

    /// The same, with the object's stat and the directory's wcc data already taken.
    /// On failure the fd is closed.
    func node(_ ex: Export, dir: CachedObject, name: [UInt8], fd: Int32, st: Glibc.stat, directory: WccData) throws -> NodeResult {
        let h: ObjectHandle
        do {
            h = try makeHandle(ex, fd: fd, st: st, parentIno: dir.inode.ino, name: name)
        } catch {
            close(fd)
            throw error
        }
        register(ex, h, fd: fd, st: st)
        return NodeResult(handle: h, attributes: FileAttributes(st, exportID: ex.root.id), directory: directory)
    }

    // MARK: procedures

    /// GETATTR.
    public func getattr(_ h: ObjectHandle, as cred: Credentials) throws -> FileAttributes {
        try withObject(h) { ex, obj in try attributes(ex, fd: obj.pathFD) }
    }

    /// SETATTR. `guardCtime` (sattrguard3) is checked here against the ctime before the change:
    /// a mismatch throws `.notSync`. Returns attributes before and after.
    public func setattr(_ h: ObjectHandle, _ a: SetAttributes, guardCtime: FSTime? = nil, as cred: Credentials) throws -> WccData {
        try withObject(h) { ex, obj in
            let before = try attributes(ex, fd: obj.pathFD)
            if let g = guardCtime, g != before.ctime { throw FSError.notSync }
            try apply(a, to: obj, cred)
            return WccData(before: before, after: attributesIfPossible(ex, fd: obj.pathFD))
        }
    }

    /// LOOKUP. "." is the directory itself; ".." at the export root is the root.
    /// Never follows symlinks. Throws `.otherFilesystem` for a mount point inside the export.
    public func lookup(_ dirHandle: ObjectHandle, _ name: [UInt8], as cred: Credentials) throws -> NodeResult {
        try Self.checkName(name, creating: false)
        return try withObject(dirHandle) { ex, dir in
            try requireDirectory(dir)
            let atRoot = dir.inode == ex.rootInode
            let target: [UInt8] = (name == [0x2E, 0x2E] && atRoot) ? [0x2E] : name
            let fd = try ident.run(cred) {
                try target == [0x2E, 0x2E]
                    ? openParent(ex, dir)
                    : sys { withName(target) { openat(dir.pathFD, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC) } }
            }
            if target == [0x2E] {
                close(fd)
                let r = try attributes(ex, fd: dir.pathFD)
                return NodeResult(handle: dirHandle, attributes: r, directory: WccData(before: nil, after: r))
            }
            let st: Glibc.stat
            do { st = try statOf(fd) } catch { close(fd); throw error }
            let h: ObjectHandle
            do {
                h = target == [0x2E, 0x2E]
                    ? try makeHandle(ex, fd: fd, st: st, parentIno: nil, name: nil)
                    : try makeHandle(ex, fd: fd, st: st, parentIno: dir.inode.ino, name: target)
            } catch {
                close(fd)
                throw error
            }
            register(ex, h, fd: fd, st: st)
            return NodeResult(handle: h, attributes: FileAttributes(st, exportID: ex.root.id),
                              directory: WccData(before: nil, after: attributesIfPossible(ex, fd: dir.pathFD)))
        }
    }

    /// An O_PATH fd of a directory's parent (not at the export root), which must lie
    /// inside the export: the directory was when it was acquired, but the host may have
    /// moved it out since, and then its parent is a directory outside (STALE).
    func openParent(_ ex: Export, _ dir: CachedObject) throws -> Int32 {
        let fd = try sys { openat(dir.pathFD, "..", O_PATH | O_DIRECTORY | O_CLOEXEC) }
        guard ex.contains(fd: fd) else {
            close(fd)
            throw FSError.stale
        }
        return fd
    }

    /// ACCESS: which of `requested` the caller may really do (as root: asked of the kernel
    /// under the caller's identity; unprivileged: what the server's user may do).
    public func access(_ h: ObjectHandle, requested: AccessMask, as cred: Credentials) throws -> (granted: AccessMask, attributes: FileAttributes) {
        try withObject(h) { ex, obj in
            let attrs = try attributes(ex, fd: obj.pathFD)
            var granted: AccessMask = []
            try ident.run(cred) {
                func may(_ m: Int32) -> Bool { hostfs_access_fd(obj.pathFD, m) == 0 }
                let r = requested.contains(.read) && may(R_OK)
                let w = !requested.isDisjoint(with: [.modify, .extend, .delete]) && may(W_OK)
                let x = !requested.isDisjoint(with: [.lookup, .execute]) && may(X_OK)
                if r { granted.insert(.read) }
                if w {
                    granted.formUnion(requested.intersection([.modify, .extend]))
                    if attrs.type == .directory && requested.contains(.delete) { granted.insert(.delete) }
                }
                if x {
                    granted.formUnion(requested.intersection(attrs.type == .directory ? [.lookup] : [.execute]))
                }
            }
            return (granted, attrs)
        }
    }

    /// READLINK: the link's text, as bytes.
    public func readlink(_ h: ObjectHandle, as cred: Credentials) throws -> (target: [UInt8], attributes: FileAttributes) {
        try withObject(h) { ex, obj in
            let attrs = try attributes(ex, fd: obj.pathFD)
            guard attrs.type == .symlink else { throw FSError.errno(EINVAL) }
            var buf = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = try ident.run(cred) {
                try sys { buf.withUnsafeMutableBufferPointer { b in
                    b.withMemoryRebound(to: CChar.self) { readlinkat(obj.pathFD, "", $0.baseAddress!, b.count) }
                } }
            }
            return (Array(buf[0..<n]), attrs)
        }
    }

    /// READ `count` bytes at `offset` into a buffer from `allocator` (see `read(_:offset:count:appendingTo:as:)`).
    public func read(_ h: ObjectHandle, offset: UInt64, count: UInt32, allocator: ByteBufferAllocator, as cred: Credentials) throws -> ReadResult {
        var buffer = allocator.buffer(capacity: Int(count))
        let r = try read(h, offset: offset, count: count, appendingTo: &buffer, as: cred)
        return ReadResult(data: buffer, eof: r.eof, attributes: r.attributes)
    }

    /// WRITE the readable bytes of `data` at `offset`. `.dataSync` runs fdatasync and
    /// `.fileSync` fsync before returning; `committed` says what was done.
    public func write(_ h: ObjectHandle, offset: UInt64, data: ByteBuffer, stability: WriteStability, as cred: Credentials) throws -> WriteResult {
        try withObjectStat(h) { ex, obj, st in
            switch st.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw FSError.errno(EISDIR)
            default: throw FSError.errno(EINVAL)
            }
            return try write(ex, obj, st, offset: offset, data: data, stability: stability, as: cred)
        }
    }

    /// WRITE to an acquired regular file (`st`: its fstat): the permission check as
    /// the caller, the write, the sync `stability` asks for, and the wcc data. The
    /// one body of both WRITE paths (the thread pool's and `writeWithoutBlocking`).
    func write(_ ex: Export, _ obj: CachedObject, _ st: Glibc.stat, offset: UInt64, data: ByteBuffer,
               stability: WriteStability, as cred: Credentials) throws -> WriteResult {
        let before = FileAttributes(st, exportID: ex.root.id)
        try checkAccess(obj, st, W_OK, cred, ownerOverride: true)
        let fd = try cache.dataFD(obj, write: true)
        // A write that stops part-way (the filesystem filled up, the file reached its
        // size limit) answers the bytes it wrote, as write(2) does: the client is told
        // the count and sends the rest again, which then gets the error. Only an error
        // before the first byte is the answer.
        let written = try data.withUnsafeReadableBytes { p -> Int in
            guard let start = fileOffset(offset, length: p.count) else { throw FSError.errno(EFBIG) }
            var done = 0
            while done < p.count {
                let n = pwrite(fd, p.baseAddress! + done, p.count - done, start + off_t(done))
                if n > 0 { done += n; continue }
                if n < 0 && errno == EINTR { continue }
                if done > 0 { break }
                throw n < 0 ? FSError.current : FSError.errno(EIO)
            }
            return done
        }
        switch stability {
        case .unstable: break
        case .dataSync: _ = try sys { fdatasync(fd) }
        case .fileSync: _ = try sys { fsync(fd) }
        }
        return WriteResult(count: UInt32(written), committed: stability, verifier: writeVerifier,
                           wcc: WccData(before: before, after: attributesIfPossible(ex, fd: obj.pathFD)))
    }

    /// COMMIT: fsync of the whole file (the range is not used). Returns the write verifier.
    public func commit(_ h: ObjectHandle, offset: UInt64, count: UInt32, as cred: Credentials) throws -> (verifier: UInt64, wcc: WccData) {
        try withObjectStat(h) { ex, obj, st in
            let before = FileAttributes(st, exportID: ex.root.id)
            guard before.type == .regular else { throw FSError.errno(before.type == .directory ? EISDIR : EINVAL) }
            let fd = try cache.syncFD(obj)
            _ = try sys { fsync(fd) }
            return (writeVerifier, WccData(before: before, after: attributesIfPossible(ex, fd: obj.pathFD)))
        }
    }

    /// CREATE a regular file.
    public func create(_ dirHandle: ObjectHandle, _ name: [UInt8], how: CreateHow, as cred: Credentials) throws -> NodeResult {
        try Self.checkName(name, creating: true)
        return try withObjectStat(dirHandle) { ex, dir, dirStat in
            try requireDirectory(dir)
            let before: FileAttributes? = FileAttributes(dirStat, exportID: ex.root.id)
            let flags = O_CREAT | O_EXCL | O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY
            var attrs = SetAttributes.none
            var created = true
            let fd: Int32 = try ident.run(cred) {
                switch how {
                case .guarded(let a), .unchecked(let a):
                    attrs = a
                    let mode = mode_t((a.mode ?? 0o644) & 0o7777)
                    let f = withName(name) { openat(dir.pathFD, $0, flags, mode) }
                    if f >= 0 { return f }  // a plain O_RDONLY fd serves as the object's path fd
                    guard errno == EEXIST, case .unchecked = how else { throw FSError.current }
                    // UNCHECKED on an existing file: use it, apply the attributes.
                    created = false
                    let e = try sys { withName(name) { openat(dir.pathFD, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC) } }
                    var st = Glibc.stat()
                    guard fstat(e, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { close(e); throw FSError.errno(EEXIST) }
                    return e
                case .exclusive(let verifier):
                    let hi = Int(verifier >> 32), lo = Int(verifier & 0xFFFF_FFFF)
                    let f = withName(name) { openat(dir.pathFD, $0, flags, 0o600) }
                    if f >= 0 {
                        var times = [timespec(tv_sec: hi, tv_nsec: 0), timespec(tv_sec: lo, tv_nsec: 0)]
                        if futimens(f, &times) != 0 {
                            let e = errno
                            close(f)
                            throw FSError.errno(e)
                        }
                        return f
                    }
                    guard errno == EEXIST else { throw FSError.current }
                    // A retry of the same exclusive create succeeds.
                    let e = try sys { withName(name) { openat(dir.pathFD, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC) } }
                    var st = Glibc.stat()
                    guard fstat(e, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                          st.st_atim.tv_sec == hi, st.st_mtim.tv_sec == lo,
                          st.st_atim.tv_nsec == 0, st.st_mtim.tv_nsec == 0 else { close(e); throw FSError.errno(EEXIST) }
                    created = false
                    return e
                }
            }
            var result = try node(ex, dir: dir, name: name, fd: fd, dirBefore: before)
            // umask may have trimmed the mode: the client's mode is the one it asked for.
            var rest = attrs
            if created, let m = rest.mode, result.attributes.mode == m & 0o7777 { rest.mode = nil }
            if created, rest.size == 0 { rest.size = nil }
            if !rest.isEmpty {
                try withObject(result.handle) { _, obj in try apply(rest, to: obj, cred) }
                result.attributes = try getattr(result.handle, as: cred)
            }
            return result
        }
    }

    /// MKDIR.
    public func mkdir(_ dirHandle: ObjectHandle, _ name: [UInt8], attributes a: SetAttributes, as cred: Credentials) throws -> NodeResult {
        try makeNode(dirHandle, name, a, cred) { dirFD, cname in
            _ = try sys { mkdirat(dirFD, cname, mode_t((a.mode ?? 0o755) & 0o7777)) }
        }
    }

    /// SYMLINK: the link text is stored as given (never interpreted by the server).
    public func symlink(_ dirHandle: ObjectHandle, _ name: [UInt8], target: [UInt8], attributes a: SetAttributes, as cred: Credentials) throws -> NodeResult {
        guard !target.contains(0) else { throw FSError.errno(EINVAL) }
        var rest = a
        rest.mode = nil  // Linux symlinks have no mode
        return try makeNode(dirHandle, name, rest, cred) { dirFD, cname in
            _ = try sys { withName(target) { symlinkat($0, dirFD, cname) } }
        }
    }

    /// MKNOD: FIFOs and sockets; devices only with `allowDevices` (the export lets root in).
    public func mknod(_ dirHandle: ObjectHandle, _ name: [UInt8], kind: SpecialNode, attributes a: SetAttributes,
                      allowDevices: Bool, as cred: Credentials) throws -> NodeResult {
        let perm = (a.mode ?? 0o644) & 0o7777
        let (type, major, minor): (UInt32, UInt32, UInt32)
        switch kind {
        case .fifo: (type, major, minor) = (UInt32(S_IFIFO), 0, 0)
        case .socket: (type, major, minor) = (UInt32(S_IFSOCK), 0, 0)
        case let .characterDevice(ma, mi):
            guard allowDevices else { throw FSError.errno(EPERM) }
            (type, major, minor) = (UInt32(S_IFCHR), ma, mi)
        case let .blockDevice(ma, mi):
            guard allowDevices else { throw FSError.errno(EPERM) }
            (type, major, minor) = (UInt32(S_IFBLK), ma, mi)
        }
        return try makeNode(dirHandle, name, a, cred) { dirFD, cname in
            _ = try shim { hostfs_mknodat(dirFD, cname, type | perm, major, minor) }
        }
    }

    private func makeNode(_ dirHandle: ObjectHandle, _ name: [UInt8], _ a: SetAttributes, _ cred: Credentials,
                          _ make: (Int32, UnsafePointer<CChar>) throws -> Void) throws -> NodeResult {
        try Self.checkName(name, creating: true)
        return try withObject(dirHandle) { ex, dir in
            try requireDirectory(dir)
            let before = attributesIfPossible(ex, fd: dir.pathFD)
            let fd = try ident.run(cred) { () throws -> Int32 in
                try withName(name) { try make(dir.pathFD, $0) }
                return try sys { withName(name) { openat(dir.pathFD, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC) } }
            }
            var result = try node(ex, dir: dir, name: name, fd: fd, dirBefore: before)
            var rest = a
            if let m = rest.mode, result.attributes.mode == m & 0o7777 { rest.mode = nil }
            if result.attributes.type == .symlink { rest.mode = nil }
            if !rest.isEmpty {
                try withObject(result.handle) { _, obj in try apply(rest, to: obj, cred) }
                result.attributes = try getattr(result.handle, as: cred)
            }
            return result
        }
    }

    /// REMOVE a non-directory.
    public func remove(_ dirHandle: ObjectHandle, _ name: [UInt8], as cred: Credentials) throws -> WccData {
        try unlinkEntry(dirHandle, name, flags: 0, cred)
    }

    /// RMDIR.
    public func rmdir(_ dirHandle: ObjectHandle, _ name: [UInt8], as cred: Credentials) throws -> WccData {
        try unlinkEntry(dirHandle, name, flags: AT_REMOVEDIR, cred)
    }

    private func unlinkEntry(_ dirHandle: ObjectHandle, _ name: [UInt8], flags: Int32, _ cred: Credentials) throws -> WccData {
        try Self.checkName(name, creating: true)
        return try withObjectStat(dirHandle) { ex, dir, dirStat in
            try requireDirectory(dir)
            let before: FileAttributes? = FileAttributes(dirStat, exportID: ex.root.id)
            var st = Glibc.stat()
            let had = withName(name) { fstatat(dir.pathFD, $0, &st, AT_SYMLINK_NOFOLLOW) } == 0
            try ident.run(cred) {
                _ = try sys { withName(name) { unlinkat(dir.pathFD, $0, flags) } }
            }
            if had {
                forget(ex, InodeKey(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)), parent: dir.inode.ino, name: name,
                       gone: flags == AT_REMOVEDIR || st.st_nlink <= 1)
            }
            return WccData(before: before, after: attributesIfPossible(ex, fd: dir.pathFD))
        }
    }

    /// After a name disappeared: drop cached fds of a gone object, and its index record.
    private func forget(_ ex: Export, _ inode: InodeKey, parent: UInt64, name: [UInt8], gone: Bool) {
        if gone { cache.invalidate(inode) }
        ex.index?.remove(ino: inode.ino, parent: gone ? nil : parent, name: gone ? nil : name)
    }

    /// RENAME within one export. Returns weak cache data of both directories.
    public func rename(from fromDir: ObjectHandle, _ fromName: [UInt8], to toDir: ObjectHandle, _ toName: [UInt8],
                       as cred: Credentials) throws -> (from: WccData, to: WccData) {
        try Self.checkName(fromName, creating: true)
        try Self.checkName(toName, creating: true)
        guard fromDir.exportID == toDir.exportID else { throw FSError.errno(EXDEV) }
        return try withObject(fromDir) { ex, src in
            try requireDirectory(src)
            return try withObject(toDir) { _, dst in
                try requireDirectory(dst)
                let fromBefore = attributesIfPossible(ex, fd: src.pathFD)
                let toBefore = attributesIfPossible(ex, fd: dst.pathFD)
                var moved = Glibc.stat(), replaced = Glibc.stat()
                let hadSource = withName(fromName) { fstatat(src.pathFD, $0, &moved, AT_SYMLINK_NOFOLLOW) } == 0
                let hadTarget = withName(toName) { fstatat(dst.pathFD, $0, &replaced, AT_SYMLINK_NOFOLLOW) } == 0
                try ident.run(cred) {
                    _ = try sys { withName(fromName) { f in withName(toName) { t in renameat(src.pathFD, f, dst.pathFD, t) } } }
                }
                if hadTarget && !(hadSource && moved.st_ino == replaced.st_ino && moved.st_dev == replaced.st_dev) {
                    let isDir = (replaced.st_mode & S_IFMT) == S_IFDIR
                    forget(ex, InodeKey(dev: UInt64(replaced.st_dev), ino: UInt64(replaced.st_ino)),
                           parent: dst.inode.ino, name: toName, gone: isDir || replaced.st_nlink <= 1)
                }
                if hadSource {
                    ex.index?.record(ino: UInt64(moved.st_ino), parent: dst.inode.ino, name: toName)
                }
                return (WccData(before: fromBefore, after: attributesIfPossible(ex, fd: src.pathFD)),
                        WccData(before: toBefore, after: attributesIfPossible(ex, fd: dst.pathFD)))
            }
        }
    }

    /// LINK: a new name `name` in `dirHandle` for the object `h`.
    public func link(_ h: ObjectHandle, to dirHandle: ObjectHandle, _ name: [UInt8], as cred: Credentials) throws -> (attributes: FileAttributes, directory: WccData) {
        try Self.checkName(name, creating: true)
        guard h.exportID == dirHandle.exportID else { throw FSError.errno(EXDEV) }
        return try withObject(h) { ex, obj in
            try withObject(dirHandle) { _, dir in
                try requireDirectory(dir)
                guard !obj.isDirectory else { throw FSError.errno(EISDIR) }
                let before = attributesIfPossible(ex, fd: dir.pathFD)
                try ident.run(cred) {
                    if ident.enabled {
                        // Running as the client, /proc/self/fd/N cannot be followed (see
                        // `apply`); linking the fd itself needs CAP_DAC_READ_SEARCH, which
                        // setfsuid dropped from the effective set. Raised for this thread
                        // only, it grants no write access: the target directory and
                        // protected_hardlinks are still checked as the client. Restoring
                        // the server's fsuid resets the thread's fs capabilities.
                        _ = try shim { hostfs_raise_dac_read_search() }
                        _ = try sys { withName(name) { linkat(obj.pathFD, "", dir.pathFD, $0, AT_EMPTY_PATH) } }
                    } else {
                        _ = try sys { withName(name) { linkat(AT_FDCWD, "/proc/self/fd/\(obj.pathFD)", dir.pathFD, $0, AT_SYMLINK_FOLLOW) } }
                    }
                }
                return (try attributes(ex, fd: obj.pathFD),
                        WccData(before: before, after: attributesIfPossible(ex, fd: dir.pathFD)))
            }
        }
    }

    /// FSSTAT.
    public func fsstat(_ h: ObjectHandle, as cred: Credentials) throws -> FSStat {
        try withObject(h) { ex, obj in
            var s = statvfs()
            _ = try sys { fstatvfs(obj.pathFD, &s) }
            let f = UInt64(s.f_frsize)
            return FSStat(totalBytes: UInt64(s.f_blocks) * f, freeBytes: UInt64(s.f_bfree) * f,
                          availableBytes: UInt64(s.f_bavail) * f, totalFiles: UInt64(s.f_files),
                          freeFiles: UInt64(s.f_ffree), availableFiles: UInt64(s.f_favail),
                          attributes: try attributes(ex, fd: obj.pathFD))
        }
    }

    /// FSINFO: the values the host filesystem decides (transfer sizes are the caller's).
    public func fsinfo(_ h: ObjectHandle, as cred: Credentials) throws -> FSInfo {
        try withObject(h) { ex, obj in
            let bits = fpathconf(obj.pathFD, Int32(_PC_FILESIZEBITS))
            let maxSize: UInt64 = bits > 0 && bits < 64 ? (UInt64(1) << UInt64(bits)) - 1 : UInt64(Int64.max)
            return FSInfo(maxFileSize: maxSize, timeGranularity: FSTime(seconds: 0, nanoseconds: 1),
                          supportsLinks: true, supportsSymlinks: true, homogeneous: true, canSetTime: true,
                          attributes: try attributes(ex, fd: obj.pathFD))
        }
    }

    /// PATHCONF.
    public func pathconf(_ h: ObjectHandle, as cred: Credentials) throws -> PathConf {
        try withObject(h) { ex, obj in
            let linkMax = fpathconf(obj.pathFD, Int32(_PC_LINK_MAX))
            let nameMax = fpathconf(obj.pathFD, Int32(_PC_NAME_MAX))
            return PathConf(linkMax: linkMax > 0 ? UInt32(clamping: linkMax) : 65000,
                            nameMax: nameMax > 0 ? UInt32(clamping: nameMax) : 255,
                            noTrunc: true, chownRestricted: true, caseInsensitive: false, casePreserving: true,
                            attributes: try attributes(ex, fd: obj.pathFD))
        }
    }
}
