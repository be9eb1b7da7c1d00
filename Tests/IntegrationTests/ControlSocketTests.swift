import Control
import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// `vsnfs status` and `vsnfs export list/add/remove` against a running
/// `vsnfs serve`, through its control socket; what they change is seen by an
/// independent NFSv3 client (libnfs) and by our raw one.
@Suite struct ControlSocketTests {
    /// Runs `vsnfs ARGS --control PATH [--json]`; with --json, stdout parsed as one JSON object.
    func admin(_ server: ServerProcess, _ arguments: [String], json: Bool = true) throws -> (status: Int32, json: [String: Any], stdout: String, stderr: String) {
        let control = try #require(server.controlPath)
        let (status, out, err) = try ServerProcess.run(arguments + ["--control", control] + (json ? ["--json"] : []))
        var object: [String: Any] = [:]
        if json {
            let parsed = try JSONSerialization.jsonObject(with: Data(out.utf8))
            object = try #require(parsed as? [String: Any], "--json printed \(out)")
        }
        return (status, object, out, err)
    }

    func exports(_ object: [String: Any]) throws -> [String: [[String: Any]]] {
        let list = try #require(object["exports"] as? [[String: Any]], "no exports in \(object)")
        var byPath: [String: [[String: Any]]] = [:]
        for entry in list {
            byPath[try #require(entry["path"] as? String)] = try #require(entry["clients"] as? [[String: Any]])
        }
        return byPath
    }

    @Test func anExportAddedAtRuntimeIsServedToLibnfsAndKeptAcrossReload() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let shared = dir.appendingPathComponent("shared").path
        let added = dir.appendingPathComponent("added").path
        for path in [shared, added] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let content = randomBytes(200_000)
        try content.write(to: URL(fileURLWithPath: added + "/data"))

        let server = try ServerProcess([shared, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }
        let url = Libnfs.url(port: server.tcpPort, added + "/")
        #expect(try Libnfs.run("nfs-ls", [url]).status != 0, "not exported yet")

        let add = try admin(server, ["export", "add", added, "--to", "127.0.0.1", "--options", "rw"])
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.json["ok"] as? Bool == true)
        let afterAdd = try exports(add.json)
        let rule = try #require(afterAdd[added]?.first)
        #expect(rule["client"] as? String == "127.0.0.1")
        #expect((rule["options"] as? String)?.hasPrefix("rw,root_squash,") == true, "\(rule)")
        #expect(rule["origin"] as? String == "runtime")
        #expect(afterAdd[shared]?.first?["origin"] as? String == "directory")

        let listing = try Libnfs.run("nfs-ls", [url])
        #expect(listing.status == 0, "\(listing.stderr)")
        #expect(String(decoding: listing.stdout, as: UTF8.self).contains("data"))
        let copy = dir.appendingPathComponent("copy").path
        try Libnfs.check("nfs-cp", [Libnfs.url(port: server.tcpPort, added + "/data"), copy])
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == content)

        // A reload re-reads the base (here DIR) and keeps the runtime export.
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports: 2 export(s)")
        let list = try admin(server, ["export", "list"])
        #expect(list.status == 0)
        #expect(try exports(list.json)[added]?.first?["origin"] as? String == "runtime")
        #expect(try Libnfs.run("nfs-ls", [url]).status == 0)

        // Human output: the table, with the origin of each rule.
        let table = try admin(server, ["export", "list"], json: false)
        #expect(table.stdout.contains("\(added) (mounted as \(added))"), "\(table.stdout)")
        #expect(table.stdout.contains("runtime"), "\(table.stdout)")
    }

    /// An add is checked as an exports line is: the same message `vsnfs exports
    /// check` prints for the same option; a missing directory, the same reason.
    @Test func aBadAddGetsTheExportsCheckErrorAndExitsOne() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ServerProcess([dir.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }

        let file = dir.appendingPathComponent("exports")
        try "\(dir.path) 127.0.0.1(rw,bogus)\n".write(to: file, atomically: true, encoding: .utf8)
        let check = try ServerProcess.run(["exports", "check", file.path])
        #expect(check.0 != 0)
        // "FILE:1:COLUMN: message"
        let message = try #require(check.2.split(separator: ": ", maxSplits: 1).last.map(String.init))
            .trimmingCharacters(in: .newlines)
        #expect(message.contains("bogus"))

        let bad = try admin(server, ["export", "add", dir.path, "--to", "127.0.0.1", "--options", "rw,bogus"])
        #expect(bad.status == 1)
        #expect(bad.json["ok"] as? Bool == false)
        #expect((bad.json["error"] as? String)?.hasSuffix(message) == true, "\(bad.json) vs \(message)")
        #expect(bad.stderr.hasPrefix("vsnfs: ") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")

        let missing = try admin(server, ["export", "add", "/nonexistent/vsnfs-added", "--to", "127.0.0.1"], json: false)
        #expect(missing.status == 1)
        #expect(missing.stderr == "vsnfs: export directory /nonexistent/vsnfs-added: No such file or directory\n", "\(missing.stderr)")

        let notExported = try admin(server, ["export", "remove", "/nonexistent/vsnfs-added"])
        #expect(notExported.status == 1)
        #expect(notExported.json["error"] as? String == "/nonexistent/vsnfs-added is not exported")

        let usage = try admin(server, ["export", "add", dir.path], json: false)
        #expect(usage.status == 64, "\(usage.stderr)")

        let (unreachable, out, err) = try ServerProcess.run(["status", "--control", dir.path + "/no-server", "--json"])
        #expect(unreachable == 2)
        #expect(err.contains("cannot reach vsnfs at \(dir.path)/no-server"), "\(err)")
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        #expect(object?["ok"] as? Bool == false)
    }

    /// Removing an export a client is using: its next call is NFS3ERR_STALE
    /// (libnfs in the middle of a read fails). Removing one client of an export
    /// others keep: that client's next call is NFS3ERR_ACCES. Both outlast a
    /// reload of the exports file; an add brings the old handles back.
    @Test func removingAnExportInUseGivesStaleAndRemovingAClientGivesAccess() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let kept = dir.appendingPathComponent("kept").path
        let removed = dir.appendingPathComponent("removed").path
        for path in [kept, removed] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let content = randomBytes(3 << 20)
        try content.write(to: URL(fileURLWithPath: removed + "/data"))
        try Data("kept".utf8).write(to: URL(fileURLWithPath: kept + "/file"))
        let exportsFile = dir.appendingPathComponent("exports")
        try "\(kept) 127.0.0.1(rw) 10.9.9.9(rw)\n\(removed) 127.0.0.1(rw)\n".write(to: exportsFile, atomically: true, encoding: .utf8)

        let server = try ServerProcess(["--exports", exportsFile.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }
        let client = try NFS3TestClient(port: server.tcpPort)
        let removedRoot = try client.rootHandle(removed)
        guard case .ok(let foundData) = try client.lookup(removedRoot, "data") else { Issue.record("LOOKUP data"); return }
        let keptRoot = try client.rootHandle(kept)
        guard case .ok(let foundFile) = try client.lookup(keptRoot, "file") else { Issue.record("LOOKUP file"); return }
        let cat = try PausedNFSCat(Libnfs.url(port: server.tcpPort, removed + "/data"))

        let remove = try admin(server, ["export", "remove", removed])
        #expect(remove.status == 0, "\(remove.stderr)")
        #expect(try exports(remove.json)[removed] == nil)
        #expect(try client.getattr(foundData.object).status == .stale)
        #expect(try client.read(foundData.object, count: 1).status == .stale)
        let failed = try cat.finish()
        #expect(failed.status == 10 && failed.stderr.contains("Failed to read from file"), "\(failed.stderr)")
        #expect(failed.stdout.count < content.count && content.starts(with: failed.stdout))

        let fromOne = try admin(server, ["export", "remove", kept, "--from", "127.0.0.1"])
        #expect(fromOne.status == 0, "\(fromOne.stderr)")
        let keptRules = try #require(try exports(fromOne.json)[kept])
        #expect(keptRules.map { $0["client"] as? String } == ["10.9.9.9"])
        #expect(keptRules.first?["origin"] as? String == "file")
        #expect(try client.getattr(foundFile.object).status == .acces)
        #expect(try client.mount(kept) == .fail(.acces))

        // Runtime removals outlast a reload of the file that still lists them.
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports: 1 export(s)")
        #expect(try client.getattr(foundData.object).status == .stale)
        #expect(try client.getattr(foundFile.object).status == .acces)

        // Export ids are stable: the old handles work again once added back.
        let back = try admin(server, ["export", "add", removed, "--to", "127.0.0.1"])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try client.getattr(foundData.object).status == .ok)
        #expect(try client.getattr(foundFile.object).status == .acces)
    }

    @Test func statusListsEachClientWithItsExportsVersionsAndCallCounts() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let export = dir.appendingPathComponent("export").path
        let other = dir.appendingPathComponent("other").path
        for path in [export, other] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let exportsFile = dir.appendingPathComponent("exports")
        try "\(export) 127.0.0.0/8(ro)\n\(other) 10.9.9.9(rw)\n".write(to: exportsFile, atomically: true, encoding: .utf8)
        let server = try ServerProcess(["--exports", exportsFile.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }
        let client = try NFS3TestClient(port: server.tcpPort)
        let root = try client.rootHandle(export)
        for _ in 0..<3 { #expect(try client.getattr(root).status == .ok) }

        let status = try admin(server, ["status"])
        #expect(status.status == 0, "\(status.stderr)")
        let body = try #require(status.json["status"] as? [String: Any])
        #expect((body["listeners"] as? [String]) == ["tcp:127.0.0.1:\(server.tcpPort)"])
        let clients = try #require(body["clients"] as? [[String: Any]])
        #expect(clients.count == 1, "\(clients)")
        let ours = try #require(clients.first)
        #expect((ours["peer"] as? String)?.hasPrefix("tcp:127.0.0.1:") == true)
        #expect(ours["identity"] as? String == "127.0.0.1")
        #expect(ours["listener"] as? String == "tcp:127.0.0.1:\(server.tcpPort)")
        #expect(ours["nfsVersions"] as? [String] == ["3"])
        #expect(ours["sessions"] as? String == "none (NFSv3)")
        #expect(ours["calls"] as? Int == 4)
        let operations = try #require(ours["operations"] as? [[String: Any]])
        let counts = Dictionary(uniqueKeysWithValues: operations.map {
            ("\($0["program"] as? String ?? "?") v\($0["version"] as? Int ?? 0) \($0["procedure"] as? String ?? "?")", $0["count"] as? Int ?? 0)
        })
        #expect(counts == ["MOUNT v3 MNT": 1, "NFS v3 GETATTR": 3], "\(operations)")
        let exports = try #require(ours["exports"] as? [[String: Any]])
        #expect(exports.map { $0["path"] as? String } == [export], "only what 127.0.0.1 may mount")
        #expect(exports.first?["access"] as? String == "ro")
        #expect(exports.first?["client"] as? String == "127.0.0.0/8")
        let auth = try #require(body["authTable"] as? [[String: Any]])
        #expect(auth.count == 1)
        #expect(auth.first?["class"] as? String == "nfsd")
        #expect(auth.first?["peer"] as? String == "127.0.0.1")
        #expect(auth.first?["domain"] as? String == "127.0.0.0/8")
        // The kernel's vsock view is for vsock listeners; this server has none.
        #expect(body["vsockSocketsUnavailable"] as? String == "no vsock listener")
        #expect(body["vsockSockets"] == nil)

        let text = try admin(server, ["status"], json: false)
        #expect(text.status == 0)
        #expect(text.stdout.contains("NFS v3 GETATTR 3"), "\(text.stdout)")
        #expect(text.stdout.contains("sessions: none (NFSv3)"), "\(text.stdout)")
        #expect(text.stdout.contains("auth.unix.ip"), "\(text.stdout)")
        #expect(text.stdout.contains("vsock sockets (the kernel's vsock_diag)\n  unavailable: no vsock listener"),
                "\(text.stdout)")
    }

    /// An NFSv4.1 client's record, its session and the operations inside its
    /// COMPOUNDs (which the RPC counts see as COMPOUND only).
    @Test func statusShowsNFSv4ClientsWithTheirSessionsAndOperations() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let export = dir.appendingPathComponent("export").path
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        let exportsFile = dir.appendingPathComponent("exports")
        try "\(export) 127.0.0.1(rw)\n".write(to: exportsFile, atomically: true, encoding: .utf8)
        let server = try ServerProcess(["--exports", exportsFile.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }
        let client = NFS4TestClient(try RawRPCClient(tcpPort: server.tcpPort))
        try client.establishSession()
        let path = export.split(separator: "/").map(String.init)
        _ = try client.handle(path)
        _ = try client.handle(path)

        let status = try admin(server, ["status"])
        #expect(status.status == 0, "\(status.stderr)")
        let body = try #require(status.json["status"] as? [String: Any])
        let ours = try #require((body["clients"] as? [[String: Any]])?.first)
        #expect(ours["nfsVersions"] as? [String] == ["4"])
        #expect(ours["sessions"] as? String == "1 of 1 NFSv4 client(s)", "\(ours)")
        let records = try #require(ours["nfs4Clients"] as? [[String: Any]])
        #expect(records.count == 1, "\(records)")
        let record = try #require(records.first)
        #expect(record["clientID"] as? String == String(format: "%016llx", client.clientID))
        #expect(record["confirmed"] as? Bool == true)
        let session = String(format: "%016llx%016llx", client.sessionID.high, client.sessionID.low)
        #expect(record["sessions"] as? [String] == [session])
        let operations = try #require(record["operations"] as? [[String: Any]])
        let counts = Dictionary(uniqueKeysWithValues: operations.map { ($0["operation"] as? String ?? "?", $0["count"] as? Int ?? 0) })
        // Two sequenced COMPOUNDs: SEQUENCE PUTROOTFH LOOKUP... GETFH each.
        #expect(counts == ["SEQUENCE": 2, "PUTROOTFH": 2, "LOOKUP": 2 * path.count, "GETFH": 2], "\(operations)")
        #expect(operations.first?["operation"] as? String == "LOOKUP", "most used first: \(operations)")

        let text = try admin(server, ["status"], json: false)
        #expect(text.stdout.contains("sessions: 1 of 1 NFSv4 client(s)"), "\(text.stdout)")
        #expect(text.stdout.contains("NFSv4     client \(String(format: "%016llx", client.clientID)), sessions \(session)"),
                "\(text.stdout)")
        #expect(text.stdout.contains("SEQUENCE 2"), "\(text.stdout)")

        // DESTROY_SESSION and DESTROY_CLIENTID end the record: status no longer lists it.
        #expect(try client.compound([.destroySession(client.sessionID)]).statuses == [.ok])
        #expect(try client.compound([.destroyClientID(client.clientID)]).statuses == [.ok])
        let after = try admin(server, ["status"])
        let afterOurs = try #require(((after.json["status"] as? [String: Any])?["clients"] as? [[String: Any]])?.first)
        #expect((afterOurs["nfs4Clients"] as? [[String: Any]])?.isEmpty == true, "\(afterOurs)")
        #expect(afterOurs["sessions"] as? String == "none")
    }

    /// The socket is the server user's alone: 0600 in a 0700 directory; a second
    /// server on the same path is refused while the first lives, and takes it over
    /// once the first died without cleaning up; a peer of another uid is not answered.
    @Test func theControlSocketIsPrivateAndHeldByOneLiveServer() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let control = dir.appendingPathComponent("run/vsnfs/control").path
        let first = try ServerProcess([dir.path, "--listen", "tcp:127.0.0.1:0", "--control", control], expectListeners: 1)
        defer { first.stop() }
        try first.waitForLog("control socket \(control)")
        var st = stat()
        #expect(stat(control, &st) == 0 && st.st_mode & 0o777 == 0o600 && st.st_mode & S_IFMT == S_IFSOCK)
        #expect(stat(dir.path + "/run/vsnfs", &st) == 0 && st.st_mode & 0o777 == 0o700)

        let state = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let (refused, _, err) = try ServerProcess.run(["serve", dir.path, "--listen", "tcp:127.0.0.1:0",
                                                       "--state-dir", state.path, "--control", control])
        #expect(refused == 1)
        #expect(err.contains("another vsnfs is serving on \(control)"), "\(err)")

        // Another uid, with the mode and directory opened up: the peer check still refuses it.
        #expect(chmod(control, 0o666) == 0 && chmod(dir.path + "/run/vsnfs", 0o755) == 0 && chmod(dir.path + "/run", 0o755) == 0
                && chmod(dir.path, 0o755) == 0)
        let stranger = try runChild(try toolPath("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                                              ServerProcess.vsnfsPath, "status", "--control", control])
        #expect(stranger.status == 2, "\(stranger.stderr)")
        #expect(stranger.stderr.contains("closed the connection without answering"), "\(stranger.stderr)")
        try first.waitForLog("control socket: refused unix:uid=65534")

        first.kill()   // SIGKILL: the socket file stays behind
        let second = try ServerProcess([dir.path, "--listen", "tcp:127.0.0.1:0", "--control", control], expectListeners: 1)
        defer { second.stop() }
        try second.waitForLog("control socket \(control)")
        let (ok, _, statusErr) = try ServerProcess.run(["status", "--control", control])
        #expect(ok == 0, "\(statusErr)")
        second.stop()
        #expect(!FileManager.default.fileExists(atPath: control), "a clean exit removes the socket")
    }
}
