#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Transport

/// The kernel's vsock: AF_VSOCK itself, /dev/vhost-vsock for QEMU's
/// vhost-vsock-pci, and the socket diagnostics that list vsock ports.
public enum KernelChecks {
    static let userDeviceFix = "--listen vhost-user:PATH:cid=N makes vsnfs the guest's vsock device (QEMU's vhost-user-vsock-pci; no module or privileges needed)"

    /// The vsock transports the kernel has loaded, by module name.
    static func vsockTransports(sysModule: String) -> [String] {
        ["vhost_vsock", "vsock_loopback", "vmw_vsock_virtio_transport", "vmw_vsock_vmci_transport", "hv_sock"]
            .filter { access("\(sysModule)/\($0)", F_OK) == 0 }
    }

    public static func vsock(listen: [ListenSpec], sysModule: String = "/sys/module") -> CheckResult {
        let wanted = listen.contains { if case .vsock = $0 { return true } else { return false } }
        guard vsnfs_vsock_available() == 1 else {
            let detail = "this kernel has no AF_VSOCK (the vsock module is not loaded)"
            return wanted
                ? CheckResult("vsock", .fail, detail + ": a vsock: listener cannot be bound",
                              fix: "modprobe vhost_vsock (as root) for QEMU's vhost-vsock-pci, or " + userDeviceFix)
                : CheckResult("vsock", .ok, detail + "; the listeners given do not need it")
        }
        let transports = vsockTransports(sysModule: sysModule)
        var detail = "AF_VSOCK available"
        let cid = vsnfs_vsock_local_cid()
        if cid >= 0 { detail += ", this machine's CID is \(cid)" }
        detail += transports.isEmpty ? "" : " (transports: \(transports.joined(separator: ", ")))"
        if transports == ["vmw_vsock_virtio_transport"] {
            // The guest driver only: a vsock: listener serves this machine's own hypervisor.
            detail += "; this machine is itself a guest: a vsock: listener serves its hypervisor's host, not VMs started here"
        }
        return CheckResult("vsock", .ok, detail)
    }

    public static func vhostVsock(device: String, userDevicePossible: Bool) -> CheckResult {
        let fd = open(device, O_RDWR | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return CheckResult("vhost-vsock", .ok,
                               "\(device) usable: QEMU guests with -device vhost-vsock-pci,guest-cid=N reach a vsock: listener")
        }
        let why = errno
        let detail: String
        let fix: String
        switch why {
        case ENOENT:
            detail = "no \(device): the vhost_vsock module is not loaded, so QEMU's vhost-vsock-pci cannot give guests vsock"
            fix = "modprobe vhost_vsock (as root), or " + KernelChecks.userDeviceFix
        case EACCES, EPERM:
            detail = "\(device) is not usable by uid \(geteuid()) (permission denied), so QEMU run as this user cannot use vhost-vsock-pci"
            fix = "run QEMU as a user who may open \(device), or " + KernelChecks.userDeviceFix
        default:
            detail = "cannot open \(device): \(String(cString: strerror(why)))"
            fix = KernelChecks.userDeviceFix
        }
        // Sharing needs one of the two ways into a QEMU guest.
        return CheckResult("vhost-vsock", userDevicePossible ? .warn : .fail,
                           detail + (userDevicePossible ? " (the user device works here, see qemu)" : " and QEMU's vhost-user-vsock-pci is not available either"),
                           fix: fix)
    }

    public static func vsockDiag(_ sockets: Result<[VsockSocket], any Error>) -> CheckResult {
        switch sockets {
        case .success(let sockets):
            let listening = sockets.filter { $0.state == .listening }.map { "\($0.localPort)" }
            let connected = sockets.filter { $0.state == .established }.count
            return CheckResult("vsock-sockets", .ok,
                               "vsock_diag lists \(sockets.count) socket(s); ports listening: "
                                   + (listening.isEmpty ? "none" : listening.joined(separator: ", "))
                                   + "; sockets connected: \(connected)")
        case .failure(SocketDiagnosticsError.libnlMissing(let why)):
            return CheckResult("vsock-sockets", .warn, "libnl-3 not installed (\(why)): vsock sockets cannot be listed",
                               fix: "apt-get install libnl-3-200")
        case .failure(SocketDiagnosticsError.vsockDiagUnavailable):
            guard vsnfs_vsock_available() == 1 else {
                return CheckResult("vsock-sockets", .ok, "no AF_VSOCK, so no vsock sockets to list")
            }
            return CheckResult("vsock-sockets", .warn,
                               "the kernel has no vsock socket diagnostics (vsock_diag not loaded): who holds a vsock port cannot be listed (the port checks below still find a port in use)",
                               fix: "modprobe vsock_diag (as root)")
        case .failure(let error):
            return CheckResult("vsock-sockets", .warn, "\(error)")
        }
    }
}
