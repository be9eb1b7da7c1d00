import CSupport
import Glibc
import NIOConcurrencyHelpers
import Synchronization

struct InodeKey: Hashable {
    var dev: UInt64
    var ino: UInt64
}

/// One resolved object: an O_PATH fd (always) plus data fds opened on demand.
/// Reference-counted: fds are never closed while an operation holds the object.
///
/// `@unchecked Sendable`: its `var`s are read and written only under the owning
/// cache's lock (they are the LRU links and counts of `OpenFileCache.State`);
/// the compiler cannot see that a lock outside the object guards them.
final class CachedObject: @unchecked Sendable {
    let key: [UInt8]
    let exportID: UInt32
    let pathFD: Int32
    let inode: InodeKey
    let isDirectory: Bool
    // Guarded by the cache's mutex.
    var readFD: Int32 = -1
    var writeFD: Int32 = -1
    var lastWrite: UInt64 = 0
    var refs = 0
    var invalidated = false
    var prev: CachedObject?
    var next: CachedObject?

    init(key: [UInt8], exportID: UInt32, pathFD: Int32, inode: InodeKey, isDirectory: Bool) {
        self.key = key
        self.exportID = exportID
        self.pathFD = pathFD
        self.inode = inode
        self.isDirectory = isDirectory
    }

    var fdCount: Int { 1 + (readFD >= 0 ? 1 : 0) + (writeFD >= 0 ? 1 : 0) }

    /// Hands all of the object's fds to `closing` (cache lock held, or the object not
    /// shared): the caller closes them once it has let go of the lock.
    func detachFDs(into closing: inout [Int32]) {
        closing.append(pathFD)
        if readFD >= 0 { closing.append(readFD) }
        if writeFD >= 0 { closing.append(writeFD) }
        readFD = -1
        writeFD = -1
    }
}

/// The system calls the cache makes on fds it gives up or checks: close(2) and
/// fstat(2)'s link count. Tests replace them to hold one and see that nothing
/// else waits for it.
struct CacheSystemCalls: Sendable {
    var close: @Sendable (Int32) -> Void = { _ = Glibc.close($0) }
    /// The fd's link count, or nil if fstat fails.
    var linkCount: @Sendable (Int32) -> UInt64? = { fd in
        var st = Glibc.stat()
        return fstat(fd, &st) == 0 ? UInt64(st.st_nlink) : nil
    }
}

/// Bounded LRU of open fds keyed by file handle. Objects in use are never closed;
/// unused ones are closed least-recently-used first once the fd count exceeds the limit.
///
/// The lock is taken by event loops (cache hits), so its critical sections make no
/// system call: fds given up are collected under it and closed after it is released
/// (safe: an object leaves the map with no references, so no other thread can reach
/// its fds any more), and the sweeper's fstats run on pinned objects outside it.
final class OpenFileCache: Sendable {
    let limit: Int
    private let syscalls: CacheSystemCalls
    /// NIO's pthread mutex, not `Synchronization.Mutex`: the pool's threads all take this
    /// lock on every call, and on two cores `Mutex`'s spinning slow path cost a third
    /// of 4 KiB WRITE IOPS (`_lockSlow` was 8% of the server's samples).
    private let state: NIOLockedValueBox<State>
    private let sweeper = PeriodicSweeper()

    /// Everything the mutex guards: the map, the LRU list through the objects, the fd count.
    private struct State {
        var entries: [[UInt8]: CachedObject] = [:]
        var byInode: [InodeKey: Set<[UInt8]>] = [:]
        var head: CachedObject?  // most recently used
        var tail: CachedObject?
        var fds = 0
        let limit: Int

        mutating func pushFront(_ e: CachedObject) {
            e.prev = nil
            e.next = head
            head?.prev = e
            head = e
            if tail == nil { tail = e }
        }

        mutating func unlink(_ e: CachedObject) {
            if let p = e.prev { p.next = e.next } else if head === e { head = e.next }
            if let n = e.next { n.prev = e.prev } else if tail === e { tail = e.prev }
            e.prev = nil
            e.next = nil
        }

        mutating func evict(into closing: inout [Int32]) {
            var cursor = tail
            while fds > limit, let e = cursor {
                cursor = e.prev
                guard e.refs == 0 else { continue }
                drop(e, into: &closing)
            }
        }

        /// Removes an object nobody holds from the cache; its fds go to `closing`.
        mutating func drop(_ e: CachedObject, into closing: inout [Int32]) {
            unlink(e)
            entries.removeValue(forKey: e.key)
            forgetKey(of: e)
            fds -= e.fdCount
            e.detachFDs(into: &closing)
        }

        mutating func forgetKey(of e: CachedObject) {
            if var s = byInode[e.inode] {
                s.remove(e.key)
                byInode[e.inode] = s.isEmpty ? nil : s
            }
        }

        /// Drops one reference; an invalidated object's fds go with its last one.
        mutating func release(_ obj: CachedObject, into closing: inout [Int32]) {
            obj.refs -= 1
            if obj.refs == 0 && obj.invalidated {
                fds -= obj.fdCount
                obj.detachFDs(into: &closing)
            } else {
                evict(into: &closing)
            }
        }
    }

    init(limit: Int, systemCalls: CacheSystemCalls = CacheSystemCalls()) {
        self.limit = max(limit, 4)
        self.syscalls = systemCalls
        self.state = NIOLockedValueBox(State(limit: self.limit))
    }

    deinit {
        sweeper.stop()
        let closing: [Int32] = state.withLockedValue { s in
            var closing: [Int32] = []
            var o = s.head
            // The list links entries both ways with strong references: unlink each, or
            // the entries would outlive the cache.
            while let e = o { e.detachFDs(into: &closing); o = e.next; e.next = nil; e.prev = nil }
            s.head = nil
            s.tail = nil
            return closing
        }
        for fd in closing { syscalls.close(fd) }
    }

    /// Closes fds collected under the mutex; call after releasing it.
    @inline(__always)
    private func closeAfterUnlocking(_ closing: [Int32]) {
        for fd in closing { syscalls.close(fd) }
    }

    var fileDescriptorCount: Int { state.withLockedValue { $0.fds } }
    var count: Int { state.withLockedValue { $0.entries.count } }

    /// A cached object, referenced (call `release`).
    func acquire(_ key: [UInt8]) -> CachedObject? {
        state.withLockedValue { s in
            guard let e = s.entries[key] else { return nil }
            e.refs += 1
            s.unlink(e)
            s.pushFront(e)
            return e
        }
    }

    /// Adds a freshly opened object (its fds now belong to the cache) and returns the
    /// cached object, referenced. If another thread won the race, ours is closed.
    func insert(_ obj: CachedObject) -> CachedObject {
        var closing: [Int32] = []
        defer { closeAfterUnlocking(closing) }
        return state.withLockedValue { s in
            if let e = s.entries[obj.key] {
                obj.detachFDs(into: &closing)   // never shared: it was not in the map
                e.refs += 1
                s.unlink(e)
                s.pushFront(e)
                return e
            }
            obj.refs = 1
            s.entries[obj.key] = obj
            s.byInode[obj.inode, default: []].insert(obj.key)
            s.pushFront(obj)
            s.fds += obj.fdCount
            s.evict(into: &closing)
            return obj
        }
    }

    func release(_ obj: CachedObject) {
        var closing: [Int32] = []
        state.withLockedValue { $0.release(obj, into: &closing) }
        closeAfterUnlocking(closing)
    }

    /// Forget every object with this inode (after remove / rename-over / stale).
    func invalidate(_ inode: InodeKey) {
        var closing: [Int32] = []
        state.withLockedValue { s in
            guard let keys = s.byInode.removeValue(forKey: inode) else { return }
            for k in keys {
                guard let e = s.entries.removeValue(forKey: k) else { continue }
                s.unlink(e)
                e.invalidated = true
                if e.refs == 0 {
                    s.fds -= e.fdCount
                    e.detachFDs(into: &closing)
                }
            }
        }
        closeAfterUnlocking(closing)
    }

    /// Forget every object of an export not in `kept` (a reload removed it), so that its
    /// fds do not keep the removed export's filesystem busy (an unmount after the reload
    /// would fail) until LRU eviction. Objects in use go with their last release.
    func forgetExports(keeping kept: Set<UInt32>) {
        var closing: [Int32] = []
        state.withLockedValue { s in
            for e in Array(s.entries.values) where !kept.contains(e.exportID) {
                if e.refs == 0 {
                    s.drop(e, into: &closing)
                } else {
                    e.invalidated = true
                    s.unlink(e)
                    s.entries.removeValue(forKey: e.key)
                    s.forgetKey(of: e)
                }
            }
        }
        closeAfterUnlocking(closing)
    }

    /// An fd for reading (O_RDONLY) or writing (O_WRONLY), opened on demand by reopening
    /// the O_PATH fd through /proc/self/fd; must run with the server's own identity.
    /// Reads never hold a write fd: an fd open for writing makes the host's exec of that
    /// file fail with ETXTBSY, so write fds are also closed once idle (`sweepIdleWriters`).
    func dataFD(_ obj: CachedObject, write: Bool) throws -> Int32 {
        let now = monotonicNanoseconds()
        if let fd = state.withLockedValue({ _ -> Int32? in
            if write {
                if obj.writeFD >= 0 { obj.lastWrite = now; return obj.writeFD }
            } else if obj.readFD >= 0 {
                return obj.readFD
            }
            return nil
        }) { return fd }
        let fd = procReopen(obj.pathFD, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        if fd < 0 { throw FSError.current }
        var closing: [Int32] = []
        defer { closeAfterUnlocking(closing) }
        return state.withLockedValue { s in
            if write {
                obj.lastWrite = now
                if obj.writeFD >= 0 { closing.append(fd); return obj.writeFD }
                obj.writeFD = fd
            } else {
                if obj.readFD >= 0 { closing.append(fd); return obj.readFD }
                obj.readFD = fd
            }
            s.fds += 1  // invalidated objects too: their last release subtracts fdCount
            s.evict(into: &closing)
            return fd
        }
    }

    /// Any fd to fsync the object's data with (write fd if open, else read fd).
    func syncFD(_ obj: CachedObject) throws -> Int32 {
        if let fd = state.withLockedValue({ _ in obj.writeFD >= 0 ? obj.writeFD : nil }) { return fd }
        return try dataFD(obj, write: false)
    }

    /// Close write fds unused for `idle` nanoseconds (objects not in use only).
    func sweepIdleWriters(idle: UInt64) {
        let now = monotonicNanoseconds()
        var closing: [Int32] = []
        state.withLockedValue { s in
            var o = s.head
            while let e = o {
                o = e.next
                if e.refs == 0 && e.writeFD >= 0 && now &- e.lastWrite >= idle {
                    closing.append(e.writeFD)
                    e.writeFD = -1
                    s.fds -= 1
                }
            }
        }
        closeAfterUnlocking(closing)
    }

    /// Close objects nobody holds whose inode has lost its last name: deleted on the
    /// host, not through NFS (REMOVE and RENAME invalidate at once). Their fds would
    /// keep the file's blocks allocated until LRU eviction, so a host deleting files to
    /// free space would get none of it back while the server ran. A handle to such an
    /// object is stale already (`acquire` checks the link count), so nothing is lost.
    /// One fstat per cached object, made outside the mutex on objects pinned (referenced)
    /// for the time of their batch, so none of their fds is closed, or its number
    /// reused, while it is being checked; what the checks found is applied under the mutex.
    func sweepUnlinked(batch: Int = 256) {
        let snapshot = state.withLockedValue { Array($0.entries.values) }
        var start = 0
        while start < snapshot.count {
            let end = min(start + batch, snapshot.count)
            // Still cached and unused: pin (reference) them, so that no eviction or
            // invalidation closes their fds while they are being checked.
            let pinned: [CachedObject] = state.withLockedValue { s in
                snapshot[start..<end].filter { e in
                    guard e.refs == 0, s.entries[e.key] === e else { return false }
                    e.refs = 1
                    return true
                }
            }
            let unlinked = pinned.map { syscalls.linkCount($0.pathFD) == 0 }
            var closing: [Int32] = []
            state.withLockedValue { s in
                for (e, gone) in zip(pinned, unlinked) {
                    if gone && e.refs == 1 && s.entries[e.key] === e {
                        e.refs = 0
                        s.drop(e, into: &closing)
                    } else {
                        s.release(e, into: &closing)
                    }
                }
            }
            closeAfterUnlocking(closing)
            start = end
        }
    }

    /// Closes every object nobody holds now, whatever the limit: for when the process
    /// is out of descriptors (EMFILE, ENFILE) below the cache's limit, because
    /// connections or other files hold the rest. Closed after unlocking. Returns how many
    /// descriptors were closed.
    @discardableResult
    func closeIdle() -> Int {
        var closing: [Int32] = []
        state.withLockedValue { s in
            var o = s.head
            while let e = o {
                o = e.next
                if e.refs == 0 { s.drop(e, into: &closing) }
            }
        }
        closeAfterUnlocking(closing)
        return closing.count
    }

    // MARK: background sweeper

    /// Start a thread that, every `interval`, closes idle write fds and the fds of objects
    /// deleted on the host (stopped by `stopSweeper`).
    func startSweeper(interval: UInt64, idle: UInt64) {
        sweeper.start(interval: interval) { [weak self] in
            self?.sweepIdleWriters(idle: idle)
            self?.sweepUnlinked()
        }
    }

    func stopSweeper() { sweeper.stop() }
}

/// A thread that runs `work` every `interval` nanoseconds until `stop`.
///
/// `@unchecked Sendable`: `stopping` and `thread` are guarded by the pthread mutex,
/// which the condition variable needs (Synchronization has no condition variable, and
/// the sleep must end at once on `stop`); the compiler cannot see a pthread lock.
final class PeriodicSweeper: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private let cond: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)
    private var stopping = false
    private var thread: pthread_t?

    init() {
        mutex.initialize(to: pthread_mutex_t())
        cond.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(cond)
        mutex.deallocate()
        cond.deallocate()
    }

    func start(interval: UInt64, work: @escaping @Sendable () -> Void) {
        final class Args: Sendable {
            let sweeper: PeriodicSweeper
            let interval: UInt64
            let work: @Sendable () -> Void
            init(_ s: PeriodicSweeper, _ i: UInt64, _ w: @escaping @Sendable () -> Void) { sweeper = s; interval = i; work = w }
        }
        let args = Unmanaged.passRetained(Args(self, interval, work)).toOpaque()
        var t = pthread_t()
        let r = pthread_create(&t, nil, { p in
            let a = Unmanaged<Args>.fromOpaque(p!).takeRetainedValue()
            a.sweeper.loop(interval: a.interval, work: a.work)
            return nil
        }, args)
        if r == 0 {
            pthread_mutex_lock(mutex)
            thread = t
            pthread_mutex_unlock(mutex)
        } else {
            Unmanaged<Args>.fromOpaque(args).release()
        }
    }

    private func loop(interval: UInt64, work: @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        while !stopping {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let deadline = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) + interval
            ts.tv_sec = Int(deadline / 1_000_000_000)
            ts.tv_nsec = Int(deadline % 1_000_000_000)
            pthread_cond_timedwait(cond, mutex, &ts)
            if stopping { break }
            pthread_mutex_unlock(mutex)
            work()
            pthread_mutex_lock(mutex)
        }
        pthread_mutex_unlock(mutex)
    }

    /// Idempotent; from the sweeping thread itself (its work dropped the last reference
    /// to the owner), the loop just ends after this round.
    func stop() {
        pthread_mutex_lock(mutex)
        let t = thread
        thread = nil
        stopping = true
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
        guard let t else { return }
        if pthread_equal(t, pthread_self()) != 0 { pthread_detach(t) } else { pthread_join(t, nil) }
    }
}
