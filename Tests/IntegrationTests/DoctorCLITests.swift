import Foundation
import Testing

/// `vsnfs doctor` as a person runs it: exit status 0 when nothing failed, 1
/// otherwise, one line per check, and the same report as JSON.
@Suite struct DoctorCLITests {
    @Test func aHealthyConfigurationExitsZero() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let exports = dir.appendingPathComponent("exports").path
        try "\(dir.path) vsock:3(rw)\n".write(toFile: exports, atomically: true, encoding: .utf8)
        // A TCP listener and a vhost-user device socket: what this host can serve
        // whether or not its kernel has vsock; qemu is installed by .ci/run.
        let (status, out, err) = try ServerProcess.run([
            "doctor", "--exports", exports, "--state-dir", dir.appendingPathComponent("state").path,
            "--listen", "tcp:127.0.0.1:0", "--listen", "vhost-user:\(dir.path)/vm3.sock:cid=3",
        ])
        #expect(status == 0, "\(out)\(err)")
        let lines = out.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("ok    exports ") && $0.contains("1 export(s)") }, "\(out)")
        #expect(lines.contains { $0.hasPrefix("ok    listen tcp:127.0.0.1:0 ") }, "\(out)")
        #expect(lines.contains { $0.hasPrefix("ok    listen vhost-user:\(dir.path)/vm3.sock:cid=3 ") }, "\(out)")
        #expect(lines.last?.contains(" 0 failed,") == true, "\(out)")
    }

    @Test func aFailedCheckExitsOneAndTheJSONSaysWhich() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let exports = dir.appendingPathComponent("exports").path
        try "\(dir.path) vsock:3(rw,bogus)\n".write(toFile: exports, atomically: true, encoding: .utf8)
        let arguments = ["doctor", "--exports", exports, "--state-dir", dir.path, "--listen", "tcp:127.0.0.1:0"]
        let (status, out, _) = try ServerProcess.run(arguments)
        #expect(status == 1)
        let failures = out.split(separator: "\n").filter { $0.hasPrefix("FAIL ") }
        #expect(failures.count == 1 && failures[0].contains("exports") && failures[0].contains("\(exports):1:"), "\(out)")
        #expect(out.contains("fix: correct \(exports)"), "\(out)")

        let (jsonStatus, json, _) = try ServerProcess.run(arguments + ["--json"])
        #expect(jsonStatus == 1)
        let report = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(report?["ok"] as? Bool == false, "\(json)")
        let checks = report?["checks"] as? [[String: String]] ?? []
        let exportsCheck = checks.first { $0["name"] == "exports" }
        #expect(exportsCheck?["verdict"] == "fail", "\(json)")
        #expect(exportsCheck?["fix"]?.contains("vsnfs exports check") == true)
        // Every text line has its JSON entry.
        #expect(checks.count == out.split(separator: "\n").filter { !$0.hasPrefix(" ") }.count - 1, "\(json)")
    }

    /// libnl-3 and libtirpc are loaded when doctor runs: hidden (an empty
    /// file bind-mounted over each, in a private mount namespace), doctor
    /// names the package to install and goes on with the other checks.
    @Test func missingLibrariesAreNamedWithTheirPackage() throws {
        #expect(geteuid() == 0, "this test hides the libraries with a bind mount: run it as root")
        let hide = ["libnl-3.so.200", "libtirpc.so.3"].map { soname in
            "p=$(ldconfig -p | awk -v n=\(soname) '$1 == n && /x86-64/ { print $NF; exit }') && [ -n \"$p\" ] && mount --bind /dev/null \"$p\""
        }.joined(separator: " && ")
        let script = "\(hide) && exec '\(ServerProcess.vsnfsPath)' doctor --listen tcp:127.0.0.1:0 --state-dir /tmp"
        let result = try runChild(try toolPath("unshare"), ["-m", "sh", "-c", script], timeout: 60)
        let out = String(decoding: result.stdout, as: UTF8.self)
        let lines = out.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("warn  vsock-sockets ") && $0.contains("libnl-3 not installed") }, "\(out)\(result.stderr)")
        #expect(lines.contains { $0.contains("fix: apt-get install libnl-3-200") }, "\(out)")
        #expect(lines.contains { $0.hasPrefix("warn  rpcbind ") && $0.contains("libtirpc not installed") }
                    || lines.contains { $0.hasPrefix("warn  rpcbind ") && $0.contains("sanitizer build") }, "\(out)")
        #expect(lines.contains { $0.hasPrefix("ok    state-dir ") }, "\(out)")
    }

    @Test func aBadListenSpecIsOneLineAndUsageStatus() throws {
        let (status, _, err) = try ServerProcess.run(["doctor", "--listen", "tcp:nowhere"])
        #expect(status == 64)
        #expect(err.split(separator: "\n").count == 1 && err.contains("invalid listen spec 'tcp:nowhere'"), "\(err)")
    }
}
