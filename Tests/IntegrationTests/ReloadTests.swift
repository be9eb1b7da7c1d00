import Foundation
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
}
