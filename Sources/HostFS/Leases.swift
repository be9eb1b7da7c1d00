import CSupport
import Glibc
import NIOConcurrencyHelpers

/// A host kernel read lease (fcntl F_SETLEASE F_RDLCK, fcntl(2) "Leases") on
/// one file, and an inotify watch of it: what lets an NFSv4 read delegation
/// follow the host.
///
/// The lease: when a host process opens the file for writing or truncates
/// it, the kernel makes that process wait (up to
/// /proc/sys/fs/lease-break-time) and tells the lease holder: a realtime
/// signal (F_SETSIG), whose handler writes the lease's fd to a pipe; one
/// thread reads the pipe and calls the lease's break handler, which recalls
/// the delegation. `release()` (DELEGRETURN) lets the waiting process go on.
///
/// The watch: a host rename, unlink, link, chmod, chown or utimes of the file
/// does not break an F_SETLEASE lease (only the kernel's own NFS server's
/// delegations see those), so the file is also watched with inotify for
/// IN_ATTRIB (mode, owner, times, link count: unlink and link change it),
/// IN_MOVE_SELF and IN_DELETE_SELF. Such an event calls the same break
/// handler, from a second thread that reads the one inotify instance; the
/// host process is not held back (inotify reports after the fact). The watch
/// is added through the lease's own descriptor (/proc/self/fd/N), never a
/// path. Every lease of one inode shares its watch descriptor; the watch goes
/// when the last of them is released (`LeaseWatches`). IN_Q_OVERFLOW calls
/// every lease's handler (which file changed is lost); IN_IGNORED (the watch
/// is gone: the file system unmounted) counts as a change. The handler may
/// run more than once for one lease (a chmod then a rename): the caller makes
/// a second call a no-op while its recall runs.
///
/// A lease needs the server to own the file or hold CAP_LEASE, and the file
/// not to be open for writing anywhere (the server's own cached write
/// descriptors included); the watch needs a free inotify watch
/// (/proc/sys/fs/inotify/max_user_watches, per user): otherwise `take`
/// throws and no delegation is given.
public final class HostLease: Sendable {
    public typealias BreakHandler = @Sendable () -> Void

    private let fd: Int32
    private let wd: Int32
    private let holder: Holder
    private let released = NIOLockedValueBox(false)

    private init(fd: Int32, wd: Int32, holder: Holder) {
        self.fd = fd
        self.wd = wd
        self.holder = holder
    }

    /// A lease's break handler, and whether its file's watch saw a change.
    final class Holder: Sendable {
        let onBreak: BreakHandler
        let changed = NIOLockedValueBox(false)
        init(_ onBreak: @escaping BreakHandler) { self.onBreak = onBreak }
    }

    /// Takes a read lease on the file `h` names, and watches it; `onBreak`
    /// runs (on the lease thread or the watch thread; it must not block) when
    /// the host breaks the lease or changes the file's metadata or name.
    /// Throws `FSError.errno`: EAGAIN (open for writing), EACCES (neither
    /// owner nor CAP_LEASE), EINVAL (a filesystem without leases), ENOSPC
    /// (no inotify watch left).
    public static func take(_ h: ObjectHandle, in fs: HostFileSystem, onBreak: @escaping BreakHandler) throws -> HostLease {
        try Self.startReader()
        let inotify = try Self.startWatcher()
        let fd = try fs.withObject(h) { _, obj -> Int32 in
            let fd = procReopen(obj.pathFD, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            if fd < 0 { throw FSError.current }
            return fd
        }
        let holder = Holder(onBreak)
        // Registered before the lease exists: a break may come at once.
        state.withLockedValue { $0.holders[fd] = holder }
        let rc = vsnfs_take_read_lease(fd)
        guard rc == 0 else {
            state.withLockedValue { _ = $0.holders.removeValue(forKey: fd) }
            close(fd)
            throw FSError.errno(-rc)
        }
        // Added and removed under the lock: another lease of the inode may be
        // removing the watch this one would share.
        let wd = state.withLockedValue { s -> Int32 in
            let wd = vsnfs_watch_add(inotify, fd)
            if wd >= 0 {
                s.watches.add(fd, to: wd)
            } else {
                s.holders.removeValue(forKey: fd)
            }
            return wd
        }
        guard wd >= 0 else {
            _ = vsnfs_release_lease(fd)
            close(fd)
            throw FSError.errno(-wd)
        }
        return HostLease(fd: fd, wd: wd, holder: holder)
    }

    /// Gives the lease up (a host process waiting on it goes on), removes its
    /// watch unless another lease of the file still shares it, and closes its
    /// descriptor. Once; later calls do nothing.
    public func release() {
        let first = released.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        Self.state.withLockedValue { s in
            s.holders.removeValue(forKey: fd)
            if s.watches.remove(fd, from: wd), let inotify = Self.watcher.withLockedValue({ $0 }) {
                _ = vsnfs_watch_remove(inotify, wd)
            }
        }
        _ = vsnfs_release_lease(fd)
        close(fd)
    }

    /// Whether the host is breaking (or broke) the lease, or changed the
    /// file's metadata or name since the lease was taken.
    public var isBreaking: Bool {
        guard !released.withLockedValue({ $0 }) else { return false }
        return holder.changed.withLockedValue { $0 } || vsnfs_get_lease(fd) == F_UNLCK
    }

    deinit { release() }

    /// The inotify watches leases hold now (for tests).
    static var watchCount: Int { state.withLockedValue { $0.watches.count } }

    // MARK: The lease thread

    struct State {
        /// Each live lease's holder, by its fd.
        var holders: [Int32: Holder] = [:]
        var watches = LeaseWatches()
    }

    private static let state = NIOLockedValueBox(State())
    private static let reader = NIOLockedValueBox<Int32?>(nil)
    private static let watcher = NIOLockedValueBox<Int32?>(nil)

    private static func startReader() throws {
        try reader.withLockedValue { started in
            if started != nil { return }
            let fd = vsnfs_lease_pipe()
            guard fd >= 0 else { throw FSError.errno(-fd) }
            try spawn(fd) { HostLease.readBreaks($0) }
            started = fd
        }
    }

    private static func spawn(_ fd: Int32, _ body: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?) throws {
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, body, UnsafeMutableRawPointer(bitPattern: Int(fd)))
        guard rc == 0 else { throw FSError.errno(rc) }
        pthread_detach(thread)
    }

    /// Reads broken leases' fds forever. A message for an fd whose lease is not
    /// breaking (released, and the number reused by a newer lease) is ignored.
    private static func readBreaks(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        let pipe = Int32(Int(bitPattern: raw))
        var fd: Int32 = -1
        while true {
            let n = read(pipe, &fd, MemoryLayout<Int32>.size)
            if n < 0 && errno == EINTR { continue }
            guard n == MemoryLayout<Int32>.size else { return nil }
            let holder = state.withLockedValue { $0.holders[fd] }
            guard let holder, vsnfs_get_lease(fd) == F_UNLCK else { continue }
            holder.onBreak()
        }
    }

    // MARK: The watch thread

    /// The inotify instance (one per process), its reader started.
    private static func startWatcher() throws -> Int32 {
        try watcher.withLockedValue { started in
            if let started { return started }
            let fd = vsnfs_watch_init()
            guard fd >= 0 else { throw FSError.errno(-fd) }
            do {
                try spawn(fd) { HostLease.readEvents($0) }
            } catch {
                close(fd)
                throw error
            }
            started = fd
            return fd
        }
    }

    /// Reads inotify events forever and calls the handlers of the leases they concern.
    private static func readEvents(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        let inotify = Int32(Int(bitPattern: raw))
        let size = 64 << 10
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        let overflow = vsnfs_watch_overflow(), ignored = vsnfs_watch_ignored()
        while true {
            let n = read(inotify, buffer.baseAddress, size)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            // struct inotify_event: wd, mask, cookie, len, then len bytes of name.
            var events: [(wd: Int32, mask: UInt32)] = []
            var offset = 0
            while offset + 16 <= n {
                let wd = buffer.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                let mask = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let length = buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
                events.append((wd, mask))
                offset += 16 + Int(length)
            }
            let holders = state.withLockedValue { s -> [Holder] in
                var fds: [Int32] = []
                for event in events {
                    if event.mask & overflow != 0 {
                        fds += s.holders.keys
                    } else if event.mask & ignored != 0 {
                        fds += s.watches.gone(event.wd)
                    } else {
                        fds += s.watches.leases(event.wd)
                    }
                }
                var seen = Set<Int32>()
                return fds.compactMap { seen.insert($0).inserted ? s.holders[$0] : nil }
            }
            for holder in holders {
                holder.changed.withLockedValue { $0 = true }
                holder.onBreak()
            }
        }
    }
}

/// Which leases share which inotify watch. inotify gives one watch
/// descriptor per inode per instance: two leases of one file (two clients'
/// delegations) share it, and it may be removed only when the last goes.
public struct LeaseWatches: Sendable {
    /// The leases (by fd) of each watch descriptor.
    private var byWatch: [Int32: [Int32]] = [:]

    public init() {}

    /// Lease `fd` now shares watch `wd`.
    public mutating func add(_ fd: Int32, to wd: Int32) {
        byWatch[wd, default: []].append(fd)
    }

    /// Lease `fd` no longer watches `wd`. True when it was the last: remove the watch.
    public mutating func remove(_ fd: Int32, from wd: Int32) -> Bool {
        guard var fds = byWatch[wd], let i = fds.firstIndex(of: fd) else { return false }
        fds.remove(at: i)
        byWatch[wd] = fds.isEmpty ? nil : fds
        return fds.isEmpty
    }

    /// The leases an event on `wd` concerns.
    public func leases(_ wd: Int32) -> [Int32] { byWatch[wd] ?? [] }

    /// The kernel removed watch `wd` (IN_IGNORED): its leases, which no longer have one.
    public mutating func gone(_ wd: Int32) -> [Int32] { byWatch.removeValue(forKey: wd) ?? [] }

    /// Watch descriptors in use.
    public var count: Int { byWatch.count }
}
