#ifndef VSNFS_LEASE_SHIMS_H
#define VSNFS_LEASE_SHIMS_H

/// The realtime signal the kernel sends when a lease this process holds is
/// broken (F_SETSIG): SIGRTMIN + 5.
int vsnfs_lease_signal(void);

/// Installs an SA_SIGINFO handler for `vsnfs_lease_signal()` that writes the
/// broken lease's fd (si_fd, an int) to a pipe, and returns the pipe's read
/// end (blocking; or -errno). Once per process; later calls return the same fd.
int vsnfs_lease_pipe(void);

/// F_SETSIG to the lease signal, then F_SETLEASE F_RDLCK on `fd` (opened
/// O_RDONLY). 0, or -errno: EAGAIN when the file is open for writing, EACCES
/// when the process neither owns the file nor has CAP_LEASE.
int vsnfs_take_read_lease(int fd);

/// F_GETLEASE: F_RDLCK while the lease holds, F_UNLCK while a break is
/// pending (or after it), or -errno.
int vsnfs_get_lease(int fd);

/// F_SETLEASE F_UNLCK (0 or -errno).
int vsnfs_release_lease(int fd);
#endif
