#if canImport(Glibc)
import Glibc
#endif
import GuestMounts

/// `vsnfs-mount --auto`: mounts the requests the host left in fw_cfg and on
/// the kernel command line (the format is GuestMount's). Every request is
/// tried; each failure is one line; the exit status is 0 only if every
/// request is mounted (or there is none).
struct AutoMount {
    let command: MountCommand
    /// How long a request whose server or vsock device is not up yet is retried.
    static let bootWaitSeconds = 20.0

    func say(_ s: String) { command.say(s) }

    func run() -> Int32 {
        let name = MountCommand.invokedName
        let (mounts, errors) = GuestMount.requests(fwCfg: readFile(GuestMount.fwCfgPath),
                                                   kernelCommandLine: readFile("/proc/cmdline") ?? "")
        errors.forEach { printToStandardError("\(name): \($0)") }
        if mounts.isEmpty && errors.isEmpty {
            say("no mount requests (no fw_cfg \(GuestMount.fwCfgName), no \(GuestMount.kernelParameter)= on the kernel command line)")
        }
        var failed = errors.count
        for (m, origin) in mounts {
            say("\(m.cid):\(m.exportPath) on \(m.mountPoint), from \(origin.rawValue)")
            if isMountPoint(m.mountPoint) {
                say("\(m.mountPoint) is already mounted; leaving it")
                continue
            }
            do {
                try makeDirectories(m.mountPoint)
                try mountWaitingForServer(m)
                printToStandardError("\(name): mounted \(m.cid):\(m.exportPath) on \(m.mountPoint)")
            } catch {
                printToStandardError("\(name): \(m.mountPoint): \(error)")
                failed += 1
            }
        }
        return failed == 0 ? 0 : 32
    }

    /// At boot the vsock device or the server may come up a little after us.
    func mountWaitingForServer(_ m: GuestMount) throws {
        let deadline = monotonicSeconds() + Self.bootWaitSeconds
        while true {
            do {
                return try command.mount(spec: "\(m.cid):\(m.exportPath)", directory: m.mountPoint,
                                         options: [m.options.joined(separator: ",")])
            } catch let e as MountError where e.transient && monotonicSeconds() < deadline {
                say("\(e); trying again")
                usleep(500_000)
            }
        }
    }

    func makeDirectories(_ path: String) throws {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw MountError("cannot make the mount point \(prefix): \(errnoText(errno))")
            }
        }
    }

    /// True if `path` is a mount point now (/proc/self/mountinfo, field 5, octal escapes).
    func isMountPoint(_ path: String) -> Bool {
        guard let text = readFile("/proc/self/mountinfo") else { return false }
        return text.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && unescapeMountinfo(String(fields[4])) == path
        }
    }

    func unescapeMountinfo(_ s: String) -> String {
        var bytes: [UInt8] = []
        var u = Array(s.utf8)[...]
        while let b = u.popFirst() {
            if b == UInt8(ascii: "\\"), u.count >= 3, let v = UInt8(String(decoding: u.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(v)
                u = u.dropFirst(3)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
