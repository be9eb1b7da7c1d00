#define _GNU_SOURCE
#include "transport_shims.h"
#include <unistd.h>

_Static_assert(sizeof(struct vsnfs_ucred) == sizeof(struct ucred), "ucred layout");

int vsnfs_vsock_available(void) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}
