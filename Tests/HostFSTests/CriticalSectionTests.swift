import Dispatch
import Foundation
import Glibc
import NIOConcurrencyHelpers
import Testing
@testable import HostFS

/// Holds one system call of the code under test (through its seam) until the
/// test opens the gate, so a test can check what else still runs meanwhile.
final class SyscallGate: Sendable {
    private let armed = NIOLockedValueBox(false)
    private let entered = DispatchSemaphore(value: 0)
    private let opened = DispatchSemaphore(value: 0)

    /// The next `pass(when: true)` blocks.
    func arm() { armed.withLockedValue { $0 = true } }

    /// Called by the seam: blocks the first armed call whose `when` holds, until `open`.
    func pass(when: Bool = true) {
        guard when, armed.withLockedValue({ armed in defer { armed = false }; return armed }) else { return }
        entered.signal()
        opened.wait()
    }

    /// Waits (at most 10 s) until a call is held in the gate.
    func waitUntilHeld() -> Bool { entered.wait(timeout: .now() + 10) == .success }

    func open() { opened.signal() }
}

/// Runs `body` on a thread of its own; true if it returned within `seconds`. A
/// body that waits for a held lock fails the check instead of hanging the test
/// (it finishes once the test opens its gate).
func returnsWithin(_ seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread { body(); done.signal() }
    return done.wait(timeout: .now() + seconds) == .success
}

/// Runs `body` on a thread of its own; the returned semaphore is signalled when it is done.
func inBackground(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread { body(); done.signal() }
    return done
}

/// close(2) for the cache's seam, recording what the cache closed. Whether an fd is
/// still open is asked of this record, not of the kernel: other tests run in the
/// same process at the same time, and one of them may get a closed fd's number at once.
final class CloseRecorder: Sendable {
    private let closed = NIOLockedValueBox<Set<Int32>>([])
    func close(_ fd: Int32) {
        closed.withLockedValue { _ = $0.insert(fd) }
        _ = Glibc.close(fd)
    }
    func isOpen(_ fd: Int32) -> Bool { !closed.withLockedValue { $0.contains(fd) } }
}

/// The locks event loops take (the open-file cache's on every cache hit, the inode
/// index's map lock in LOOKUP's `knows`) are never held across a system call: a
/// close(2), fstat(2), write(2) or fsync(2) that blocks (a slow disk, a FUSE
/// filesystem's release) holds up only the thread making it.
@Suite struct CriticalSectionTests {
    /// A cached object on an O_PATH fd of /dev/null, released (unused), under `key`.
    func cachedObject(_ cache: OpenFileCache, key: UInt8) -> CachedObject {
        let fd = open("/dev/null", O_PATH | O_CLOEXEC)
        precondition(fd >= 0)
        let obj = CachedObject(key: [key], exportID: 1, pathFD: fd, inode: InodeKey(dev: 1, ino: UInt64(key)), isDirectory: false)
        cache.release(cache.insert(obj))
        return obj
    }

    @Test func aCacheHitDoesNotWaitForAClose() throws {
        let gate = SyscallGate()
        let held = NIOLockedValueBox<Int32>(-1)
        let closes = CloseRecorder()
        let cache = OpenFileCache(limit: 64, systemCalls: CacheSystemCalls(close: { fd in
            gate.pass(when: fd == held.withLockedValue { $0 })
            closes.close(fd)
        }))
        let closing = cachedObject(cache, key: 1)
        let other = cachedObject(cache, key: 2)
        let heldFD = closing.pathFD
        held.withLockedValue { $0 = heldFD }
        gate.arm()
        // REMOVE of the first object's file: its fds are closed, and that close blocks.
        let invalidated = inBackground { cache.invalidate(closing.inode) }
        #expect(gate.waitUntilHeld())
        let prompt = returnsWithin(2) {
            if let hit = cache.acquire(other.key) { cache.release(hit) }
        }
        #expect(prompt, "a cache hit waited for another object's close(2)")
        guard prompt else { gate.open(); return }   // let the held call, and the waiter, finish
        #expect(cache.acquire(closing.key) == nil)
        gate.open()
        #expect(invalidated.wait(timeout: .now() + 10) == .success)
        #expect(!closes.isOpen(heldFD))
        #expect(closes.isOpen(other.pathFD))
    }

    @Test func aCacheHitDoesNotWaitForTheSweepersFstat() throws {
        let gate = SyscallGate()
        let deletedOnHost = NIOLockedValueBox<Int32>(-1)
        let closes = CloseRecorder()
        let cache = OpenFileCache(limit: 64, systemCalls: CacheSystemCalls(close: closes.close, linkCount: { fd in
            gate.pass()
            return fd == deletedOnHost.withLockedValue { $0 } ? 0 : 1   // the first object's file was deleted on the host
        }))
        let deleted = cachedObject(cache, key: 1)
        let kept = cachedObject(cache, key: 2)
        let deletedFD = deleted.pathFD
        deletedOnHost.withLockedValue { $0 = deletedFD }
        gate.arm()
        let swept = inBackground { cache.sweepUnlinked() }
        #expect(gate.waitUntilHeld())
        let prompt = returnsWithin(2) {
            if let hit = cache.acquire(kept.key) { cache.release(hit) }
        }
        #expect(prompt, "a cache hit waited for the sweeper's fstat(2)")
        guard prompt else { gate.open(); return }   // let the held call, and the waiter, finish
        // The objects being checked are pinned: invalidating one now must not close
        // an fd the sweeper is about to fstat; its fds go when the sweeper lets go.
        cache.invalidate(deleted.inode)
        #expect(closes.isOpen(deleted.pathFD))
        gate.open()
        #expect(swept.wait(timeout: .now() + 10) == .success)
        #expect(!closes.isOpen(deletedFD))
        #expect(cache.acquire(deleted.key) == nil)
        let hit = try #require(cache.acquire(kept.key))
        cache.release(hit)
        #expect(closes.isOpen(kept.pathFD))
        #expect(cache.fileDescriptorCount == 1)
    }

    @Test func theSweeperClosesWhatWasDeletedAndKeepsTheRest() throws {
        let deletedOnHost = NIOLockedValueBox<Set<Int32>>([])
        let closes = CloseRecorder()
        let cache = OpenFileCache(limit: 64, systemCalls: CacheSystemCalls(close: closes.close, linkCount: { fd in
            deletedOnHost.withLockedValue { $0.contains(fd) } ? 0 : 1
        }))
        let objects = (1...10).map { cachedObject(cache, key: UInt8($0)) }
        let deleted = Set(objects.filter { $0.key[0] % 3 == 0 }.map(\.pathFD))
        deletedOnHost.withLockedValue { $0 = deleted }
        let inUse = try #require(cache.acquire(objects[2].key))   // key 3: deleted, but in use
        cache.sweepUnlinked(batch: 4)
        for o in objects {
            let gone = deleted.contains(o.pathFD) && o !== inUse
            #expect(closes.isOpen(o.pathFD) == !gone, "key \(o.key)")
            #expect((cache.acquire(o.key).map { cache.release($0) } == nil) == gone, "key \(o.key)")
        }
        cache.release(inUse)
        #expect(cache.fileDescriptorCount == 8)
    }

    func indexPath() -> (Sandbox, String) {
        let box = Sandbox()
        Glibc.mkdir(box.statePath, 0o700)
        return (box, box.statePath + "/index-1")
    }

    @Test func knowsDoesNotWaitForAnAppend() throws {
        let (box, path) = indexPath()
        _ = box
        let gate = SyscallGate()
        let index = try InodeIndex(path: path, rootDev: 1, rootIno: 2, systemCalls: InodeIndex.SystemCalls(write: { fd, p, n in
            gate.pass()
            return Glibc.write(fd, p, n)
        }))
        index.record(ino: 10, parent: 2, name: Array("known".utf8))
        gate.arm()
        let appended = inBackground { index.record(ino: 11, parent: 2, name: Array("new".utf8)) }
        #expect(gate.waitUntilHeld())
        let prompt = returnsWithin(2) {
            _ = index.knows(ino: 10, parent: 2, name: Array("known".utf8))
            _ = index.chain(to: 10)
        }
        #expect(prompt, "knows waited for the index's write(2)")
        guard prompt else { gate.open(); return }   // let the held call, and the waiter, finish
        #expect(index.knows(ino: 11, parent: 2, name: Array("new".utf8)))
        gate.open()
        #expect(appended.wait(timeout: .now() + 10) == .success)
        let again = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
        #expect(again.chain(to: 11)?.map { $0.name } == [Array("new".utf8)])
        #expect(again.chain(to: 10)?.map { $0.name } == [Array("known".utf8)])
    }

    @Test func knowsDoesNotWaitForACompaction() throws {
        let (box, path) = indexPath()
        _ = box
        let gate = SyscallGate()
        let index = try InodeIndex(path: path, rootDev: 1, rootIno: 2, systemCalls: InodeIndex.SystemCalls(fsync: { fd in
            gate.pass()
            _ = Glibc.fsync(fd)
        }))
        for i in 0..<100 { index.record(ino: UInt64(10 + i), parent: 2, name: Array("f\(i)".utf8)) }
        index.remove(ino: 10)
        gate.arm()
        let compacted = inBackground { try? index.compact() }
        #expect(gate.waitUntilHeld())
        let prompt = returnsWithin(2) {
            _ = index.knows(ino: 11, parent: 2, name: Array("f1".utf8))
            _ = index.count
        }
        #expect(prompt, "knows waited for the index's compaction")
        guard prompt else { gate.open(); return }   // let the held call, and the waiter, finish
        // A change waits for the compaction (one writer), then lands in the new log.
        let recorded = inBackground { index.record(ino: 500, parent: 2, name: Array("late".utf8)) }
        gate.open()
        #expect(compacted.wait(timeout: .now() + 10) == .success)
        #expect(recorded.wait(timeout: .now() + 10) == .success)
        let again = try InodeIndex(path: path, rootDev: 1, rootIno: 2)
        #expect(again.count == 100)
        #expect(again.chain(to: 10) == nil)
        #expect(again.chain(to: 500)?.map { $0.name } == [Array("late".utf8)])
    }
}
