import Server
import Transport

/// What `vsnfs doctor` checks: the same inputs `vsnfs serve` takes, and where
/// to look on the host (overridable so tests can point the checks at fixtures).
public struct DoctorConfiguration: Sendable {
    /// The listeners `serve` would bind.
    public var listen: [ListenSpec]
    /// The exports file `serve --exports` would load (nil: none given).
    public var exportsFile: String?
    /// The state directory `serve` would use (nil: serve's default).
    public var stateDirectory: String?
    /// The QEMU that `vhost-user-vsock-pci` guests would run (a name is looked up in PATH).
    public var qemu: String
    public var vhostVsockDevice: String
    /// Where the kernel lists loaded modules (and built-in ones with parameters).
    public var sysModule: String
    public var rpcbindHost: String

    public init(listen: [ListenSpec] = [ListenSpec.defaultSpec], exportsFile: String? = nil,
                stateDirectory: String? = nil, qemu: String = "qemu-system-x86_64",
                vhostVsockDevice: String = "/dev/vhost-vsock", sysModule: String = "/sys/module",
                rpcbindHost: String = "127.0.0.1") {
        self.listen = listen
        self.exportsFile = exportsFile
        self.stateDirectory = stateDirectory
        self.qemu = qemu
        self.vhostVsockDevice = vhostVsockDevice
        self.sysModule = sysModule
        self.rpcbindHost = rpcbindHost
    }
}

public enum Doctor {
    /// Runs every check, in the order a person fixes things: how guests reach
    /// the host, the listeners, other NFS servers, then files.
    public static func run(_ configuration: DoctorConfiguration) -> [CheckResult] {
        let qemu = QEMUCheck.inspect(configuration.qemu)
        let vsockSockets = Result { try listVsockSockets() }
        var results: [CheckResult] = []
        results.append(KernelChecks.vsock(listen: configuration.listen, sysModule: configuration.sysModule))
        let vhostVsock = KernelChecks.vhostVsock(device: configuration.vhostVsockDevice,
                                                 userDevicePossible: qemu.hasVhostUserVsock)
        results.append(vhostVsock)
        results.append(qemu.result(userDeviceNeeded: vhostVsock.verdict != .ok))
        results.append(KernelChecks.vsockDiag(vsockSockets))
        for spec in configuration.listen {
            results.append(ListenChecks.check(spec, vsockSockets: try? vsockSockets.get()))
        }
        let mappings = Result { try listRPCBindMappings(host: configuration.rpcbindHost) }
        results.append(ServiceChecks.rpcbind(mappings))
        results.append(ServiceChecks.nfsPort())
        results.append(FileChecks.exports(file: configuration.exportsFile))
        results.append(FileChecks.stateDirectory(configuration.stateDirectory))
        return results
    }
}
