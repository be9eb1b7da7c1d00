import GuestMounts

/// Which vsock device the guest gets.
public enum VsockDevice: Equatable, Sendable {
    /// The host kernel's vhost-vsock (`/dev/vhost-vsock`): the guest is `cid`.
    case kernel(cid: UInt32)
    /// vsnfs's own vhost-user-vsock device on the Unix socket `socket`; the
    /// guest's memory must be shared with vsnfs.
    case user(socket: String)
}

/// A QEMU command vsnfs share cannot work with, said as what to change.
public struct ShareCommandError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The QEMU command line, as far as `vsnfs share` needs to understand it.
///
/// QEMU accepts `-opt` and `--opt`; an option's argument is the next word.
/// Options vsnfs share reads are known by name; for the others a following
/// word that does not start with `-` is taken as their argument (QEMU's one
/// positional argument, a disk image, is rare next to a flag).
public struct QEMUCommand: Equatable, Sendable {
    public var arguments: [String]

    public init(_ arguments: [String]) { self.arguments = arguments }

    /// QEMU's default RAM size when the command gives no `-m`.
    public static let defaultMemoryMiB: UInt64 = 128
    /// The memory backend vsnfs adds for the vhost-user device.
    public static let memoryBackendID = "vsnfs-mem"

    /// Options that never take an argument (the others that vsnfs share
    /// reads always do).
    static let flags: Set<String> = [
        "nographic", "no-reboot", "no-shutdown", "snapshot", "S", "s", "enable-kvm", "daemonize", "no-user-config",
        "nodefaults", "no-hpet", "no-acpi", "full-screen", "no-frame", "version", "help", "h", "mem-prealloc",
        "only-migratable", "no-fd-bootchk", "win2k-hack", "no-quit", "alt-grab", "ctrl-grab", "preconfig",
        "semihosting", "enable-sync-profile", "nouserconfig",
    ]

    /// (index of the option word, name without dashes, its argument) for each option.
    var options: [(index: Int, name: String, value: String?)] {
        var result: [(Int, String, String?)] = []
        var i = 1
        while i < arguments.count {
            let word = arguments[i]
            guard word.hasPrefix("-"), word.count > 1 else { i += 1; continue }
            let name = String(word.drop(while: { $0 == "-" }))
            if !Self.flags.contains(name), i + 1 < arguments.count,
               !arguments[i + 1].hasPrefix("-") || Self.takesArgument.contains(name) {
                result.append((i, name, arguments[i + 1]))
                i += 2
            } else {
                result.append((i, name, nil))
                i += 1
            }
        }
        return result
    }

    /// Options whose argument may itself start with `-` (e.g. `-append "-v"`).
    static let takesArgument: Set<String> = ["append", "m", "M", "machine", "device", "kernel", "initrd", "object",
                                             "chardev", "fw_cfg", "numa", "mem-path", "name", "serial", "drive"]

    func values(_ names: String...) -> [String] {
        options.filter { names.contains($0.name) }.compactMap(\.value)
    }

    /// The first field of a QEMU option list, or its `key=` field.
    static func field(_ key: String, of list: String, implicitFirst: Bool) -> String? {
        let parts = list.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for (n, part) in parts.enumerated() {
            if part.hasPrefix(key + "=") { return String(part.dropFirst(key.count + 1)) }
            if n == 0, implicitFirst, !part.contains("=") { return part }
        }
        return nil
    }

    /// True for `-M microvm` and `-machine microvm,...` / `type=microvm`.
    public var isMicroVM: Bool {
        values("M", "machine").contains { Self.field("type", of: $0, implicitFirst: true) == "microvm" }
    }

    /// The guest RAM size in bytes, from the last `-m` (QEMU's rule), or
    /// QEMU's default.
    public func memoryBytes() throws(ShareCommandError) -> UInt64 {
        guard let m = values("m").last else { return Self.defaultMemoryMiB << 20 }
        guard let size = Self.field("size", of: m, implicitFirst: true), let bytes = Self.parseSize(size) else {
            throw ShareCommandError("cannot read the memory size in '-m \(m)': give it as -m 1024, -m 1G or -m size=1G")
        }
        return bytes
    }

    /// QEMU's -m size: a number of MiB, or a number with a K, M, G or T suffix.
    static func parseSize(_ text: String) -> UInt64? {
        guard let last = text.last else { return nil }
        let shifts: [Character: UInt64] = ["K": 10, "k": 10, "M": 20, "m": 20, "G": 30, "g": 30, "T": 40, "t": 40]
        var number = Substring(text), shift: UInt64 = 20
        if let s = shifts[last] { number = number.dropLast(); shift = s }
        if let whole = UInt64(number) { return whole > (UInt64.max >> shift) ? nil : whole << shift }
        if let fraction = Double(number), fraction > 0, fraction < Double(UInt64.max >> shift) {
            return UInt64(fraction * Double(UInt64(1) << shift))
        }
        return nil
    }

    /// The device model of each `-device` (QEMU's key=value or JSON form).
    var deviceDrivers: [String] {
        values("device").compactMap { value in
            guard value.hasPrefix("{") else { return Self.field("driver", of: value, implicitFirst: true) }
            // {"driver": "vhost-vsock-pci", ...}: the string after "driver" and a colon.
            guard let key = value.firstRange(of: "\"driver\"") else { return nil }
            let rest = value[key.upperBound...].drop { $0 == " " || $0 == ":" }
            guard rest.first == "\"" else { return nil }
            return String(rest.dropFirst().prefix { $0 != "\"" })
        }
    }

    /// The command with the vsock device and the mount requests added.
    /// Throws, with what to change, for a command that already has a vsock
    /// device or whose memory cannot be shared with a vhost-user device.
    public func rewritten(vsock: VsockDevice, mounts: [GuestMount]) throws(ShareCommandError) -> QEMUCommand {
        guard arguments.count >= 1 else { throw ShareCommandError("no QEMU command after --") }
        if let existing = deviceDrivers.first(where: { $0.hasPrefix("vhost-vsock") || $0.hasPrefix("vhost-user-vsock") }) {
            throw ShareCommandError("the QEMU command already has a vsock device (-device \(existing)): remove it, vsnfs share adds its own")
        }
        var out = arguments
        let micro = isMicroVM
        switch vsock {
        case .kernel(let cid):
            out += ["-device", "\(micro ? "vhost-vsock-device" : "vhost-vsock-pci"),guest-cid=\(cid)"]
        case .user(let socket):
            if !values("mem-path").isEmpty {
                throw ShareCommandError("guest memory from -mem-path cannot be shared with vsnfs's vsock device: remove -mem-path (vsnfs share makes the memory itself), or use --vsock kernel")
            }
            // Memory the command already shares (a virtiofs setup, say) is used as it is.
            if try !commandSharesItsMemory() {
                let bytes = try memoryBytes()
                let size = bytes % (1 << 20) == 0 ? "\(bytes >> 20)M" : "\(bytes)"
                out += ["-object", "memory-backend-memfd,id=\(Self.memoryBackendID),size=\(size),share=on",
                        "-machine", "memory-backend=\(Self.memoryBackendID)"]
            }
            out += ["-chardev", "socket,id=vsnfs-vsock,path=\(Self.escapeOptionValue(socket))",
                    "-device", "\(micro ? "vhost-user-vsock-device" : "vhost-user-vsock-pci"),chardev=vsnfs-vsock"]
        }
        guard !mounts.isEmpty else { return QEMUCommand(out) }
        let list = GuestMount.list(mounts)
        out += ["-fw_cfg", "name=\(GuestMount.fwCfgName),string=\(Self.escapeOptionValue(list))"]
        if !values("kernel").isEmpty {
            let parameter = "\(GuestMount.kernelParameter)=\(list)"
            if let append = options.last(where: { $0.name == "append" && $0.value != nil }) {
                let old = append.value!
                out[append.index + 1] = old.isEmpty ? parameter : old + " " + parameter
            } else {
                out += ["-append", parameter]
            }
        }
        return QEMUCommand(out)
    }

    /// True if the command gives its RAM from memory backends of its own
    /// (`-machine memory-backend=ID`, or `-numa node,memdev=ID`) that are all
    /// shared (`share=on`); false if it has none (vsnfs share adds one).
    /// Throws, saying what to change, if one of them is not shared.
    func commandSharesItsMemory() throws(ShareCommandError) -> Bool {
        let machineBackends = values("M", "machine").compactMap { Self.field("memory-backend", of: $0, implicitFirst: false) }
        let numa = values("numa").filter { (Self.field("type", of: $0, implicitFirst: true) ?? "node") == "node" }
        if !numa.isEmpty && machineBackends.isEmpty {
            let memdevs = numa.map { Self.field("memdev", of: $0, implicitFirst: false) }
            if memdevs.contains(nil) {
                throw ShareCommandError("a -numa node without memdev= cannot share its memory with vsnfs's vsock device: give each node a memdev= backend with share=on, or use --vsock kernel")
            }
            for case let id? in memdevs { try requireShared(id, usedBy: "-numa node,memdev=\(id)") }
            return true
        }
        guard let id = machineBackends.last else { return false }
        try requireShared(id, usedBy: "-machine memory-backend=\(id)")
        return true
    }

    func requireShared(_ id: String, usedBy: String) throws(ShareCommandError) {
        guard let object = values("object").first(where: { Self.field("id", of: $0, implicitFirst: false) == id }) else {
            throw ShareCommandError("\(usedBy) names no -object with id=\(id)")
        }
        guard Self.field("share", of: object, implicitFirst: false).map({ ["on", "true", "yes"].contains($0) }) == true else {
            throw ShareCommandError("the guest memory (-object \(object)) is not shared with vsnfs's vsock device: add share=on to it, or use --vsock kernel")
        }
    }

    /// A value inside a QEMU option list: commas are doubled.
    static func escapeOptionValue(_ value: String) -> String {
        value.replacingOccurrences(of: ",", with: ",,")
    }

    /// The command as one shell line (words quoted where the shell needs it).
    public var shellLine: String {
        arguments.map(Self.shellQuote).joined(separator: " ")
    }

    static func shellQuote(_ word: String) -> String {
        let safe = word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-+=,:@%".contains($0)) }
        if safe && !word.isEmpty { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
