/* Test-only: an LD_PRELOAD library that makes a server return corrupt file
 * data, to prove that `make e2e` fails when READ data is wrong. It flips one
 * byte of every pread/preadv2 result of 4 KiB or more (small reads, such as
 * the server's own state files, are left alone).
 *   E2E_SERVER_PRELOAD=tests/e2e/corrupt-read.c tests/e2e/run.sh 3   (must fail) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/types.h>
#include <sys/uio.h>

static void flip(void *buf, ssize_t n) { if (n >= 4096) ((unsigned char *)buf)[n / 2] ^= 0x5a; }

ssize_t pread(int fd, void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pread");
    ssize_t n = real(fd, buf, count, offset);
    flip(buf, n);
    return n;
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset) { return pread(fd, buf, count, offset); }

ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
    static ssize_t (*real)(int, const struct iovec *, int, off_t, int);
    if (!real) real = dlsym(RTLD_NEXT, "preadv2");
    ssize_t n = real(fd, iov, iovcnt, offset, flags);
    if (n > 0 && iovcnt > 0) flip(iov[0].iov_base, n < (ssize_t)iov[0].iov_len ? n : (ssize_t)iov[0].iov_len);
    return n;
}
