/// What to mount, parsed from the helper's command line.
struct MountRequest: Equatable {
    enum Version: String, Equatable { case v3 = "3", v41 = "4.1", v42 = "4.2" }

    var cid: UInt32
    var path: String
    var port: UInt32 = 2049
    /// The versions to try, in order: one when `vers=` names it; `vers=4`:
    /// 4.2 then 4.1; without `vers=`: 4.2, 4.1, then 3.
    var versions: [Version] = [.v42, .v41, .v3]
    var readOnly = false
    var flags: UInt = 0
    /// NFS options passed through to the kernel unchanged.
    var passthrough: [String] = []
    /// How the relay moves bytes: auto, splice or copy (see RelayMode).
    var relayMode: String = "auto"
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// mount(2) flags that mount(8) users spell as options.
let mountFlagOptions: [String: (set: Bool, flag: UInt)] = [
    "ro": (true, 1), "rw": (false, 1),              // MS_RDONLY
    "nosuid": (true, 2), "suid": (false, 2),        // MS_NOSUID
    "nodev": (true, 4), "dev": (false, 4),          // MS_NODEV
    "noexec": (true, 8), "exec": (false, 8),        // MS_NOEXEC
    "sync": (true, 16), "async": (false, 16),       // MS_SYNCHRONOUS
    "dirsync": (true, 128),                         // MS_DIRSYNC
    "noatime": (true, 1024), "atime": (false, 1024),// MS_NOATIME
    "nodiratime": (true, 2048), "diratime": (false, 2048),
    "relatime": (true, 1 << 21), "norelatime": (false, 1 << 21),
    "strictatime": (true, 1 << 24),
]

/// Options only mount(8) and fstab care about; never handed to the kernel.
func isUserspaceOnly(_ option: String) -> Bool {
    let name = option.split(separator: "=", maxSplits: 1).first.map(String.init) ?? option
    return ["defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
            "_netdev", "nofail", "comment", "x-systemd.automount", "loop"].contains(name)
        || name.hasPrefix("x-") || name.hasPrefix("comment")
}

/// Options the helper sets itself: a user value would break the relay path.
let reservedOptions: Set<String> = ["addr", "clientaddr", "mountaddr", "mountport", "mountproto",
                                    "proto", "mounthost", "mountvers", "minorversion"]

extension MountRequest {
    /// Parses `CID:/PATH` or `vsock:CID:/PATH` (the product's own address form,
    /// as in exports and listen specs) and the `-o` option lists.
    init(spec fullSpec: String, options: [String]) throws {
        let spec = fullSpec.hasPrefix("vsock:") ? String(fullSpec.dropFirst("vsock:".count)) : fullSpec
        guard let colon = spec.firstIndex(of: ":") else {
            throw UsageError("bad SPEC '\(fullSpec)': expected CID:/PATH or vsock:CID:/PATH (the host is CID 2), e.g. 2:/srv")
        }
        let cidText = spec[..<colon], path = String(spec[spec.index(after: colon)...])
        guard let cid = UInt32(cidText), cid != UInt32.max else {
            throw UsageError("bad SPEC '\(fullSpec)': '\(cidText)' is not a vsock CID (a number; the host is 2)")
        }
        guard path.hasPrefix("/") else {
            throw UsageError("bad SPEC '\(fullSpec)': the path must be absolute, e.g. \(cid):/srv")
        }
        self.init(cid: cid, path: path)
        for list in options {
            for option in list.split(separator: ",").map(String.init) where !option.isEmpty {
                try apply(option)
            }
        }
    }

    private mutating func apply(_ option: String) throws {
        let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
        let name = parts[0], value = parts.count > 1 ? parts[1] : nil
        switch name {
        case "vers", "nfsvers":
            switch value {
            case "3": versions = [.v3]
            case "4.1": versions = [.v41]
            case "4.2": versions = [.v42]
            case "4": versions = [.v42, .v41]
            default: throw UsageError("unsupported \(option): vsnfs speaks vers=3, vers=4.1 and vers=4.2")
            }
        case "port":
            guard let v = value, let p = UInt32(v), p > 0, p != UInt32.max else {
                throw UsageError("bad option '\(option)': port= takes a vsock port number")
            }
            port = p
        case "relay":
            guard let v = value, RelayMode(rawValue: v) != nil else {
                throw UsageError("bad option '\(option)': relay= takes auto, splice or copy")
            }
            relayMode = value!
        default:
            if let f = mountFlagOptions[name], value == nil {
                if f.set { flags |= f.flag } else { flags &= ~f.flag }
                if name == "ro" { readOnly = true } else if name == "rw" { readOnly = false }
            } else if isUserspaceOnly(option) {
                break
            } else if reservedOptions.contains(name) {
                throw UsageError("option '\(option)' is set by vsnfs-mount itself (the kernel talks to the relay on 127.0.0.1)")
            } else {
                passthrough.append(option)
            }
        }
    }

    /// The mount(2) data string for the kernel's NFS client, reaching the relay on `relayPort`.
    func kernelOptions(version: Version, relayPort: UInt16, sloppy: Bool) -> String {
        var o: [String]
        switch version {
        case .v3:
            o = ["vers=3", "proto=tcp", "addr=127.0.0.1", "port=\(relayPort)",
                 "mountport=\(relayPort)", "mountproto=tcp", "mountaddr=127.0.0.1", "mountvers=3", "nolock"]
        case .v41, .v42:
            // NFSv4 needs no MOUNT protocol and no lock manager: one port, the relay's.
            o = ["vers=\(version.rawValue)", "addr=127.0.0.1", "clientaddr=127.0.0.1", "port=\(relayPort)"]
        }
        if sloppy { o.append("sloppy") }
        return (o + passthrough).joined(separator: ",")
    }
}
