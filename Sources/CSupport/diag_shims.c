#define _GNU_SOURCE
#include "diag_shims.h"
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <linux/sock_diag.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

// The few entry points used, declared here rather than from libnl-3-dev and
// libtirpc-dev headers: the product builds without the -dev packages and the
// libraries are optional at run time. The signatures are the libraries' stable ABI
// (libnl-3.so.200, libtirpc.so.3).
struct nl_sock;
struct libnl {
    struct nl_sock *(*socket_alloc)(void);
    void (*socket_free)(struct nl_sock *);
    int (*connect)(struct nl_sock *, int);
    void (*disable_auto_ack)(struct nl_sock *);
    int (*get_fd)(const struct nl_sock *);
    int (*send_simple)(struct nl_sock *, int, int, void *, size_t);
    int (*recv)(struct nl_sock *, struct sockaddr_nl *, unsigned char **, void **);
    const char *(*geterror)(int);
};

struct netconfig;
struct tirpc_rpcb {
    uint32_t r_prog;
    uint32_t r_vers;
    char *r_netid;
    char *r_addr;
    char *r_owner;
};
struct tirpc_rpcblist {
    struct tirpc_rpcb rpcb_map;
    struct tirpc_rpcblist *rpcb_next;
};
typedef int (*tirpc_xdrproc)(void *, void *);
struct libtirpc {
    struct netconfig *(*getnetconfigent)(const char *);
    void (*freenetconfigent)(struct netconfig *);
    struct tirpc_rpcblist *(*rpcb_getmaps)(const struct netconfig *, const char *);
    char *(*clnt_spcreateerror)(const char *);
    int *(*rpc_createerr)(void); // struct rpc_createerr *, whose first member is enum clnt_stat
    void (*xdr_free)(tirpc_xdrproc, void *);
    tirpc_xdrproc xdr_rpcblist_ptr;
};

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VSNFS_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VSNFS_SANITIZED 1
#endif

int vsnfs_diag_sanitized(void) {
#ifdef VSNFS_SANITIZED
    return 1;
#else
    return 0;
#endif
}

static void set_error(char *error, size_t error_len, const char *format, const char *detail) {
    if (error && error_len) snprintf(error, error_len, format, detail ? detail : "");
}

// Each library is loaded once per process and kept (dlclose would only save a
// mapping). pthread_once makes concurrent first calls safe.
static struct libnl libnl;
static int libnl_loaded;
static char libnl_error[256];
static pthread_once_t libnl_once = PTHREAD_ONCE_INIT;

static void load_libnl(void) {
    void *h = dlopen("libnl-3.so.200", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(libnl_error, sizeof libnl_error, "%s", dlerror());
        return;
    }
    libnl.socket_alloc = (struct nl_sock *(*)(void))dlsym(h, "nl_socket_alloc");
    libnl.socket_free = (void (*)(struct nl_sock *))dlsym(h, "nl_socket_free");
    libnl.connect = (int (*)(struct nl_sock *, int))dlsym(h, "nl_connect");
    libnl.disable_auto_ack = (void (*)(struct nl_sock *))dlsym(h, "nl_socket_disable_auto_ack");
    libnl.get_fd = (int (*)(const struct nl_sock *))dlsym(h, "nl_socket_get_fd");
    libnl.send_simple = (int (*)(struct nl_sock *, int, int, void *, size_t))dlsym(h, "nl_send_simple");
    libnl.recv = (int (*)(struct nl_sock *, struct sockaddr_nl *, unsigned char **, void **))dlsym(h, "nl_recv");
    libnl.geterror = (const char *(*)(int))dlsym(h, "nl_geterror");
    if (!libnl.socket_alloc || !libnl.socket_free || !libnl.connect || !libnl.disable_auto_ack || !libnl.get_fd
        || !libnl.send_simple || !libnl.recv || !libnl.geterror) {
        snprintf(libnl_error, sizeof libnl_error, "libnl-3.so.200 lacks a function vsnfs needs");
        return;
    }
    libnl_loaded = 1;
}

/// 1 once the reply holds NLMSG_DONE or NLMSG_ERROR (the end of a dump).
static int dump_complete(const uint8_t *buf, size_t len) {
    const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
    int remaining = (int)len;
    for (; NLMSG_OK(h, remaining); h = NLMSG_NEXT(h, remaining)) {
        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) return 1;
    }
    return 0;
}

int vsnfs_sock_diag_dump(const void *request, size_t request_len, uint8_t **out, size_t *out_len,
                         char *error, size_t error_len) {
    pthread_once(&libnl_once, load_libnl);
    if (!libnl_loaded) {
        set_error(error, error_len, "%s", libnl_error);
        return VSNFS_DIAG_NO_LIBRARY;
    }
    struct nl_sock *sock = libnl.socket_alloc();
    if (!sock) {
        set_error(error, error_len, "%s", "nl_socket_alloc failed");
        return VSNFS_DIAG_FAILED;
    }
    int rc = libnl.connect(sock, NETLINK_SOCK_DIAG);
    if (rc < 0) {
        set_error(error, error_len, "netlink socket: %s", libnl.geterror(rc));
        libnl.socket_free(sock);
        return VSNFS_DIAG_FAILED;
    }
    libnl.disable_auto_ack(sock);
    // A dump is answered at once; the timeout only keeps a wedged kernel from hanging doctor.
    struct timeval timeout = {.tv_sec = 5, .tv_usec = 0};
    setsockopt(libnl.get_fd(sock), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    rc = libnl.send_simple(sock, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, (void *)request, request_len);
    if (rc < 0) {
        set_error(error, error_len, "netlink send: %s", libnl.geterror(rc));
        libnl.socket_free(sock);
        return VSNFS_DIAG_FAILED;
    }
    uint8_t *all = NULL;
    size_t all_len = 0;
    for (;;) {
        struct sockaddr_nl peer;
        unsigned char *datagram = NULL;
        int n = libnl.recv(sock, &peer, &datagram, NULL);
        if (n <= 0) {
            free(datagram);
            free(all);
            set_error(error, error_len, "netlink receive: %s", n < 0 ? libnl.geterror(n) : "connection closed");
            libnl.socket_free(sock);
            return VSNFS_DIAG_FAILED;
        }
        uint8_t *grown = realloc(all, all_len + (size_t)n);
        if (!grown) {
            free(datagram);
            free(all);
            set_error(error, error_len, "%s", "out of memory");
            libnl.socket_free(sock);
            return VSNFS_DIAG_FAILED;
        }
        all = grown;
        memcpy(all + all_len, datagram, (size_t)n);
        all_len += (size_t)n;
        int done = dump_complete(datagram, (size_t)n);
        free(datagram);
        if (done) break;
    }
    libnl.socket_free(sock);
    *out = all;
    *out_len = all_len;
    return 0;
}

static struct libtirpc libtirpc;
static int libtirpc_loaded;
static char libtirpc_error[256];
static pthread_once_t libtirpc_once = PTHREAD_ONCE_INIT;

static void load_libtirpc(void) {
    void *h = dlopen("libtirpc.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(libtirpc_error, sizeof libtirpc_error, "%s", dlerror());
        return;
    }
    libtirpc.getnetconfigent = (struct netconfig *(*)(const char *))dlsym(h, "getnetconfigent");
    libtirpc.freenetconfigent = (void (*)(struct netconfig *))dlsym(h, "freenetconfigent");
    libtirpc.rpcb_getmaps = (struct tirpc_rpcblist *(*)(const struct netconfig *, const char *))dlsym(h, "rpcb_getmaps");
    libtirpc.clnt_spcreateerror = (char *(*)(const char *))dlsym(h, "clnt_spcreateerror");
    libtirpc.rpc_createerr = (int *(*)(void))dlsym(h, "__rpc_createerr");
    libtirpc.xdr_free = (void (*)(tirpc_xdrproc, void *))dlsym(h, "xdr_free");
    libtirpc.xdr_rpcblist_ptr = (tirpc_xdrproc)dlsym(h, "xdr_rpcblist_ptr");
    if (!libtirpc.getnetconfigent || !libtirpc.freenetconfigent || !libtirpc.rpcb_getmaps
        || !libtirpc.clnt_spcreateerror || !libtirpc.rpc_createerr || !libtirpc.xdr_free || !libtirpc.xdr_rpcblist_ptr) {
        snprintf(libtirpc_error, sizeof libtirpc_error, "libtirpc.so.3 lacks a function vsnfs needs");
        return;
    }
    libtirpc_loaded = 1;
}

static void copy_field(char *field, size_t size, const char *value) {
    snprintf(field, size, "%s", value ? value : "");
}

int vsnfs_rpcb_mappings(const char *host, vsnfs_rpcb_mapping **out, size_t *count, char *error, size_t error_len) {
    if (vsnfs_diag_sanitized()) {
        set_error(error, error_len, "%s", "libtirpc cannot run in a sanitizer build (its XDR calls land in the sanitizer's interceptors)");
        return VSNFS_DIAG_SANITIZED;
    }
    pthread_once(&libtirpc_once, load_libtirpc);
    if (!libtirpc_loaded) {
        set_error(error, error_len, "%s", libtirpc_error);
        return VSNFS_DIAG_NO_LIBRARY;
    }
    struct netconfig *tcp = libtirpc.getnetconfigent("tcp");
    if (!tcp) {
        set_error(error, error_len, "%s", "no \"tcp\" entry in /etc/netconfig (Debian package libtirpc-common)");
        return VSNFS_DIAG_FAILED;
    }
    // rpcb_getmaps returns NULL both for an empty list and for a failed call;
    // rpc_createerr (this thread's, cleared first) tells them apart.
    *libtirpc.rpc_createerr() = 0; // RPC_SUCCESS
    struct tirpc_rpcblist *list = libtirpc.rpcb_getmaps(tcp, host);
    libtirpc.freenetconfigent(tcp);
    if (!list && *libtirpc.rpc_createerr() != 0) {
        const char *text = libtirpc.clnt_spcreateerror("");
        if (!text) text = "";
        while (*text == ':' || *text == ' ') text++;
        set_error(error, error_len, "%s", text);
        // clnt_spcreateerror's text ends with a newline.
        if (error && error_len) error[strcspn(error, "\n")] = 0;
        return VSNFS_DIAG_FAILED;
    }
    size_t n = 0;
    for (struct tirpc_rpcblist *p = list; p; p = p->rpcb_next) n++;
    vsnfs_rpcb_mapping *mappings = calloc(n ? n : 1, sizeof *mappings);
    if (!mappings) {
        libtirpc.xdr_free(libtirpc.xdr_rpcblist_ptr, &list);
        set_error(error, error_len, "%s", "out of memory");
        return VSNFS_DIAG_FAILED;
    }
    size_t i = 0;
    for (struct tirpc_rpcblist *p = list; p; p = p->rpcb_next, i++) {
        mappings[i].program = p->rpcb_map.r_prog;
        mappings[i].version = p->rpcb_map.r_vers;
        copy_field(mappings[i].netid, sizeof mappings[i].netid, p->rpcb_map.r_netid);
        copy_field(mappings[i].address, sizeof mappings[i].address, p->rpcb_map.r_addr);
        copy_field(mappings[i].owner, sizeof mappings[i].owner, p->rpcb_map.r_owner);
    }
    if (list) libtirpc.xdr_free(libtirpc.xdr_rpcblist_ptr, &list);
    *out = mappings;
    *count = n;
    return 0;
}

int vsnfs_vsock_bind_probe(uint32_t cid, uint32_t port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_vm address;
    memset(&address, 0, sizeof address);
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = port;
    int rc = bind(fd, (struct sockaddr *)&address, sizeof address) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int vsnfs_tcp_bind_probe(const char *host, uint16_t port) {
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &found) != 0 || !found) return -EADDRNOTAVAIL;
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(found);
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, found->ai_addr, found->ai_addrlen) == 0 ? 0 : -errno;
    close(fd);
    freeaddrinfo(found);
    return rc;
}

int vsnfs_unix_connect_probe(const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) return -ENAMETOOLONG;
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = connect(fd, (struct sockaddr *)&address, sizeof address) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}
