#define _GNU_SOURCE
#include "hostfs_shims.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>
#include <linux/openat2.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); } while (0)

static uint64_t load64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

uint64_t hostfs_siphash24(const uint8_t key[16], const uint8_t *data, size_t len) {
    uint64_t k0 = load64le(key), k1 = load64le(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load64le(data + i);
        v3 ^= m; SIPROUND; SIPROUND; v0 ^= m;
    }
    uint64_t b = ((uint64_t)len) << 56;
    for (size_t i = 0; i < (len & 7); i++) b |= ((uint64_t)data[full + i]) << (8 * i);
    v3 ^= b; SIPROUND; SIPROUND; v0 ^= b;
    v2 ^= 0xff; SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int hostfs_set_thread_identity(uint32_t uid, uint32_t gid, const uint32_t *groups, size_t ngroups) {
    return hostfs_set_thread_identity_parts(uid, gid, groups, ngroups,
                                            HOSTFS_SET_GROUPS | HOSTFS_SET_FSGID | HOSTFS_SET_FSUID);
}

int hostfs_set_thread_identity_parts(uint32_t uid, uint32_t gid, const uint32_t *groups, size_t ngroups, int parts) {
    if ((parts & HOSTFS_SET_GROUPS) && syscall(SYS_setgroups, ngroups, groups) != 0) return -errno;
    if (parts & HOSTFS_SET_FSGID) {
        syscall(SYS_setfsgid, gid);
        if ((uint32_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) return -EPERM;
    }
    if (parts & HOSTFS_SET_FSUID) {
        syscall(SYS_setfsuid, uid);
        if ((uint32_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) return -EPERM;
    }
    return 0;
}

int hostfs_raise_dac_read_search(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -errno;
    data[0].effective |= 1u << CAP_DAC_READ_SEARCH;
    if (syscall(SYS_capset, &header, data) != 0) return -errno;
    return 0;
}

uint32_t hostfs_thread_fsuid(void) { return (uint32_t)syscall(SYS_setfsuid, (uid_t)-1); }
uint32_t hostfs_thread_fsgid(void) { return (uint32_t)syscall(SYS_setfsgid, (gid_t)-1); }

int hostfs_thread_groups(uint32_t *groups, int capacity) {
    long n = syscall(SYS_getgroups, capacity, groups);
    return n < 0 ? -errno : (int)n;
}

int hostfs_name_to_handle(int dirfd, const char *name, int flags, uint8_t *out, uint32_t *len,
                          int32_t *type, int32_t *mount_id) {
    /* On the stack: READDIRPLUS calls this once per entry. */
    union { struct file_handle fh; char space[sizeof(struct file_handle) + MAX_HANDLE_SZ]; } h;
    h.fh.handle_bytes = MAX_HANDLE_SZ;
    int mnt = 0;
    if (name_to_handle_at(dirfd, name, &h.fh, &mnt, flags) != 0) return -errno;
    if (h.fh.handle_bytes > *len) return -EOVERFLOW;
    memcpy(out, h.fh.f_handle, h.fh.handle_bytes);
    *len = h.fh.handle_bytes; *type = h.fh.handle_type; *mount_id = mnt;
    return 0;
}

int hostfs_open_by_handle(int mount_fd, const uint8_t *handle, uint32_t len, int32_t type, int flags) {
    if (len > MAX_HANDLE_SZ) return -EINVAL;
    struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
    if (!fh) return -ENOMEM;
    fh->handle_bytes = len; fh->handle_type = type;
    memcpy(fh->f_handle, handle, len);
    int fd = open_by_handle_at(mount_fd, fh, flags);
    int e = errno;
    free(fh);
    return fd < 0 ? -e : fd;
}

int hostfs_get_generation(int fd, uint32_t *generation) {
    int g = 0;
    if (ioctl(fd, FS_IOC_GETVERSION, &g) != 0) return -errno;
    *generation = (uint32_t)g;
    return 0;
}

int hostfs_birth_time(int fd, int64_t *sec, uint32_t *nsec) {
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BTIME, &stx) != 0) return -errno;
    if (!(stx.stx_mask & STATX_BTIME)) return -ENODATA;
    *sec = stx.stx_btime.tv_sec; *nsec = stx.stx_btime.tv_nsec;
    return 0;
}

long hostfs_getdents64(int fd, void *buf, size_t len) {
    long n = syscall(SYS_getdents64, fd, buf, len);
    return n < 0 ? -errno : n;
}

int hostfs_access_fd(int fd, int mode) {
#ifdef SYS_faccessat2
    if (syscall(SYS_faccessat2, fd, "", mode, AT_EACCESS | AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOSYS) return -errno;
#endif
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0) return 0;
    return -errno;
}

int hostfs_mknodat(int dirfd, const char *name, uint32_t mode, uint32_t major, uint32_t minor) {
    if (mknodat(dirfd, name, (mode_t)mode, makedev(major, minor)) != 0) return -errno;
    return 0;
}

uint32_t hostfs_major(uint64_t dev) { return major(dev); }
uint32_t hostfs_minor(uint64_t dev) { return minor(dev); }

int hostfs_renameat2(int olddir, const char *oldname, int newdir, const char *newname, unsigned flags) {
    if (syscall(SYS_renameat2, olddir, oldname, newdir, newname, flags) != 0) return -errno;
    return 0;
}

int hostfs_openat2_cached(int dirfd, const char *name, int flags) {
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)flags;
    how.resolve = RESOLVE_CACHED | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
#else
    (void)dirfd; (void)name; (void)flags;
    return -ENOSYS;
#endif
}

int64_t hostfs_seek_data(int fd, int64_t offset, int hole) {
    off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
    return r < 0 ? -errno : (int64_t)r;
}

int hostfs_fallocate(int fd, int punch_hole, int64_t offset, int64_t length) {
    int mode = punch_hole ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : 0;
    return fallocate(fd, mode, (off_t)offset, (off_t)length) < 0 ? -errno : 0;
}

int64_t hostfs_copy_range(int src, int64_t src_offset, int dst, int64_t dst_offset, uint64_t length) {
    loff_t in = (loff_t)src_offset, out = (loff_t)dst_offset;
    size_t n = length > (uint64_t)0x7ffff000 ? (size_t)0x7ffff000 : (size_t)length;
    ssize_t r = copy_file_range(src, &in, dst, &out, n, 0);
    return r < 0 ? -errno : (int64_t)r;
}

int hostfs_clone_range(int src, int64_t src_offset, int dst, int64_t dst_offset, uint64_t length) {
    struct file_clone_range range = {
        .src_fd = src, .src_offset = (uint64_t)src_offset, .src_length = length, .dest_offset = (uint64_t)dst_offset,
    };
    return ioctl(dst, FICLONERANGE, &range) < 0 ? -errno : 0;
}
