#ifndef VSNFS_LEASE_SHIMS_H
#define VSNFS_LEASE_SHIMS_H

#include <stdint.h>

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

/// A new inotify instance (close-on-exec, blocking reads), or -errno.
int vsnfs_watch_init(void);

/// The events a delegated file is watched for: IN_ATTRIB (mode, owner,
/// times, link count: a host unlink or link changes it), IN_MOVE_SELF,
/// IN_DELETE_SELF.
uint32_t vsnfs_watch_mask(void);

/// inotify_add_watch of the file open on `fd` (through /proc/self/fd/N, not
/// a path) for `vsnfs_watch_mask()`: the watch descriptor (the same one for
/// every fd of one inode), or -errno (ENOSPC: max_user_watches reached).
int vsnfs_watch_add(int inotify_fd, int fd);

/// inotify_rm_watch (0 or -errno).
int vsnfs_watch_remove(int inotify_fd, int wd);

/// IN_Q_OVERFLOW and IN_IGNORED, for reading events.
uint32_t vsnfs_watch_overflow(void);
uint32_t vsnfs_watch_ignored(void);
#endif
