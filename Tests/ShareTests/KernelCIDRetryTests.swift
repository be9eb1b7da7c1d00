#if canImport(Glibc)
import Glibc
#endif
@testable import Share
import Testing

/// The kernel vhost-vsock path's retry on a CID in use, against a fake QEMU
/// that fails as QEMU 7.2 does when another VM holds the guest CID.
@Suite struct KernelCIDRetryTests {
    /// A script standing in for qemu-system-x86_64: CIDs listed in TAKEN fail
    /// with QEMU's message and status 1; any other CID "boots" and exits 7.
    static func fakeQEMU(taken: [UInt32]) throws -> String {
        var template = Array("/tmp/vsnfs-fake-qemu.XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw POSIXFailure(what: "mkdtemp") }
        let path = String(cString: dir) + "/qemu-system-x86_64"
        let cases = taken.map { "*guest-cid=\($0)*) fail ;;" }.joined(separator: " ")
        let script = """
            #!/bin/sh
            fail() { echo "qemu-system-x86_64: -device $dev: vhost-vsock: unable to set guest cid: Address already in use" >&2; exit 1; }
            for a in "$@"; do case $a in vhost-vsock*) dev=$a ;; esac; done
            case $dev in \(cases) esac
            echo "booted with $dev" >&2
            exit 7
            """
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o755)
        guard fd >= 0 else { throw POSIXFailure(what: "open \(path)") }
        _ = script.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        return path
    }

    struct POSIXFailure: Error { var what: String }

    static func remove(_ script: String) {
        unlink(script)
        rmdir(String(script[..<script.lastIndex(of: "/")!]))
    }

    @Test func aTakenCIDMovesToTheNextFreeOne() throws {
        let qemu = try Self.fakeQEMU(taken: [3, 4])
        defer { Self.remove(qemu) }
        var launched: [UInt32] = [], given: [UInt32] = []
        let outcome = try KernelCIDRetry.run(firstCID: 3, userChose: false, launch: { cid in
            launched.append(cid)
            let command = try QEMUCommand([qemu, "-m", "256"]).rewritten(vsock: .kernel(cid: cid), mounts: [])
            let process = try QEMUProcess(arguments: command.arguments, watchStderr: true)
            return (process.wait(), process.reportedCIDInUse)
        }, willRetry: { given.append($0) })
        #expect(outcome == KernelCIDRetry.Outcome(status: 7, cid: 5, chosenCIDInUse: false))
        #expect(launched == [3, 4, 5])
        #expect(given == [3, 4])
    }

    @Test func aCIDTheUserChoseIsNotChanged() throws {
        let qemu = try Self.fakeQEMU(taken: [9])
        defer { Self.remove(qemu) }
        var launched: [UInt32] = []
        let outcome = try KernelCIDRetry.run(firstCID: 9, userChose: true, launch: { cid in
            launched.append(cid)
            let process = try QEMUProcess(arguments: [qemu, "-device", "vhost-vsock-pci,guest-cid=\(cid)"], watchStderr: true)
            return (process.wait(), process.reportedCIDInUse)
        })
        #expect(outcome == KernelCIDRetry.Outcome(status: 1, cid: 9, chosenCIDInUse: true))
        #expect(launched == [9])
    }

    @Test func otherFailuresAreNotRetried() throws {
        var launched = 0
        let outcome = KernelCIDRetry.run(firstCID: 3, userChose: false, launch: { _ in launched += 1; return (1, false) })
        #expect(outcome.status == 1 && launched == 1)
    }

    @Test func aSignalWhileNoQEMURunsGoesToTheNextOne() throws {
        let running = RunningQEMU()
        running.signal(SIGTERM)   // e.g. between two CID attempts
        let p = try QEMUProcess(arguments: ["/bin/sh", "-c", "sleep 30"], watchStderr: false)
        running.set(p)
        #expect(p.wait() == 128 + SIGTERM)
    }

    @Test func exitStatusAndDeathBySignal() throws {
        #expect(try QEMUProcess(arguments: ["/bin/sh", "-c", "exit 42"], watchStderr: false).wait() == 42)
        let p = try QEMUProcess(arguments: ["/bin/sh", "-c", "sleep 30"], watchStderr: false)
        p.signal(SIGTERM)
        #expect(p.wait() == 128 + SIGTERM)
        #expect(throws: QEMUProcess.SpawnError.self) { try QEMUProcess(arguments: ["/nonexistent/qemu"], watchStderr: false) }
        #expect(QEMUProcess.locate("sh") != nil)
        #expect(QEMUProcess.locate("vsnfs-no-such-qemu") == nil)
    }
}
