#define _GNU_SOURCE
#include "mount_shims.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/vm_sockets.h>

int vsnfs_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) { int e = errno; close(fd); return -e; }
    if (ifr.ifr_flags & IFF_UP) { close(fd); return 0; }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) { int e = errno; close(fd); return -e; }
    close(fd);
    return 1;
}

int vsnfs_vsock_connect(uint32_t cid, uint32_t port, int timeout_ms, uint64_t buffer_bytes) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (buffer_bytes > 0) vsnfs_vsock_set_buffer(fd, buffer_bytes);
    if (timeout_ms > 0) {
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
        setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD, &tv, sizeof(tv));
    }
    struct sockaddr_vm addr;
    memset(&addr, 0, sizeof(addr));
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = cid;
    addr.svm_port = port;
    int rc;
    do { rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr)); } while (rc != 0 && errno == EINTR);
    if (rc != 0) { int e = errno; close(fd); return -e; }
    return fd;
}

int64_t vsnfs_vsock_local_cid_of(int fd) {
    struct sockaddr_vm addr;
    socklen_t len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) return -errno;
    return addr.svm_cid;
}

int64_t vsnfs_vsock_local_cid(void) {
    int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    unsigned int cid = 0;
    if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) != 0) { int e = errno; close(fd); return -e; }
    close(fd);
    return cid;
}

int vsnfs_vsock_set_buffer(int fd, uint64_t bytes) {
    unsigned long long v = bytes;
    if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &v, sizeof(v)) != 0) return -errno;
    if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &v, sizeof(v)) != 0) return -errno;
    return 0;
}

int vsnfs_tcp_listen_loopback(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 64) != 0) {
        int e = errno; close(fd); return -e;
    }
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) { int e = errno; close(fd); return -e; }
    *port = ntohs(addr.sin_port);
    return fd;
}

int vsnfs_tcp_connect_loopback(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) { int e = errno; close(fd); return -e; }
    return fd;
}

int vsnfs_tcp_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 ? 0 : -errno;
}

static int write_all(int out, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(out, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -errno; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static int pump_copy(int in, int out, size_t chunk, uint64_t *moved) {
    char *buf = malloc(chunk);
    if (!buf) return -ENOMEM;
    int rc = 0;
    for (;;) {
        ssize_t r = read(in, buf, chunk);
        if (r == 0) break;
        if (r < 0) { if (errno == EINTR) continue; rc = -errno; break; }
        if ((rc = write_all(out, buf, (size_t)r)) != 0) break;
        *moved += (uint64_t)r;
    }
    free(buf);
    return rc;
}

static int pump_splice(int in, int out, size_t chunk, uint64_t *moved) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return pump_copy(in, out, chunk, moved);
    fcntl(p[1], F_SETPIPE_SZ, (int)chunk);
    int rc = 0;
    int first = 1;
    for (;;) {
        ssize_t r = splice(in, NULL, p[1], NULL, chunk, SPLICE_F_MOVE);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            if (first && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                close(p[0]); close(p[1]);
                return pump_copy(in, out, chunk, moved);
            }
            rc = -errno; break;
        }
        first = 0;
        size_t left = (size_t)r;
        while (left > 0) {
            ssize_t w = splice(p[0], NULL, out, NULL, left, SPLICE_F_MOVE);
            if (w < 0) { if (errno == EINTR) continue; rc = -errno; break; }
            if (w == 0) { rc = -EPIPE; break; }
            left -= (size_t)w;
        }
        if (rc != 0) break;
        *moved += (uint64_t)r;
    }
    close(p[0]); close(p[1]);
    return rc;
}

int vsnfs_pump(int in, int out, int mode, size_t chunk, uint64_t *moved) {
    if (chunk < 4096) chunk = 4096;
    return mode == 1 ? pump_splice(in, out, chunk, moved) : pump_copy(in, out, chunk, moved);
}

extern char **environ;

pid_t vsnfs_spawn_detached(const char *path, char *const argv[], const char *log_path, int pass_fd) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log_path ? log_path : "/dev/null",
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (pass_fd >= 0) posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc == 0 ? pid : -rc;
}
