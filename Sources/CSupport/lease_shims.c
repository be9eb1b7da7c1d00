#define _GNU_SOURCE
#include "lease_shims.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int lease_pipe_write_end = -1;
static int lease_pipe_read_end = -1;
static pthread_mutex_t lease_pipe_lock = PTHREAD_MUTEX_INITIALIZER;

int vsnfs_lease_signal(void) { return SIGRTMIN + 5; }

static void vsnfs_lease_handler(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    int saved = errno;
    int fd = info ? info->si_fd : -1;
    if (lease_pipe_write_end >= 0) {
        // One int is atomic on a pipe (PIPE_BUF). A full pipe (16,384 breaks
        // unread) drops it: that delegation is not recalled, and the kernel
        // breaks the lease itself after /proc/sys/fs/lease-break-time.
        ssize_t ignored = write(lease_pipe_write_end, &fd, sizeof(fd));
        (void)ignored;
    }
    errno = saved;
}

int vsnfs_lease_pipe(void) {
    pthread_mutex_lock(&lease_pipe_lock);
    if (lease_pipe_read_end >= 0) {
        int fd = lease_pipe_read_end;
        pthread_mutex_unlock(&lease_pipe_lock);
        return fd;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno;
        pthread_mutex_unlock(&lease_pipe_lock);
        return -e;
    }
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    lease_pipe_write_end = fds[1];
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = vsnfs_lease_handler;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(vsnfs_lease_signal(), &action, NULL) != 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        lease_pipe_write_end = -1;
        pthread_mutex_unlock(&lease_pipe_lock);
        return -e;
    }
    lease_pipe_read_end = fds[0];
    pthread_mutex_unlock(&lease_pipe_lock);
    return fds[0];
}

int vsnfs_take_read_lease(int fd) {
    if (fcntl(fd, F_SETSIG, vsnfs_lease_signal()) != 0) return -errno;
    if (fcntl(fd, F_SETLEASE, F_RDLCK) != 0) return -errno;
    return 0;
}

int vsnfs_get_lease(int fd) {
    int r = fcntl(fd, F_GETLEASE);
    return r < 0 ? -errno : r;
}

int vsnfs_release_lease(int fd) {
    return fcntl(fd, F_SETLEASE, F_UNLCK) == 0 ? 0 : -errno;
}

#include <stdio.h>
#include <sys/inotify.h>

int vsnfs_watch_init(void) {
    int fd = inotify_init1(IN_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

uint32_t vsnfs_watch_mask(void) { return IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF; }

int vsnfs_watch_add(int inotify_fd, int fd) {
    // The descriptor's /proc link names the file it has open, whatever its
    // path is now: no path a client could swap is followed.
    char path[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(inotify_fd, path, vsnfs_watch_mask());
    return wd < 0 ? -errno : wd;
}

int vsnfs_watch_remove(int inotify_fd, int wd) {
    return inotify_rm_watch(inotify_fd, wd) == 0 ? 0 : -errno;
}

uint32_t vsnfs_watch_overflow(void) { return IN_Q_OVERFLOW; }
uint32_t vsnfs_watch_ignored(void) { return IN_IGNORED; }
