import CSupport
import Glibc

struct InodeKey: Hashable {
    var dev: UInt64
    var ino: UInt64
}

/// One resolved object: an O_PATH fd (always) plus data fds opened on demand.
/// Reference-counted: fds are never closed while an operation holds the object.
final class CachedObject: @unchecked Sendable {
    let key: [UInt8]
    let exportID: UInt32
    let pathFD: Int32
    let inode: InodeKey
    let isDirectory: Bool
    // Guarded by the cache lock.
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

    func closeAll() {
        close(pathFD)
        if readFD >= 0 { close(readFD) }
        if writeFD >= 0 { close(writeFD) }
        readFD = -1
        writeFD = -1
    }
}

/// Bounded LRU of open fds keyed by file handle. Objects in use are never closed;
/// unused ones are closed least-recently-used first once the fd count exceeds the limit.
final class OpenFileCache: @unchecked Sendable {
    let limit: Int
    private let lock = Lock()
    private var entries: [[UInt8]: CachedObject] = [:]
    private var byInode: [InodeKey: Set<[UInt8]>] = [:]
    private var head: CachedObject?  // most recently used
    private var tail: CachedObject?
    private var fds = 0

    init(limit: Int) {
        self.limit = max(limit, 4)
        sweeperMutex.initialize(to: pthread_mutex_t())
        sweeperCond.initialize(to: pthread_cond_t())
        pthread_mutex_init(sweeperMutex, nil)
        pthread_cond_init(sweeperCond, nil)
    }

    deinit {
        pthread_mutex_destroy(sweeperMutex)
        pthread_cond_destroy(sweeperCond)
        sweeperMutex.deallocate()
        sweeperCond.deallocate()
        var o = head
        while let e = o { e.closeAll(); o = e.next }
    }

    var fileDescriptorCount: Int { lock.withLock { fds } }
    var count: Int { lock.withLock { entries.count } }

    /// A cached object, referenced (call `release`).
    func acquire(_ key: [UInt8]) -> CachedObject? {
        lock.withLock {
            guard let e = entries[key] else { return nil }
            e.refs += 1
            unlink(e)
            pushFront(e)
            return e
        }
    }

    /// Adds a freshly opened object (its fds now belong to the cache) and returns the
    /// cached object, referenced. If another thread won the race, ours is closed.
    func insert(_ obj: CachedObject) -> CachedObject {
        lock.withLock {
            if let e = entries[obj.key] {
                obj.closeAll()
                e.refs += 1
                unlink(e)
                pushFront(e)
                return e
            }
            obj.refs = 1
            entries[obj.key] = obj
            byInode[obj.inode, default: []].insert(obj.key)
            pushFront(obj)
            fds += obj.fdCount
            evict()
            return obj
        }
    }

    func release(_ obj: CachedObject) {
        lock.withLock {
            obj.refs -= 1
            if obj.refs == 0 && obj.invalidated {
                fds -= obj.fdCount
                obj.closeAll()
            } else {
                evict()
            }
        }
    }

    /// Forget every object with this inode (after remove / rename-over / stale).
    func invalidate(_ inode: InodeKey) {
        lock.withLock {
            guard let keys = byInode.removeValue(forKey: inode) else { return }
            for k in keys {
                guard let e = entries.removeValue(forKey: k) else { continue }
                unlink(e)
                e.invalidated = true
                if e.refs == 0 {
                    fds -= e.fdCount
                    e.closeAll()
                }
            }
        }
    }

    /// An fd for reading (O_RDONLY) or writing (O_WRONLY), opened on demand by reopening
    /// the O_PATH fd through /proc/self/fd; must run with the server's own identity.
    /// Reads never hold a write fd: an fd open for writing makes the host's exec of that
    /// file fail with ETXTBSY, so write fds are also closed once idle (`sweepIdleWriters`).
    func dataFD(_ obj: CachedObject, write: Bool) throws -> Int32 {
        let now = monotonicNanoseconds()
        if let fd = lock.withLock({ () -> Int32? in
            if write {
                if obj.writeFD >= 0 { obj.lastWrite = now; return obj.writeFD }
            } else if obj.readFD >= 0 {
                return obj.readFD
            }
            return nil
        }) { return fd }
        let fd = procReopen(obj.pathFD, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        if fd < 0 { throw FSError.current }
        return lock.withLock {
            if write {
                obj.lastWrite = now
                if obj.writeFD >= 0 { close(fd); return obj.writeFD }
                obj.writeFD = fd
            } else {
                if obj.readFD >= 0 { close(fd); return obj.readFD }
                obj.readFD = fd
            }
            fds += 1  // invalidated objects too: their last release subtracts fdCount
            evict()
            return fd
        }
    }

    /// Any fd to fsync the object's data with (write fd if open, else read fd).
    func syncFD(_ obj: CachedObject) throws -> Int32 {
        if let fd = lock.withLock({ obj.writeFD >= 0 ? obj.writeFD : nil }) { return fd }
        return try dataFD(obj, write: false)
    }

    /// Close write fds unused for `idle` nanoseconds (objects not in use only).
    func sweepIdleWriters(idle: UInt64) {
        let now = monotonicNanoseconds()
        lock.withLock {
            var o = head
            while let e = o {
                o = e.next
                if e.refs == 0 && e.writeFD >= 0 && now &- e.lastWrite >= idle {
                    close(e.writeFD)
                    e.writeFD = -1
                    fds -= 1
                }
            }
        }
    }

    /// Close objects nobody holds whose inode has lost its last name: deleted on the
    /// host, not through NFS (REMOVE and RENAME invalidate at once). Their fds would
    /// keep the file's blocks allocated until LRU eviction, so a host deleting files to
    /// free space would get none of it back while the server ran. A handle to such an
    /// object is stale already (`acquire` checks the link count), so nothing is lost.
    /// One fstat per cached object, under the lock in batches: a call waits for at
    /// most one batch.
    func sweepUnlinked(batch: Int = 256) {
        let snapshot = lock.withLock { Array(entries.values) }
        var start = 0
        while start < snapshot.count {
            let end = min(start + batch, snapshot.count)
            lock.withLock {
                var st = Glibc.stat()
                // Still cached (so its fds are still open) and unused.
                for e in snapshot[start..<end] where e.refs == 0 && entries[e.key] === e {
                    if fstat(e.pathFD, &st) == 0 && st.st_nlink == 0 { drop(e) }
                }
            }
            start = end
        }
    }

    /// Closes every object nobody holds now, whatever the limit: for when the process
    /// is out of descriptors (EMFILE, ENFILE) below the cache's limit, because
    /// connections or other files hold the rest. Closed after unlocking. Returns how many
    /// descriptors were closed.
    @discardableResult
    func closeIdle() -> Int {
        let idle = lock.withLock { () -> [CachedObject] in
            var out: [CachedObject] = []
            var o = head
            while let e = o {
                o = e.next
                guard e.refs == 0 else { continue }
                unlink(e)
                entries.removeValue(forKey: e.key)
                if var s = byInode[e.inode] {
                    s.remove(e.key)
                    byInode[e.inode] = s.isEmpty ? nil : s
                }
                fds -= e.fdCount
                out.append(e)
            }
            return out
        }
        var closed = 0
        for e in idle {
            closed += e.fdCount
            e.closeAll()
        }
        return closed
    }

    // MARK: background sweeper

    private var sweeperThread: pthread_t?
    private var sweeperStop = false
    private let sweeperCond: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)
    private let sweeperMutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)

    /// Start a thread that, every `interval`, closes idle write fds and the fds of objects
    /// deleted on the host (stopped by `stopSweeper`).
    func startSweeper(interval: UInt64, idle: UInt64) {
        final class Args {
            let cache: OpenFileCache
            let interval: UInt64
            let idle: UInt64
            init(_ c: OpenFileCache, _ i: UInt64, _ d: UInt64) { cache = c; interval = i; idle = d }
        }
        let args = Unmanaged.passRetained(Args(self, interval, idle)).toOpaque()
        var t = pthread_t()
        let r = pthread_create(&t, nil, { p in
            let a = Unmanaged<Args>.fromOpaque(p!).takeRetainedValue()
            a.cache.sweeperLoop(interval: a.interval, idle: a.idle)
            return nil
        }, args)
        if r == 0 {
            sweeperThread = t
        } else {
            Unmanaged<Args>.fromOpaque(args).release()
        }
    }

    private func sweeperLoop(interval: UInt64, idle: UInt64) {
        pthread_mutex_lock(sweeperMutex)
        while !sweeperStop {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let deadline = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) + interval
            ts.tv_sec = Int(deadline / 1_000_000_000)
            ts.tv_nsec = Int(deadline % 1_000_000_000)
            pthread_cond_timedwait(sweeperCond, sweeperMutex, &ts)
            if sweeperStop { break }
            pthread_mutex_unlock(sweeperMutex)
            sweepIdleWriters(idle: idle)
            sweepUnlinked()
            pthread_mutex_lock(sweeperMutex)
        }
        pthread_mutex_unlock(sweeperMutex)
    }

    func stopSweeper() {
        guard let t = sweeperThread else { return }
        pthread_mutex_lock(sweeperMutex)
        sweeperStop = true
        pthread_cond_signal(sweeperCond)
        pthread_mutex_unlock(sweeperMutex)
        pthread_join(t, nil)
        sweeperThread = nil
    }

    private func evict() {
        var cursor = tail
        while fds > limit, let e = cursor {
            cursor = e.prev
            guard e.refs == 0 else { continue }
            drop(e)
        }
    }

    /// Removes an object nobody holds from the cache and closes its fds (lock held).
    private func drop(_ e: CachedObject) {
        unlink(e)
        entries.removeValue(forKey: e.key)
        if var s = byInode[e.inode] {
            s.remove(e.key)
            byInode[e.inode] = s.isEmpty ? nil : s
        }
        fds -= e.fdCount
        e.closeAll()
    }

    private func pushFront(_ e: CachedObject) {
        e.prev = nil
        e.next = head
        head?.prev = e
        head = e
        if tail == nil { tail = e }
    }

    private func unlink(_ e: CachedObject) {
        if let p = e.prev { p.next = e.next } else if head === e { head = e.next }
        if let n = e.next { n.prev = e.prev } else if tail === e { tail = e.prev }
        e.prev = nil
        e.next = nil
    }
}
