import Foundation
import Testing

/// `vsnfs share` as a person runs it, with a fake QEMU (a shell script):
/// --dry-run changes nothing, each refusal is one line, and a real run
/// serves on a private vhost-user socket, passes SIGTERM on to QEMU,
/// returns QEMU's status and removes its socket directory.
@Suite struct ShareCLITests {
    /// A directory with `share/`, an empty `tmp/` (vsnfs share's TMPDIR) and
    /// `fake-qemu`, which records its arguments in `args`, and on SIGTERM
    /// exits 5.
    struct Fixture {
        let root: URL
        var share: String { root.appendingPathComponent("share").path }
        var tmp: String { root.appendingPathComponent("tmp").path }
        var qemu: String { root.appendingPathComponent("fake-qemu").path }
        var argsFile: String { root.appendingPathComponent("args").path }

        init() throws {
            root = try makeTemporaryDirectory("vsnfs-share-test")
            for d in ["share", "tmp"] {
                try FileManager.default.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true)
            }
            try """
                #!/bin/sh
                trap 'exit 5' TERM
                printf '%s\\n' "$@" > '\(argsFile).tmp' && mv '\(argsFile).tmp' '\(argsFile)'
                while :; do sleep 0.05; done
                """.write(toFile: qemu, atomically: true, encoding: .utf8)
            chmod(qemu, 0o755)
        }

        func remove() { try? FileManager.default.removeItem(at: root) }

        /// `vsnfs share ARGS` with TMPDIR=tmp, run to completion.
        func share(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
            let o = try runChild("/usr/bin/env", ["TMPDIR=\(tmp)", ServerProcess.vsnfsPath, "share"] + arguments, timeout: 60)
            return (o.status, String(decoding: o.stdout, as: UTF8.self), o.stderr)
        }

        func tmpIsEmpty() throws -> Bool { try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty }
    }

    @Test func dryRunPrintsTheCommandAndExportsAndChangesNothing() throws {
        let f = try Fixture()
        defer { f.remove() }
        let r = try f.share(["\(f.share):/mnt/s", "--vsock", "user", "--dry-run", "--", f.qemu, "-M", "q35", "-m", "256"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "vsock: vsnfs's vhost-user-vsock device on ${TMPDIR:-/tmp}/vsnfs-share.XXXXXX/vsock.sock, guest CID 3")
        #expect(lines.contains("qemu: \(f.qemu) -M q35 -m 256 -object memory-backend-memfd,id=vsnfs-mem,size=256M,share=on -machine memory-backend=vsnfs-mem -chardev 'socket,id=vsnfs-vsock,path=${TMPDIR:-/tmp}/vsnfs-share.XXXXXX/vsock.sock' -device vhost-user-vsock-pci,chardev=vsnfs-vsock -fw_cfg name=opt/vsnfs/mount,string=2:\(f.share):/mnt/s"), "\(r.out)")
        #expect(lines.contains("  \(f.share) (mounted as \(f.share))"), "\(r.out)")
        #expect(lines.contains { $0.hasPrefix("    vsock:3 ") && $0.contains("rw,root_squash") }, "\(r.out)")
        #expect(try f.tmpIsEmpty())
        #expect(!FileManager.default.fileExists(atPath: f.argsFile), "QEMU ran in a dry run")
    }

    @Test func dryRunWithAnExportsFileShowsTheFile() throws {
        let f = try Fixture()
        defer { f.remove() }
        let file = f.root.appendingPathComponent("exports").path
        try "\(f.share) vsock:7(ro,all_squash)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let r = try f.share([f.share, "--cid", "7", "--exports", file, "--vsock", "user", "--dry-run", "--", f.qemu])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("guest CID 7"), "\(r.out)")
        #expect(r.out.contains("ro,all_squash"), "\(r.out)")
    }

    @Test func refusalsAreOneLineEach() throws {
        let f = try Fixture()
        defer { f.remove() }
        for (arguments, says) in [
            (["/nonexistent/vsnfs-share", "--", f.qemu], "/nonexistent/vsnfs-share: no such directory"),
            ([f.share, "--", "/nonexistent/qemu-system-x86_64"], "not found; install QEMU"),
            ([f.share, "--vsock", "user", "--", f.qemu, "-device", "vhost-vsock-pci,guest-cid=4"],
             "already has a vsock device (-device vhost-vsock-pci): remove it"),
            ([f.share, "--vsock", "user", "--", f.qemu, "-mem-path", "/dev/hugepages"], "remove -mem-path"),
            ([f.share, "--cid", "2", "--", f.qemu], "give 3 or more"),
            ([f.share], "no QEMU command"),
        ] {
            let r = try f.share(arguments)
            #expect(r.status != 0)
            #expect(r.err.split(separator: "\n").count == 1, "\(arguments): \(r.err)")
            #expect(r.err.hasPrefix("vsnfs: ") && r.err.contains(says), "\(arguments): \(r.err)")
        }
        #expect(try f.tmpIsEmpty())
    }

    @Test func theKernelDeviceIsChosenOnlyWhenUsable() throws {
        let f = try Fixture()
        defer { f.remove() }
        let r = try f.share([f.share, "--dry-run", "--", f.qemu])
        if access("/dev/vhost-vsock", R_OK | W_OK) == 0 {
            #expect(r.out.hasPrefix("vsock: the kernel's vhost-vsock"), "\(r.out)")
        } else if FileManager.default.fileExists(atPath: "/dev/vhost-vsock") {
            #expect(r.err.contains("is not accessible to you: join its group"), "\(r.err)")
        } else {
            #expect(r.out.hasPrefix("vsock: vsnfs's vhost-user-vsock device"), "\(r.out)")
            let forced = try f.share([f.share, "--vsock", "kernel", "--", f.qemu])
            #expect(forced.status != 0)
            #expect(forced.err == "vsnfs: /dev/vhost-vsock does not exist: load the vhost_vsock module (modprobe vhost_vsock), or use --vsock user\n")
        }
    }

    @Test func aRunPassesSIGTERMOnAndReturnsQEMUsStatus() throws {
        let f = try Fixture()
        defer { f.remove() }
        let state = f.root.appendingPathComponent("state").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.vsnfsPath)
        process.arguments = ["share", f.share, "--vsock", "user", "--state-dir", state, "--", f.qemu, "-m", "64"]
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": f.tmp]) { $1 }
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: f.argsFile) && Date() < deadline && process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let args = (try? String(contentsOfFile: f.argsFile, encoding: .utf8)) ?? ""
        #expect(args.contains("vhost-user-vsock-pci,chardev=vsnfs-vsock"), "QEMU got: \(args)")
        #expect(args.contains("name=opt/vsnfs/mount,string=2:\(f.share):\(f.share)"), "QEMU got: \(args)")
        // The server listens on the private socket while QEMU runs.
        let dirs = try FileManager.default.contentsOfDirectory(atPath: f.tmp)
        #expect(dirs.count == 1 && dirs[0].hasPrefix("vsnfs-share."), "\(dirs)")
        var st = stat()
        #expect(dirs.count == 1 && stat("\(f.tmp)/\(dirs[0])/vsock.sock", &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK)
        kill(process.processIdentifier, SIGTERM)
        let exited = waitForExit(process, seconds: 20)
        if !exited { kill(process.processIdentifier, SIGKILL) }
        #expect(exited, "vsnfs share did not exit after SIGTERM")
        #expect(process.terminationStatus == 5, "the fake QEMU exits 5 on SIGTERM")
        #expect(try f.tmpIsEmpty(), "the private socket directory is left")
    }
}
