/* vhost-user-probe: runs in a test guest whose vsock device is vsnfs's
 * vhost-user-vsock back-end. Checks, over real virtio-vsock:
 *   - the CID the device gave the guest (its config space);
 *   - an ONC RPC NULL call to NFS v3 at CID 2 port 2049 is answered;
 *   - 20000 NULL calls in batches (about 880 KB each way's worth of calls,
 *     several times the device's buf_alloc, so credit updates must flow);
 *   - a connection to a port vsnfs does not serve is refused (reset);
 *   - connect and close at once, then connect again;
 *   - with argument "forward": a connection to host port 7000 reaches the
 *     host's Unix socket BASE_7000 (answers "pong"), and a host process's
 *     CONNECT 5000 on BASE reaches this guest's listener on port 5000.
 * Prints PROBE-OK on success, PROBE-FAIL <why> otherwise.
 * Built static with the host's gcc (no Swift in the guest). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *why) {
    printf("PROBE-FAIL %s (errno %d %s)\n", why, errno, strerror(errno));
    fflush(stdout);
    exit(1);
}

static int vconnect(unsigned cid, unsigned port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0) return -errno;
    struct sockaddr_vm a;
    memset(&a, 0, sizeof a);
    a.svm_family = AF_VSOCK;
    a.svm_cid = cid;
    a.svm_port = port;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void put32(uint8_t *p, uint32_t v) {
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

/* A record-marked NULL call: 4-byte mark + 40-byte body. */
static void null_call(uint8_t out[44], uint32_t xid) {
    memset(out, 0, 44);
    put32(out, 0x80000000u | 40);
    put32(out + 4, xid);
    put32(out + 8, 0);       /* CALL */
    put32(out + 12, 2);      /* RPC version */
    put32(out + 16, 100003); /* NFS */
    put32(out + 20, 3);
    put32(out + 24, 0);      /* NULL */
    /* credential and verifier: AUTH_NONE, empty */
}

static void write_all(int fd, const uint8_t *b, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) fail("write");
        b += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, uint8_t *b, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r == 0) { errno = 0; fail("unexpected end of stream"); }
        if (r < 0) fail("read");
        b += r;
        n -= (size_t)r;
    }
}

/* Reads one reply record and checks it accepts xid with SUCCESS. */
static void expect_reply(int fd, uint32_t xid) {
    uint8_t mark[4];
    read_all(fd, mark, 4);
    uint32_t len = get32(mark) & 0x7fffffffu;
    if (len < 24 || len > 4096) { errno = 0; fail("reply record length"); }
    uint8_t body[4096];
    read_all(fd, body, len);
    if (get32(body) != xid || get32(body + 4) != 1 || get32(body + 8) != 0 || get32(body + 20) != 0) {
        errno = 0;
        fail("reply is not an accepted SUCCESS for our xid");
    }
}

/* Reads one line (up to n-1 bytes) into buf. */
static void read_line(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t r = read(fd, buf + got, 1);
        if (r <= 0) fail("read line");
        if (buf[got++] == '\n') break;
    }
    buf[got] = 0;
}

static void forwarding(void) {
    int fd = vconnect(2, 7000);
    if (fd < 0) { errno = -fd; fail("connect to forwarded port 7000"); }
    write_all(fd, (const uint8_t *)"ping\n", 5);
    char line[64];
    read_line(fd, line, sizeof line);
    if (strcmp(line, "pong\n") != 0) { errno = 0; fail("forwarded port answered something else"); }
    close(fd);
    printf("probe: guest to host port 7000 forwarded to BASE_7000\n");

    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a;
    memset(&a, 0, sizeof a);
    a.svm_family = AF_VSOCK;
    a.svm_cid = VMADDR_CID_ANY;
    a.svm_port = 5000;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0) fail("listen on vsock 5000");
    printf("probe: listening on vsock port 5000\n");
    struct timeval tv = { .tv_sec = 30, .tv_usec = 0 };
    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int c = accept(l, NULL, NULL);
    if (c < 0) fail("no host connection on port 5000");
    read_line(c, line, sizeof line);
    write_all(c, (const uint8_t *)line, strlen(line));
    close(c);
    close(l);
    printf("probe: host CONNECT 5000 reached the guest and was echoed\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int dev = open("/dev/vsock", O_RDONLY);
    unsigned cid = 0;
    if (dev < 0 || ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0) fail("local CID");
    printf("probe: local CID %u\n", cid);

    int fd = vconnect(2, 2049);
    if (fd < 0) { errno = -fd; fail("connect to 2:2049"); }
    uint8_t call[44];
    null_call(call, 1);
    write_all(fd, call, sizeof call);
    expect_reply(fd, 1);
    printf("probe: NFS NULL answered\n");

    enum { batch = 100, rounds = 200 };
    static uint8_t calls[batch * 44];
    uint32_t xid = 100;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++) null_call(calls + 44 * i, xid + (uint32_t)i);
        write_all(fd, calls, sizeof calls);
        for (int i = 0; i < batch; i++) expect_reply(fd, xid + (uint32_t)i);
        xid += batch;
    }
    printf("probe: %d pipelined NULL calls answered\n", batch * rounds);
    close(fd);

    int refused = vconnect(2, 22);
    if (refused >= 0) { errno = 0; fail("port 22 was not refused"); }
    printf("probe: port 22 refused (%s)\n", strerror(-refused));

    fd = vconnect(2, 2049);
    if (fd < 0) { errno = -fd; fail("second connect"); }
    close(fd);
    fd = vconnect(2, 2049);
    if (fd < 0) { errno = -fd; fail("third connect"); }
    null_call(call, 7);
    write_all(fd, call, sizeof call);
    expect_reply(fd, 7);
    close(fd);
    if (argc > 1 && strcmp(argv[1], "forward") == 0) forwarding();
    printf("PROBE-OK\n");
    return 0;
}
