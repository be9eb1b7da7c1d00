/* Lock contention for the e2e checks (NFSv4.1/4.2 mounts; the host side too).
 *   locker posix|flock try  FILE        exclusive, not waiting: exit 0 got it (then released), 1 refused, 2 error
 *   locker posix|flock wait FILE        exclusive, waiting (F_SETLKW, LOCK_EX): exit 0 once got
 *   locker posix|flock hold FILE READY  as wait, then creates READY and holds the lock until killed
 * posix: a whole-file write lock with fcntl (a process-owned lock; on the
 * host it meets vsnfs's OFD locks); flock: flock(2), which the Linux NFS
 * client sends as a whole-file LOCK. FILE is opened read-write. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[2], "hold") == 0 && argc < 5)) {
        fprintf(stderr, "usage: locker posix|flock try|wait|hold FILE [READY]\n");
        return 2;
    }
    int posix = strcmp(argv[1], "posix") == 0;
    int wait = strcmp(argv[2], "try") != 0;
    int fd = open(argv[3], O_RDWR);
    if (fd < 0) { fprintf(stderr, "locker: open %s: %s\n", argv[3], strerror(errno)); return 2; }
    int rc;
    do {
        if (posix) {
            struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
            rc = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
        } else {
            rc = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
        }
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int refused = errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK;
        fprintf(stderr, "locker: %s %s %s: %s\n", argv[1], argv[2], argv[3], strerror(errno));
        return refused && !wait ? 1 : 2;
    }
    if (strcmp(argv[2], "hold") == 0) {
        int r = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (r < 0) { fprintf(stderr, "locker: create %s: %s\n", argv[4], strerror(errno)); return 2; }
        close(r);
        for (;;) pause();
    }
    return 0;
}
