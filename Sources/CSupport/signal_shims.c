#define _GNU_SOURCE
#include "signal_shims.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int signal_pipe_write_end = -1;

static void vsnfs_signal_handler(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    if (signal_pipe_write_end >= 0) {
        ssize_t ignored = write(signal_pipe_write_end, &byte, 1);
        (void)ignored;
    }
    errno = saved;
}

int vsnfs_signal_pipe(const int *signals, int count) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -errno;
    // Non-blocking both ways: a full pipe drops the extra byte rather than
    // blocking the handler, and the reader drains it without blocking.
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    signal_pipe_write_end = fds[1];
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = vsnfs_signal_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -errno;
    }
    return fds[0];
}
