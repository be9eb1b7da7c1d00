#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CSupport
import GuestMounts
import ONCRPC

/// `mount.vsnfs SPEC DIR [-sfnv] [-o OPTIONS]`, the mount(8) helper convention.
struct MountCommand: ParsableCommand {
    /// Named as invoked: `vsnfs-mount`, or `mount.vsnfs` when mount(8) runs it.
    static var configuration: CommandConfiguration { CommandConfiguration(
        commandName: invokedName,
        abstract: "Mount a vsnfs export (CID:/PATH or vsock:CID:/PATH) over AF_VSOCK.",
        discussion: """
            The guest's kernel NFS client talks TCP to a relay on 127.0.0.1, which \
            forwards every connection to the server over vsock. The relay is shared \
            by all mounts of one CID:port and exits when none is left.

            Options: vers=3|4.1|4.2|4 (default: 4.2, then 4.1, then 3, as the server and kernel offer), port=N \
            (vsock port, default 2049), ro, rw, relay=auto|splice|copy, and NFS options \
            (rsize, wsize, hard, soft, timeo, actimeo, ...) passed to the kernel.

            Examples:
              mount -t vsnfs 2:/ /mnt
              vsnfs-mount 2:/srv/src /src -o vers=3,ro
              fstab: 2:/srv /mnt vsnfs defaults 0 0
              vsnfs-mount --auto

            --auto mounts what the host asks for (`vsnfs share` does): the requests in \
            QEMU's fw_cfg file \(GuestMount.fwCfgName) (\(GuestMount.fwCfgPath), needs \
            the qemu_fw_cfg module) and in every \(GuestMount.kernelParameter)= on the kernel \
            command line. A request list is CID:EXPORT:MOUNTPOINT[:OPTIONS] joined by ';', \
            e.g. vsnfs.mount=2:/srv/src:/src:ro;2:/data:/data (OPTIONS as for -o; bytes \
            other than letters, digits and /._-+@~ written %XX, a space as %20). Missing \
            mount points are made; ones already mounted are left alone; a mount point \
            named twice is mounted once (fw_cfg first).
            """,
        version: vsnfsVersion) }

    static var invokedName: String {
        let name = CommandLine.arguments.first?.split(separator: "/").last.map(String.init) ?? ""
        return name == "mount.vsnfs" ? name : "vsnfs-mount"
    }

    @Argument(help: "CID:/PATH or vsock:CID:/PATH; the host is CID 2.") var spec: String?
    @Argument(help: "Mount point.") var directory: String?
    @Flag(name: .long, help: "Mount the requests from fw_cfg (opt/vsnfs/mount) and the kernel command line (vsnfs.mount=) instead of SPEC DIR.")
    var auto = false
    @Flag(name: .customShort("s"), help: "Sloppy: let the kernel ignore options it does not know.") var sloppy = false
    @Flag(name: .customShort("f"), help: "Fake: check everything, start no relay, mount nothing.") var fake = false
    @Flag(name: .customShort("n"), help: "Do not write /etc/mtab (there is none to write).") var noMtab = false
    @Flag(name: .customShort("v"), help: "Say what is being done.") var verbose = false
    @Option(name: .customShort("o", allowingJoined: true), help: "Comma-separated options.") var options: [String] = []

    func validate() throws {
        if auto {
            guard spec == nil else { throw ValidationError("--auto takes no SPEC or DIR: the host's requests say what to mount") }
        } else if spec == nil || directory == nil {
            throw ValidationError("give SPEC and DIR (e.g. vsnfs-mount 2:/srv /mnt), or --auto")
        }
    }

    func run() throws {
        if auto { throw ExitCode(AutoMount(command: self).run()) }
        do {
            try mount(spec: spec!, directory: directory!, options: options)
        } catch let e as UsageError {
            printToStandardError("\(Self.invokedName): \(e)")
            throw ExitCode(1)
        } catch let e as MountError {
            printToStandardError("\(Self.invokedName): \(e)")
            throw ExitCode(e.exitCode)
        }
    }

    func say(_ s: String) { if verbose { printToStandardError("\(Self.invokedName): \(s)") } }

    func mount(spec: String, directory: String, options: [String]) throws {
        let request = try MountRequest(spec: spec, options: options)
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UsageError("mount point \(directory) is not a directory")
        }
        let filesystems = readFile("/proc/filesystems") ?? ""
        let kernelV3 = filesystems.contains("\tnfs\n"), kernelV4 = filesystems.contains("\tnfs4\n")
        guard kernelV3 || kernelV4 else {
            throw MountError("this guest kernel has no NFS client (load the nfs, nfsv3 and nfsv4 modules)")
        }

        let probe = try ServerProbe.run(cid: request.cid, port: request.port)
        let where_ = "vsock CID \(request.cid) port \(request.port)"
        // The versions to try: those asked for that this kernel has and the server offers.
        let kernelHas: (MountRequest.Version) -> Bool = { $0 == .v3 ? kernelV3 : kernelV4 }
        let candidates = request.versions.filter { kernelHas($0) && probe.offers($0) }
        guard let first = candidates.first else {
            let asked = request.versions.map { "NFSv\($0.rawValue)" }.joined(separator: " or ")
            if !request.versions.contains(where: kernelHas) {
                throw MountError("this guest kernel has no \(asked) client (load the nfs, nfsv3 and nfsv4 modules)")
            }
            throw MountError("the server at \(where_) does not offer \(asked) (try vers=3)")
        }
        let ourCID = guestCID(talkingTo: request.cid, probe: probe)
        say("server at \(where_) offers NFSv3\(probe.offersV41 ? ", 4.1" : "")\(probe.offersV42 ? ", 4.2" : ""); trying NFSv\(candidates.map(\.rawValue).joined(separator: ", then ")); this guest is CID \(ourCID.map(String.init) ?? "?")")

        let lo = vsnfs_loopback_up()
        if lo < 0 { throw MountError("cannot bring the loopback interface up: \(errnoText(-lo))") }
        if lo == 1 { say("brought the loopback interface up") }

        if fake {
            say("fake mount: \(request.kernelOptions(version: first, relayPort: 0, sloppy: sloppy))")
            return
        }

        mkdir(RelayFiles.directory, 0o755)
        let files = RelayFiles(cid: request.cid, port: request.port)
        let lockFD = open(files.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw MountError("cannot open \(files.lock): \(errnoText(errno))") }
        defer { close(lockFD) }   // held until the mount is in place: the relay cannot exit under us
        while flock(lockFD, LOCK_EX) != 0 && errno == EINTR {}

        let relay = try RelayClient.findOrStart(files: files, mode: request.relayMode)
        say(relay.started ? "started relay pid \(relay.pid) on 127.0.0.1:\(relay.port) (log \(files.log))"
                          : "using relay pid \(relay.pid) on 127.0.0.1:\(relay.port)")

        if candidates.contains(where: { $0 != .v3 }), let cid = ourCID { setUniqueClientID(cid: cid) }
        let source = "\(request.cid):\(request.path)"
        for (index, version) in candidates.enumerated() {
            let data = request.kernelOptions(version: version, relayPort: relay.port, sloppy: sloppy)
            let fstype = version == .v3 ? "nfs" : "nfs4"
            say("mount(\"\(source)\", \"\(directory)\", \"\(fstype)\", 0x\(String(request.flags, radix: 16)), \"\(data)\")")
            if Glibc.mount(source, directory, fstype, request.flags, data) == 0 { return }
            let e = errno
            // A version the kernel or server turns down: the next one, if any.
            if index + 1 < candidates.count, [EPROTONOSUPPORT, EINVAL, ENODEV, EOPNOTSUPP].contains(e) {
                say("NFSv\(version.rawValue): \(errnoText(e)); trying NFSv\(candidates[index + 1].rawValue)")
                continue
            }
            throw mountFailure(errno: e, request: request, directory: directory, version: version, ourCID: ourCID, files: files)
        }
    }

    /// The CID the server sees for this guest. getsockname on a vsock socket
    /// often says VMADDR_CID_ANY (the socket was auto-bound); the transport
    /// stamps packets with the local CID: 1 over loopback, else the guest's CID.
    func guestCID(talkingTo cid: UInt32, probe: ServerProbe) -> UInt32? {
        if let c = probe.localCID, c != UInt32.max { return c }
        if cid == 1 { return 1 }
        let c = vsnfs_vsock_local_cid()
        return c >= 0 && c != Int64(UInt32.max) ? UInt32(c) : nil
    }

    func mountFailure(errno e: Int32, request: MountRequest, directory: String, version: MountRequest.Version,
                      ourCID: UInt32?, files: RelayFiles) -> MountError {
        let server = "the server at vsock CID \(request.cid) port \(request.port)"
        let seen = ourCID.map { "CID \($0)" } ?? "this guest's CID"
        switch e {
        case EACCES:
            return MountError("\(server) refused access to \(request.path) for this guest (it saw this guest as \(seen)); check its exports")
        case EPERM where geteuid() != 0:
            return MountError("mounting needs root")
        case EPERM:
            return MountError("\(server) refused \(request.path) to this guest (it saw this guest as \(seen)): permission denied")
        case ENOENT:
            return MountError("\(server) has no export \(request.path) (or it is not exported to \(seen))")
        case EPROTONOSUPPORT:
            return MountError("NFSv\(version.rawValue) is not supported by this guest kernel or by \(server)")
        case ENODEV:
            return MountError("this guest kernel has no NFSv\(version.rawValue) client (load the nfs module)")
        case EBUSY:
            return MountError("\(directory) is busy or already mounted")
        case ETIMEDOUT, EIO, ECONNREFUSED, ECONNRESET:
            return MountError("\(server) did not answer through the relay (\(errnoText(e))); relay log: \(files.log)")
        default:
            return MountError("mount of \(request.cid):\(request.path) on \(directory) failed: \(errnoText(e))")
        }
    }

    /// NFSv4 clients name themselves by host name; minimal guests often share
    /// one ("localhost"). Unless the admin chose an id, use our CID, which the
    /// hypervisor makes unique among running guests.
    func setUniqueClientID(cid: UInt32) {
        let path = "/sys/module/nfs/parameters/nfs4_unique_id"
        guard let current = readFile(path), current.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let value = "vsnfs-cid-\(cid)"
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}

/// Finds the running relay for CID:port, or starts one.
enum RelayClient {
    struct Relay { var pid: pid_t; var port: UInt16; var started: Bool }

    /// Call with the relay lock held.
    static func findOrStart(files: RelayFiles, mode: String) throws -> Relay {
        if let text = readFile(files.portFile) {
            let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            if f.count >= 2, let pid = pid_t(f[0]), let port = UInt16(f[1]), kill(pid, 0) == 0,
               let cmdline = readFile("/proc/\(pid)/cmdline"), cmdline.contains(RelayCommand.subcommandName) {
                return Relay(pid: pid, port: port, started: false)
            }
            unlink(files.portFile)
        }
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        let path = n > 0 ? String(decoding: exe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0,
              fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else { throw MountError("pipe: \(errnoText(errno))") }
        let args = [path, RelayCommand.subcommandName, String(files.cid), String(files.port), mode]
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        let pid = vsnfs_spawn_detached(path, &cargs, files.log, fds[1])
        close(fds[1])
        defer { close(fds[0]) }
        guard pid > 0 else { throw MountError("cannot start the relay: \(errnoText(-pid))") }
        // The relay writes "PORT\n" (or "ERR message\n") to the pipe once it listens.
        var reply: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 256)
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        while poll(&pfd, 1, 10_000) > 0 {
            let r = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, 256) }
            if r <= 0 { break }
            reply += buf[0..<r]
        }
        let line = String(decoding: reply, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let port = UInt16(line) else {
            throw MountError("the relay did not start: \(line.isEmpty ? "no answer" : line) (log: \(files.log))")
        }
        return Relay(pid: pid, port: port, started: true)
    }
}

extension String {
    func trimmingCharacters(in set: CharSet) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

struct CharSet: Sendable {
    let contains: @Sendable (Character) -> Bool
    static let whitespacesAndNewlines = CharSet { $0.isWhitespace || $0.isNewline }
}
