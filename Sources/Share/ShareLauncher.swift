#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Exports
import Logging
import NIOConcurrencyHelpers
import Server
import Transport

/// `vsnfs share`'s options, as the command line gave them.
public struct ShareOptions: Sendable {
    public enum Vsock: String, Sendable, CaseIterable { case kernel, user }

    public var directories: [String]
    public var readOnly: Bool
    public var cid: UInt32?
    public var vsock: Vsock?
    public var dryRun: Bool
    public var exportsFile: String?
    public var stateDirectory: String?
    public var qemu: [String]

    public init(directories: [String], readOnly: Bool, cid: UInt32?, vsock: Vsock?, dryRun: Bool,
                exportsFile: String?, stateDirectory: String?, qemu: [String]) {
        self.directories = directories
        self.readOnly = readOnly
        self.cid = cid
        self.vsock = vsock
        self.dryRun = dryRun
        self.exportsFile = exportsFile
        self.stateDirectory = stateDirectory
        self.qemu = qemu
    }
}

/// Runs `vsnfs share`: checks what it was given, starts the server in this
/// process for the guest's CID only, runs QEMU in the foreground (signals
/// passed on), stops the server when QEMU exits and returns QEMU's status.
public enum ShareLauncher {
    public static let vhostVsockDevice = "/dev/vhost-vsock"
    public static let firstGuestCID: UInt32 = 3
    /// Host vsock ports tried from 2049 when another server has it (kernel vhost-vsock only).
    static let portsTried: UInt32 = 16

    /// Everything up to starting QEMU throws a ShareCommandError (one line, what to do).
    public static func run(_ o: ShareOptions, logger: Logger) async throws -> Int32 {
        guard !o.directories.isEmpty else { throw ShareCommandError("nothing to share: vsnfs share DIR[:GUESTPATH]... -- QEMU_COMMAND") }
        guard !o.qemu.isEmpty else { throw ShareCommandError("no QEMU command: give it after --, e.g. vsnfs share DIR -- qemu-system-x86_64 ...") }
        if let cid = o.cid, cid < 3 || cid == UInt32.max { throw ShareCommandError("--cid \(cid) is not a guest CID: give 3 or more") }
        let shared = try o.directories.map { word throws(ShareCommandError) in try SharedDirectory.parse(word, resolve: directoryPath) }
        guard QEMUProcess.locate(o.qemu[0]) != nil else {
            throw ShareCommandError("\(o.qemu[0]): not found; install QEMU (apt-get install qemu-system-x86) or give its full path")
        }
        let kernel = try chooseKernelVsock(o.vsock)
        let guestCID = o.cid ?? firstGuestCID

        var privateDirectory: String?
        let socket: String
        if kernel || o.dryRun {
            socket = "${TMPDIR:-/tmp}/vsnfs-share.XXXXXX/vsock.sock"
        } else {
            let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
            var template = Array("\(base)/vsnfs-share.XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else {
                throw ShareCommandError("cannot make a private directory in \(base): \(String(cString: strerror(errno)))")
            }
            privateDirectory = String(cString: made)
            socket = privateDirectory! + "/vsock.sock"
        }
        defer {
            if let dir = privateDirectory { unlink(socket); rmdir(dir) }
        }
        let readOnly = o.readOnly
        let planFor = { @Sendable (cid: UInt32, port: UInt32) throws(ShareCommandError) -> SharePlan in
            try SharePlan(directories: shared, readOnly: readOnly, cid: cid,
                          vsock: kernel ? .kernel(cid: cid) : .user(socket: socket), port: port)
        }
        let first = try planFor(guestCID, SharePlan.defaultPort)
        let command = QEMUCommand(o.qemu)
        let served: [Export]?
        do { served = try o.exportsFile.map { try ExportsSource.file($0).load() } } catch { throw ShareCommandError("\(error)") }

        if o.dryRun {
            print(try first.dryRun(command, served: served, cidFixed: o.cid != nil || o.exportsFile != nil), terminator: "")
            return 0
        }
        _ = try first.command(command)   // refusals before anything starts

        // The kernel's vsock is host-wide: if another server has port 2049,
        // take the next free port and tell the guest (port= in its requests).
        let signals = SignalEvents()
        var started: VSNFSServer?
        var port = first.port
        while started == nil {
            let listen: ListenSpec = kernel ? .vsock(cid: nil, port: port) : .vhostUser(path: socket, cid: guestCID, port: port)
            do {
                started = try await VSNFSServer.start(
                    configuration: .init(exports: o.exportsFile.map { ExportsSource.file($0) } ?? .list(first.exports),
                                         rpc: RPCServer.Configuration(listen: [listen]), stateDirectory: o.stateDirectory),
                    logger: logger)
            } catch ListenerError.addressInUse(_) where kernel && port < first.port + Self.portsTried - 1 {
                port += 1
            } catch {
                throw ShareCommandError("\(error)")
            }
        }
        let chosenPort = port
        let plan = { @Sendable (cid: UInt32) throws(ShareCommandError) -> SharePlan in try planFor(cid, chosenPort) }
        let server = started!

        let running = RunningQEMU()
        let forwarding = Task {
            for await signo in signals.events { running.signal(signo) }
        }
        // An exports file grants CIDs of its own: the guest's CID is not moved under it.
        let usesFile = o.exportsFile != nil, userChose = o.cid != nil || usesFile
        let status: Int32 = await withCheckedContinuation { continuation in
            // QEMU is waited for on a thread of its own, not the cooperative pool.
            DispatchQueue.global().async {
                @Sendable func launch(_ cid: UInt32) -> (status: Int32, cidInUse: Bool) {
                    do {
                        let p = try plan(cid)
                        if cid != guestCID { try server.context.replace(AuthTable(exports: p.exports)) }
                        let process = try QEMUProcess(arguments: try p.command(command).arguments, watchStderr: kernel)
                        running.set(process)
                        let status = process.wait()
                        running.set(nil)
                        return (status, process.reportedCIDInUse)
                    } catch {
                        say("\(error)")
                        return (1, false)
                    }
                }
                guard kernel else { continuation.resume(returning: launch(guestCID).status); return }
                let outcome = KernelCIDRetry.run(firstCID: guestCID, userChose: userChose, launch: launch, willRetry: {
                    say("guest CID \($0) is in use by another VM; trying CID \($0 + 1)")
                })
                if outcome.chosenCIDInUse {
                    say(usesFile ? "guest CID \(outcome.cid) is in use by another VM: give --cid a CID your exports file grants that no VM uses"
                                 : "guest CID \(outcome.cid) is in use by another VM: choose another --cid, or leave --cid out to take a free one")
                }
                continuation.resume(returning: outcome.status)
            }
        }
        forwarding.cancel()
        await server.shutdown()
        return status
    }

    static func say(_ line: String) {
        let text = "vsnfs: \(line)\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }

    /// Kernel vhost-vsock when usable (or forced), else the vhost-user device.
    static func chooseKernelVsock(_ choice: ShareOptions.Vsock?) throws(ShareCommandError) -> Bool {
        let device = vhostVsockDevice
        var st = stat()
        let exists = stat(device, &st) == 0
        switch choice {
        case .user?: return false
        case nil where !exists: return false
        case .kernel? where !exists:
            throw ShareCommandError("\(device) does not exist: load the vhost_vsock module (modprobe vhost_vsock), or use --vsock user")
        default:
            if access(device, R_OK | W_OK) == 0 { return true }
            let group = getgrgid(st.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "gid \(st.st_gid)"
            throw ShareCommandError("\(device) is not accessible to you: join its group (sudo usermod -aG \(group) $USER, then log in again), or use --vsock user")
        }
    }

    /// DIR made absolute, or nil if it is not a directory.
    static func directoryPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        var st = stat()
        guard stat(resolved, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return String(cString: resolved)
    }
}

/// The QEMU that signals go to, if one runs (set by the launching thread,
/// read by the signal task: a pthread lock, which the thread sanitizer sees).
/// A signal that came while no QEMU ran (before the first, between CID
/// retries) goes to the next one at once: the user asked to stop.
final class RunningQEMU: Sendable {
    private let state = NIOLockedValueBox<(process: QEMUProcess?, signal: Int32?)>((nil, nil))
    func set(_ p: QEMUProcess?) {
        state.withLockedValue { s in
            s.process = p
            if let p, let signo = s.signal { p.signal(signo) }
        }
    }
    func signal(_ signo: Int32) {
        state.withLockedValue { s in
            s.signal = signo
            s.process?.signal(signo)
        }
    }
}
