#ifndef VSNFS_HOSTFS_SHIMS_H
#define VSNFS_HOSTFS_SHIMS_H
// Shims for the HostFS layer: syscalls that Swift's Glibc module does not
// expose (variadic syscall(2), struct file_handle, getdents64, statx, ...).
// Every function returns 0 (or a non-negative result) on success, -errno on failure.
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/// SipHash-2-4 of data under a 128-bit key (64-bit tag).
uint64_t hostfs_siphash24(const uint8_t key[16], const uint8_t *data, size_t len);

/// Switch the *calling thread's* fs identity: supplementary groups, fsgid, fsuid
/// (raw syscalls; glibc's setgroups would change every thread). Verifies the result.
int hostfs_set_thread_identity(uint32_t uid, uint32_t gid, const uint32_t *groups, size_t ngroups);
/// The same, for the parts named in `parts` only (the others are left as they are).
#define HOSTFS_SET_GROUPS 1
#define HOSTFS_SET_FSGID 2
#define HOSTFS_SET_FSUID 4
int hostfs_set_thread_identity_parts(uint32_t uid, uint32_t gid, const uint32_t *groups, size_t ngroups, int parts);
/// Raises CAP_DAC_READ_SEARCH in the calling thread's effective set (it stays
/// permitted when setfsuid drops it). linkat(fd, "", ..., AT_EMPTY_PATH) needs it;
/// write permission on the target directory is still checked as the fsuid.
int hostfs_raise_dac_read_search(void);
/// Current thread's fsuid / fsgid.
uint32_t hostfs_thread_fsuid(void);
uint32_t hostfs_thread_fsgid(void);
/// Current thread's supplementary groups (returns count, or -errno).
int hostfs_thread_groups(uint32_t *groups, int capacity);

/// name_to_handle_at. On input *len is the capacity of out; on output the handle size.
int hostfs_name_to_handle(int dirfd, const char *name, int flags, uint8_t *out, uint32_t *len,
                          int32_t *type, int32_t *mount_id);
/// open_by_handle_at. Returns the fd or -errno.
int hostfs_open_by_handle(int mount_fd, const uint8_t *handle, uint32_t len, int32_t type, int flags);

/// FS_IOC_GETVERSION (inode generation). -ENOTTY / -EOPNOTSUPP where unsupported.
int hostfs_get_generation(int fd, uint32_t *generation);
/// Birth time via statx on an fd (O_PATH fds work). -ENODATA if the fs has none.
int hostfs_birth_time(int fd, int64_t *sec, uint32_t *nsec);

/// getdents64 on a directory fd. Returns bytes read, 0 at end, or -errno.
long hostfs_getdents64(int fd, void *buf, size_t len);

/// faccessat2(fd, "", mode, AT_EACCESS|AT_EMPTY_PATH): the thread's fs identity decides.
int hostfs_access_fd(int fd, int mode);

/// mknodat with a device number built from major/minor.
int hostfs_mknodat(int dirfd, const char *name, uint32_t mode, uint32_t major, uint32_t minor);
uint32_t hostfs_major(uint64_t dev);
uint32_t hostfs_minor(uint64_t dev);

/// renameat2 with flags (RENAME_NOREPLACE = 1).
int hostfs_renameat2(int olddir, const char *oldname, int newdir, const char *newname, unsigned flags);

/// openat2(dirfd, name, flags) with RESOLVE_CACHED | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV: the lookup is done from the dentry
/// cache alone (RCU walk), never waiting for the disk; -EAGAIN when that is not
/// possible (dentry not cached, or the permission check needs to sleep), -EINVAL
/// or -ENOSYS on kernels before 5.12. A trailing symlink with O_PATH|O_NOFOLLOW
/// gives an fd of the link itself, as openat does.
int hostfs_openat2_cached(int dirfd, const char *name, int flags);
/// NFSv4.2 (RFC 7862) data operations. lseek(fd, offset, SEEK_DATA or SEEK_HOLE):
/// the offset found, or -errno (-ENXIO: none past offset).
int64_t hostfs_seek_data(int fd, int64_t offset, int hole);
/// fallocate(fd, 0) (allocate) or FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE (deallocate).
int hostfs_fallocate(int fd, int punch_hole, int64_t offset, int64_t length);
/// copy_file_range of up to `length` bytes; returns the bytes copied (0 at the source's end) or -errno.
int64_t hostfs_copy_range(int src, int64_t src_offset, int dst, int64_t dst_offset, uint64_t length);
/// FICLONERANGE (length 0: to the source's end); 0 or -errno (-EOPNOTSUPP, -EXDEV, -EINVAL where not possible).
int hostfs_clone_range(int src, int64_t src_offset, int dst, int64_t dst_offset, uint64_t length);

#endif
