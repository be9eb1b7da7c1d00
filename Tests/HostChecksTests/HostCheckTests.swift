import CSupport
import Foundation
import Server
import Testing
@testable import Transport
@testable import HostChecks
#if canImport(Glibc)
import Glibc
#endif

/// Each check of `vsnfs doctor` against a fixture that makes it pass and one
/// that makes it fail.
@Suite struct VsockDeviceTests {
    @Test func aMissingVhostVsockDeviceWarnsWhenTheUserDeviceWorksAndFailsWhenNot() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = KernelChecks.vhostVsock(device: "\(dir)/vhost-vsock", userDevicePossible: true)
        #expect(missing.verdict == .warn)
        #expect(missing.detail.contains("vhost_vsock module is not loaded"))
        #expect(missing.fix?.contains("--listen vhost-user:PATH:cid=N") == true)
        #expect(KernelChecks.vhostVsock(device: "\(dir)/vhost-vsock", userDevicePossible: false).verdict == .fail)
    }

    @Test func anOpenableDeviceIsUsable() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile("\(dir)/vhost-vsock", "", mode: 0o600)
        #expect(KernelChecks.vhostVsock(device: "\(dir)/vhost-vsock", userDevicePossible: false).verdict == .ok)
    }

    @Test func theVsockVerdictMatchesWhatTheKernelHas() throws {
        let hasVsock = socket(AF_VSOCK, Int32(SOCK_STREAM.rawValue), 0)
        if hasVsock >= 0 { close(hasVsock) }
        let result = KernelChecks.vsock(listen: [.defaultSpec])
        #expect(result.verdict == (hasVsock >= 0 ? .ok : .fail), "\(result)")
        if hasVsock < 0 {
            #expect(KernelChecks.vsock(listen: [.tcp(host: "127.0.0.1", port: 0)]).verdict == .ok)
        }
        // The transports named are those /sys/module shows.
        for module in ["vhost_vsock", "vsock_loopback", "vmw_vsock_virtio_transport"] {
            let loaded = FileManager.default.fileExists(atPath: "/sys/module/\(module)")
            #expect(result.detail.contains(module) == (loaded && hasVsock >= 0), "\(module): \(result.detail)")
        }
    }
}

@Suite struct VsockSocketListTests {
    /// libnl-3 must be installed where the tests run (.ci/run installs
    /// libnl-3-200): a missing library fails here instead of passing silently.
    @Test func listingMatchesWhatTheKernelAnswers() throws {
        let kernelAnswers = try kernelAnswersVsockDiag()
        let listener = try TestListener.vsock()
        do {
            let sockets = try listVsockSockets()
            #expect(kernelAnswers, "libnl listed vsock sockets where a raw netlink dump was refused")
            if let listener {
                #expect(sockets.contains { $0.localPort == listener.port && $0.state == .listening },
                        "port \(listener.port) not in \(sockets)")
            }
            #expect(KernelChecks.vsockDiag(.success(sockets)).verdict == .ok)
        } catch let error as SocketDiagnosticsError {
            if case .libnlMissing = error { Issue.record("libnl-3 is not installed (apt-get install libnl-3-200): \(error)") }
            #expect(error == .vsockDiagUnavailable, "\(error)")
            #expect(!kernelAnswers, "the kernel answers vsock_diag but listVsockSockets says \(error)")
            // The check says so, and what to do, unless there is no vsock at all.
            let result = KernelChecks.vsockDiag(.failure(error))
            #expect(result.verdict == (listener == nil ? .ok : .warn), "\(result)")
            if listener != nil { #expect(result.fix == "modprobe vsock_diag (as root)") }
        }
    }

    @Test func aDumpIsParsedIntoSockets() throws {
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        func message(type: UInt16, body: [UInt8]) -> [UInt8] {
            le32(UInt32(16 + body.count)) + withUnsafeBytes(of: type.littleEndian, Array.init) + [0, 0] + le32(1) + le32(0) + body
        }
        // struct vsock_diag_msg: family, type, state, shutdown, src cid/port, dst cid/port, ino, cookie[2].
        let listening: [UInt8] = [40, 1, 10, 0] + le32(UInt32.max) + le32(2049) + le32(0) + le32(0) + le32(77) + le32(0) + le32(0)
        let connected: [UInt8] = [40, 1, 1, 0] + le32(2) + le32(2049) + le32(3) + le32(1023) + le32(78) + le32(0) + le32(0)
        let dump = message(type: 20, body: listening) + message(type: 20, body: connected) + message(type: 3, body: le32(0))
        let sockets = try VsockDiagReply.parse(dump)
        #expect(sockets == [
            VsockSocket(type: 1, state: .listening, localCID: UInt32.max, localPort: 2049, peerCID: 0, peerPort: 0, inode: 77),
            VsockSocket(type: 1, state: .established, localCID: 2, localPort: 2049, peerCID: 3, peerPort: 1023, inode: 78),
        ])
        #expect(sockets.map(\.description) == ["*:2049 listening", "2:2049 established with 3:1023"])
        let refused = message(type: 2, body: le32(UInt32(bitPattern: -ENOENT)) + [UInt8](repeating: 0, count: 16))
        #expect(throws: SocketDiagnosticsError.vsockDiagUnavailable) { try VsockDiagReply.parse(refused) }
        #expect(throws: SocketDiagnosticsError.self) { try VsockDiagReply.parse(Array(dump.prefix(30))) }
    }
}

@Suite struct QEMUCheckTests {
    /// The whole run against fixtures: with neither a vhost-vsock device nor a
    /// QEMU that has vhost-user-vsock-pci, no guest can reach the server, and
    /// both checks fail; with the QEMU, the missing device is a warning.
    @Test func sharingNeedsTheKernelDeviceOrTheUserDevice() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var configuration = DoctorConfiguration(listen: [.tcp(host: "127.0.0.1", port: 0)], stateDirectory: dir,
                                                qemu: try fakeQEMU(dir, devices: #"name "vhost-vsock-pci", bus PCI"#),
                                                vhostVsockDevice: "\(dir)/vhost-vsock")
        var results = Doctor.run(configuration)
        #expect(results.map(\.name) == ["vsock", "vhost-vsock", "qemu", "vsock-sockets", "listen tcp:127.0.0.1:0",
                                        "rpcbind", "nfs-port", "exports", "state-dir"])
        #expect(results.filter { $0.verdict == .fail }.map(\.name) == ["vhost-vsock", "qemu"], "\(results)")
        configuration.qemu = try fakeQEMU(dir, devices: #"name "vhost-user-vsock-pci", bus PCI"#)
        results = Doctor.run(configuration)
        #expect(results.first { $0.name == "vhost-vsock" }?.verdict == .warn)
        #expect(results.first { $0.name == "qemu" }?.verdict == .ok)
    }

    func fakeQEMU(_ dir: String, devices: String, status: Int = 0) throws -> String {
        let path = "\(dir)/qemu-system-x86_64"
        try writeFile(path, """
            #!/bin/sh
            case "$1" in
            --version) echo 'QEMU emulator version 9.9.9 (fake)'; echo 'Copyright'; exit 0 ;;
            -device) printf '%s\\n' '\(devices)'; exit \(status) ;;
            esac
            exit 1
            """, mode: 0o755)
        return path
    }

    @Test func aQEMUWithVhostUserVsockPciIsOK() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let qemu = QEMUCheck.inspect(try fakeQEMU(dir, devices: #"name "vhost-user-vsock-pci", bus PCI"#))
        #expect(qemu.hasVhostUserVsock)
        #expect(qemu.version == "QEMU emulator version 9.9.9 (fake)")
        #expect(qemu.result(userDeviceNeeded: true).verdict == .ok)
    }

    @Test func aQEMUWithoutTheDeviceOrThatFailsIsAFailureWhenTheUserDeviceIsNeeded() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = QEMUCheck.inspect(try fakeQEMU(dir, devices: #"name "vhost-vsock-pci", bus PCI"#))
        #expect(!old.hasVhostUserVsock)
        #expect(old.result(userDeviceNeeded: true).verdict == .fail)
        #expect(old.result(userDeviceNeeded: false).verdict == .warn)
        #expect(old.result(userDeviceNeeded: true).detail.contains("has no vhost-user-vsock-pci"))
        let broken = QEMUCheck.inspect(try fakeQEMU(dir, devices: #"name "vhost-user-vsock-pci", bus PCI"#, status: 3))
        #expect(!broken.hasVhostUserVsock)
        #expect(broken.result(userDeviceNeeded: true).detail.contains("exit status 3"), "\(broken)")
        let missing = QEMUCheck.inspect("\(dir)/no-such-qemu")
        #expect(missing.path == nil)
        #expect(missing.result(userDeviceNeeded: false).verdict == .warn)
        #expect(missing.result(userDeviceNeeded: false).fix?.contains("apt-get install") == true)
    }

    /// The QEMU the e2e tests use (.ci/run installs qemu-system-x86, 7.2) has the device.
    @Test func theInstalledQEMUHasVhostUserVsockPci() throws {
        let qemu = QEMUCheck.inspect("qemu-system-x86_64")
        #expect(qemu.path != nil, "qemu-system-x86_64 is not installed (apt-get install --no-install-recommends qemu-system-x86)")
        #expect(qemu.hasVhostUserVsock, "\(qemu)")
        #expect(qemu.version?.hasPrefix("QEMU emulator version") == true)
    }
}

@Suite struct ListenCheckTests {
    @Test func aTCPPortInUseFailsAndAFreeOneIsOK() throws {
        let listener = try TestListener.tcp()
        let busy = ListenChecks.check(.tcp(host: "127.0.0.1", port: Int(listener.port)), vsockSockets: nil)
        #expect(busy.verdict == .fail)
        #expect(busy.detail.contains("port \(listener.port) is in use"))
        let port = Int(listener.port)
        listener.stop()
        #expect(ListenChecks.check(.tcp(host: "192.0.2.1", port: port), vsockSockets: nil).verdict == .fail)
        #expect(ListenChecks.check(.tcp(host: "127.0.0.1", port: 0), vsockSockets: nil).verdict == .ok)
        // A port just freed is free, unless a client connection elsewhere in
        // this parallel run took it as its ephemeral port between the close
        // and the probe (CI saw that once): try a few freshly freed ports.
        var freedPortsProbedOK = 0
        for _ in 0..<5 where freedPortsProbedOK == 0 {
            let other = try TestListener.tcp()
            let freed = Int(other.port)
            other.stop()
            if ListenChecks.check(.tcp(host: "127.0.0.1", port: freed), vsockSockets: nil).verdict == .ok { freedPortsProbedOK += 1 }
        }
        #expect(freedPortsProbedOK == 1, "five freshly freed ports all probed as in use")
    }

    @Test func aVsockPortInUseFails() throws {
        guard let listener = try TestListener.vsock() else {
            // No AF_VSOCK: the listener cannot be bound, and the check says so.
            let result = ListenChecks.check(.vsock(cid: nil, port: 2049), vsockSockets: nil)
            #expect(result.verdict == .fail && result.detail.contains("no AF_VSOCK"))
            return
        }
        let busy = ListenChecks.check(.vsock(cid: nil, port: listener.port), vsockSockets: nil)
        #expect(busy.verdict == .fail, "\(busy)")
        #expect(busy.detail.contains("vsock port \(listener.port) is in use"))
    }

    @Test func unixSocketPaths() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/s"
        #expect(ListenChecks.check(.unix(path: path), vsockSockets: nil).verdict == .ok)
        let listener = try TestListener.unix(path)
        let live = ListenChecks.check(.unix(path: path), vsockSockets: nil)
        #expect(live.verdict == .fail && live.detail.contains("a server is listening"), "\(live)")
        let device = ListenChecks.check(.vhostUser(path: path, cid: 3, port: 2049), vsockSockets: nil)
        #expect(device.verdict == .fail)
        listener.stop()
        let stale = ListenChecks.check(.unix(path: path), vsockSockets: nil)
        #expect(stale.verdict == .ok && stale.detail.contains("stale"), "\(stale)")
        try writeFile("\(dir)/file", "")
        #expect(ListenChecks.check(.unix(path: "\(dir)/file"), vsockSockets: nil).verdict == .fail)
        #expect(ListenChecks.check(.hybrid(udsPath: "\(dir)/missing/v.sock", port: 2049, cid: 3), vsockSockets: nil).verdict == .fail)
    }
}

@Suite struct RPCBindCheckTests {
    /// rpcbind must run (make test starts it with tests/prepare.sh) and
    /// libtirpc must be installed: both missing fail here.
    @Test func anNFSRegistrationIsFlaggedAndMatchesRpcinfo() throws {
        if vsnfs_diag_sanitized() == 1 {
            // make test-asan / test-tsan: libtirpc cannot run there, and doctor says so.
            #expect(throws: RPCBindQueryError.sanitizerBuild) { try listRPCBindMappings() }
            #expect(ServiceChecks.rpcbind(.failure(RPCBindQueryError.sanitizerBuild)).verdict == .warn)
            return
        }
        let before = try listRPCBindMappings()
        #expect(before.contains { $0.program == 100_000 && $0.netid == "tcp" && $0.port == 111 }, "\(before)")
        #expect(ServiceChecks.rpcbind(.success(before.filter { $0.program != 100_003 && $0.program != 100_005 })).verdict == .ok)
        // A registration of NFS the way another server makes one: an unusual
        // version, so no real server's registration is touched.
        let version = UInt32.random(in: 1000...9999) // rpcinfo -p prints up to 4 digits apart
        let listener = try TestListener.tcp()
        let registration = RPCBindRegistration(programs: [(100_003, version)],
                                               listeners: [.tcp(host: "127.0.0.1", port: Int(listener.port))])
        try registration.register()
        defer { registration.unregister() }
        let after = try listRPCBindMappings()
        #expect(after.contains { $0.program == 100_003 && $0.version == version && $0.port == Int(listener.port) && $0.netid == "tcp" },
                "\(after)")
        let result = ServiceChecks.rpcbind(.success(after))
        #expect(result.verdict == .warn)
        #expect(result.detail.contains("NFS v\(version) on tcp port \(listener.port)"), "\(result.detail)")
        // rpcinfo (libtirpc's own client) sees the same registration.
        let rpcinfo = Process()
        let pipe = Pipe()
        rpcinfo.executableURL = URL(fileURLWithPath: "/usr/sbin/rpcinfo")
        rpcinfo.arguments = ["-p", "127.0.0.1"]
        rpcinfo.standardOutput = pipe
        try rpcinfo.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        rpcinfo.waitUntilExit()
        #expect(text.split(separator: "\n").contains {
            $0.split(separator: " ").prefix(4).map(String.init) == ["100003", "\(version)", "tcp", "\(listener.port)"]
        }, "\(text)")
    }

    @Test func rpcbindNotRunningIsFine() {
        let result = ServiceChecks.rpcbind(.failure(RPCBindQueryError.failed("RPC: Remote system error - Connection refused")))
        #expect(result.verdict == .ok)
        #expect(ServiceChecks.rpcbind(.failure(RPCBindQueryError.libtirpcMissing("x"))).fix == "apt-get install libtirpc3")
    }
}

@Suite struct FileCheckTests {
    @Test func anExportsFileWithAnErrorFailsWithItsLineAndColumn() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile("\(dir)/good", "\(dir) vsock:3(rw)\n")
        let good = FileChecks.exports(file: "\(dir)/good")
        #expect(good.verdict == .ok && good.detail.contains("1 export(s)"), "\(good)")
        try writeFile("\(dir)/bad", "\(dir) vsock:3(rw,bogus)\n")
        let bad = FileChecks.exports(file: "\(dir)/bad")
        #expect(bad.verdict == .fail)
        #expect(bad.detail.contains("\(dir)/bad:1:"), "\(bad.detail)")
        #expect(bad.fix?.contains("vsnfs exports check") == true)
        #expect(FileChecks.exports(file: nil).verdict == .ok)
    }

    @Test func aReadOnlyStateDirectoryFails() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = "\(dir)/state"
        #expect(FileChecks.stateDirectory(state).detail.contains("does not exist yet"))
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(FileChecks.stateDirectory(state).verdict == .ok)
        // Root ignores mode bits: a read-only bind mount is read-only for root too.
        if geteuid() == 0 {
            #expect(try shell("mount --bind '\(state)' '\(state)' && mount -o remount,bind,ro '\(state)'") == 0,
                    "cannot make a read-only bind mount")
        } else {
            chmod(state, 0o500)
        }
        defer { if geteuid() == 0 { _ = try? shell("umount '\(state)'") } else { chmod(state, 0o700) } }
        let readOnly = FileChecks.stateDirectory(state)
        #expect(readOnly.verdict == .fail, "\(readOnly)")
        #expect(readOnly.detail.contains("not writable"))
        #expect(readOnly.fix?.contains("--state-dir") == true)
        try writeFile("\(dir)/file", "")
        #expect(FileChecks.stateDirectory("\(dir)/file").verdict == .fail)
        #expect(FileChecks.stateDirectory("\(dir)/file/state").verdict == .fail)
    }

    @Test func theDefaultStateDirectoryIsServes() throws {
        let result = FileChecks.stateDirectory(nil)
        #expect(result.detail.hasPrefix(try VSNFSServer.defaultStateDirectory()), "\(result)")
    }
}
