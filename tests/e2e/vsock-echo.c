/* Test-only helper for the e2e guest (built static on the host, never shipped).
 *   vsock-echo PORT          listen on vsock PORT; echo every connection back
 *   vsock-echo -s PORT       listen on vsock PORT; read and discard (a sink)
 *   vsock-echo -c PORT MIB [CHUNK]  connect to vsock CID 1 PORT, send MIB MiB in CHUNK-byte writes, print MiB/s
 *   vsock-echo -t PORT MIB [CHUNK]  the same to TCP 127.0.0.1 PORT (through the relay)
 *   vsock-echo -S PORT MIB   listen on vsock PORT; send MIB MiB to every connection (a source)
 *   vsock-echo -r PORT       connect to TCP 127.0.0.1 PORT, read to EOF, print MiB/s
 *   vsock-echo -p PORT N     ping-pong N 128-byte messages with an echo server on vsock CID 1 PORT
 *   vsock-echo -P PORT N     the same over TCP 127.0.0.1 PORT (through the relay)
 * Proves vsock loopback and the relay without the NFS server, and gives a
 * baseline for the relay's throughput. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <time.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static char buf[1 << 18];

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    int sink = 0, client = 0, arg = 1;
    if (argc > 1 && !strcmp(argv[1], "-s")) { sink = 1; arg++; }
    if (argc > 1 && !strcmp(argv[1], "-c")) { client = 1; arg++; }
    if (argc > 1 && !strcmp(argv[1], "-t")) { client = 2; arg++; }
    int source = 0, reader = 0, pingpong = 0;
    if (argc > 1 && !strcmp(argv[1], "-p")) { pingpong = 1; client = 1; arg++; }
    if (argc > 1 && !strcmp(argv[1], "-P")) { pingpong = 1; client = 2; arg++; }
    if (argc > 1 && !strcmp(argv[1], "-S")) { source = 1; arg++; }
    if (argc > 1 && !strcmp(argv[1], "-r")) { reader = 1; client = 2; arg++; }
    if (argc <= arg) { fprintf(stderr, "usage: vsock-echo [-s|-c] PORT [MIB]\n"); return 2; }
    int fd = socket(client == 2 ? AF_INET : AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    unsigned long long bufsize = 2 << 20;
    setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &bufsize, sizeof bufsize);
    setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &bufsize, sizeof bufsize);
    if (client) {
        struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = 1, .svm_port = atoi(argv[arg]) };
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[arg])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (client == 1 ? connect(fd, (struct sockaddr *)&a, sizeof a) : connect(fd, (struct sockaddr *)&in, sizeof in)) { perror("connect"); return 1; }
        if (pingpong) {
            long n = argc > arg + 1 ? atol(argv[arg + 1]) : 1000;
            double t0 = now();
            for (long i = 0; i < n; i++) {
                if (write(fd, buf, 128) != 128) { perror("write"); return 1; }
                for (int got = 0; got < 128;) { ssize_t r = read(fd, buf, 128 - got); if (r <= 0) { perror("read"); return 1; } got += r; }
            }
            printf("%ld round trips: %.0f us each\n", n, (now() - t0) / n * 1e6);
            return 0;
        }
        if (reader) {
            double t0 = now(); long long got = 0; ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) got += n;
            printf("read %.1f MiB in %.2f s: %.1f MiB/s\n", got / 1048576.0, now() - t0, got / 1048576.0 / (now() - t0));
            return 0;
        }
        long mib = argc > arg + 1 ? atol(argv[arg + 1]) : 100;
        size_t chunk = argc > arg + 2 ? (size_t)atol(argv[arg + 2]) : sizeof buf;
        if (chunk > sizeof buf || chunk == 0) chunk = sizeof buf;
        double t0 = now();
        for (long long total = 0; total < mib * 1048576LL; total += chunk)
            for (size_t off = 0; off < chunk;) { ssize_t w = write(fd, buf + off, chunk - off); if (w <= 0) { perror("write"); return 1; } off += w; }
        shutdown(fd, SHUT_WR);
        while (read(fd, buf, sizeof buf) > 0) {}
        printf("%ld MiB in %.2f s: %.1f MiB/s\n", mib, now() - t0, mib / (now() - t0));
        return 0;
    }
    signal(SIGCHLD, SIG_IGN);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = atoi(argv[arg]) };
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16)) { perror("bind/listen"); return 1; }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            close(fd);
            ssize_t n;
            if (source) {
                long mib = argc > arg + 1 ? atol(argv[arg + 1]) : 100;
                for (long i = 0; i < mib * 4; i++)
                    for (size_t off = 0; off < sizeof buf;) { ssize_t w = write(c, buf + off, sizeof buf - off); if (w <= 0) _exit(1); off += w; }
                shutdown(c, SHUT_WR);
                while (read(c, buf, sizeof buf) > 0) {}
                _exit(0);
            }
            while ((n = read(c, buf, sizeof buf)) > 0)
                if (!sink)
                    for (ssize_t off = 0; off < n;) { ssize_t w = write(c, buf + off, n - off); if (w <= 0) _exit(1); off += w; }
            shutdown(c, SHUT_WR);
            _exit(0);
        }
        close(c);
    }
}
