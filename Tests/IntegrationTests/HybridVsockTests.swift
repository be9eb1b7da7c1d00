import Foundation
import Mount3
import NFS3
import NIOCore
import Testing
import Transport

/// Hybrid vsock, as Firecracker and Cloud Hypervisor forward a guest's
/// connection to host port P: they connect to the Unix socket `UDS_PATH_P`.
/// A real `vsnfs serve` with two such listeners, for guests 3 and 4, and an
/// exports file that lets in only guest 3: each socket's connections carry
/// the CID configured for it, and one listener's CID never leaks into another.
@Suite struct HybridVsockTests {
    @Test func eachSocketIsTheGuestItWasConfiguredFor() throws {
        let sandbox = NFS3Sandbox()
        let export = sandbox.exportDirectory("export")
        try Data("from the host\n".utf8).write(to: URL(fileURLWithPath: export + "/hello"))
        let exports = sandbox.dir + "/exports"
        try "\(export) vsock:3(rw,no_root_squash)\n".write(toFile: exports, atomically: true, encoding: .utf8)
        let guest3 = sandbox.dir + "/vm3.vsock", guest4 = sandbox.dir + "/vm4.vsock"
        let server = try ServerProcess(["--exports", exports,
                                        "--listen", "hybrid:\(guest3):2049:cid=3",
                                        "--listen", "hybrid:\(guest4):2049:cid=4"],
                                       expectListeners: 2, stateDirectory: sandbox.statePath)
        defer { server.stop() }
        #expect(server.listening.contains("hybrid:\(guest3):2049:cid=3 (socket \(guest3)_2049)"))

        // Only the server's user may connect: whoever can is taken for the guest.
        var st = stat()
        #expect(stat(guest3 + "_2049", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)

        // Guest 3 mounts, reads the host's file and writes one back.
        let c3 = try NFS3TestClient(unixPath: guest3 + "_2049")
        c3.credential = FaultTests.rootCredential
        let root = try c3.rootHandle(export)
        let hello = try #require(c3.lookup(root, "hello").ok?.object)
        #expect(try c3.read(hello, count: 100).ok?.data == ByteBuffer(string: "from the host\n"))
        let made = try c3.createdHandle(c3.create(root, "from-guest-3"))
        #expect(try c3.write(made, Array("written by guest 3".utf8)).ok != nil)
        #expect(try String(contentsOfFile: export + "/from-guest-3", encoding: .utf8) == "written by guest 3")

        // Guest 4 is refused, by MOUNT and with guest 3's handle alike.
        let c4 = try NFS3TestClient(unixPath: guest4 + "_2049")
        c4.credential = FaultTests.rootCredential
        #expect(try c4.mount(export) == MountMntResult.fail(.acces))
        #expect(try c4.getattr(hello).status == .acces)
        #expect(try c4.read(hello, count: 100).status == .acces)
    }

    @Test func specsParseAndPrint() throws {
        #expect(try ListenSpec(parsing: "hybrid:/run/fc/v.sock:2049:cid=3") == .hybrid(udsPath: "/run/fc/v.sock", port: 2049, cid: 3))
        #expect(try ListenSpec(parsing: "hybrid:/odd:path:52:cid=7") == .hybrid(udsPath: "/odd:path", port: 52, cid: 7))
        #expect(ListenSpec.hybrid(udsPath: "/run/v.sock", port: 2049, cid: 3).description == "hybrid:/run/v.sock:2049:cid=3")
        for bad in ["hybrid:", "hybrid:/v.sock", "hybrid:/v.sock:2049", "hybrid:/v.sock:2049:3", "hybrid:/v.sock:x:cid=3",
                    "hybrid::2049:cid=3", "hybrid:/v.sock:2049:cid=2", "hybrid:/v.sock:2049:cid=x"] {
            #expect(throws: ListenSpec.ParseError.self, "\(bad)") { try ListenSpec(parsing: bad) }
        }
    }
}
