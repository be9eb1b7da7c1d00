import Exports
import GuestMounts
import Share
import Testing

@Suite struct SharePlanTests {
    let dirs = [SharedDirectory(hostPath: "/home/me/src"), SharedDirectory(hostPath: "/srv/data", guestPath: "/data")]

    @Test func exportsGrantTheGuestCIDOnlyReadWriteWithRootSquash() throws {
        let plan = try SharePlan(directories: dirs, readOnly: false, cid: 5, vsock: .user(socket: "/s"))
        #expect(plan.exports.map(\.hostPath) == ["/home/me/src", "/srv/data"])
        #expect(plan.exports.map(\.mountPath) == ["/home/me/src", "/srv/data"])
        for export in plan.exports {
            #expect(export.clients == [ClientRule(client: .vsockCID(5), options: ExportOptions(readOnly: false, squash: .rootSquash))])
        }
        #expect(GuestMount.list(plan.mounts) == "2:/home/me/src:/home/me/src;2:/srv/data:/data")
    }

    @Test func readOnlyExportsAndMounts() throws {
        let plan = try SharePlan(directories: dirs, readOnly: true, cid: 3, vsock: .kernel(cid: 3))
        #expect(plan.exports.allSatisfy { $0.clients.allSatisfy { $0.options.readOnly } })
        #expect(plan.mounts.allSatisfy { $0.options == ["ro"] })
    }

    @Test func anotherServerPortIsPassedToTheGuest() throws {
        let plan = try SharePlan(directories: [dirs[0]], readOnly: true, cid: 3, vsock: .kernel(cid: 3), port: 2051)
        #expect(GuestMount.list(plan.mounts) == "2:/home/me/src:/home/me/src:ro,port=2051")
    }

    @Test func oneGuestPathTwiceIsRefused() {
        let error = #expect(throws: ShareCommandError.self) {
            try SharePlan(directories: [SharedDirectory(hostPath: "/a", guestPath: "/m"), SharedDirectory(hostPath: "/b", guestPath: "/m")],
                          readOnly: false, cid: 3, vsock: .kernel(cid: 3))
        }
        #expect(error?.description.contains("DIR:GUESTPATH") == true)
    }

    @Test func dryRunOutputExactly() throws {
        let plan = try SharePlan(directories: dirs, readOnly: false, cid: 3, vsock: .user(socket: "/tmp/vsnfs-share.XXXXXX/vsock.sock"))
        let qemu = QEMUCommand(["qemu-system-x86_64", "-M", "q35", "-m", "1G", "-nographic", "-kernel", "vmlinuz",
                                "-append", "console=ttyS0 quiet"])
        #expect(try plan.dryRun(qemu) == """
            vsock: vsnfs's vhost-user-vsock device on /tmp/vsnfs-share.XXXXXX/vsock.sock, guest CID 3
            qemu: qemu-system-x86_64 -M q35 -m 1G -nographic -kernel vmlinuz -append 'console=ttyS0 quiet vsnfs.mount=2:/home/me/src:/home/me/src;2:/srv/data:/data' -object memory-backend-memfd,id=vsnfs-mem,size=1024M,share=on -machine memory-backend=vsnfs-mem -chardev socket,id=vsnfs-vsock,path=/tmp/vsnfs-share.XXXXXX/vsock.sock -device vhost-user-vsock-pci,chardev=vsnfs-vsock -fw_cfg 'name=opt/vsnfs/mount,string=2:/home/me/src:/home/me/src;2:/srv/data:/data'
            guest mounts: 2:/home/me/src:/home/me/src;2:/srv/data:/data
            exports:
              /home/me/src (mounted as /home/me/src)
                vsock:3        rw,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check

              /srv/data (mounted as /srv/data)
                vsock:3        rw,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check

            """)
    }

    @Test func dryRunOfTheKernelDeviceSaysTheCIDMayMove() throws {
        let plan = try SharePlan(directories: [dirs[0]], readOnly: true, cid: 3, vsock: .kernel(cid: 3))
        let text = try plan.dryRun(QEMUCommand(["qemu-system-x86_64", "-m", "512"]))
        #expect(text.hasPrefix("""
            vsock: the kernel's vhost-vsock, guest CID 3 (the next free CID if it is taken)
            qemu: qemu-system-x86_64 -m 512 -device vhost-vsock-pci,guest-cid=3 -fw_cfg name=opt/vsnfs/mount,string=2:/home/me/src:/home/me/src:ro

            """))
        #expect(text.contains("vsock:3        ro,root_squash"))
        #expect(try plan.dryRun(QEMUCommand(["qemu-system-x86_64"]), cidFixed: true)
            .hasPrefix("vsock: the kernel's vhost-vsock, guest CID 3\n"))
    }

    @Test func directoryArguments() throws {
        let existing: Set<String> = ["/a", "/b:c"]
        func resolve(_ p: String) -> String? { existing.contains(p) ? p : nil }
        #expect(try SharedDirectory.parse("/a", resolve: resolve) == SharedDirectory(hostPath: "/a", guestPath: "/a"))
        #expect(try SharedDirectory.parse("/a:/mnt/a", resolve: resolve) == SharedDirectory(hostPath: "/a", guestPath: "/mnt/a"))
        #expect(try SharedDirectory.parse("/b:c", resolve: resolve) == SharedDirectory(hostPath: "/b:c"))
        #expect(try SharedDirectory.parse("/b:c:/x", resolve: resolve) == SharedDirectory(hostPath: "/b:c", guestPath: "/x"))
        let missing = #expect(throws: ShareCommandError.self) { try SharedDirectory.parse("/nope", resolve: resolve) }
        #expect(missing?.description == "/nope: no such directory")
        let relative = #expect(throws: ShareCommandError.self) { try SharedDirectory.parse("/a:mnt", resolve: resolve) }
        #expect(relative?.description.contains("must be absolute") == true)
    }
}

@Suite struct GuestMountFormatTests {
    @Test func roundTripThroughTheListFormat() throws {
        let mounts = [GuestMount(exportPath: "/srv/my files: 2", mountPoint: "/mnt/a;b", options: ["ro", "vers=3"]),
                      GuestMount(cid: 1, exportPath: "/", mountPoint: "/m\u{e9}", options: [])]
        let list = GuestMount.list(mounts)
        #expect(list == "2:/srv/my%20files%3A%202:/mnt/a%3Bb:ro,vers=3;1:/:/m%C3%A9")
        #expect(!list.contains(" "))
        #expect(try GuestMount.parseList(list).map { try $0.get() } == mounts)
    }

    @Test func badRequestsAreReportedOneByOne() {
        let results = GuestMount.parseList("2:/a:/b;x:/a:/b;2:a:/b;2:/a;2:/a:/b:o%zz;2:/c:/d\n")
        #expect(results.count == 6)
        #expect((try? results[0].get()) == GuestMount(exportPath: "/a", mountPoint: "/b"))
        #expect((try? results[5].get()) == GuestMount(exportPath: "/c", mountPoint: "/d"))
        for bad in results[1...4] {
            guard case .failure(let e) = bad else { Issue.record("\(bad) parsed"); continue }
            #expect(e.description.hasPrefix("bad mount request"))
        }
    }

    @Test func kernelCommandLine() {
        let cmdline = "BOOT_IMAGE=/vmlinuz console=ttyS0 vsnfs.mount=2:/a:/a quiet vsnfs.mount=\"2:/b:/c:ro\" xvsnfs.mount=no\n"
        #expect(GuestMount.kernelCommandLineValues(cmdline) == ["2:/a:/a", "2:/b:/c:ro"])
        #expect(GuestMount.kernelCommandLineValues("console=ttyS0") == [])
    }

    @Test func fwCfgFirstThenTheCommandLineEachMountPointOnce() {
        let (mounts, errors) = GuestMount.requests(
            fwCfg: "2:/a:/a;2:/b:/mnt/b\n",
            kernelCommandLine: "console=ttyS0 vsnfs.mount=2:/a:/a;2:/b:/mnt/b vsnfs.mount=2:/c:/mnt/b;2:/d:/d;bad quiet")
        #expect(mounts.map(\.mount.exportPath) == ["/a", "/b", "/d"])
        #expect(mounts.map(\.origin) == [.fwCfg, .fwCfg, .kernelCommandLine])
        #expect(errors == ["bad mount request 'bad': 1 fields (expected CID:EXPORT:MOUNTPOINT[:OPTIONS]) in the kernel command line"])
        let none = GuestMount.requests(fwCfg: nil, kernelCommandLine: "console=ttyS0")
        #expect(none.mounts.isEmpty && none.errors.isEmpty)
        let cmdlineOnly = GuestMount.requests(fwCfg: nil, kernelCommandLine: "vsnfs.mount=2:/x:/y:ro")
        #expect(cmdlineOnly.mounts.map(\.mount) == [GuestMount(exportPath: "/x", mountPoint: "/y", options: ["ro"])])
    }

    @Test func fwCfgBlobWithTrailingNewlineOrNUL() throws {
        #expect(try GuestMount.parseList("2:/a:/b\0").map { try $0.get() } == [GuestMount(exportPath: "/a", mountPoint: "/b")])
        #expect(GuestMount.parseList("\n").isEmpty)
    }
}
