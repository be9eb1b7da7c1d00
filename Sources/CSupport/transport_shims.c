#define _GNU_SOURCE
#include "transport_shims.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

int vsnfs_peer_cred(int fd, uint32_t *uid, uint32_t *gid, int32_t *pid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -errno;
    *uid = cred.uid; *gid = cred.gid; *pid = cred.pid;
    return 0;
}

int vsnfs_vsock_peer(int fd, uint32_t *cid, uint32_t *port) {
    struct sockaddr_vm addr;
    socklen_t len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getpeername(fd, (struct sockaddr *)&addr, &len) != 0) return -errno;
    if (addr.svm_family != AF_VSOCK) return -EAFNOSUPPORT;
    *cid = addr.svm_cid; *port = addr.svm_port;
    return 0;
}

int vsnfs_vsock_available(void) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}
