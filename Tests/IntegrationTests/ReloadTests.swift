import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing
import XDR

/// SIGHUP reloads the exports file without dropping connections; a client
/// that lost access is refused from its next call, on the same connection.
@Suite struct ReloadTests {
    func mount(_ client: RawRPCClient, _ path: String) throws -> (status: UInt32, handle: ByteBuffer?) {
        var args = ByteBuffer()
        args.writeXDRString(path)
        guard case .success(var results) = try client.call(program: 100_005, version: 3, procedure: 1, arguments: args) else {
            throw POSIXError(.EPROTO)
        }
        let status = try results.readXDRUInt32()
        return (status, status == 0 ? try results.readXDRVariableOpaque(maxLength: 64) : nil)
    }

    func getattrStatus(_ client: RawRPCClient, _ handle: ByteBuffer) throws -> UInt32 {
        var args = ByteBuffer()
        args.writeXDRVariableOpaque(handle)
        guard case .success(var results) = try client.call(program: 100_003, version: 3, procedure: 1, arguments: args) else {
            throw POSIXError(.EPROTO)
        }
        return try results.readXDRUInt32()
    }

    @Test func sighupAppliesTheNewTableToLiveConnections() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let export = dir.appendingPathComponent("export").path
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        let exportsFile = dir.appendingPathComponent("exports")
        try "\(export) 127.0.0.1(rw)\n".write(to: exportsFile, atomically: true, encoding: .utf8)

        let server = try ServerProcess(["--exports", exportsFile.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }
        let client = try RawRPCClient(tcpPort: server.tcpPort)
        let mounted = try mount(client, export)
        #expect(mounted.status == 0)
        let handle = try #require(mounted.handle)
        #expect(try getattrStatus(client, handle) == 0)

        // A broken file is refused as a whole: the old table stays.
        try "\(export) 127.0.0.1(rw,bogus)\n".write(to: exportsFile, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reload failed", count: 1)
        #expect(server.log.contains("bogus"))
        #expect(try mount(client, export).status == 0)

        // Access moves to another address: this connection is refused from its next call.
        try "\(export) 10.9.9.9(rw)\n".write(to: exportsFile, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports", count: 1)
        #expect(try mount(client, export).status == 13, "MNT3ERR_ACCES")
        #expect(try getattrStatus(client, handle) == 13, "NFS3ERR_ACCES")

        // And back.
        try "\(export) 127.0.0.0/8(ro)\n".write(to: exportsFile, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports", count: 2)
        #expect(try getattrStatus(client, handle) == 0)
    }

    /// An export a reload removes leaves handles that this server made and the
    /// client still holds: their object is gone, so NFS3ERR_STALE (which Linux
    /// turns into ESTALE and a remount), never NFS3ERR_BADHANDLE (a server bug
    /// to the client). Export ids are stable (fsid, else a hash of the host
    /// path), so an export added back honours its old handles again.
    @Test func handlesOfAnExportARemovedByReloadAreStaleAndComeBackWithIt() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let kept = dir.appendingPathComponent("kept").path
        let removed = dir.appendingPathComponent("removed").path
        for path in [kept, removed] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        // Larger than nfs-cat's 1 MiB reads, so a paused nfs-cat still has READs to send.
        let content = randomBytes(3 << 20)
        try content.write(to: URL(fileURLWithPath: removed + "/data"))
        let exportsFile = dir.appendingPathComponent("exports")
        let both = "\(kept) 127.0.0.1(rw)\n\(removed) 127.0.0.1(rw)\n"
        try both.write(to: exportsFile, atomically: true, encoding: .utf8)

        let server = try ServerProcess(["--exports", exportsFile.path, "--listen", "tcp:127.0.0.1:0"], expectListeners: 1)
        defer { server.stop() }
        let client = try NFS3TestClient(port: server.tcpPort)
        let root = try client.rootHandle(removed)
        guard case .ok(let found) = try client.lookup(root, "data") else { Issue.record("LOOKUP data"); return }
        let file = found.object
        #expect(try client.getattr(file).status == .ok)
        // Two libnfs clients in the middle of the file, for the removal and for the return.
        let url = Libnfs.url(port: server.tcpPort, removed + "/data")
        let catAcrossRemoval = try PausedNFSCat(url)
        let catAcrossReturn = try PausedNFSCat(url)

        try "\(kept) 127.0.0.1(rw)\n".write(to: exportsFile, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports", count: 1)
        #expect(try client.getattr(file).status == .stale)
        #expect(try client.read(file, count: 1).status == .stale)
        #expect(try client.getattr(root).status == .stale)
        #expect(try client.lookup(root, "data").status == .stale)
        // A handle altered in one bit is still refused as bad, before any export is looked for.
        var garbled = Array(file.bytes.readableBytesView)
        garbled[garbled.count - 1] ^= 1
        #expect(try client.getattr(NFS3FileHandle(garbled)).status == .badhandle)
        // libnfs's nfs-cat reports a failed READ without its status ("Failed to read from
        // file", exit 10); it stops after what it had read, a prefix of the file.
        let failed = try catAcrossRemoval.finish()
        #expect(failed.status == 10, "\(failed.stderr)")
        #expect(failed.stderr.contains("Failed to read from file"), "\(failed.stderr)")
        #expect(!failed.stdout.isEmpty && failed.stdout.count < content.count && content.starts(with: failed.stdout))

        try both.write(to: exportsFile, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded exports", count: 2)
        #expect(try client.getattr(file).status == .ok)
        guard case .ok(let read) = try client.read(file, count: 16) else { Issue.record("READ after the return"); return }
        #expect(Array(read.data.readableBytesView) == Array(content.prefix(16)))
        let resumed = try catAcrossReturn.finish()
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout == content)
    }
}
