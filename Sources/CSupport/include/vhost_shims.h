#ifndef VSNFS_VHOST_SHIMS_H
#define VSNFS_VHOST_SHIMS_H
// Shims for the vhost-user-vsock device (VirtioVsock): file descriptors
// passed with SCM_RIGHTS, memfd and eventfd, and the memory-ordering
// primitives a split virtqueue needs when it shares memory with a guest.
// Functions return 0 (or a non-negative result) on success, -errno on failure.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

/// MSG_NOSIGNAL (Glibc's Swift overlay does not always surface it).
static inline int vsnfs_msg_nosignal(void) { return MSG_NOSIGNAL; }

/// recvmsg(2) of up to `len` bytes, collecting at most `max_fds` descriptors
/// passed with SCM_RIGHTS (received close-on-exec) into `fds`, their count into
/// `*nfds`. Descriptors beyond `max_fds` (a truncated control message) are
/// closed and the call fails with -EMSGSIZE. Returns the bytes read, 0 at end
/// of file, or -errno.
ssize_t vsnfs_recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds);

/// sendmsg(2) of `len` bytes with `nfds` descriptors attached (SCM_RIGHTS,
/// none if nfds is 0). Returns the bytes sent or -errno. MSG_NOSIGNAL.
ssize_t vsnfs_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/// memfd_create(name, MFD_CLOEXEC). Returns the fd or -errno.
int vsnfs_memfd_create(const char *name);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). Returns the fd or -errno.
int vsnfs_eventfd(void);

/// Adds 1 to an eventfd's counter. Returns 0 or -errno (EAGAIN counts as done).
int vsnfs_eventfd_signal(int fd);

/// Reads and clears an eventfd's counter. Returns 1 if it was signalled,
/// 0 if not (EAGAIN), -errno on error.
int vsnfs_eventfd_drain(int fd);

/// A connected AF_UNIX SOCK_STREAM pair, both ends close-on-exec; `fds[0]`
/// is made non-blocking when nonblock0 is set.
int vsnfs_stream_socketpair(int fds[2], int nonblock0);

/// Memory ordering for rings shared with a guest (the virtio spec's
/// "read memory barrier" after reading avail->idx, "write memory barrier"
/// before publishing used->idx, and a full barrier before reading the
/// driver's notification suppression flags).
uint16_t vsnfs_load_acquire_u16(const void *p);
void vsnfs_store_release_u16(void *p, uint16_t value);
void vsnfs_fence_acquire(void);
void vsnfs_fence_release(void);
void vsnfs_fence_seq_cst(void);
#endif
