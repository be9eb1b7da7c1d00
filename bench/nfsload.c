/*
 * nfsload: an NFSv3 load generator on libnfs's raw asynchronous RPC API.
 * The same program drives every server `make bench` compares, so client
 * costs are the same on both sides of a ratio.
 *
 *   nfsload -p NFSPORT -m MOUNTPORT -e EXPORT -t TEST [options]
 *
 * TEST:
 *   randread    BS-byte reads at random BS-aligned offsets of FILE
 *   randwrite   BS-byte UNSTABLE writes at random offsets of FILE
 *   seqread     BS-byte reads walking FILE from 0, wrapping at its size
 *   seqwrite    BS-byte UNSTABLE writes walking FILE, then one COMMIT
 *   smallfile   per file: CREATE, WRITE 4 KiB, COMMIT (close), REMOVE in DIR
 *   getattr     GETATTR and LOOKUP alternately over DIR's f0..f(N-1)
 *   readdirplus full READDIRPLUS listings of DIR, one after another
 *   idle        open CONNS connections, send one NULL each, then sleep SECS
 *
 * Options: -h HOST (127.0.0.1) -f FILE -d DIR (paths relative to the export)
 *   -b BS (4096) -q DEPTH per connection (16) -c CONNS (1) -s SECS (5)
 *   -w WARMUP_SECS (0.5) -n N (files for getattr, 1000) -z FILESIZE (for writes)
 *
 * Prints one line: "test=... ops=N secs=S ops_per_s=X mib_per_s=Y p50_us=.. p99_us=.."
 * (readdirplus: ops are full listings; entries= gives the count per listing).
 * Errors go to stderr and exit 1: a failed request is a failed benchmark.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#define MAXFH 128

struct fh { uint32_t len; char val[MAXFH]; };

static const char *host = "127.0.0.1";
static int nfsport = 2049, mountport = 0;
static const char *export_path = "/", *file_path = NULL, *dir_path = NULL, *test = NULL;
static uint64_t bs = 4096, filesize = 0;
static int depth = 16, conns = 1, nfiles = 1000;
static double secs = 5, warmup = 0.5;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    fprintf(stderr, "nfsload: "); vfprintf(stderr, fmt, ap); fprintf(stderr, "\n");
    va_end(ap); exit(1);
}

static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: cheap, reproducible offsets */
static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) { rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27; return rng * 2685821657736338717ULL; }

/* ---- connections and a blocking wait on them ---- */
struct conn { struct rpc_context *rpc; int inflight; int id; };
static struct conn *C;
static int nconn;

static void service_all(int timeout_ms) {
    struct pollfd pfd[nconn];
    for (int i = 0; i < nconn; i++) {
        pfd[i].fd = rpc_get_fd(C[i].rpc);
        pfd[i].events = rpc_which_events(C[i].rpc);
        pfd[i].revents = 0;
    }
    if (poll(pfd, nconn, timeout_ms) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    for (int i = 0; i < nconn; i++)
        if (rpc_service(C[i].rpc, pfd[i].revents) < 0) die("connection %d: %s", i, rpc_get_error(C[i].rpc));
}

static int done_flag;
static void connect_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; (void)priv;
    if (status != RPC_STATUS_SUCCESS) die("connect: %s", data ? (char *)data : "?");
    done_flag++;
}

static struct rpc_context *connect_to(int port, int prog, int vers) {
    struct rpc_context *rpc = rpc_init_context();
    if (!rpc) die("rpc_init_context");
    rpc_set_uid(rpc, 0); rpc_set_gid(rpc, 0);
    done_flag = 0;
    if (rpc_connect_port_async(rpc, host, port, prog, vers, connect_cb, NULL) != 0)
        die("connect %s:%d: %s", host, port, rpc_get_error(rpc));
    struct conn saved = { rpc, 0, 0 }; struct conn *old = C; int oldn = nconn;
    C = &saved; nconn = 1;
    double t0 = now();
    while (!done_flag) { service_all(100); if (now() - t0 > 10) die("connect %s:%d timed out", host, port); }
    C = old; nconn = oldn;
    return rpc;
}

/* Runs the first connection until *flag is set (setup calls, one at a time). */
static void wait_flag(struct rpc_context *rpc, int *flag) {
    struct conn saved = { rpc, 0, 0 }; struct conn *old = C; int oldn = nconn;
    C = &saved; nconn = 1;
    double t0 = now();
    while (!*flag) { service_all(100); if (now() - t0 > 30) die("setup call timed out"); }
    C = old; nconn = oldn;
}

/* ---- setup: MNT, LOOKUP of a path ---- */
static struct fh rootfh;
static int mnt_done;
static void mnt_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; (void)priv;
    if (status != RPC_STATUS_SUCCESS) die("MNT: %s", data ? (char *)data : "?");
    mountres3 *r = data;
    if (r->fhs_status != MNT3_OK) die("MNT %s: status %d", export_path, r->fhs_status);
    fhandle3 *h = &r->mountres3_u.mountinfo.fhandle;
    if (h->fhandle3_len > MAXFH) die("MNT: handle too long");
    rootfh.len = h->fhandle3_len; memcpy(rootfh.val, h->fhandle3_val, h->fhandle3_len);
    mnt_done = 1;
}

static struct fh lookup_result; static int lookup_done;
static void lookup_setup_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc;
    if (status != RPC_STATUS_SUCCESS) die("LOOKUP %s: %s", (char *)priv, data ? (char *)data : "?");
    LOOKUP3res *r = data;
    if (r->status != NFS3_OK) die("LOOKUP %s: nfsstat3 %d", (char *)priv, r->status);
    lookup_result.len = r->LOOKUP3res_u.resok.object.data.data_len;
    memcpy(lookup_result.val, r->LOOKUP3res_u.resok.object.data.data_val, lookup_result.len);
    lookup_done = 1;
}

static struct fh lookup_path(struct rpc_context *rpc, const char *path) {
    struct fh cur = rootfh;
    char *copy = strdup(path), *save = NULL;
    for (char *name = strtok_r(copy, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
        LOOKUP3args a = {0};
        a.what.dir.data.data_len = cur.len; a.what.dir.data.data_val = cur.val;
        a.what.name = name;
        lookup_done = 0;
        if (rpc_nfs3_lookup_async(rpc, lookup_setup_cb, &a, (void *)path) != 0) die("queue LOOKUP");
        wait_flag(rpc, &lookup_done);
        cur = lookup_result;
    }
    free(copy);
    return cur;
}

/* ---- measurement ---- */
static double t_start, t_measure, t_end;
static int measuring, stopping;
static uint64_t ops, bytes;
static double *lat; static size_t nlat, caplat;
static uint64_t entries_per_listing;

static void record(double issued, uint64_t nbytes) {
    double t = now();
    if (t >= t_measure && issued >= t_measure && t < t_end) {
        ops++; bytes += nbytes;
        if (nlat == caplat) { caplat = caplat ? caplat * 2 : 65536; lat = realloc(lat, caplat * sizeof *lat); }
        lat[nlat++] = t - issued;
    }
}

static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

/* A request slot: one outstanding request chain. */
struct slot {
    struct conn *c; double issued; uint64_t offset; int step; int seq; int idx;
    char name[64]; struct fh fh;
};

static struct fh target, dirfh;
static struct fh *files;  /* getattr: handles of f0..fN-1 */
static char *wbuf;
static uint64_t seq_next;

static void issue(struct slot *s);

static int check(int status, void *data, const char *what) {
    if (status != RPC_STATUS_SUCCESS) die("%s: %s", what, data ? (char *)data : "cancelled");
    return 1;
}

static void finish(struct slot *s, uint64_t nbytes) {
    record(s->issued, nbytes);
    s->c->inflight--;
    if (!stopping) issue(s);
}

static void read_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; struct slot *s = priv; check(status, data, "READ");
    READ3res *r = data;
    if (r->status != NFS3_OK) die("READ: nfsstat3 %d", r->status);
    finish(s, r->READ3res_u.resok.count);
}
static void write_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; struct slot *s = priv; check(status, data, "WRITE");
    WRITE3res *r = data;
    if (r->status != NFS3_OK) die("WRITE: nfsstat3 %d", r->status);
    finish(s, r->WRITE3res_u.resok.count);
}
static void getattr_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; struct slot *s = priv; check(status, data, "GETATTR");
    GETATTR3res *r = data;
    if (r->status != NFS3_OK) die("GETATTR: nfsstat3 %d", r->status);
    finish(s, 0);
}
static void lookup_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; struct slot *s = priv; check(status, data, "LOOKUP");
    LOOKUP3res *r = data;
    if (r->status != NFS3_OK) die("LOOKUP: nfsstat3 %d", r->status);
    finish(s, 0);
}

/* smallfile: a chain of four calls per file */
static void small_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    (void)rpc; struct slot *s = priv;
    check(status, data, "smallfile step");
    switch (s->step) {
    case 0: {
        CREATE3res *r = data;
        if (r->status != NFS3_OK) die("CREATE %s: nfsstat3 %d", s->name, r->status);
        post_op_fh3 *o = &r->CREATE3res_u.resok.obj;
        if (!o->handle_follows) die("CREATE returned no handle");
        s->fh.len = o->post_op_fh3_u.handle.data.data_len;
        memcpy(s->fh.val, o->post_op_fh3_u.handle.data.data_val, s->fh.len);
        break; }
    case 1: { WRITE3res *r = data; if (r->status != NFS3_OK) die("WRITE (small): nfsstat3 %d", r->status); break; }
    case 2: { COMMIT3res *r = data; if (r->status != NFS3_OK) die("COMMIT: nfsstat3 %d", r->status); break; }
    case 3: { REMOVE3res *r = data; if (r->status != NFS3_OK) die("REMOVE: nfsstat3 %d", r->status);
        finish(s, 4096); return; }
    }
    s->step++;
    struct rpc_context *rc = s->c->rpc;
    int rc2 = 0;
    if (s->step == 1) {
        WRITE3args a = {0};
        a.file.data.data_len = s->fh.len; a.file.data.data_val = s->fh.val;
        a.offset = 0; a.count = 4096; a.stable = UNSTABLE;
        a.data.data_len = 4096; a.data.data_val = wbuf;
        rc2 = rpc_nfs3_write_async(rc, small_cb, &a, s);
    } else if (s->step == 2) {
        COMMIT3args a = {0};
        a.file.data.data_len = s->fh.len; a.file.data.data_val = s->fh.val;
        rc2 = rpc_nfs3_commit_async(rc, small_cb, &a, s);
    } else {
        REMOVE3args a = {0};
        a.object.dir.data.data_len = dirfh.len; a.object.dir.data.data_val = dirfh.val;
        a.object.name = s->name;
        rc2 = rpc_nfs3_remove_async(rc, small_cb, &a, s);
    }
    if (rc2 != 0) die("queue smallfile step %d", s->step);
}

/* readdirplus: one slot walks the directory by cookie */
static cookie3 rdp_cookie; static char rdp_verf[NFS3_COOKIEVERFSIZE]; static uint64_t rdp_count;
static void rdp_cb(struct rpc_context *rpc, int status, void *data, void *priv) {
    struct slot *s = priv; check(status, data, "READDIRPLUS");
    READDIRPLUS3res *r = data;
    if (r->status != NFS3_OK) die("READDIRPLUS: nfsstat3 %d", r->status);
    READDIRPLUS3resok *ok = &r->READDIRPLUS3res_u.resok;
    memcpy(rdp_verf, ok->cookieverf, NFS3_COOKIEVERFSIZE);
    for (entryplus3 *e = ok->reply.entries; e; e = e->nextentry) {
        rdp_count++; rdp_cookie = e->cookie;
        if (!e->name_handle.handle_follows || !e->name_attributes.attributes_follow)
            if (strcmp(e->name, ".") && strcmp(e->name, "..")) die("READDIRPLUS entry %s without handle or attributes", e->name);
    }
    if (ok->reply.eof) {
        entries_per_listing = rdp_count;
        finish(s, 0);
        return;
    }
    READDIRPLUS3args a = {0};
    a.dir.data.data_len = dirfh.len; a.dir.data.data_val = dirfh.val;
    a.cookie = rdp_cookie; memcpy(a.cookieverf, rdp_verf, NFS3_COOKIEVERFSIZE);
    a.dircount = 8192; a.maxcount = 65536;
    if (rpc_nfs3_readdirplus_async(rpc, rdp_cb, &a, s) != 0) die("queue READDIRPLUS");
}

static int commit_done;
static void commit_cb(struct rpc_context *r, int st, void *d, void *p) {
    (void)r; (void)p; check(st, d, "COMMIT");
    if (((COMMIT3res *)d)->status != NFS3_OK) die("COMMIT: nfsstat3 %d", ((COMMIT3res *)d)->status);
    commit_done = 1;
}

static int ga_counter;
static void issue(struct slot *s) {
    struct rpc_context *rpc = s->c->rpc;
    s->issued = now();
    s->c->inflight++;
    int rc = 0;
    if (!strcmp(test, "randread") || !strcmp(test, "seqread")) {
        READ3args a = {0};
        a.file.data.data_len = target.len; a.file.data.data_val = target.val;
        if (test[0] == 'r') a.offset = (rnd() % (filesize / bs)) * bs;
        else { a.offset = seq_next; seq_next += bs; if (seq_next + bs > filesize) seq_next = 0; }
        a.count = bs;
        rc = rpc_nfs3_read_async(rpc, read_cb, &a, s);
    } else if (!strcmp(test, "randwrite") || !strcmp(test, "seqwrite")) {
        WRITE3args a = {0};
        a.file.data.data_len = target.len; a.file.data.data_val = target.val;
        if (test[0] == 'r') a.offset = (rnd() % (filesize / bs)) * bs;
        else { a.offset = seq_next; seq_next += bs; if (seq_next + bs > filesize) seq_next = 0; }
        a.count = bs; a.stable = UNSTABLE;
        a.data.data_len = bs; a.data.data_val = wbuf;
        rc = rpc_nfs3_write_async(rpc, write_cb, &a, s);
    } else if (!strcmp(test, "smallfile")) {
        s->step = 0;
        snprintf(s->name, sizeof s->name, "s%d-%d-%d", getpid(), s->idx, s->seq++);
        CREATE3args a = {0};
        a.where.dir.data.data_len = dirfh.len; a.where.dir.data.data_val = dirfh.val;
        a.where.name = s->name;
        a.how.mode = UNCHECKED;
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
        rc = rpc_nfs3_create_async(rpc, small_cb, &a, s);
    } else if (!strcmp(test, "getattr")) {
        int i = ga_counter++;
        int f = (int)(rnd() % nfiles);
        if (i & 1) {
            GETATTR3args a = {0};
            a.object.data.data_len = files[f].len; a.object.data.data_val = files[f].val;
            rc = rpc_nfs3_getattr_async(rpc, getattr_cb, &a, s);
        } else {
            LOOKUP3args a = {0};
            snprintf(s->name, sizeof s->name, "f%d", f);
            a.what.dir.data.data_len = dirfh.len; a.what.dir.data.data_val = dirfh.val;
            a.what.name = s->name;
            rc = rpc_nfs3_lookup_async(rpc, lookup_cb, &a, s);
        }
    } else if (!strcmp(test, "readdirplus")) {
        rdp_cookie = 0; memset(rdp_verf, 0, sizeof rdp_verf); rdp_count = 0;
        READDIRPLUS3args a = {0};
        a.dir.data.data_len = dirfh.len; a.dir.data.data_val = dirfh.val;
        a.dircount = 8192; a.maxcount = 65536;
        rc = rpc_nfs3_readdirplus_async(rpc, rdp_cb, &a, s);
    } else die("unknown test %s", test);
    if (rc != 0) die("queue request: %s", rpc_get_error(rpc));
}

/* idle: raw TCP connections with one NULL call each (no libnfs: it binds reserved ports) */
static void idle_test(void) {
    int *fds = calloc(conns, sizeof(int));
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket %d: %s", i, strerror(errno));
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(nfsport) };
        inet_pton(AF_INET, host, &sa.sin_addr);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect %d: %s", i, strerror(errno));
        uint32_t call[11] = { htonl(0x80000000u | 40), htonl(i + 1), 0, htonl(2), htonl(100003), htonl(3), 0, 0, 0, 0, 0 };
        if (write(fd, call, 44) != 44) die("write NULL %d", i);
        char reply[64];
        if (read(fd, reply, sizeof reply) < 28) die("NULL reply %d", i);
        fds[i] = fd;
    }
    printf("test=idle conns=%d\n", conns);
    fflush(stdout);
    double t0 = now();
    while (now() - t0 < secs) usleep(100000);
    for (int i = 0; i < conns; i++) close(fds[i]);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "h:p:m:e:t:f:d:b:q:c:s:w:n:z:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': nfsport = atoi(optarg); break;
        case 'm': mountport = atoi(optarg); break;
        case 'e': export_path = optarg; break;
        case 't': test = optarg; break;
        case 'f': file_path = optarg; break;
        case 'd': dir_path = optarg; break;
        case 'b': bs = strtoull(optarg, NULL, 0); break;
        case 'q': depth = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 's': secs = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'n': nfiles = atoi(optarg); break;
        case 'z': filesize = strtoull(optarg, NULL, 0); break;
        default: die("usage: see the comment at the top of nfsload.c");
        }
    }
    if (!test) die("-t TEST is required");
    if (!mountport) mountport = nfsport;
    if (!strcmp(test, "idle")) { idle_test(); return 0; }

    struct rpc_context *m = connect_to(mountport, MOUNT_PROGRAM, MOUNT_V3);
    if (rpc_mount3_mnt_async(m, mnt_cb, (char *)export_path, NULL) != 0) die("queue MNT");
    wait_flag(m, &mnt_done);
    rpc_destroy_context(m);

    nconn = conns;
    C = calloc(nconn, sizeof *C);
    for (int i = 0; i < nconn; i++) { C[i].rpc = connect_to(nfsport, NFS_PROGRAM, NFS_V3); C[i].id = i; }

    wbuf = malloc(bs > 4096 ? bs : 4096);
    for (uint64_t i = 0; i < (bs > 4096 ? bs : 4096); i++) wbuf[i] = (char)(i * 7 + 1);
    if (file_path) {
        target = lookup_path(C[0].rpc, file_path);
        if (!filesize) {
            /* the file's size from GETATTR via a LOOKUP's attributes is not kept; ask for -z or use 256 MiB */
            filesize = 256ull << 20;
        }
    }
    if (dir_path) dirfh = lookup_path(C[0].rpc, dir_path);
    if (!strcmp(test, "getattr")) {
        files = calloc(nfiles, sizeof *files);
        for (int i = 0; i < nfiles; i++) {
            char p[512]; snprintf(p, sizeof p, "%s/f%d", dir_path, i);
            files[i] = lookup_path(C[0].rpc, p);
        }
    }
    if (!strcmp(test, "readdirplus")) depth = 1;  /* a listing is a chain by cookie */

    int nslots = nconn * depth;
    struct slot *slots = calloc(nslots, sizeof *slots);
    t_start = now(); t_measure = t_start + warmup; t_end = t_measure + secs;
    measuring = 1;
    for (int i = 0; i < nslots; i++) { slots[i].c = &C[i % nconn]; slots[i].idx = i; issue(&slots[i]); }
    while (now() < t_end) service_all(100);
    stopping = 1;
    /* drain what is in flight */
    double drain = now();
    for (;;) {
        int left = 0;
        for (int i = 0; i < nconn; i++) left += C[i].inflight;
        if (!left) break;
        if (now() - drain > 30) die("requests did not complete within 30 s of the end");
        service_all(100);
    }
    double elapsed = secs;
    if (!strcmp(test, "seqwrite")) {
        /* the data written must reach stable storage: one COMMIT, timed in */
        double t0 = now();
        COMMIT3args a = {0};
        a.file.data.data_len = target.len; a.file.data.data_val = target.val;
        commit_done = 0;
        if (rpc_nfs3_commit_async(C[0].rpc, commit_cb, &a, NULL) != 0) die("queue COMMIT");
        wait_flag(C[0].rpc, &commit_done);
        elapsed += now() - t0;
    }
    qsort(lat, nlat, sizeof *lat, cmpd);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)(nlat * 0.99)] : 0;
    printf("test=%s ops=%" PRIu64 " secs=%.3f ops_per_s=%.1f mib_per_s=%.2f p50_us=%.1f p99_us=%.1f entries=%" PRIu64 "\n",
           test, ops, elapsed, ops / elapsed, bytes / elapsed / 1048576.0, p50 * 1e6, p99 * 1e6, entries_per_listing);
    for (int i = 0; i < nconn; i++) rpc_destroy_context(C[i].rpc);
    return ops ? 0 : 1;
}
