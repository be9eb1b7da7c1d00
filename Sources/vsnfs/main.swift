import ArgumentParser
import Control
import Exports
import HostChecks
import Logging
import ONCRPC
import Server
import Share
import Transport
#if canImport(Glibc)
import Glibc
#endif

@main
struct VSNFS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vsnfs",
        abstract: "Share host directories into virtual machines over AF_VSOCK, with NFS.",
        version: vsnfsVersion,
        subcommands: [Serve.self, ShareCommand.self, StatusCommand.self, ExportCommand.self, ExportsCommand.self,
                       DoctorCommand.self])
}

/// Prints one line to stderr and exits non-zero: the shape of every
/// operator-facing error.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandleStderr.write("vsnfs: \(message)\n")
    exit(code)
}

enum FileHandleStderr {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}

/// The --listen options of serve and doctor: each parsed, or the default
/// listener when none is given; a bad spec is a usage error.
func listenSpecs(_ options: [String]) -> [ListenSpec] {
    do {
        return try options.isEmpty ? [ListenSpec.defaultSpec] : options.map { try ListenSpec(parsing: $0) }
    } catch {
        fail("\(error)", code: 64)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve NFS (v3) and MOUNT (v3) on one port per listener.",
        discussion: """
            With DIR and no --exports, DIR is exported read-write (root_squash) as / to every \
            peer of the listeners given. With --exports, the exports file decides; SIGHUP reloads \
            it and applies the new table to live connections from their next call.
            """)

    @Argument(help: "Directory to export as / (read-write, root_squash) to every peer.")
    var directory: String?

    @Option(name: .long, help: "Exports file (exports(5) grammar with vsock:CID client specs).")
    var exports: String?

    @Option(name: .long, help: "Listen spec: vsock:PORT, vsock:CID:PORT, tcp:HOST:PORT, unix:PATH, hybrid:UDS_PATH:PORT:cid=N for a Firecracker or Cloud Hypervisor guest (serves UDS_PATH_PORT as guest CID N), or vhost-user:PATH:cid=N[:port=P] to be a QEMU guest's vhost-user-vsock device (the guest gets CID N). Repeatable; default vsock:2049.")
    var listen: [String] = []

    @Option(name: .long, help: "Directory for persistent state (handle key and index). Default: /var/lib/vsnfs as root, else $XDG_STATE_HOME/vsnfs or ~/.local/state/vsnfs.")
    var stateDir: String?

    @Option(name: .long, help: "Threads for filesystem calls.")
    var threads: Int = 16

    @Option(name: .long, help: "Most files kept open at once (default: from RLIMIT_NOFILE).")
    var openFiles: Int?

    @Option(name: .long, help: "Largest RPC record accepted, in bytes; a connection that sends more is closed. \(RecordMarking.defaultMaximumRecordSize) is 1 MiB of data plus 64 KiB of headers.")
    var maxRecordSize: Int = RecordMarking.defaultMaximumRecordSize

    @Option(name: .long, help: "Calls one connection may run at once; past that, its further calls wait and the server stops reading from it.")
    var maxCallsInFlight: Int = RPCConnectionHandler.defaultMaximumCallsInFlight

    @Flag(name: .long, help: "Register NFS and MOUNT on the TCP listeners with the local rpcbind (for rpcinfo -t and mount.nfs without port=).")
    var rpcbind = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: ArgumentHelp("Control socket for vsnfs status and vsnfs export (default: /run/vsnfs/control as root, else $XDG_RUNTIME_DIR/vsnfs/control).", valueName: "path"))
    var control: String?

    @Flag(name: .long, help: "Serve without a control socket.")
    var noControl = false

    @Option(name: .customLong("nfs4-lease"), help: ArgumentHelp("NFSv4.1 lease period in seconds: clients renew within it, a recalled delegation not returned within it is revoked, and callbacks wait a tenth of it (at least 1 s) for a reply.", valueName: "seconds"))
    var nfs4Lease: Int = 90

    @Flag(name: .customLong("no-nfs4-delegations"), help: "Give NFSv4.1 clients no read delegations.")
    var noNFS4Delegations = false

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { fail("unknown log level '\(logLevel)'", code: 64) }
        guard maxRecordSize >= 1024, maxRecordSize < Int(RecordMarking.lastFragmentBit) else {
            fail("--max-record-size must be between 1024 and \(RecordMarking.lastFragmentBit - 1)", code: 64)
        }
        guard maxCallsInFlight >= 1 else { fail("--max-calls-in-flight must be at least 1", code: 64) }
        guard (1...3600).contains(nfs4Lease) else { fail("--nfs4-lease must be between 1 and 3600 seconds", code: 64) }
        if stateDir?.isEmpty == true { fail("--state-dir is empty: give a directory, or leave the option out for the default", code: 64) }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vsnfs")

        let specs = listenSpecs(listen)

        let source: ExportsSource
        switch (directory, exports) {
        case (let dir?, nil): source = .directory(dir)
        case (nil, let file?): source = .file(file)
        case (.some, .some): fail("give either DIR or --exports FILE, not both", code: 64)
        case (nil, nil): fail("nothing to export: give a directory (vsnfs serve DIR) or --exports FILE", code: 64)
        }

        var controlSocket: String?
        if !noControl {
            // No default place (a user without XDG_RUNTIME_DIR) costs the admin verbs, not the service.
            do { controlSocket = try control ?? ControlSocket.defaultPath() } catch {
                logger.warning("\(error); serving without one")
            }
        } else if control != nil {
            fail("give either --control PATH or --no-control, not both", code: 64)
        }

        var configuration = VSNFSServer.Configuration(
            exports: source,
            rpc: RPCServer.Configuration(listen: specs, maximumRecordSize: maxRecordSize, maximumCallsInFlight: maxCallsInFlight),
            stateDirectory: stateDir, threads: threads, openFiles: openFiles, registerWithRPCBind: rpcbind,
            controlSocket: controlSocket)
        configuration.nfs4LeaseTime = .seconds(nfs4Lease)
        configuration.nfs4Delegations = !noNFS4Delegations
        let signals = SignalEvents()
        let server: VSNFSServer
        do {
            server = try await VSNFSServer.start(configuration: configuration, logger: logger)
        } catch {
            fail("\(error)")
        }
        await server.run(until: signals)
    }
}

struct ShareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Run a QEMU guest with host directories mounted in it over vsock.",
        discussion: """
            Exports each DIR to the guest's CID only (read-write unless --ro, root_squash), adds a vsock \
            device to the QEMU command, tells the guest what to mount (QEMU fw_cfg opt/vsnfs/mount, and \
            vsnfs.mount= on the kernel command line when the command boots with -kernel; the guest runs \
            `vsnfs-mount --auto`), then runs QEMU in the foreground and returns its exit status. A DIR is \
            mounted at the same path in the guest unless DIR:GUESTPATH says where.

            The vsock device is the kernel's vhost-vsock-pci when /dev/vhost-vsock is usable (the guest \
            gets --cid or the first free CID from 3), else vsnfs's own vhost-user-vsock device (guest CID \
            --cid or 3; the guest's -m memory is made shared unless the command shares it already; the \
            socket lives in a private temporary \
            directory). QEMU keeps the terminal; SIGINT, SIGTERM and SIGHUP sent to vsnfs are passed on to \
            it; the server stops when QEMU exits.

            Example: vsnfs share ~/src:/src -- qemu-system-x86_64 -M q35 -m 2G -nographic -kernel bzImage ...
            """)

    /// DIRs, then `--` and the QEMU command: ArgumentParser takes the words
    /// after `--` as more positional values, so run() splits them off at the
    /// `--` of the command line.
    @Argument(help: ArgumentHelp("Directories to share, each optionally with where the guest mounts it, then -- and the QEMU command.",
                                 valueName: "DIR[:GUESTPATH]... -- QEMU_COMMAND"))
    var words: [String] = []

    @Flag(name: .long, help: "Share read-only.")
    var ro = false

    @Option(name: .long, help: "The guest's vsock CID (3 or more). Default 3; with the kernel's vhost-vsock, the first free CID from 3.")
    var cid: UInt32?

    @Option(name: .long, help: "The vsock device: kernel (/dev/vhost-vsock) or user (vsnfs's vhost-user device). Default: kernel when /dev/vhost-vsock exists.")
    var vsock: String?

    @Flag(name: .long, help: "Print the QEMU command and the exports, and change nothing.")
    var dryRun = false

    @Option(name: .long, help: "Serve this exports file instead of exporting each DIR to the guest (the DIRs still say what the guest mounts).")
    var exports: String?

    @Option(name: .long, help: "Directory for persistent state (as for vsnfs serve).")
    var stateDir: String?

    @Option(name: .long, help: "Server log level (the terminal belongs to QEMU): trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { fail("unknown log level '\(logLevel)'", code: 64) }
        var choice: ShareOptions.Vsock?
        if let vsock {
            guard let c = ShareOptions.Vsock(rawValue: vsock) else { fail("--vsock takes kernel or user, not '\(vsock)'", code: 64) }
            choice = c
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let afterDashes = CommandLine.arguments.firstIndex(of: "--").map { Array(CommandLine.arguments[($0 + 1)...]) } ?? []
        guard words.suffix(afterDashes.count).elementsEqual(afterDashes) else { fail("give the QEMU command after --", code: 64) }
        let directories = Array(words.dropLast(afterDashes.count)), qemu = afterDashes
        let options = ShareOptions(directories: directories, readOnly: ro, cid: cid, vsock: choice, dryRun: dryRun,
                                   exportsFile: exports, stateDirectory: stateDir, qemu: qemu)
        let status: Int32
        do {
            status = try await ShareLauncher.run(options, logger: Logger(label: "vsnfs"))
        } catch {
            fail("\(error)")
        }
        if status != 0 { throw ExitCode(status) }
    }
}

struct ExportsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exports", abstract: "Work with exports files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an exports file and print the resolved table; exit non-zero with FILE:LINE:COLUMN errors.")

        @Argument(help: "The exports file.")
        var file: String

        func run() async throws {
            do {
                let exports = try ExportsSource.file(file).load()
                print(formatExportsTable(exports), terminator: "")
            } catch {
                FileHandleStderr.write("\(error)\n")
                throw ExitCode(1)
            }
        }
    }
}

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this host for what sharing needs, and say how to fix each failure.",
        discussion: """
            Checks vsock (AF_VSOCK, /dev/vhost-vsock, QEMU's vhost-user-vsock-pci for the user device), \
            the vsock sockets in use (vsock_diag, through libnl-3), each listener's address, NFS servers \
            registered with rpcbind (through libtirpc) or on TCP port 2049, the exports file and the state \
            directory. One line per check: ok, warn or FAIL, then the fix. Exit status 0 when no check \
            failed, 1 otherwise. Without options it checks what `vsnfs serve` would use by default.
            """)

    @Option(name: .long, help: "Exports file to check, as serve --exports would load it.")
    var exports: String?

    @Option(name: .long, help: "State directory to check (default: the one serve would use).")
    var stateDir: String?

    @Option(name: .long, help: "Listen spec to check, as for serve (repeatable; default vsock:2049).")
    var listen: [String] = []

    @Option(name: .long, help: "The QEMU binary guests run under, for the vhost-user device check.")
    var qemu: String = "qemu-system-x86_64"

    @Flag(name: .long, help: "Print the report as JSON: {\"ok\": BOOL, \"checks\": [{\"name\", \"verdict\", \"detail\", \"fix\"}]}.")
    var json = false

    func run() async throws {
        let results = Doctor.run(DoctorConfiguration(listen: listenSpecs(listen), exportsFile: exports, stateDirectory: stateDir, qemu: qemu))
        print(json ? formatReportJSON(results) : formatReport(results), terminator: "")
        if results.contains(where: { $0.verdict == .fail }) { throw ExitCode(1) }
    }
}

// MARK: - Admin verbs: a running server, through its control socket

/// The exit codes every admin verb documents.
let adminExitCodes = """
    Exit status: 0 done; 1 the request failed (for example, the path is not exported); \
    2 no server answered on the control socket; 64 bad usage.
    """

/// What every admin verb takes: where the server is, and whether to print JSON.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The server's control socket (default: /run/vsnfs/control as root, else $XDG_RUNTIME_DIR/vsnfs/control).", valueName: "path"))
    var control: String?

    @Flag(name: .long, help: "Print the server's answer as JSON: {\"ok\": true, ...} or {\"ok\": false, \"error\": \"...\"}.")
    var json = false

    /// Sends `request`; on failure prints the error (as JSON with --json) and
    /// exits 1, or 2 when no server answered.
    func send(_ request: ControlRequest) -> ControlResponse {
        let path: String
        do { path = try control ?? ControlSocket.defaultPath() } catch { fail("\(error)", code: 64) }
        let response: ControlResponse
        do {
            response = try ControlSocket.send(request, to: path)
        } catch {
            let code: Int32
            switch error {
            case .unreachable: code = 2
            case .failed: code = 1
            }
            if json { print(ControlResponse.failure(error.description).prettyJSON()) }
            fail(error.description, code: code)
        }
        if json { print(response.prettyJSON()) }
        if !response.ok { fail(response.error ?? "the request failed", code: 1) }
        return response
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running server: listeners, connected clients (exports, NFS versions, sessions, calls), the auth table.",
        discussion: adminExitCodes)

    @OptionGroup var options: ControlOptions

    func run() {
        let response = options.send(.status)
        guard !options.json, let status = response.status else { return }
        print(formatStatus(status), terminator: "")
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "List, add or remove a running server's exports.",
        discussion: """
            Changes are kept in the server's memory on top of its exports file (or DIR), survive \
            SIGHUP reloads, and end when the server exits. \(adminExitCodes)
            """,
        subcommands: [List.self, Add.self, Remove.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the exports served now, and where each client rule came from (file, directory, runtime).",
            discussion: adminExitCodes)

        @OptionGroup var options: ControlOptions

        func run() {
            let response = options.send(.exportList)
            if !options.json { print(formatExportList(response.exports ?? []), terminator: "") }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export a directory (or add clients to an export) on the running server.",
            discussion: """
                As the exports line `PATH -OPTIONS CLIENT...`: vsnfs export add /srv/src --to vsock:3 --options rw. \
                A client already listed gets the new options. \(adminExitCodes)
                """)

        @Argument(help: "The directory to export.")
        var path: String

        @Option(name: .long, help: ArgumentHelp("Client spec, as in exports(5): vsock:CID, vsock:LOW-HIGH, vsock:*, an address or network, unix, *; optionally with (OPTS). Repeatable.", valueName: "spec"))
        var to: [String] = []

        @Option(name: .long, help: ArgumentHelp("Options for every client given, e.g. rw,no_root_squash (default: ro,root_squash,sync,no_subtree_check).", valueName: "opts"))
        var options: String?

        @OptionGroup var control: ControlOptions

        func validate() throws {
            guard !to.isEmpty else { throw ValidationError("give at least one client: --to vsock:CID (or another client spec)") }
        }

        func run() {
            let response = control.send(.exportAdd(path: absolutePath(path), clients: to, options: options))
            if !control.json { print(formatExportList(response.exports ?? []), terminator: "") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop exporting a directory (or stop exporting it to one client) on the running server.",
            discussion: """
                Clients of a removed export get NFS3ERR_STALE from their next call; a client removed \
                from an export others keep gets NFS3ERR_ACCES. \(adminExitCodes)
                """)

        @Argument(help: "The exported directory.")
        var path: String

        @Option(name: .long, help: ArgumentHelp("Remove only this client's rule (as written in the export).", valueName: "spec"))
        var from: String?

        @OptionGroup var control: ControlOptions

        func run() {
            let response = control.send(.exportRemove(path: absolutePath(path), client: from))
            if !control.json { print(formatExportList(response.exports ?? []), terminator: "") }
        }
    }
}

/// A path from the command line as the server names exports: an absolute path
/// as given (exports name paths literally, as the exports file does); a relative
/// one resolved against the working directory (the server has another).
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    if let resolved = realpath(path, nil) {
        defer { free(resolved) }
        return String(decoding: UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)), as: UTF8.self)
    }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
}

func formatExportList(_ exports: [ControlResponse.ExportEntry]) -> String {
    if exports.isEmpty { return "no exports\n" }
    let clientWidth = max(15, (exports.flatMap(\.clients).map(\.client.count).max() ?? 0) + 2)
    let optionsWidth = (exports.flatMap(\.clients).map(\.options.count).max() ?? 0) + 2
    return exports.map { export in
        var lines = ["\(export.path) (mounted as \(export.mountPath)\(export.fsid.map { ", fsid=\($0)" } ?? ""))"]
        for client in export.clients {
            lines.append("  " + client.client.padded(to: clientWidth) + client.options.padded(to: optionsWidth) + client.origin)
        }
        return lines.joined(separator: "\n")
    }.joined(separator: "\n\n") + "\n"
}

func formatStatus(_ status: ControlResponse.ServerStatus) -> String {
    var out = "vsnfs \(status.version), pid \(status.pid)\n\nlisteners\n"
    for listener in status.listeners { out += "  \(listener)\n" }
    out += "\nclients (\(status.clients.count) connected)\n"
    for client in status.clients {
        out += "  \(client.peer) on \(client.listener), connected \(client.connectedSeconds)s\n"
        let exports = client.exports.map { "\($0.mountPath) (\($0.access), as \($0.client))" }
        out += "    exports   " + (exports.isEmpty ? "none" : exports.joined(separator: ", ")) + "\n"
        out += "    NFS       " + (client.nfsVersions.isEmpty ? "no calls yet" : client.nfsVersions.map { "v\($0)" }.joined(separator: ", "))
        out += "; sessions: \(client.sessions)\n"
        let operations = client.operations.map { "\($0.program) v\($0.version) \($0.procedure) \($0.count)" }
        out += "    calls     \(client.calls)" + (operations.isEmpty ? "" : ": " + operations.joined(separator: ", ")) + "\n"
        for nfs4 in client.nfs4Clients ?? [] {
            out += "    NFSv4     client \(nfs4.clientID)" + (nfs4.confirmed ? "" : " (unconfirmed)") + ", sessions "
                + (nfs4.sessions.isEmpty ? "none" : nfs4.sessions.joined(separator: ", ")) + "\n"
            let counted = nfs4.operations.map { "\($0.operation) \($0.count)" }
            out += "    ops       " + (counted.isEmpty ? "none yet" : counted.joined(separator: ", ")) + "\n"
        }
    }
    out += "\nvsock sockets (the kernel's vsock_diag)\n"
    if let sockets = status.vsockSockets {
        out += sockets.isEmpty ? "  none\n" : sockets.map { "  \($0)\n" }.joined()
    } else {
        out += "  unavailable: \(status.vsockSocketsUnavailable ?? "unknown")\n"
    }
    out += "\nauth table (as knfsd's auth.unix.ip)\n"
    let peerWidth = max(14, (status.authTable.map(\.peer.count).max() ?? 0) + 2)
    let domainWidth = max(14, (status.authTable.map(\.domain.count).max() ?? 0) + 2)
    out += "  " + "#class".padded(to: 8) + "peer".padded(to: peerWidth) + "domain".padded(to: domainWidth) + "exports\n"
    for row in status.authTable {
        out += "  " + row.class.padded(to: 8) + row.peer.padded(to: peerWidth) + row.domain.padded(to: domainWidth)
            + row.exports.joined(separator: ",") + "\n"
    }
    return out
}

extension String {
    func padded(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
