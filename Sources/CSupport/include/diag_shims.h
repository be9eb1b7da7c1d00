#ifndef VSNFS_DIAG_SHIMS_H
#define VSNFS_DIAG_SHIMS_H
// Host diagnostics (`vsnfs doctor`, `vsnfs status`) through two libraries that
// are loaded at run time with dlopen, so vsnfs builds and serves on a machine
// that has neither: libnl-3 (libnl-3.so.200, Debian libnl-3-200) for the
// kernel's socket diagnostics (NETLINK_SOCK_DIAG), and libtirpc
// (libtirpc.so.3, Debian libtirpc3) for rpcbind queries. Serving never uses
// them. Every function returns 0 on success, VSNFS_DIAG_NO_LIBRARY when the
// library cannot be loaded, VSNFS_DIAG_FAILED otherwise; on failure `error`
// holds one line saying why.
#include <stddef.h>
#include <stdint.h>

#define VSNFS_DIAG_NO_LIBRARY (-2)
#define VSNFS_DIAG_FAILED (-1)
/// libtirpc cannot run in a sanitized build: the sanitizers intercept the
/// XDR functions glibc once had (xdrrec_create, xdr_u_int, ...), libtirpc's
/// calls land in those interceptors, and the interceptors call glibc's
/// versions, which glibc 2.32 and later no longer export: a NULL call.
#define VSNFS_DIAG_SANITIZED (-3)

/// 1 when this code is built with the address or thread sanitizer.
int vsnfs_diag_sanitized(void);

/// Sends `request` (a sock_diag request: the bytes after the netlink header)
/// as one SOCK_DIAG_BY_FAMILY dump on a NETLINK_SOCK_DIAG socket through
/// libnl-3, and reads every reply datagram up to NLMSG_DONE or NLMSG_ERROR.
/// On success *out (malloc'd; the caller frees it) holds the reply messages
/// as received, netlink headers included, and *out_len their length. A
/// kernel error (ENOENT: no diag module for the family) is an NLMSG_ERROR
/// message in the bytes, not a failure here.
int vsnfs_sock_diag_dump(const void *request, size_t request_len, uint8_t **out, size_t *out_len,
                         char *error, size_t error_len);

/// One rpcbind mapping (RFC 1833 rpcb), strings truncated to their fields.
typedef struct {
    uint32_t program;
    uint32_t version;
    char netid[32];
    char address[128];
    char owner[64];
} vsnfs_rpcb_mapping;

/// Every mapping rpcbind on `host` holds (libtirpc's rpcb_getmaps over the
/// "tcp" netconfig). On success *out (malloc'd; the caller frees it) holds
/// *count mappings. VSNFS_DIAG_SANITIZED in a sanitized build.
int vsnfs_rpcb_mappings(const char *host, vsnfs_rpcb_mapping **out, size_t *count, char *error, size_t error_len);
#endif

// Probes that ask the kernel whether `vsnfs serve` could take an address:
// each binds (or connects) a socket as the server would and closes it at once.
// They return 0 when the address is free (or, for the Unix probe, when a
// server answers), else -errno.

/// Binds an AF_VSOCK stream socket to cid:port (VMADDR_CID_ANY for any).
/// -EADDRINUSE: a socket holds the port; -EADDRNOTAVAIL: cid is not local.
int vsnfs_vsock_bind_probe(uint32_t cid, uint32_t port);
/// Binds a TCP socket with SO_REUSEADDR (as the server's listeners do) to
/// host:port, host a numeric address or a name.
int vsnfs_tcp_bind_probe(const char *host, uint16_t port);
/// Connects to the Unix stream socket at path: 0 means a server listens there.
int vsnfs_unix_connect_probe(const char *path);
