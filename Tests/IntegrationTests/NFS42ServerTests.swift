import Foundation
import Glibc
import NFS4Wire
import NIOCore
import ONCRPC
import Testing
import XDR

/// NFSv4.2's data operations (RFC 7862) against a real `vsnfs serve`.
@Suite(.serialized) struct NFS42ServerTests {
    final class Setup {
        let sandbox = NFS3Sandbox()
        let export: String
        let server: ServerProcess
        let client: NFS4TestClient
        let base: [String]

        init() throws {
            export = sandbox.exportDirectory("e")
            base = export.split(separator: "/").map(String.init)
            let exports = sandbox.dir + "/exports"
            try "\(export) 127.0.0.1(rw,no_root_squash)\n".write(toFile: exports, atomically: false, encoding: .utf8)
            server = try ServerProcess(["--exports", exports, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
            client = NFS4TestClient(try RawRPCClient(tcpPort: server.port, from: "127.0.0.1"))
            try client.establishSession()
        }

        deinit { server.stop() }

        /// OPEN of an existing file for reading and writing: its handle and open stateid.
        func open(_ name: String) throws -> (NFS4FileHandle, StateID) {
            let reply = try client.open(try client.handle(base), name, access: 3)
            let open = try #require(reply.value(.open, NFS4OpenResOK.self), "\(reply.statuses)")
            return (try #require(reply.value(.getfh, NFS4FileHandle.self)), open.stateID)
        }
    }

    @Test("RFC 7862 15.11: SEEK finds data and holes of a sparse file")
    func seek() throws {
        let s = try Setup()
        let path = s.export + "/sparse"
        let fd = Glibc.open(path, O_CREAT | O_RDWR, 0o644)
        #expect(fd >= 0)
        #expect(pwrite(fd, "data", 4, 1 << 20) == 4)
        Glibc.close(fd)
        let (fh, stateID) = try s.open("sparse")
        let data = try s.client.sequenced([.putfh(fh), .seek(NFS4SeekArgs(stateID: stateID, offset: 0, what: .data))],
                                          minorVersion: 2)
        let found = try #require(data.value(.seek, NFS4SeekResOK.self), "\(data.statuses)")
        // Filesystems report data at block granularity: at or before the write, past the start.
        #expect(found.offset > 0 && found.offset <= 1 << 20 && !found.eof)
        let hole = try s.client.sequenced([.putfh(fh), .seek(NFS4SeekArgs(stateID: stateID, offset: 0, what: .hole))],
                                          minorVersion: 2)
        #expect(try #require(hole.value(.seek, NFS4SeekResOK.self), "\(hole.statuses)").offset == 0)
        // Past the last data: NXIO, as lseek(2) answers.
        let past = try s.client.sequenced([.putfh(fh), .seek(NFS4SeekArgs(stateID: stateID, offset: 2 << 20, what: .data))],
                                          minorVersion: 2)
        #expect(past.statuses.last == .nxio)
        // 4.2's operations are not operations of 4.1.
        let old = try s.client.sequenced([.putfh(fh), .seek(NFS4SeekArgs(stateID: stateID, offset: 0, what: .data))])
        #expect(old.statuses.last == .opIllegal)
    }

    @Test("RFC 7862 15.1, 15.4: ALLOCATE reserves blocks, DEALLOCATE punches a hole and keeps the size")
    func allocateAndDeallocate() throws {
        let s = try Setup()
        let path = s.export + "/alloc"
        try "".write(toFile: path, atomically: false, encoding: .utf8)
        let (fh, stateID) = try s.open("alloc")
        let allocated = try s.client.sequenced([.putfh(fh), .allocate(NFS4AllocateArgs(stateID: stateID, offset: 0, length: 1 << 20))],
                                               minorVersion: 2)
        #expect(allocated.status == .ok, "\(allocated.statuses)")
        var st = stat()
        stat(path, &st)
        #expect(st.st_size == 1 << 20 && st.st_blocks * 512 >= 1 << 20)
        let blocks = st.st_blocks
        let punched = try s.client.sequenced([.putfh(fh), .deallocate(NFS4AllocateArgs(stateID: stateID, offset: 0, length: 512 << 10))],
                                             minorVersion: 2)
        #expect(punched.status == .ok, "\(punched.statuses)")
        stat(path, &st)
        #expect(st.st_size == 1 << 20 && st.st_blocks < blocks)
    }

    @Test("RFC 7862 15.2, 15.13: COPY within the server copies the bytes; CLONE clones them or is NOTSUPP")
    func copyAndClone() throws {
        let s = try Setup()
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: s.export + "/src"))
        try Data().write(to: URL(fileURLWithPath: s.export + "/dst"))
        try Data().write(to: URL(fileURLWithPath: s.export + "/cloned"))
        let (src, srcState) = try s.open("src")
        let (dst, dstState) = try s.open("dst")
        let copied = try s.client.sequenced([.putfh(src), .savefh, .putfh(dst), .copy(NFS4CopyArgs(
            sourceStateID: srcState, destinationStateID: dstState, sourceOffset: 0, destinationOffset: 0, count: 0,
            consecutive: true, synchronous: true, sourceServers: []))], minorVersion: 2)
        let result = try #require(copied.value(.copy, NFS4CopyResOK.self), "\(copied.statuses)")
        #expect(result.response.count == UInt64(bytes.count) && result.response.callbackID == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.export + "/dst")) == Data(bytes))
        // Offsets past what a file can hold are refused, not computed with.
        let far = try s.client.sequenced([.putfh(src), .savefh, .putfh(dst), .copy(NFS4CopyArgs(
            sourceStateID: srcState, destinationStateID: dstState, sourceOffset: 0, destinationOffset: .max - 10, count: 0,
            consecutive: true, synchronous: true, sourceServers: []))], minorVersion: 2)
        #expect(far.statuses.last == .fbig)
        let farAllocate = try s.client.sequenced([.putfh(dst), .allocate(NFS4AllocateArgs(
            stateID: dstState, offset: .max - 10, length: 100))], minorVersion: 2)
        #expect(farAllocate.statuses.last == .fbig)
        let (cloned, clonedState) = try s.open("cloned")
        let clone = try s.client.sequenced([.putfh(src), .savefh, .putfh(cloned), .clone(NFS4CloneArgs(
            sourceStateID: srcState, destinationStateID: clonedState, sourceOffset: 0, destinationOffset: 0, count: 0))],
            minorVersion: 2)
        switch clone.statuses.last {
        case .ok?: #expect(try Data(contentsOf: URL(fileURLWithPath: s.export + "/cloned")) == Data(bytes))
        case .notsupp?: break  // the filesystem under /tmp has no reflinks
        default: Issue.record("CLONE: \(clone.statuses)")
        }
    }
}
