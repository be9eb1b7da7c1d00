#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Transport

/// Other NFS servers on this host: what rpcbind has registered, and who
/// holds TCP port 2049.
public enum ServiceChecks {
    static let nfsProgram: UInt32 = 100_003
    static let mountProgram: UInt32 = 100_005

    public static func rpcbind(_ mappings: Result<[RPCBindMapping], any Error>) -> CheckResult {
        switch mappings {
        case .success(let mappings):
            let nfs = mappings.filter { $0.program == nfsProgram || $0.program == mountProgram }
            guard !nfs.isEmpty else {
                return CheckResult("rpcbind", .ok, "rpcbind answers with \(mappings.count) registration(s), none for NFS (100003) or MOUNT (100005)")
            }
            return CheckResult("rpcbind", .warn,
                               "another NFS server is registered with rpcbind: " + describe(nfs),
                               fix: "if it is knfsd or nfs-ganesha, stop it (systemctl stop nfs-server / nfs-ganesha); serve --rpcbind replaces its registrations, and vsock listeners are not affected")
        case .failure(RPCBindQueryError.libtirpcMissing(let why)):
            return CheckResult("rpcbind", .warn, "libtirpc not installed (\(why)): rpcbind registrations cannot be listed",
                               fix: "apt-get install libtirpc3")
        case .failure(RPCBindQueryError.sanitizerBuild):
            return CheckResult("rpcbind", .warn, "\(RPCBindQueryError.sanitizerBuild)", fix: "run a build without sanitizers")
        case .failure(RPCBindQueryError.failed(let why)) where why.contains("Connection refused") || why.contains("No such file"):
            return CheckResult("rpcbind", .ok, "rpcbind is not running (\(why)); serve needs it only for --rpcbind")
        case .failure(let error):
            return CheckResult("rpcbind", .warn, "\(error)", fix: "check that rpcbind runs (rpcinfo -p), or ignore this unless you use serve --rpcbind")
        }
    }

    /// Mappings grouped as `NFS v3,4 on tcp port 2049 (owner superuser)`.
    static func describe(_ mappings: [RPCBindMapping]) -> String {
        var groups: [(name: String, place: String, versions: [UInt32])] = []
        for m in mappings {
            let name = m.program == nfsProgram ? "NFS" : "MOUNT"
            let place = "on \(m.netid) " + (m.port.map { "port \($0)" } ?? m.address) + " (owner \(m.owner))"
            if let i = groups.firstIndex(where: { $0.name == name && $0.place == place }) {
                groups[i].versions.append(m.version)
            } else {
                groups.append((name, place, [m.version]))
            }
        }
        return groups.map { g in
            "\(g.name) v" + g.versions.sorted().map(String.init).joined(separator: ",") + " " + g.place
        }.joined(separator: "; ")
    }

    /// TCP port 2049 taken by someone else means another NFS server (knfsd or
    /// nfs-ganesha) is probably running; vsock listeners are not affected, so
    /// it is a warning (a tcp: listener on that port fails its own check).
    public static func nfsPort() -> CheckResult {
        let rc = vsnfs_tcp_bind_probe("0.0.0.0", 2049)
        if rc == 0 { return CheckResult("nfs-port", .ok, "TCP port 2049 is free: no other NFS server listens on it") }
        let why = -rc == EADDRINUSE ? "in use" : String(cString: strerror(-rc))
        return CheckResult("nfs-port", .warn,
                           "TCP port 2049 is \(why): another NFS server (knfsd or nfs-ganesha) probably runs here",
                           fix: "stop it if it is not meant to run (systemctl stop nfs-server / nfs-ganesha); vsock and vhost-user listeners are not affected")
    }
}
