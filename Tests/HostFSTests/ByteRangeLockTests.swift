import Glibc
import Testing
@testable import HostFS

/// Byte-range locks as open-file-description locks: NFSv4 lock-owners
/// conflict with each other and with processes on the host that lock the same
/// file with fcntl (RFC 8881 §9.5, LOCK/LOCKT/LOCKU §18.10-18.12).
@Suite struct ByteRangeLockTests {
    static let alice = LockOwnerKey(clientID: 1, owner: Array("alice".utf8))
    static let bob = LockOwnerKey(clientID: 2, owner: Array("bob".utf8))

    /// A file in a fresh export, its handle, and the locks.
    static func setUp(_ box: Sandbox) throws -> (HostFileSystem, ObjectHandle, ByteRangeLocks) {
        box.hostFile("f", String(repeating: "x", count: 4096))
        let fs = try box.fs(kernelIfRoot)
        let h = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root).handle
        return (fs, h, ByteRangeLocks(fs: fs))
    }

    /// A traditional POSIX record lock taken on the host, as any program would.
    static func hostLock(_ path: String, _ type: Int32, offset: Int, length: Int) -> (fd: Int32, granted: Bool) {
        let fd = open(path, O_RDWR)
        precondition(fd >= 0)
        var fl = flock()
        fl.l_type = Int16(type)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = off_t(offset)
        fl.l_len = off_t(length)
        return (fd, fcntl(fd, F_SETLK, &fl) == 0)
    }

    @Test("RFC 8881 9.5: two lock-owners' write locks on one range conflict; disjoint ranges do not")
    func ownersConflict() throws {
        let box = Sandbox()
        let (_, h, locks) = try Self.setUp(box)
        #expect(try locks.lock(h, owner: Self.alice, type: .write, offset: 0, length: 100) == nil)
        let denied = try locks.lock(h, owner: Self.bob, type: .write, offset: 50, length: 10)
        #expect(denied == RangeLockConflict(offset: 0, length: 100, type: .write))
        #expect(try locks.lock(h, owner: Self.bob, type: .write, offset: 100, length: 10) == nil)
        // LOCKT sees alice's lock for bob, and nothing in the way for alice herself.
        #expect(try locks.test(h, owner: Self.bob, type: .read, offset: 0, length: 1)?.type == .write)
        #expect(try locks.test(h, owner: Self.alice, type: .write, offset: 0, length: 100) == nil)
        // LOCKU: the range is free for bob.
        try locks.unlock(h, owner: Self.alice, offset: 0, length: 100)
        #expect(try locks.lock(h, owner: Self.bob, type: .write, offset: 50, length: 10) == nil)
    }

    @Test("RFC 8881 9.5: read locks share; a read lock blocks another owner's write lock")
    func readLocksShare() throws {
        let box = Sandbox()
        let (_, h, locks) = try Self.setUp(box)
        #expect(try locks.lock(h, owner: Self.alice, type: .read, offset: 0, length: .max) == nil)
        #expect(try locks.lock(h, owner: Self.bob, type: .read, offset: 10, length: 10) == nil)
        #expect(try locks.lock(h, owner: Self.bob, type: .write, offset: 10, length: 10)?.type == .read)
    }

    @Test("A lock a host process holds with fcntl refuses a guest's lock, and a guest's lock refuses the host's")
    func hostProcessesSeeGuestLocks() throws {
        let box = Sandbox()
        let (_, h, locks) = try Self.setUp(box)
        let host = Self.hostLock(box.exportPath + "/f", F_WRLCK, offset: 0, length: 10)
        #expect(host.granted)
        #expect(try locks.lock(h, owner: Self.alice, type: .read, offset: 5, length: 1)?.type == .write)
        close(host.fd)  // the host's lock goes with its file
        #expect(try locks.lock(h, owner: Self.alice, type: .write, offset: 0, length: 10) == nil)
        let refused = Self.hostLock(box.exportPath + "/f", F_WRLCK, offset: 5, length: 1)
        #expect(!refused.granted)
        close(refused.fd)
    }

    @Test("RFC 8881 8.3: releasing a client drops its locks and the files held for them")
    func releaseClient() throws {
        let box = Sandbox()
        let (_, h, locks) = try Self.setUp(box)
        #expect(try locks.lock(h, owner: Self.alice, type: .write, offset: 0, length: .max) == nil)
        // A refused first lock keeps no file open for bob.
        #expect(try locks.lock(h, owner: Self.bob, type: .write, offset: 0, length: 1) != nil)
        #expect(locks.descriptorCount == 1)
        locks.releaseClient(1)
        #expect(locks.descriptorCount == 0)
        #expect(try locks.lock(h, owner: Self.bob, type: .write, offset: 0, length: 1) == nil)
    }

    @Test("Offsets past off_t lock to the end of the file instead of trapping")
    func hugeRanges() {
        let fl = ByteRangeLocks.flockValue(F_WRLCK, offset: .max - 5, length: 10)
        #expect(fl.l_start == off_t(Int64.max) && fl.l_len == 0)
        let toEnd = ByteRangeLocks.flockValue(F_RDLCK, offset: 100, length: .max)
        #expect(toEnd.l_start == 100 && toEnd.l_len == 0)
        let plain = ByteRangeLocks.flockValue(F_RDLCK, offset: 100, length: 50)
        #expect(plain.l_start == 100 && plain.l_len == 50)
    }
}
