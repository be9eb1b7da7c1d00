import Exports
import GuestMounts

/// One `DIR[:GUESTPATH]` argument of vsnfs share.
public struct SharedDirectory: Equatable, Sendable {
    /// The directory on the host, absolute (what the server exports, and the
    /// export path the guest names).
    public var hostPath: String
    /// Where the guest mounts it; the host path unless given.
    public var guestPath: String

    public init(hostPath: String, guestPath: String? = nil) {
        self.hostPath = hostPath
        self.guestPath = guestPath ?? hostPath
    }

    /// Splits `DIR[:GUESTPATH]`. A word that names an existing directory as
    /// a whole is DIR (its name may hold a colon); otherwise GUESTPATH is what
    /// follows the last colon and must be absolute. `resolve` makes DIR
    /// absolute and returns nil if it is not a directory.
    public static func parse(_ word: String, resolve: (String) -> String?) throws(ShareCommandError) -> SharedDirectory {
        if let path = resolve(word) { return SharedDirectory(hostPath: path) }
        if let colon = word.lastIndex(of: ":") {
            let dir = String(word[..<colon]), guest = String(word[word.index(after: colon)...])
            if let path = resolve(dir) {
                guard guest.hasPrefix("/") else {
                    throw ShareCommandError("'\(word)': the guest path after ':' must be absolute, e.g. \(dir):/mnt/\(dir.split(separator: "/").last ?? "share")")
                }
                return SharedDirectory(hostPath: path, guestPath: guest)
            }
            throw ShareCommandError("\(dir): no such directory (give DIR or DIR:GUESTPATH, with DIR an existing directory)")
        }
        throw ShareCommandError("\(word): no such directory")
    }
}

/// What vsnfs share will do: the exports for the guest's CID, the mounts
/// the guest is asked to make, and the QEMU command that gets both.
public struct SharePlan: Sendable {
    public var directories: [SharedDirectory]
    public var readOnly: Bool
    /// The guest's CID: the one the exports grant.
    public var cid: UInt32
    public var vsock: VsockDevice
    /// The vsock port the server listens on (the guest connects to the host, CID 2, there).
    public var port: UInt32

    public static let hostCID: UInt32 = 2
    public static let defaultPort: UInt32 = 2049

    public init(directories: [SharedDirectory], readOnly: Bool, cid: UInt32, vsock: VsockDevice,
                port: UInt32 = SharePlan.defaultPort) throws(ShareCommandError) {
        guard !directories.isEmpty else { throw ShareCommandError("nothing to share: give at least one DIR") }
        var seen: Set<String> = []
        for d in directories where !seen.insert(d.guestPath).inserted {
            throw ShareCommandError("two directories would be mounted on \(d.guestPath) in the guest: give one of them another GUESTPATH (DIR:GUESTPATH)")
        }
        self.directories = directories
        self.readOnly = readOnly
        self.cid = cid
        self.vsock = vsock
        self.port = port
    }

    /// Each directory exported under its own path to the guest's CID only,
    /// read-write unless --ro, root_squash.
    public var exports: [Export] {
        var unique: [String] = []
        for d in directories where !unique.contains(d.hostPath) { unique.append(d.hostPath) }
        return unique.map {
            Export(hostPath: $0, clients: [ClientRule(client: .vsockCID(cid),
                                                      options: ExportOptions(readOnly: readOnly, squash: .rootSquash))])
        }
    }

    /// What the guest is asked to mount.
    public var mounts: [GuestMount] {
        var options: [String] = readOnly ? ["ro"] : []
        if port != Self.defaultPort { options.append("port=\(port)") }
        return directories.map {
            GuestMount(cid: Self.hostCID, exportPath: $0.hostPath, mountPoint: $0.guestPath, options: options)
        }
    }

    public func command(_ qemu: QEMUCommand) throws(ShareCommandError) -> QEMUCommand {
        try qemu.rewritten(vsock: vsock, mounts: mounts)
    }

    /// What --dry-run prints: the device, the QEMU command, the guest's
    /// mount requests, and the exports (`served`: those of --exports FILE).
    /// `cidFixed`: the CID is not moved if another VM has it (--cid, or an exports file).
    public func dryRun(_ qemu: QEMUCommand, served: [Export]? = nil, cidFixed: Bool = false) throws(ShareCommandError) -> String {
        let device: String
        switch vsock {
        case .kernel(let cid):
            device = "the kernel's vhost-vsock, guest CID \(cid)" + (cidFixed ? "" : " (the next free CID if it is taken)")
        case .user(let socket):
            device = "vsnfs's vhost-user-vsock device on \(socket), guest CID \(cid)"
        }
        var text = "vsock: \(device)\n"
        text += "qemu: \(try command(qemu).shellLine)\n"
        text += "guest mounts: \(GuestMount.list(mounts))\n"
        text += "exports:\n"
        text += formatExportsTable(served ?? exports).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
        return text
    }
}
