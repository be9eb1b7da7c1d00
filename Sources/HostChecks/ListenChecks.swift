#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Transport

/// Whether `serve` could take each listener's address: the kernel is asked
/// by binding (or connecting to) it the way the listener would.
public enum ListenChecks {
    public static func check(_ spec: ListenSpec, vsockSockets: [VsockSocket]?) -> CheckResult {
        let name = "listen \(spec)"
        switch spec {
        case .vsock(let cid, let port):
            guard vsnfs_vsock_available() == 1 else {
                return CheckResult(name, .fail, "no AF_VSOCK in this kernel (see vsock)",
                                   fix: "modprobe vhost_vsock, or " + KernelChecks.userDeviceFix)
            }
            let rc = vsnfs_vsock_bind_probe(cid ?? VsockSocket.anyCID, port)
            switch -rc {
            case 0:
                return CheckResult(name, .ok, "vsock port \(port) is free")
            case EADDRINUSE:
                let holders = (vsockSockets ?? []).filter { $0.localPort == port && $0.state == .listening }
                let who = holders.isEmpty ? "" : " (\(holders.map(\.description).joined(separator: ", ")))"
                return CheckResult(name, .fail, "vsock port \(port) is in use\(who)",
                                   fix: "stop the server holding it, or serve another port: --listen vsock:PORT")
            case EADDRNOTAVAIL:
                return CheckResult(name, .fail, "CID \(cid.map(String.init) ?? "any") is not this machine's",
                                   fix: "bind any CID: --listen vsock:\(port)")
            default:
                return CheckResult(name, .fail, "cannot bind vsock port \(port): \(String(cString: strerror(-rc)))")
            }
        case .tcp(let host, let port):
            let rc = vsnfs_tcp_bind_probe(host, UInt16(port))
            switch -rc {
            case 0:
                return CheckResult(name, .ok, port == 0 ? "\(host) can be bound (port 0: any free port)" : "TCP \(host) port \(port) is free")
            case EADDRINUSE:
                return CheckResult(name, .fail, "TCP \(host) port \(port) is in use"
                                       + (port == 2049 ? " (another NFS server: knfsd or nfs-ganesha?)" : ""),
                                   fix: "stop the server holding it, or serve another port: --listen tcp:\(host):PORT")
            case EADDRNOTAVAIL:
                return CheckResult(name, .fail, "\(host) is not an address of this machine",
                                   fix: "give a local address, e.g. --listen tcp:127.0.0.1:\(port)")
            default:
                return CheckResult(name, .fail, "cannot bind TCP \(host) port \(port): \(String(cString: strerror(-rc)))")
            }
        case .unix(let path):
            return socketPath(name, path)
        case .hybrid(let udsPath, let port, _):
            return socketPath(name, ListenSpec.hybridSocketPath(udsPath: udsPath, port: port))
        case .vhostUser(let path, _, _, let forward):
            let device = socketPath(name, path)
            guard device.verdict == .ok, let forward else { return device }
            let base = socketPath(name, forward)
            return base.verdict == .ok ? CheckResult(name, .ok, device.detail + "; " + base.detail) : base
        }
    }

    /// A Unix socket path the server creates: the listeners replace a socket
    /// file already there, so a live server on it would lose its path.
    static func socketPath(_ name: String, _ path: String) -> CheckResult {
        // sun_path holds 108 bytes with the terminating NUL.
        guard path.utf8.count < 108 else {
            return CheckResult(name, .fail, "\(path) is longer than a Unix socket path may be (107 bytes)",
                               fix: "use a shorter path")
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                return CheckResult(name, .fail, "\(path) exists and is not a socket", fix: "remove it or choose another path")
            }
            if vsnfs_unix_connect_probe(path) == 0 {
                return CheckResult(name, .fail, "a server is listening on \(path); serve would replace its socket",
                                   fix: "stop that server, or choose another path")
            }
            return CheckResult(name, .ok, "\(path) is a stale socket; serve replaces it")
        }
        let parent = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard access(parent, W_OK | X_OK) == 0 else {
            let why = String(cString: strerror(errno))
            return CheckResult(name, .fail, "cannot create \(path): \(parent): \(why)",
                               fix: "create \(parent) writable by uid \(geteuid()), or choose another path")
        }
        return CheckResult(name, .ok, "\(path) can be created")
    }
}
