import ArgumentParser
import Exports
import HostChecks
import Logging
import ONCRPC
import Server
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
        subcommands: [Serve.self, ExportsCommand.self, DoctorCommand.self])
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

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { fail("unknown log level '\(logLevel)'", code: 64) }
        guard maxRecordSize >= 1024, maxRecordSize < Int(RecordMarking.lastFragmentBit) else {
            fail("--max-record-size must be between 1024 and \(RecordMarking.lastFragmentBit - 1)", code: 64)
        }
        guard maxCallsInFlight >= 1 else { fail("--max-calls-in-flight must be at least 1", code: 64) }
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

        let configuration = VSNFSServer.Configuration(
            exports: source,
            rpc: RPCServer.Configuration(listen: specs, maximumRecordSize: maxRecordSize, maximumCallsInFlight: maxCallsInFlight),
            stateDirectory: stateDir, threads: threads, openFiles: openFiles, registerWithRPCBind: rpcbind)
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
