/* vhost-user-relay: a minimal loopback-TCP-to-vsock relay for the smoke
 * guest (the product's relay is vsnfs-mount, a Swift binary this test keeps
 * out of the guest to stay quick to build). Listens on 127.0.0.1:PORT and
 * forwards each connection to CID 2, PORT over AF_VSOCK.
 *   vhost-user-relay PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pump(int a, int b) {
    static char buf[65536];
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    int open_a = 1, open_b = 1;
    while (open_a || open_b) {
        p[0].fd = open_a ? a : -1;
        p[1].fd = open_b ? b : -1;
        if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; return; }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int from = i == 0 ? a : b, to = i == 0 ? b : a;
            ssize_t n = read(from, buf, sizeof buf);
            if (n <= 0) {
                shutdown(to, SHUT_WR);
                if (i == 0) open_a = 0; else open_b = 0;
                continue;
            }
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(to, buf + off, (size_t)(n - off));
                if (w <= 0) return;
                off += w;
            }
        }
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 2049;
    signal(SIGCHLD, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 16) < 0) { perror("relay: bind"); return 1; }
    printf("relay: listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            close(l);
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            int v = socket(AF_VSOCK, SOCK_STREAM, 0);
            struct sockaddr_vm va;
            memset(&va, 0, sizeof va);
            va.svm_family = AF_VSOCK;
            va.svm_cid = 2;
            va.svm_port = (unsigned)port;
            if (connect(v, (struct sockaddr *)&va, sizeof va) < 0) { perror("relay: vsock connect"); _exit(1); }
            pump(c, v);
            _exit(0);
        }
        close(c);
    }
}
