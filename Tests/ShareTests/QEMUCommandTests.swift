import GuestMounts
import Share
import Testing

/// vsnfs share's QEMU command rewriting: each machine, -m form, device and
/// -append case, as the exact words QEMU is given.
@Suite struct QEMUCommandTests {
    let mounts = [GuestMount(exportPath: "/srv/src", mountPoint: "/src")]
    let fwCfg = ["-fw_cfg", "name=opt/vsnfs/mount,string=2:/srv/src:/src"]
    let user = VsockDevice.user(socket: "/tmp/d/vsock.sock")

    func userDevice(size: String, micro: Bool = false) -> [String] {
        ["-object", "memory-backend-memfd,id=vsnfs-mem,size=\(size),share=on", "-machine", "memory-backend=vsnfs-mem",
         "-chardev", "socket,id=vsnfs-vsock,path=/tmp/d/vsock.sock",
         "-device", "\(micro ? "vhost-user-vsock-device" : "vhost-user-vsock-pci"),chardev=vsnfs-vsock"]
    }

    func rewrite(_ words: [String], _ vsock: VsockDevice? = nil, mounts: [GuestMount]? = nil) throws -> [String] {
        try QEMUCommand(words).rewritten(vsock: vsock ?? user, mounts: mounts ?? self.mounts).arguments
    }

    @Test func q35UserDeviceSharesTheMemoryOfMinusM() throws {
        let base = ["qemu-system-x86_64", "-M", "q35", "-m", "1024", "-nographic", "-drive", "file=d.img,if=virtio"]
        #expect(try rewrite(base) == base + userDevice(size: "1024M") + fwCfg)
    }

    @Test func pcMachineWithLongOptions() throws {
        let base = ["qemu-system-x86_64", "--machine", "pc,accel=tcg", "--m", "2G", "disk.img"]
        #expect(try rewrite(base) == base + userDevice(size: "2048M") + fwCfg)
    }

    @Test func microvmGetsTheMMIODevices() throws {
        let base = ["qemu-system-x86_64", "-M", "microvm,x-option-roms=off,rtc=on", "-m", "1G", "-nodefaults"]
        #expect(try rewrite(base) == base + userDevice(size: "1024M", micro: true) + fwCfg)
        let typed = ["qemu-system-x86_64", "-machine", "type=microvm", "-m", "512"]
        #expect(try rewrite(typed, .kernel(cid: 7)) == typed + ["-device", "vhost-vsock-device,guest-cid=7"] + fwCfg)
    }

    @Test(arguments: [
        ("1024", "1024M"), ("1G", "1024M"), ("1g", "1024M"), ("512M", "512M"), ("1.5G", "1536M"),
        ("size=2G,slots=2,maxmem=8G", "2048M"), ("2048,slots=2,maxmem=8G", "2048M"), ("1048576K", "1024M"),
        ("1000001K", "1024001024"),
    ])
    func memorySizeForms(m: String, size: String) throws {
        let base = ["qemu-system-x86_64", "-m", m]
        #expect(try rewrite(base) == base + userDevice(size: size) + fwCfg)
    }

    @Test func noMinusMIsQEMUsDefault128M() throws {
        let base = ["qemu-system-x86_64", "-M", "q35"]
        #expect(try rewrite(base) == base + userDevice(size: "128M") + fwCfg)
    }

    @Test func theLastMinusMCounts() throws {
        let base = ["qemu-system-x86_64", "-m", "256", "-m", "4G"]
        #expect(try rewrite(base) == base + userDevice(size: "4096M") + fwCfg)
    }

    @Test(arguments: ["-m foo", "-m size=lots", "-m 1X", "-m slots=2"])
    func unreadableMemoryIsRefused(m: String) {
        let words = ["qemu-system-x86_64"] + m.split(separator: " ").map(String.init)
        #expect(throws: ShareCommandError.self) { try rewrite(words) }
        #expect(throws: Never.self) { try rewrite(words, .kernel(cid: 3)) }   // the kernel device needs no shared memory
    }

    @Test func memoryThatCannotBeSharedIsRefusedWithWhatToChange() throws {
        for (words, says) in [
            (["-mem-path", "/dev/hugepages"], "remove -mem-path"),
            (["-machine", "q35,memory-backend=ram0", "-object", "memory-backend-ram,id=ram0,size=1G"],
             "(-object memory-backend-ram,id=ram0,size=1G) is not shared with vsnfs's vsock device: add share=on to it"),
            (["-object", "memory-backend-memfd,id=m0,size=1G,share=off", "-numa", "node,memdev=m0"], "add share=on to it"),
            (["-numa", "node,cpus=0"], "give each node a memdev= backend with share=on"),
            (["-machine", "memory-backend=nope"], "-machine memory-backend=nope names no -object with id=nope"),
        ] {
            let error = #expect(throws: ShareCommandError.self) { try rewrite(["qemu-system-x86_64", "-m", "1G"] + words) }
            #expect(error?.description.contains(says) == true, "\(words): \(error?.description ?? "")")
            #expect(throws: Never.self) { try rewrite(["qemu-system-x86_64", "-m", "1G"] + words, .kernel(cid: 3)) }
        }
    }

    @Test func memoryTheCommandAlreadySharesIsUsedAsItIs() throws {
        let device = ["-chardev", "socket,id=vsnfs-vsock,path=/tmp/d/vsock.sock", "-device", "vhost-user-vsock-pci,chardev=vsnfs-vsock"]
        // virtiofs's recipes: a shared backend as the machine's RAM, or as a NUMA node's.
        let machine = ["qemu-system-x86_64", "-m", "4G", "-object", "memory-backend-memfd,id=mem,size=4G,share=on",
                       "-machine", "q35,memory-backend=mem"]
        #expect(try rewrite(machine) == machine + device + fwCfg)
        let numa = ["qemu-system-x86_64", "-m", "4G", "-object", "memory-backend-file,id=mem,size=4G,mem-path=/dev/shm,share=on",
                    "-numa", "node,memdev=mem"]
        #expect(try rewrite(numa) == numa + device + fwCfg)
    }

    @Test(arguments: ["vhost-vsock-pci,guest-cid=3", "vhost-user-vsock-pci,chardev=c", "driver=vhost-vsock-device,guest-cid=9",
                      "vhost-user-vsock-device,chardev=x", "vhost-vsock-pci-non-transitional,guest-cid=4",
                      #"{"driver": "vhost-vsock-pci", "guest-cid": 3}"#])
    func anExistingVsockDeviceIsRefused(device: String) {
        for vsock in [user, .kernel(cid: 3)] {
            let error = #expect(throws: ShareCommandError.self) {
                try rewrite(["qemu-system-x86_64", "-m", "1G", "-device", device], vsock)
            }
            #expect(error?.description.hasPrefix("the QEMU command already has a vsock device") == true)
        }
    }

    @Test func otherDevicesAreKept() throws {
        let base = ["qemu-system-x86_64", "-device", "virtio-net-pci,netdev=n", "-netdev", "user,id=n", "-m", "1G"]
        #expect(try rewrite(base, .kernel(cid: 3)) == base + ["-device", "vhost-vsock-pci,guest-cid=3"] + fwCfg)
    }

    @Test func kernelBootWithAppendGetsTheParameterAppended() throws {
        let base = ["qemu-system-x86_64", "-kernel", "vmlinuz", "-append", "console=ttyS0 quiet", "-initrd", "i.gz"]
        var want = base
        want[4] = "console=ttyS0 quiet vsnfs.mount=2:/srv/src:/src"
        #expect(try rewrite(base, .kernel(cid: 3)) == want + ["-device", "vhost-vsock-pci,guest-cid=3"] + fwCfg)
    }

    @Test func kernelBootWithoutAppendGetsOne() throws {
        let base = ["qemu-system-x86_64", "-m", "1G", "-kernel", "vmlinuz"]
        #expect(try rewrite(base) == base + userDevice(size: "1024M") + fwCfg + ["-append", "vsnfs.mount=2:/srv/src:/src"])
    }

    @Test func theLastAppendIsTheOneQEMUUses() throws {
        let base = ["qemu-system-x86_64", "-kernel", "k", "-append", "a", "-append", "-b"]
        var want = base
        want[6] = "-b vsnfs.mount=2:/srv/src:/src"
        #expect(try rewrite(base, .kernel(cid: 3)) == want + ["-device", "vhost-vsock-pci,guest-cid=3"] + fwCfg)
    }

    @Test func noKernelNoAppend() throws {
        let base = ["qemu-system-x86_64", "-m", "1G", "-drive", "file=disk.qcow2"]
        let out = try rewrite(base)
        #expect(!out.contains("-append"))
        #expect(out.suffix(2) == ArraySlice(fwCfg))
    }

    @Test func commasInTheRequestsAreDoubledForFwCfgOnly() throws {
        let two = [GuestMount(exportPath: "/a", mountPoint: "/x", options: ["ro", "port=5"]),
                   GuestMount(exportPath: "/my dir", mountPoint: "/y")]
        let out = try rewrite(["qemu-system-x86_64", "-kernel", "k"], .kernel(cid: 3), mounts: two)
        #expect(out.suffix(4) == ["-fw_cfg", "name=opt/vsnfs/mount,string=2:/a:/x:ro,,port=5;2:/my%20dir:/y",
                                  "-append", "vsnfs.mount=2:/a:/x:ro,port=5;2:/my%20dir:/y"])
    }

    @Test func socketPathCommasAreEscaped() throws {
        let out = try rewrite(["qemu-system-x86_64"], .user(socket: "/tmp/a,b/s.sock"))
        #expect(out.contains("socket,id=vsnfs-vsock,path=/tmp/a,,b/s.sock"))
    }
}
