#ifndef VSNFS_TRANSPORT_SHIMS_H
#define VSNFS_TRANSPORT_SHIMS_H
#include <stdint.h>
#include <sys/types.h>

/// Peer credentials of a connected Unix socket (SO_PEERCRED). Returns 0 or -errno.
int vsnfs_peer_cred(int fd, uint32_t *uid, uint32_t *gid, int32_t *pid);
/// Peer CID and port of a connected AF_VSOCK socket (getpeername). Returns 0 or -errno.
int vsnfs_vsock_peer(int fd, uint32_t *cid, uint32_t *port);
/// 1 if the kernel can create AF_VSOCK stream sockets, 0 if not.
int vsnfs_vsock_available(void);
#endif
