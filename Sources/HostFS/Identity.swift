import CSupport
import Glibc

/// Runs closures with the caller's fs identity on the current thread only.
///
/// As root: raw setgroups/setfsgid/setfsuid syscalls (per-thread credentials; glibc's
/// setgroups would change every thread), restored afterwards even on error. Changing the
/// fsuid away from 0 also drops the fs capabilities (DAC override, CAP_FOWNER, ...) from the
/// thread's effective set, so the kernel checks permissions exactly as for that user.
/// Unprivileged: runs the closure unchanged (the server's own identity applies).
struct IdentitySwitcher: Sendable {
    let enabled: Bool
    let serverUID: UInt32
    let serverGID: UInt32
    let serverGroups: [UInt32]

    init(enabled: Bool) {
        self.enabled = enabled
        serverUID = hostfs_thread_fsuid()
        serverGID = hostfs_thread_fsgid()
        var groups = [UInt32](repeating: 0, count: 65536)
        let n = hostfs_thread_groups(&groups, Int32(groups.count))
        serverGroups = n > 0 ? Array(groups[0..<Int(n)]) : []
    }

    func run<T>(_ cred: Credentials, _ body: () throws -> T) throws -> T {
        guard enabled else { return try body() }
        let groups = cred.groups.count > 65536 ? Array(cred.groups.prefix(65536)) : cred.groups
        // The thread holds the server's identity here (restore always puts it back), so
        // a part equal to the server's needs no syscall, neither now nor to restore: the
        // kernel leaves credentials (and fs capabilities) alone when a value is unchanged.
        // Squashed callers usually bring no groups, like the server: that saves setgroups,
        // the dearest of the switch's syscalls, twice per call.
        var parts: Int32 = 0
        if groups != serverGroups { parts |= HOSTFS_SET_GROUPS }
        if cred.gid != serverGID { parts |= HOSTFS_SET_FSGID }
        if cred.uid != serverUID { parts |= HOSTFS_SET_FSUID }
        guard parts != 0 else { return try body() }
        let r = groups.withUnsafeBufferPointer {
            hostfs_set_thread_identity_parts(cred.uid, cred.gid, $0.baseAddress, $0.count, parts)
        }
        defer { restore(parts) }
        if r < 0 { throw FSError.errno(-r) }
        return try body()
    }

    private func restore(_ parts: Int32) {
        let r = serverGroups.withUnsafeBufferPointer {
            hostfs_set_thread_identity_parts(serverUID, serverGID, $0.baseAddress, $0.count, parts)
        }
        // A thread left with a client's identity must never serve another request.
        precondition(r == 0, "HostFS: cannot restore the server's identity (errno \(-r))")
    }
}
