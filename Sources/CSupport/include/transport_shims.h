#ifndef VSNFS_TRANSPORT_SHIMS_H
#define VSNFS_TRANSPORT_SHIMS_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

/// Same layout as Linux's struct ucred (SO_PEERCRED), which glibc only
/// declares under _GNU_SOURCE.
struct vsnfs_ucred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
};

/// 1 if the kernel can create AF_VSOCK stream sockets, 0 if not.
int vsnfs_vsock_available(void);
#endif
