import Glibc
import Foundation
import NFS3
import NIOCore
import ONCRPC
import Testing

/// A real `vsnfs serve` killed and started again on the same state directory.
@Suite(.serialized) struct NFS3RestartTests {
    func client(_ port: Int) throws -> NFS3TestClient {
        let c = try NFS3TestClient(port: port)
        c.credential = AuthSysParameters(machineName: Array("test".utf8), uid: 1000, gid: 1000).opaqueAuth
        return c
    }

    @Test func killBetweenUnstableWriteAndCommitThenRestart() throws {
        let sandbox = NFS3Sandbox()
        let export = sandbox.exportDirectory("export")
        var server = try ServerProcess([export, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        var c = try client(server.port)
        let root = try c.rootHandle("/")
        let parent = try c.createdHandle(try c.mkdir(root, "parent"))
        let file = try c.createdHandle(try c.create(parent, "data"))
        let committed = [UInt8](repeating: 0x5a, count: 200_000)
        let first = try #require(try c.write(file, committed, stable: .unstable).ok)
        #expect(first.committed == .unstable)
        let commit: NFS3CommitResult = try c.nfs(.commit, NFS3CommitArgs(file: file, offset: 0, count: 0))
        let before = try #require(commit.ok?.verifier)
        #expect(before == first.verifier)
        // Rename the parent while the handle is held, then write more without committing.
        let renamed: NFS3RenameResult = try c.nfs(.rename, NFS3RenameArgs(from: NFS3DirOpArgs(directory: root, name: "parent"),
                                                                          to: NFS3DirOpArgs(directory: root, name: "renamed")))
        #expect(renamed.status == .ok)
        _ = try #require(try c.write(file, offset: UInt64(committed.count), [1, 2, 3], stable: .unstable).ok)
        let fileid = try #require(try c.getattr(file).ok?.fileid)

        server.kill()
        server = try ServerProcess([export, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        c = try client(server.port)
        // The handles from before the rename and the restart still name the same objects.
        let attributes = try #require(try c.getattr(file).ok, "handle did not survive the restart")
        #expect(attributes.fileid == fileid)
        #expect(try c.getattr(parent).status == .ok)
        #expect(try c.lookup(parent, "data").ok?.object == file)
        // The verifier changed, so a client resends what it had not committed.
        let after: NFS3CommitResult = try c.nfs(.commit, NFS3CommitArgs(file: file, offset: 0, count: 0))
        let newVerifier = try #require(after.ok?.verifier)
        #expect(newVerifier != before)
        let write = try #require(try c.write(file, offset: UInt64(committed.count), [1, 2, 3], stable: .fileSync).ok)
        #expect(write.verifier == newVerifier)
        // What was committed before the kill is intact.
        let read = try #require(try c.read(file, count: UInt32(committed.count)).ok)
        #expect(Array(read.data.readableBytesView) == committed)
        server.stop()
    }

    /// Thousands of files in use through a server allowed 64 descriptors:
    /// the open-file cache keeps within the limit and every call succeeds
    /// (descriptor exhaustion would answer NFS3ERR_JUKEBOX, never crash).
    @Test func manyFilesUnderALowDescriptorLimit() throws {
        let sandbox = NFS3Sandbox()
        let export = sandbox.exportDirectory("export")
        let server = try ServerProcess([export, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath, fileLimit: 64)
        let c = try client(server.port)
        let root = try c.rootHandle("/")
        var handles: [NFS3FileHandle] = []
        for i in 0..<1_000 {
            let fh = try c.createdHandle(try c.create(root, "f\(i)"))
            let w = try #require(try c.write(fh, Array("file \(i)".utf8), stable: .unstable).ok, "WRITE \(i)")
            #expect(w.count > 0)
            handles.append(fh)
        }
        for (i, fh) in handles.enumerated() {
            let read = try c.read(fh, count: 100)
            guard case .ok(let ok) = read else {
                #expect(read.status == .jukebox, "READ \(i): \(read.status)")
                continue
            }
            #expect(Array(ok.data.readableBytesView) == Array("file \(i)".utf8))
        }
        #expect(server.process.isRunning)
        server.stop()
    }

    /// What the Linux client sends for `ln`, `truncate` and `touch -d` by a
    /// squashed root on files it created, through a real server (as root it
    /// switches to the squashed identity per call).
    @Test func squashedRootChangesItsOwnFiles() throws {
        let sandbox = NFS3Sandbox()
        let export = sandbox.exportDirectory("export")
        let server = try ServerProcess([export, "--listen", "tcp:127.0.0.1:0"], stateDirectory: sandbox.statePath)
        let c = try NFS3TestClient(port: server.port)
        c.credential = AuthSysParameters(machineName: Array("test".utf8), uid: 0, gid: 0).opaqueAuth
        let root = try c.rootHandle("/")
        let file = try c.createdHandle(try c.create(root, "t"))
        _ = try #require(try c.write(file, Array("abc".utf8)).ok)
        let access: NFS3AccessResult = try c.nfs(.access, NFS3AccessArgs(object: file, access: 0x3f))
        #expect(access.ok.map { $0.access & 0x0c == 0x0c } == true, "ACCESS: \(access)")
        let truncate: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(
            object: file, newAttributes: NFS3SetAttributes(size: 1, mtime: .serverTime)))
        #expect(truncate.status == .ok)
        let times: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(
            object: file, newAttributes: NFS3SetAttributes(atime: .clientTime(NFS3Time(seconds: 981_173_106, nseconds: 0)),
                                                           mtime: .clientTime(NFS3Time(seconds: 981_173_106, nseconds: 0)))))
        #expect(times.status == .ok)
        let mode: NFS3SetAttrResult = try c.nfs(.setattr, NFS3SetAttrArgs(object: file, newAttributes: NFS3SetAttributes(mode: 0o600)))
        #expect(mode.status == .ok)
        let link: NFS3LinkResult = try c.nfs(.link, NFS3LinkArgs(file: file, link: NFS3DirOpArgs(directory: root, name: "hard")))
        #expect(link.status == .ok)
        var st = stat()
        #expect(lstat(export + "/t", &st) == 0)
        #expect(st.st_size == 1 && st.st_mtim.tv_sec == 981_173_106 && st.st_mode & 0o777 == 0o600 && st.st_nlink == 2)
        server.stop()
    }
}
