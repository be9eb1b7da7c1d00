import CSupport
import Glibc
import NIOConcurrencyHelpers

/// A host kernel read lease (fcntl F_SETLEASE F_RDLCK, fcntl(2) "Leases") on
/// one file: what lets an NFSv4 read delegation follow the host. When a host
/// process opens the file for writing or truncates it, the kernel makes that
/// process wait (up to
/// /proc/sys/fs/lease-break-time) and tells the lease holder: a realtime
/// signal (F_SETSIG), whose handler writes the lease's fd to a pipe; one
/// thread reads the pipe and calls the lease's break handler, which recalls
/// the delegation. `release()` (DELEGRETURN) lets the waiting process go on.
/// (A host rename or unlink does not break an F_SETLEASE lease: only the
/// kernel's own NFS server's delegations see those.)
///
/// A lease needs the server to own the file or hold CAP_LEASE, and the file
/// not to be open for writing anywhere (the server's own cached write
/// descriptors included): otherwise `take` throws and no delegation is given.
public final class HostLease: Sendable {
    public typealias BreakHandler = @Sendable () -> Void

    private let fd: Int32
    private let released = NIOLockedValueBox(false)

    private init(fd: Int32) {
        self.fd = fd
    }

    /// Takes a read lease on the file `h` names; `onBreak` runs (on the lease
    /// thread; it must not block) when the host breaks it. Throws
    /// `FSError.errno`: EAGAIN (open for writing), EACCES (neither owner nor
    /// CAP_LEASE), EINVAL (a filesystem without leases).
    public static func take(_ h: ObjectHandle, in fs: HostFileSystem, onBreak: @escaping BreakHandler) throws -> HostLease {
        try Self.startReader()
        let fd = try fs.withObject(h) { _, obj -> Int32 in
            let fd = procReopen(obj.pathFD, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            if fd < 0 { throw FSError.current }
            return fd
        }
        // Registered before the lease exists: a break may come at once.
        registry.withLockedValue { $0[fd] = onBreak }
        let rc = vsnfs_take_read_lease(fd)
        guard rc == 0 else {
            registry.withLockedValue { _ = $0.removeValue(forKey: fd) }
            close(fd)
            throw FSError.errno(-rc)
        }
        return HostLease(fd: fd)
    }

    /// Gives the lease up (a host process waiting on it goes on) and closes
    /// its descriptor. Once; later calls do nothing.
    public func release() {
        let first = released.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        Self.registry.withLockedValue { _ = $0.removeValue(forKey: fd) }
        _ = vsnfs_release_lease(fd)
        close(fd)
    }

    /// Whether the host is breaking (or broke) the lease.
    public var isBreaking: Bool {
        released.withLockedValue { $0 } ? false : vsnfs_get_lease(fd) == F_UNLCK
    }

    deinit { release() }

    // MARK: The lease thread

    private static let registry = NIOLockedValueBox<[Int32: BreakHandler]>([:])
    private static let reader = NIOLockedValueBox<Int32?>(nil)

    private static func startReader() throws {
        try reader.withLockedValue { started in
            if started != nil { return }
            let fd = vsnfs_lease_pipe()
            guard fd >= 0 else { throw FSError.errno(-fd) }
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                HostLease.readBreaks(Int32(Int(bitPattern: raw)))
                return nil
            }, UnsafeMutableRawPointer(bitPattern: Int(fd)))
            guard rc == 0 else { throw FSError.errno(rc) }
            pthread_detach(thread)
            started = fd
        }
    }

    /// Reads broken leases' fds forever. A message for an fd whose lease is not
    /// breaking (released, and the number reused by a newer lease) is ignored.
    private static func readBreaks(_ pipe: Int32) {
        var fd: Int32 = -1
        while true {
            let n = read(pipe, &fd, MemoryLayout<Int32>.size)
            if n < 0 && errno == EINTR { continue }
            guard n == MemoryLayout<Int32>.size else { return }
            let handler = registry.withLockedValue { $0[fd] }
            guard let handler, vsnfs_get_lease(fd) == F_UNLCK else { continue }
            handler()
        }
    }
}
