import Foundation
import Testing

/// The operator-facing errors of `vsnfs`: one line, non-zero exit.
@Suite struct CLITests {
    @Test func exportsCheckPrintsTheResolvedTable() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("exports")
        try "\(dir.path) vsock:3(rw,no_root_squash) vsock:*(ro)\n".write(to: file, atomically: true, encoding: .utf8)
        let (status, out, err) = try ServerProcess.run(["exports", "check", file.path])
        #expect(status == 0, "\(err)")
        #expect(out.contains(dir.path))
        #expect(out.contains("vsock:3"))
        #expect(out.contains("rw,no_root_squash"))
        #expect(out.contains("vsock:*"))
    }

    @Test func exportsCheckReportsEveryErrorWithLineAndColumn() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("exports")
        try "\(dir.path) vsock:3(rw,bogus)\nrelative vsock:*(ro)\n".write(to: file, atomically: true, encoding: .utf8)
        let (status, _, err) = try ServerProcess.run(["exports", "check", file.path])
        #expect(status != 0)
        let lines = err.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("\(file.path):1:") && $0.contains("bogus") }, "\(err)")
        #expect(lines.contains { $0.hasPrefix("\(file.path):2:1:") }, "\(err)")
    }

    @Test func exportsCheckPrintsIdMapsAndPlacesOverlapsAtTheirColumn() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("exports")
        try "\(dir.path) vsock:3(rw,map_uid=1000:501:1,map_uid=2000:3000:10,map_gid=1000:20)\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let (status, out, err) = try ServerProcess.run(["exports", "check", file.path])
        #expect(status == 0, "\(err)")
        #expect(out.contains("map_uid=1000:501:1,map_uid=2000:3000:10,map_gid=1000:20:1"), "\(out)")

        let prefix = "\(dir.path) vsock:3(map_uid=1000:501:10,"
        try (prefix + "map_uid=1005:9000:1)\n").write(to: file, atomically: true, encoding: .utf8)
        let (badStatus, _, badErr) = try ServerProcess.run(["exports", "check", file.path])
        #expect(badStatus != 0)
        #expect(badErr.hasPrefix("\(file.path):1:\(prefix.count + 1): map_uid=1005:9000:1 overlaps map_uid=1000:501:10"),
                "\(badErr)")
    }

    @Test func exportsCheckNamesAMissingDirectory() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("exports")
        try "/nonexistent/vsnfs-test vsock:*(ro)\n".write(to: file, atomically: true, encoding: .utf8)
        let (status, _, err) = try ServerProcess.run(["exports", "check", file.path])
        #expect(status != 0)
        #expect(err.contains("/nonexistent/vsnfs-test"), "\(err)")
        #expect(err.contains("No such file or directory"), "\(err)")
    }

    @Test func serveRefusesAMissingDirectoryInOneLine() throws {
        let (status, _, err) = try ServerProcess.run(["serve", "/nonexistent/vsnfs-dir", "--listen", "tcp:127.0.0.1:0"])
        #expect(status != 0)
        #expect(err.split(separator: "\n").count == 1, "\(err)")
        #expect(err.contains("/nonexistent/vsnfs-dir"), "\(err)")
    }

    @Test func serveRefusesAPortInUseInOneLine() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try ServerProcess([dir.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { first.stop() }
        let state = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let (status, _, err) = try ServerProcess.run(["serve", dir.path, "--listen", "tcp:127.0.0.1:\(first.tcpPort)",
                                                      "--state-dir", state.path])
        #expect(status != 0)
        #expect(err.contains("address already in use"), "\(err)")
        #expect(err.split(separator: "\n").filter { $0.hasPrefix("vsnfs:") }.count == 1, "\(err)")
    }

    @Test func serveRefusesABadListenSpec() throws {
        let (status, _, err) = try ServerProcess.run(["serve", "/tmp", "--listen", "udp:1:2"])
        #expect(status != 0)
        #expect(err.contains("invalid listen spec 'udp:1:2'"), "\(err)")
    }

    @Test func serveRefusesAnUnusableStateDirectory() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let blocker = dir.appendingPathComponent("file")
        try Data().write(to: blocker)
        let (status, _, err) = try ServerProcess.run(["serve", dir.path, "--listen", "tcp:127.0.0.1:0",
                                                      "--state-dir", blocker.path + "/state"])
        #expect(status != 0)
        // One line: the path, the reason in words, what to do.
        #expect(err.split(separator: "\n").count == 1, "\(err)")
        #expect(err.contains("state directory \(blocker.path)/state: a part of the path is not a directory"), "\(err)")
        #expect(err.contains("mkdir -p \(blocker.path)/state") && err.contains("or pass --state-dir"), "\(err)")
        #expect(!err.contains("errno"), "\(err)")
    }

    @Test func serveRefusesAnEmptyStateDirectory() throws {
        let (status, _, err) = try ServerProcess.run(["serve", "/tmp", "--listen", "tcp:127.0.0.1:0", "--state-dir", ""])
        #expect(status == 64)
        #expect(err == "vsnfs: --state-dir is empty: give a directory, or leave the option out for the default\n", "\(err)")
    }

    /// Each default is printed once, by the argument parser.
    @Test func serveHelpPrintsEachDefaultOnce() throws {
        let (status, out, _) = try ServerProcess.run(["serve", "--help"])
        #expect(status == 0)
        let all = out.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard let options = all.range(of: "OPTIONS:") else { Issue.record("no OPTIONS in --help: \(out)"); return }
        let flat = all[options.upperBound...]
        for option in ["--threads", "--max-record-size", "--max-calls-in-flight", "--log-level", "--open-files", "--state-dir", "--listen"] {
            guard let start = flat.range(of: option + " <") else { Issue.record("no \(option) in --help"); continue }
            let rest = flat[start.upperBound...]
            let end = rest.range(of: " --")?.lowerBound ?? rest.endIndex
            let text = rest[..<end].lowercased()
            #expect(text.components(separatedBy: "default").count <= 2, "\(option): \(text)")
        }
    }

    @Test func serveCreatesAMissingStateDirectoryWithItsParents() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("var/lib/vsnfs").path
        let server = try ServerProcess([dir.path, "--listen", "tcp:127.0.0.1:0"], stateDirectory: state)
        defer { server.stop() }
        let attributes = try FileManager.default.attributesOfItem(atPath: state)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        #expect(FileManager.default.fileExists(atPath: state + "/handle-key"))
    }

    @Test func bothBinariesPrintTheirVersion() throws {
        let (status, out, _) = try ServerProcess.run(["--version"])
        #expect(status == 0)
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines).first?.isNumber == true, "\(out)")
        let mount = try runChild(ServerProcess.binDirectory.appendingPathComponent("vsnfs-mount").path, ["--version"], timeout: 30)
        #expect(mount.status == 0)
        #expect(String(decoding: mount.stdout, as: UTF8.self) == out)
    }

    /// The guest helper names itself as it was invoked (mount(8) runs it as
    /// mount.vsnfs), and takes the product's own address form vsock:CID:/PATH.
    @Test func mountHelperNamesItselfAsInvokedAndTakesVsockSpecs() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let helper = ServerProcess.binDirectory.appendingPathComponent("vsnfs-mount").path
        let alias = dir.appendingPathComponent("mount.vsnfs").path
        try FileManager.default.createSymbolicLink(atPath: alias, withDestinationPath: helper)
        let help = try runChild(alias, ["--help"], timeout: 30)
        #expect(String(decoding: help.stdout, as: UTF8.self).contains("USAGE: mount.vsnfs "))
        let ownHelp = try runChild(helper, ["--help"], timeout: 30)
        #expect(String(decoding: ownHelp.stdout, as: UTF8.self).contains("USAGE: vsnfs-mount "))
        // Both spec forms parse; the mount point is checked next, and fails here.
        for spec in ["2:/srv", "vsock:2:/srv"] {
            let r = try runChild(alias, [spec, dir.path + "/missing"], timeout: 30)
            #expect(r.status != 0)
            #expect(r.stderr == "mount.vsnfs: mount point \(dir.path)/missing is not a directory\n", "\(spec): \(r.stderr)")
        }
        let bad = try runChild(helper, ["vsock:x:/srv", dir.path], timeout: 30)
        #expect(bad.stderr.contains("bad SPEC 'vsock:x:/srv': 'x' is not a vsock CID"), "\(bad.stderr)")
    }

    @Test func sigtermStopsTheServerCleanly() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ServerProcess([dir.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        #expect(server.stop() == 0)
    }
}
