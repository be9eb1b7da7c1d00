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
    }

    deinit {
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

    /// An fd for reading (`write == false`) or writing. Opened on demand by reopening the
    /// O_PATH fd through /proc/self/fd; must run with the server's own identity.
    func dataFD(_ obj: CachedObject, write: Bool) throws -> Int32 {
        if let fd = lock.withLock({ () -> Int32? in
            if obj.writeFD >= 0 { return obj.writeFD }
            if !write && obj.readFD >= 0 { return obj.readFD }
            return nil
        }) { return fd }
        let path = "/proc/self/fd/\(obj.pathFD)"
        var fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        if fd < 0 && !write {
            let e = errno
            if e == EACCES || e == EROFS || e == ETXTBSY || e == EPERM {
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            }
        }
        if fd < 0 { throw FSError.current }
        let isRW = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR
        return lock.withLock {
            if isRW {
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

    private func evict() {
        var cursor = tail
        while fds > limit, let e = cursor {
            cursor = e.prev
            guard e.refs == 0 else { continue }
            unlink(e)
            entries.removeValue(forKey: e.key)
            if var s = byInode[e.inode] {
                s.remove(e.key)
                byInode[e.inode] = s.isEmpty ? nil : s
            }
            fds -= e.fdCount
            e.closeAll()
        }
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
