import CSupport
import Exports
import Glibc
import Synchronization
import Logging
import NIOConcurrencyHelpers
import NIOCore

public struct HostFSOptions: Sendable {
    /// Directory for the handle key and the inode indexes (created 0700 if missing).
    public var stateDirectory: String
    /// nil = choose per export: kernel handles if `open_by_handle_at` works, else inode handles.
    public var handleMode: HandleMode?
    /// Most fds the open-file cache keeps; nil = half of RLIMIT_NOFILE, at most 8192.
    public var openFileLimit: Int?
    /// nil = switch to each caller's fsuid/fsgid/groups when running as root.
    public var switchIdentity: Bool?
    /// Most directory entries one search of an export tree visits (stale index / disconnected file).
    public var searchLimit: Int
    /// Write fds unused this long are closed (an fd open for writing makes exec of the file
    /// on the host fail with ETXTBSY). Default 2 s, like knfsd's file cache for NFSv3.
    public var idleWriteCloseNanoseconds: UInt64 = 2_000_000_000
    public init(stateDirectory: String, handleMode: HandleMode? = nil, openFileLimit: Int? = nil,
                switchIdentity: Bool? = nil, searchLimit: Int = 200_000) {
        self.stateDirectory = stateDirectory
        self.handleMode = handleMode
        self.openFileLimit = openFileLimit
        self.switchIdentity = switchIdentity
        self.searchLimit = searchLimit
    }
}

extension ExportRoot {
    /// A table of `roots` under their own ids (as `fsid`), with no client rules.
    static func table(_ roots: [ExportRoot]) -> AuthTable {
        AuthTable(exports: roots.map { Exports.Export(hostPath: $0.hostPath, fsid: $0.id, clients: []) })
    }
}

/// The exports being served, replaced whole on reload.
struct ServedExports: Sendable {
    let table: AuthTable
    let byID: [UInt32: Export]
}

/// One open export.
final class Export: Sendable {
    let root: ExportRoot
    let rootFD: Int32
    /// A readable (non-O_PATH) fd of the root for open_by_handle_at, which refuses O_PATH mount fds; -1 if none.
    let mountFD: Int32
    let realPath: [UInt8]
    let dev: UInt64
    let ino: UInt64
    let mountID: Int32
    let mode: HandleMode
    let index: InodeIndex?
    let rootHandle: ObjectHandle
    /// Whether the export's filesystem keeps its data in memory (tmpfs): reading or
    /// writing never waits for a disk. Every object served lies on the root's
    /// filesystem (resolution refuses any other st_dev), so one fstatfs answers for all.
    let isMemoryBacked: Bool

    init(root: ExportRoot, rootFD: Int32, mountFD: Int32, realPath: [UInt8], st: stat, mountID: Int32, mode: HandleMode,
         index: InodeIndex?, rootHandle: ObjectHandle) {
        self.root = root
        self.rootHandle = rootHandle
        self.rootFD = rootFD
        self.mountFD = mountFD
        self.realPath = realPath
        self.dev = UInt64(st.st_dev)
        self.ino = UInt64(st.st_ino)
        self.mountID = mountID
        self.mode = mode
        self.index = index
        self.isMemoryBacked = isTmpfs(rootFD)
    }
    deinit {
        close(rootFD)
        if mountFD >= 0 { close(mountFD) }
    }

    var rootInode: InodeKey { InodeKey(dev: dev, ino: ino) }

    /// Is this fd's path (as the kernel reports it) the root or below it?
    /// Runs on every call that uses a cached object, so it reads the link into
    /// a stack buffer, relative to a kept fd of /proc/self/fd (no path walk of
    /// "/proc/self/fd/N", no String, no array): the same kernel answer as
    /// `procPath(fd)`, checked the same way.
    func contains(fd: Int32) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { b in
            let n = procReadlink(fd, into: UnsafeMutableRawBufferPointer(b))
            guard n > 0 else { return false }
            return Export.path(UnsafeBufferPointer(rebasing: b[0..<n]), isWithin: realPath)
        }
    }

    /// `path` is `root` or below it (`root` has no trailing slash unless it is "/").
    static func path<P: Collection>(_ p: P, isWithin root: [UInt8]) -> Bool where P.Element == UInt8, P.Index == Int {
        if p.elementsEqual(root) { return true }
        if root == [0x2F] { return p.first == 0x2F }
        return p.count > root.count && p.starts(with: root) && p[p.startIndex + root.count] == 0x2F
    }
}

/// The host filesystem behind the NFS server: file handles, and one synchronous,
/// thread-safe method per NFSv3 procedure. Call from thread-pool threads (methods block).
///
/// Guarantees, by handle mode (chosen per export at start: kernel when
/// `open_by_handle_at` works, i.e. with CAP_DAC_READ_SEARCH; else inode):
/// - Both: handles are at most 64 bytes, name the export by id and the object, never a
///   path; one object has one handle; a SipHash-2-4 tag under a random 128-bit key
///   (`<state>/handle-key`, 0600) refuses forged, altered, truncated or extended handles
///   before any syscall (`.badHandle`); a handle of an export that a reload removed is
///   `.stale`, and valid again if the export comes back under the same id. Renames of the object or
///   its parents, through the server or behind its back, keep handles valid, and so do
///   restarts (same state directory). A removed object gives `.stale`, so does an object
///   moved out of its export; no handle ever reaches a file outside its export. Exports do
///   not cross mount points. Symlinks are never followed.
/// - Kernel: the kernel's own handle (inode + generation, as knfsd) finds the object;
///   directories are checked to lie below the export root by path; a file whose dentry is
///   disconnected (cold cache after a restart) is found again through the inode index or a
///   bounded search; if neither finds it inside the export, it is stale.
/// - Inode: inode number + generation (FS_IOC_GETVERSION, where readable) + birth time
///   (statx) identify the object, so a reused inode number is not mistaken for it; the
///   persisted index (inode -> parent, name) finds it by walking names from the root, and
///   a bounded search of the export (`searchLimit` entries) when the index is out of date.
///   Beyond the limit, or for objects the server's user cannot reach, handles are stale.
/// - Identity: as root every operation runs with the caller's fsuid/fsgid/groups on its
///   own thread; unprivileged, with the server's identity (ACCESS answers for it).
public final class HostFileSystem: Sendable {
    public let options: HostFSOptions
    /// Changes on every start; WRITE and COMMIT return it.
    public let writeVerifier: UInt64
    let codec: HandleCodec
    let ident: IdentitySwitcher
    let cache: OpenFileCache
    let logger: Logger
    /// The one list of exports: the auth table and the opened roots it names, replaced
    /// together by `setExports` so that no reader sees one without the other.
    private let served: ReadMostly<ServedExports>
    private let memoryBackedExports = Atomic<Bool>(false)
    /// When `descriptorsExhausted` last logged (CLOCK_MONOTONIC ns; 0: never).
    private let lastDescriptorWarning = Atomic<UInt64>(0)
    private let reconnects = Atomic<Int>(0)
    /// Handles found stale recently -> when to forget that (CLOCK_MONOTONIC ns). Spares
    /// the export a search per retry of a dead handle.
    private let recentlyStale = NIOLockedValueBox<[[UInt8]: UInt64]>([:])
    static let staleMemoryNanoseconds: UInt64 = 10_000_000_000

    /// How many handles were found again by parent hint or search (disconnected or stale index).
    public var reconnectCount: Int { reconnects.load(ordering: .relaxed) }
    func countReconnect() { reconnects.add(1, ordering: .relaxed) }

    /// The exports of `table`, each under its `Export.handleID`.
    public init(exports table: AuthTable, options: HostFSOptions, logger: Logger = Logger(label: "vsnfs.hostfs")) throws {
        self.options = options
        self.logger = logger
        var rng = SystemRandomNumberGenerator()
        self.writeVerifier = rng.next()
        self.ident = IdentitySwitcher(enabled: options.switchIdentity ?? (geteuid() == 0))
        self.codec = HandleCodec(key: try HostFileSystem.loadKey(stateDirectory: options.stateDirectory))
        var lim = Glibc.rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let soft = lim.rlim_cur == rlim_t.max ? 65536 : Int(clamping: lim.rlim_cur)
        self.cache = OpenFileCache(limit: options.openFileLimit ?? min(8192, max(16, soft / 2)))
        self.served = ReadMostly(ServedExports(table: AuthTable(exports: []), byID: [:]))
        try setExports(table)
        cache.startSweeper(interval: 1_000_000_000, idle: options.idleWriteCloseNanoseconds)
    }

    deinit { cache.stopSweeper() }

    /// Exports nobody may reach (no client rules) under explicit ids: for callers that
    /// use HostFS without an exports file (tests, tools).
    public convenience init(exports roots: [ExportRoot], options: HostFSOptions,
                            logger: Logger = Logger(label: "vsnfs.hostfs")) throws {
        try self.init(exports: ExportRoot.table(roots), options: options, logger: logger)
    }

    /// Replace the exports (SIGHUP reload): opens the new ones, then swaps the whole
    /// list, auth table included, at once. Unchanged exports keep their state. On error
    /// nothing changes. One call at a time (the server reloads from its signal loop).
    public func setExports(_ table: AuthTable) throws {
        var next: [UInt32: Export] = [:]
        let current = served.read { $0.byID }
        for (export, id) in zip(table.exports, table.ids) {
            let r = ExportRoot(id: id, hostPath: export.hostPath)
            guard next[r.id] == nil else { throw FSError.serverFault("export id \(r.id) used twice") }
            if let e = current[r.id], e.root == r {
                next[r.id] = e
            } else {
                next[r.id] = try openExport(r)
            }
        }
        let list = ServedExports(table: table, byID: next)
        served.replace(list)
        memoryBackedExports.store(next.values.contains { $0.isMemoryBacked }, ordering: .relaxed)
        if current.keys.contains(where: { next[$0] == nil }) { cache.forgetExports(keeping: Set(next.keys)) }
    }

    /// The current auth table; its `exportIndex(id:)` says whether a handle's export is still served.
    public var exportTable: AuthTable { served.read { $0.table } }

    /// Whether any export is memory-backed (tmpfs), so that callers can skip asking
    /// for work that only those allow on the event loop (`writeWithoutBlocking`).
    public var servesMemoryBackedExport: Bool { memoryBackedExports.load(ordering: .relaxed) }

    /// The handle mode an export uses.
    public func handleMode(exportID: UInt32) -> HandleMode? { export(exportID)?.mode }

    /// Number of fds the open-file cache holds now (for metrics and tests).
    public var cachedFileDescriptorCount: Int { cache.fileDescriptorCount }
    public var openFileLimit: Int { cache.limit }

    func export(_ id: UInt32) -> Export? { served.read { $0.byID[id] } }

    // MARK: handles

    /// Check a handle from the wire: structure and MAC, no syscalls. Throws `.badHandle`.
    /// `exportID` then says which export it names. A handle this server made for an
    /// export a reload has since removed decodes, and using it is `.stale`: RFC 1813
    /// 2.6 has NFS3ERR_STALE for a file that "no longer exists or access to it has been
    /// revoked", NFS3ERR_BADHANDLE for one that "failed internal consistency checks".
    public func decodeHandle<C: Collection>(_ bytes: C) throws -> ObjectHandle where C.Element == UInt8 {
        try codec.open(bytes)
    }

    /// The handle of an export's root directory.
    public func rootHandle(exportID: UInt32) throws -> ObjectHandle {
        guard let e = export(exportID) else { throw FSError.stale }
        return e.rootHandle
    }

    /// For MOUNT: the handle of a directory below an export's root, given relative to it
    /// ("a/b"; empty, "/" and "." components are ignored, ".." is refused). Symlinks are not followed.
    public func directoryHandle(exportID: UInt32, relativePath: String, as cred: Credentials) throws -> ObjectHandle {
        guard let ex = export(exportID) else { throw FSError.stale }
        let parts = relativePath.utf8.split(separator: 0x2F).map(Array.init).filter { $0 != [0x2E] }
        var h = ex.rootHandle
        for p in parts {
            if p == [0x2E, 0x2E] { throw FSError.invalidName }
            let r = try lookup(h, p, as: cred)
            guard r.attributes.type == .directory else { throw FSError.errno(ENOTDIR) }
            h = r.handle
        }
        return h
    }

    func makeHandle(_ ex: Export, fd: Int32, st: stat, parentIno: UInt64?, name: [UInt8]?) throws -> ObjectHandle {
        guard UInt64(st.st_dev) == ex.dev else { throw FSError.otherFilesystem }
        let h = try sealHandle(fd: fd, st: st, mode: ex.mode, mountID: ex.mountID, exportID: ex.root.id)
        recordLink(ex, st: st, parentIno: parentIno, name: name)
        return h
    }

    /// The handle of the object open as `fd` in an export with this mode, mount and id.
    private func sealHandle(fd: Int32, st: stat, mode: HandleMode, mountID: Int32, exportID: UInt32) throws -> ObjectHandle {
        switch mode {
        case .kernel:
            let (h, type, mnt) = try kernelHandle(fd)
            guard mnt == mountID else { throw FSError.otherFilesystem }
            guard type >= 0 && type <= 255 else { throw FSError.notSupported }
            return try codec.seal(.kernel(type: UInt8(type), handle: h), exportID: exportID)
        case .inode:
            let ino = UInt64(st.st_ino)
            return try codec.seal(.inode(ino: ino, generation: try generation(fd, st), birth: birthTag(fd)), exportID: exportID)
        }
    }

    /// READDIRPLUS in kernel mode: the attributes and handle of `name` in the directory
    /// `dirFD`, without opening it: fstatat and name_to_handle_at, both on the name and
    /// neither following a final symlink. Nil attributes: the entry is gone, or on another
    /// filesystem or mount (a mount point inside the export), which gets no handle either.
    /// The name is stat'ed again after the handle is taken, so the two name the same inode
    /// unless the name was replaced and put back in between.
    func kernelEntry(_ ex: Export, dirFD: Int32, name: UnsafePointer<CChar>) -> (stat, ObjectHandle?)? {
        precondition(ex.mode == .kernel)
        var st = Glibc.stat()
        guard fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0, UInt64(st.st_dev) == ex.dev else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { buf -> (stat, ObjectHandle?)? in
            var len: UInt32 = 128
            var type: Int32 = 0
            var mnt: Int32 = 0
            let r = hostfs_name_to_handle(dirFD, name, 0, buf.baseAddress!.assumingMemoryBound(to: UInt8.self), &len, &type, &mnt)
            guard r == 0 else { return (st, nil) }
            guard mnt == ex.mountID else { return nil }
            var again = Glibc.stat()
            guard fstatat(dirFD, name, &again, AT_SYMLINK_NOFOLLOW) == 0,
                  again.st_ino == st.st_ino, again.st_dev == st.st_dev else { return nil }
            guard type >= 0 && type <= 255 else { return (st, nil) }
            let h = try? codec.sealKernel(type: UInt8(type), handle: UnsafeRawBufferPointer(rebasing: buf[0..<Int(len)]),
                                          exportID: ex.root.id)
            return (st, h)
        }
    }

    /// Remember where a handed-out object was seen (the inode index, both modes). In kernel
    /// mode the index is only a hint to reconnect files (directories always reconnect).
    private func recordLink(_ ex: Export, st: Glibc.stat, parentIno: UInt64?, name: [UInt8]?) {
        let ino = UInt64(st.st_ino)
        if ino != ex.ino, let p = parentIno, let n = name, n != [0x2E], n != [0x2E, 0x2E] {
            ex.index?.record(ino: ino, parent: p, name: n)
        }
    }

    /// Find the object a handle names and return it referenced from the open-file cache,
    /// with the fstat taken to check it is still linked (callers use it as the object's
    /// pre-operation attributes instead of a second fstat).
    func acquire(_ h: ObjectHandle) throws -> (Export, CachedObject, Glibc.stat) {
        guard let ex = export(h.exportID) else { throw FSError.stale }
        switch cacheHit(ex, h) {
        case .usable(let obj, let st): return (ex, obj, st)
        case .unlinked(let inode): cache.invalidate(inode); throw FSError.stale
        case .movedOut(let inode): cache.invalidate(inode)   // resolve again from scratch
        case .miss: break
        }
        if isRecentlyStale(h.bytes) { throw FSError.stale }
        let fd: Int32
        do {
            fd = try resolve(ex, h)
        } catch FSError.stale {
            rememberStale(h.bytes)
            throw FSError.stale
        }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw FSError.current }
        let obj = CachedObject(key: h.bytes, exportID: ex.root.id, pathFD: fd,
                               inode: InodeKey(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)),
                               isDirectory: (st.st_mode & S_IFMT) == S_IFDIR)
        return (ex, cache.insert(obj), st)
    }

    enum CacheHit {
        /// Referenced, with the fstat of the check.
        case usable(CachedObject, Glibc.stat)
        case miss
        /// Cached, but no longer linked (the handle is stale); released.
        case unlinked(InodeKey)
        /// Cached, but the host moved it out of its export; released.
        case movedOut(InodeKey)
    }

    /// The open-file cache's object for `h`, if it still holds: linked, and inside its
    /// export. The checks of every cache hit, for `acquire` (which invalidates what
    /// fails them) and `acquireIfCached` (which leaves that to `acquire`).
    @inline(__always)
    func cacheHit(_ ex: Export, _ h: ObjectHandle) -> CacheHit {
        guard let obj = cache.acquire(h.bytes) else { return .miss }
        var st = Glibc.stat()
        if fstat(obj.pathFD, &st) != 0 || st.st_nlink == 0 {
            cache.release(obj)
            return .unlinked(obj.inode)
        }
        // Cached fds are connected dentries, so their path says whether the host moved
        // the object out of the export meanwhile.
        guard ex.contains(fd: obj.pathFD) else {
            cache.release(obj)
            return .movedOut(obj.inode)
        }
        return .usable(obj, st)
    }

    private func isRecentlyStale(_ key: [UInt8]) -> Bool {
        recentlyStale.withLockedValue { recentlyStale in
            guard let until = recentlyStale[key] else { return false }
            if monotonicNanoseconds() < until { return true }
            recentlyStale[key] = nil
            return false
        }
    }

    private func rememberStale(_ key: [UInt8]) {
        let until = monotonicNanoseconds() + Self.staleMemoryNanoseconds
        recentlyStale.withLockedValue { recentlyStale in
            if recentlyStale.count >= 4096 { recentlyStale.removeAll(keepingCapacity: true) }
            recentlyStale[key] = until
        }
    }

    func withObject<T>(_ h: ObjectHandle, _ body: (Export, CachedObject) throws -> T) throws -> T {
        try withObjectStat(h) { ex, obj, _ in try body(ex, obj) }
    }

    /// `withObject`, also handing the body the object's stat taken as it was acquired
    /// (after the staleness check, before the operation): the pre-operation attributes of
    /// WRITE, COMMIT, CREATE and REMOVE, one fstat fewer per call.
    ///
    /// Out of descriptors (EMFILE, ENFILE) on the way: the error goes to the client
    /// (NFS3ERR_JUKEBOX: retry later), and the descriptors kept for files nobody is
    /// using are closed, so that the retry finds some. Without that, a cache below its
    /// limit keeps its idle descriptors while every other file is refused for as long
    /// as the connections that took the rest stay.
    func withObjectStat<T>(_ h: ObjectHandle, _ body: (Export, CachedObject, Glibc.stat) throws -> T) throws -> T {
        do {
            let (ex, obj, st) = try acquire(h)
            defer { cache.release(obj) }
            return try body(ex, obj, st)
        } catch FSError.errno(let e) where isOutOfDescriptors(e) {
            descriptorsExhausted(e)
            throw FSError.errno(e)
        }
    }

    /// Closes the open-file cache's idle descriptors, and says so in the log at most
    /// once a minute.
    func descriptorsExhausted(_ e: Int32) {
        let closed = cache.closeIdle()
        let now = monotonicNanoseconds()
        let last = lastDescriptorWarning.load(ordering: .relaxed)
        guard last == 0 || now &- last >= 60_000_000_000,
              lastDescriptorWarning.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else { return }
        var lim = Glibc.rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        logger.warning("out of file descriptors (\(e == EMFILE ? "EMFILE" : "ENFILE"), RLIMIT_NOFILE \(lim.rlim_cur)): answering NFS3ERR_JUKEBOX; closed \(closed) idle file descriptors. Raise ulimit -n")
    }

    /// Give a freshly opened O_PATH fd to the cache under its handle.
    func register(_ ex: Export, _ h: ObjectHandle, fd: Int32, st: stat) {
        let obj = CachedObject(key: h.bytes, exportID: ex.root.id, pathFD: fd,
                               inode: InodeKey(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)),
                               isDirectory: (st.st_mode & S_IFMT) == S_IFDIR)
        cache.release(cache.insert(obj))
    }

    /// An O_PATH fd of the handle's object, verified to lie inside the export.
    private func resolve(_ ex: Export, _ h: ObjectHandle) throws -> Int32 {
        switch h.body {
        case let .kernel(type, handle):
            guard ex.mode == .kernel else { throw FSError.stale }
            let fd = try openByHandle(ex, handle, Int32(type))
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0, st.st_nlink > 0, UInt64(st.st_dev) == ex.dev else { close(fd); throw FSError.stale }
            if ex.contains(fd: fd) { return fd }
            if (st.st_mode & S_IFMT) == S_IFDIR { close(fd); throw FSError.stale }
            // A non-directory whose dentry is not connected to the tree (cold dcache after a
            // restart): find it again by name through the inode index, else by searching the
            // export. Same device and inode number as the handle's object = the same object.
            let ino = UInt64(st.st_ino)
            close(fd)
            if let chain = ex.index?.chain(to: ino) {
                let f = try walk(ex, chain)
                if f >= 0 {
                    countReconnect()
                    return f
                }
            }
            var budget = options.searchLimit
            if let f = try search(ex, dirFD: ex.rootFD, dirIno: ex.ino, target: ino, budget: &budget, depth: 0) {
                countReconnect()
                return f
            }
            ex.index?.remove(ino: ino)
            throw FSError.stale
        case let .inode(ino, gen, birth):
            guard ex.mode == .inode else { throw FSError.stale }
            if ino == ex.ino { return try sys { openat(ex.rootFD, ".", O_PATH | O_DIRECTORY | O_CLOEXEC) } }
            var candidate: Int32 = -1
            if let chain = ex.index?.chain(to: ino) { candidate = try walk(ex, chain) }
            if candidate < 0 {
                var budget = options.searchLimit
                candidate = try search(ex, dirFD: ex.rootFD, dirIno: ex.ino, target: ino, budget: &budget, depth: 0) ?? -1
                if candidate >= 0 { countReconnect() }
            }
            guard candidate >= 0 else {
                ex.index?.remove(ino: ino)
                throw FSError.stale
            }
            var st = Glibc.stat()
            guard fstat(candidate, &st) == 0, st.st_nlink > 0 else { close(candidate); throw FSError.stale }
            let g: UInt32
            do { g = try generation(candidate, st) } catch { close(candidate); throw error }
            let b = birthTag(candidate)
            if (gen != 0 && g != 0 && g != gen) || (birth != 0 && b != 0 && b != birth) {
                close(candidate)
                throw FSError.stale
            }
            return candidate
        }
    }

    private func openByHandle(_ ex: Export, _ handle: [UInt8], _ type: Int32) throws -> Int32 {
        let r = handle.withUnsafeBufferPointer {
            hostfs_open_by_handle(ex.mountFD, $0.baseAddress, UInt32($0.count), type, O_PATH | O_CLOEXEC)
        }
        if r >= 0 { return r }
        switch -r {
        case EMFILE, ENFILE, ENOMEM: throw FSError.errno(-r)
        default: throw FSError.stale
        }
    }

    /// Walk an index chain from the root by names (no symlinks), checking each inode.
    /// -1 if the chain no longer leads to the object. Out of descriptors, throws: the
    /// object may well be there, and calling its handle stale (and forgetting where it
    /// was) would be a wrong answer where "retry later" is the right one.
    private func walk(_ ex: Export, _ chain: [(ino: UInt64, name: [UInt8])]) throws -> Int32 {
        var cur = ex.rootFD
        for (i, step) in chain.enumerated() {
            let last = i == chain.count - 1
            let next = withName(step.name) { openat(cur, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY)) }
            let e = errno
            if cur != ex.rootFD { close(cur) }
            guard next >= 0 else {
                if isOutOfDescriptors(e) { throw FSError.errno(e) }
                return -1
            }
            var st = Glibc.stat()
            guard fstat(next, &st) == 0, UInt64(st.st_ino) == step.ino, UInt64(st.st_dev) == ex.dev else {
                close(next)
                return -1
            }
            cur = next
        }
        return cur == ex.rootFD ? -1 : cur
    }

    /// Bounded depth-first search of the export for an inode; records what it finds in the
    /// inode index. Never leaves the export's filesystem, never follows symlinks. Out of
    /// descriptors, throws (as `walk`).
    private func search(_ ex: Export, dirFD: Int32, dirIno: UInt64, target: UInt64, budget: inout Int, depth: Int) throws -> Int32? {
        guard depth < 256, budget > 0 else { return nil }
        let entries: [RawDirEntry]
        do {
            entries = try readAllEntries(dirFD)
        } catch FSError.errno(let e) where isOutOfDescriptors(e) {
            throw FSError.errno(e)
        } catch {
            return nil
        }
        budget -= entries.count
        for e in entries where e.ino == target && e.name != [0x2E] && e.name != [0x2E, 0x2E] {
            let fd = withName(e.name) { openat(dirFD, $0, O_PATH | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else {
                if isOutOfDescriptors(errno) { throw FSError.current }
                continue
            }
            var st = Glibc.stat()
            if fstat(fd, &st) == 0, UInt64(st.st_ino) == target, UInt64(st.st_dev) == ex.dev {
                ex.index?.record(ino: target, parent: dirIno, name: e.name)
                return fd
            }
            close(fd)
        }
        for e in entries where (e.type == UInt8(DT_DIR) || e.type == UInt8(DT_UNKNOWN)) && e.name != [0x2E] && e.name != [0x2E, 0x2E] {
            guard budget > 0 else { return nil }
            let sub = withName(e.name) { openat(dirFD, $0, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC) }
            guard sub >= 0 else {
                if isOutOfDescriptors(errno) { throw FSError.current }
                continue
            }
            defer { close(sub) }
            var st = Glibc.stat()
            guard fstat(sub, &st) == 0, UInt64(st.st_dev) == ex.dev else { continue }
            if let found = try search(ex, dirFD: sub, dirIno: UInt64(st.st_ino), target: target, budget: &budget, depth: depth + 1) {
                ex.index?.record(ino: UInt64(st.st_ino), parent: dirIno, name: e.name)
                return found
            }
        }
        return nil
    }

    // MARK: setup

    private func openExport(_ r: ExportRoot) throws -> Export {
        let fd = open(r.hostPath, O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FSError.serverFault("export \(r.id): cannot open \(r.hostPath): \(FSError.current)") }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw FSError.serverFault("export \(r.id): stat \(r.hostPath): \(FSError.current)") }
        guard let real = procPath(fd) else { close(fd); throw FSError.serverFault("export \(r.id): cannot read /proc/self/fd") }
        var mode = options.handleMode
        var mountID: Int32 = -1
        let mountFD = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if let (h, type, mnt) = try? kernelHandle(fd), mountFD >= 0 {
            mountID = mnt
            if mode == nil {
                let probe = h.withUnsafeBufferPointer {
                    hostfs_open_by_handle(mountFD, $0.baseAddress, UInt32($0.count), type, O_PATH | O_CLOEXEC)
                }
                if probe >= 0 { close(probe) }
                mode = probe >= 0 && type >= 0 && type <= 255 && h.count <= ObjectHandle.maxKernelPayload ? .kernel : .inode
            }
        } else if mode == .kernel {
            close(fd)
            if mountFD >= 0 { close(mountFD) }
            throw FSError.serverFault("export \(r.id): \(r.hostPath) does not support kernel file handles")
        }
        let m = mode ?? .inode
        let index: InodeIndex
        do {
            index = try InodeIndex(path: options.stateDirectory + "/index-\(r.id)", rootDev: UInt64(st.st_dev), rootIno: UInt64(st.st_ino))
        } catch {
            close(fd)
            if mountFD >= 0 { close(mountFD) }
            throw error
        }
        let rootHandle: ObjectHandle
        do {
            rootHandle = try sealHandle(fd: fd, st: st, mode: m, mountID: mountID, exportID: r.id)
        } catch {
            close(fd)
            if mountFD >= 0 { close(mountFD) }
            throw error
        }
        let ex = Export(root: r, rootFD: fd, mountFD: mountFD, realPath: real, st: st, mountID: mountID, mode: m,
                        index: index, rootHandle: rootHandle)
        logger.info("export \(r.id) at \(r.hostPath): \(m) handles")
        return ex
    }

    private static func loadKey(stateDirectory dir: String) throws -> [UInt8] {
        // Missing parents are made too (0755, like mkdir -p); the state directory itself is 0700.
        var parent = ""
        for component in dir.split(separator: "/").dropLast() {
            parent += "/" + component
            let path = dir.hasPrefix("/") ? parent : String(parent.dropFirst())
            if Glibc.mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw StateDirectoryError(path: dir, failed: path, errno: errno)
            }
        }
        if Glibc.mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw StateDirectoryError(path: dir, failed: dir, errno: errno)
        }
        // An existing one must be a directory this process can write.
        if Glibc.access(dir, W_OK | X_OK) != 0 {
            throw StateDirectoryError(path: dir, failed: dir, errno: errno)
        }
        let path = dir + "/handle-key"
        if let k = try? InodeIndex.readAll(path) {
            guard k.count == 16 else { throw FSError.serverFault("\(path): expected 16 bytes, found \(k.count)") }
            chmod(path, 0o600)
            return k
        }
        var rng = SystemRandomNumberGenerator()
        var key: [UInt8] = []
        key.appendBE(rng.next() as UInt64)
        key.appendBE(rng.next() as UInt64)
        let tmp = path + ".tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StateDirectoryError(path: dir, failed: tmp, errno: errno) }
        defer { close(fd) }
        try InodeIndex.writeAll(fd, key)
        fsync(fd)
        // link() fails if another instance created the key first: then use theirs.
        if Glibc.link(tmp, path) != 0 {
            unlink(tmp)
            if errno == EEXIST, let k = try? InodeIndex.readAll(path), k.count == 16 { return k }
            throw FSError.serverFault("cannot create \(path): \(FSError.current)")
        }
        unlink(tmp)
        return key
    }
}

// MARK: helpers

/// EMFILE or ENFILE: the process or the system has no descriptor to give.
@inline(__always)
func isOutOfDescriptors(_ e: Int32) -> Bool { e == EMFILE || e == ENFILE }

@inline(__always)
func withName<T>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) throws -> T) rethrows -> T {
    var z = name
    z.append(0)
    return try z.withUnsafeBufferPointer { b in
        try b.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The path the kernel reports for an fd (readlink /proc/self/fd/N).
/// /proc/self/fd, opened once (the process's fd table; threads share it). -1 if /proc
/// is not there, and then `procReadlink` takes the full path each time.
private let procSelfFDDirectory: Int32 = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)

/// Calls `body` with the directory fd and NUL-terminated name that reach /proc/self/fd/`fd`
/// (the kept /proc/self/fd directory and the decimal fd, built on the stack; or AT_FDCWD
/// and the full path when /proc/self/fd could not be opened). -1 for a negative fd.
@inline(__always)
private func withProcFDName(_ fd: Int32, _ body: (Int32, UnsafePointer<CChar>) -> Int) -> Int {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { name -> Int in
        let prefix = "/proc/self/fd/"
        var i = 0
        if procSelfFDDirectory < 0 {
            for c in prefix.utf8 { name[i] = CChar(bitPattern: c); i += 1 }
        }
        guard fd >= 0 else { return -1 }
        var digits = 1
        var t = Int(fd)
        while t >= 10 { t /= 10; digits += 1 }
        var v = Int(fd)
        for k in stride(from: i + digits - 1, through: i, by: -1) { name[k] = CChar(0x30 + v % 10); v /= 10 }
        i += digits
        name[i] = 0
        return body(procSelfFDDirectory < 0 ? AT_FDCWD : procSelfFDDirectory, UnsafePointer(name.baseAddress!))
    }
}

/// readlink of /proc/self/fd/`fd` into `buffer`: the byte count, or -1.
func procReadlink(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
    withProcFDName(fd) { dir, name in
        readlinkat(dir, name, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.count)
    }
}

/// open("/proc/self/fd/`fd`", flags) without building the path as a String: a new open
/// file of the same object (an O_PATH fd reopened for reading or writing). -1 and errno
/// on failure, like open.
func procReopen(_ fd: Int32, _ flags: Int32) -> Int32 {
    guard fd >= 0 else { errno = EBADF; return -1 }
    return Int32(withProcFDName(fd) { dir, name in Int(openat(dir, name, flags)) })
}

func procPath(_ fd: Int32) -> [UInt8]? {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { b -> [UInt8]? in
        let n = procReadlink(fd, into: UnsafeMutableRawBufferPointer(b))
        guard n > 0 else { return nil }
        return Array(b[0..<n])
    }
}

func kernelHandle(_ fd: Int32) throws -> ([UInt8], Int32, Int32) {
    var buf = [UInt8](repeating: 0, count: 128)
    var len: UInt32 = 128
    var type: Int32 = 0
    var mnt: Int32 = 0
    _ = try shim { hostfs_name_to_handle(fd, "", AT_EMPTY_PATH, &buf, &len, &type, &mnt) }
    return (Array(buf[0..<Int(len)]), type, mnt)
}

/// FS_IOC_GETVERSION for regular files and directories (needs a real fd); 0 if unknown.
/// Out of descriptors, throws: a generation of 0 would make another handle for the
/// same object (LOOKUP), or skip the check that it is the same object (resolving).
func generation(_ fd: Int32, _ st: stat) throws -> UInt32 {
    let t = st.st_mode & S_IFMT
    guard t == S_IFREG || t == S_IFDIR else { return 0 }
    let f = procReopen(fd, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (t == S_IFDIR ? O_DIRECTORY : 0))
    guard f >= 0 else {
        if isOutOfDescriptors(errno) { throw FSError.current }
        return 0
    }
    defer { close(f) }
    var g: UInt32 = 0
    return hostfs_get_generation(f, &g) == 0 ? g : 0
}

/// A 32-bit tag of the birth time (0 = unknown): a reused inode number gets a new one.
func birthTag(_ fd: Int32) -> UInt32 {
    var sec: Int64 = 0
    var nsec: UInt32 = 0
    guard hostfs_birth_time(fd, &sec, &nsec) == 0 else { return 0 }
    let mixed = (UInt64(bitPattern: sec) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(nsec)
    let t = UInt32(truncatingIfNeeded: mixed ^ (mixed >> 32))
    return t == 0 ? 1 : t
}

struct RawDirEntry {
    var ino: UInt64
    var off: Int64
    var type: UInt8
    var name: [UInt8]
}

/// One getdents64 record, viewed in place in the read buffer (valid only during the callback).
struct DirentView {
    var ino: UInt64
    var off: Int64
    var type: UInt8
    /// Bytes of this record in the getdents64 buffer.
    var recordLength: Int
    /// The name without its NUL.
    var name: UnsafeBufferPointer<UInt8>
    /// The same name, NUL-terminated (getdents64 stores it so), for *at() calls.
    var cName: UnsafePointer<CChar>
}

/// Reads getdents64 records from `fd` (a readable directory fd) until `each` returns false.
/// `nextReadSize` says how many bytes the next getdents64 call should ask for
/// (clamped to 512...`bufferSize`; 512 holds the longest record), so a caller that wants
/// only a few entries does not make the kernel produce a buffer full of them.
func scanEntries(_ fd: Int32, bufferSize: Int = 32768, nextReadSize: () -> Int = { .max },
                 _ each: (DirentView) throws -> Bool) throws {
    let buf = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 8)
    defer { buf.deallocate() }
    while true {
        let ask = min(bufferSize, max(512, nextReadSize()))
        let n = try shim { hostfs_getdents64(fd, buf, ask) }
        if n == 0 { return }
        var i = 0
        while i < n {
            let rec = buf + i
            let ino = UInt64(littleEndian: rec.loadUnaligned(as: UInt64.self))
            let off = Int64(littleEndian: (rec + 8).loadUnaligned(as: Int64.self))
            let reclen = Int(UInt16(littleEndian: (rec + 16).loadUnaligned(as: UInt16.self)))
            let type = (rec + 18).load(as: UInt8.self)
            let namePtr = (rec + 19).assumingMemoryBound(to: UInt8.self)
            let nameLen = strnlen(UnsafeRawPointer(namePtr).assumingMemoryBound(to: CChar.self), reclen - 19)
            let e = DirentView(ino: ino, off: off, type: type, recordLength: reclen,
                               name: UnsafeBufferPointer(start: namePtr, count: nameLen),
                               cName: UnsafeRawPointer(namePtr).assumingMemoryBound(to: CChar.self))
            i += reclen
            if try !each(e) { return }
        }
    }
}

/// Reads getdents64 records from `fd` (a readable directory fd) until `each` returns false.
func readEntries(_ fd: Int32, bufferSize: Int = 32768, _ each: (RawDirEntry) throws -> Bool) throws {
    try scanEntries(fd, bufferSize: bufferSize) { e in
        try each(RawDirEntry(ino: e.ino, off: e.off, type: e.type, name: Array(e.name)))
    }
}

/// All entries of a directory given by any fd (O_PATH is fine).
func readAllEntries(_ dirFD: Int32) throws -> [RawDirEntry] {
    let fd = try sys { openat(dirFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    var out: [RawDirEntry] = []
    try readEntries(fd) { out.append($0); return true }
    return out
}
