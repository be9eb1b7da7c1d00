#ifndef VSNFS_MOUNT_SHIMS_H
#define VSNFS_MOUNT_SHIMS_H
// Guest-side syscalls for vsnfs-mount: the loopback interface, AF_VSOCK
// client sockets, the relay's data pump, and detached process spawning.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Brings the loopback interface up if it is down (SIOCSIFFLAGS).
/// Returns 1 if it was brought up, 0 if it was already up, -errno on error.
int vsnfs_loopback_up(void);

/// Connects a new AF_VSOCK stream socket to cid:port, waiting at most
/// timeout_ms for the connection, with a receive buffer of buffer_bytes (0:
/// the kernel's default), set before connecting so the peer learns it at once.
/// Returns the fd, or -errno (socket() failing with EAFNOSUPPORT means no
/// vsock support in this kernel).
int vsnfs_vsock_connect(uint32_t cid, uint32_t port, int timeout_ms, uint64_t buffer_bytes);

/// The local CID of a connected AF_VSOCK socket (getsockname), or -errno.
int64_t vsnfs_vsock_local_cid_of(int fd);

/// This machine's own CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock), or -errno.
int64_t vsnfs_vsock_local_cid(void);

/// Sets the vsock buffer size (and its maximum) of a socket. Returns 0 or -errno.
int vsnfs_vsock_set_buffer(int fd, uint64_t bytes);

/// A TCP listener on 127.0.0.1, on an ephemeral port. Returns the fd and
/// stores the port, or -errno.
int vsnfs_tcp_listen_loopback(uint16_t *port);

/// Connects to 127.0.0.1:port over TCP. Returns the fd or -errno.
int vsnfs_tcp_connect_loopback(uint16_t port);

/// Turns off Nagle's algorithm on a TCP socket.
int vsnfs_tcp_nodelay(int fd);

/// Copies bytes from `in` to `out` until end of file (returns 0) or an error
/// (returns -errno). mode 0: read/write through a buffer of `chunk` bytes;
/// mode 1: splice(2) through a pipe of `chunk` bytes, falling back to mode 0
/// if the kernel cannot splice these sockets. Adds the bytes moved to *moved.
int vsnfs_pump(int in, int out, int mode, size_t chunk, uint64_t *moved);

/// Starts `path` with `argv` in a new session (POSIX_SPAWN_SETSID), with
/// stdin/stdout on /dev/null, stderr appended to `log_path` (or /dev/null if
/// NULL), and `pass_fd` duplicated to fd 3 (if >= 0). Returns the pid or -errno.
pid_t vsnfs_spawn_detached(const char *path, char *const argv[], const char *log_path, int pass_fd);

#endif
