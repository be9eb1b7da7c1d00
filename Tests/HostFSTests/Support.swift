import Foundation
import Glibc
import NIOCore
@testable import HostFS

/// A temporary directory with an export root and a state directory; removed on deinit.
final class Sandbox {
    let dir: String
    var exportPath: String { dir + "/export" }
    var statePath: String { dir + "/state" }

    init() {
        var template = Array("/tmp/hostfs-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        dir = String(cString: p!)
        Glibc.mkdir(dir + "/export", 0o755)
        chmod(dir, 0o755)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func fs(_ mode: HandleMode, id: UInt32 = 1, openFileLimit: Int? = nil) throws -> HostFileSystem {
        try HostFileSystem(exports: [ExportRoot(id: id, hostPath: exportPath)],
                           options: HostFSOptions(stateDirectory: statePath, handleMode: mode, openFileLimit: openFileLimit))
    }

    /// Create a file on the host side (behind the server's back).
    func hostFile(_ rel: String, _ contents: String = "", mode: mode_t = 0o644) {
        let fd = open(exportPath + "/" + rel, O_CREAT | O_WRONLY | O_TRUNC, mode)
        precondition(fd >= 0, "create \(rel)")
        _ = contents.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }

    func hostMkdir(_ rel: String) { precondition(Glibc.mkdir(exportPath + "/" + rel, 0o755) == 0) }

    func ino(_ rel: String) -> UInt64 {
        var st = stat()
        precondition(lstat(exportPath + "/" + rel, &st) == 0)
        return UInt64(st.st_ino)
    }
}

func n(_ s: String) -> [UInt8] { Array(s.utf8) }

let root = Credentials.root
let allocator = ByteBufferAllocator()
/// Both handle modes as root; unprivileged (no CAP_DAC_READ_SEARCH), only inode handles exist.
let bothModes: [HandleMode] = geteuid() == 0 ? [.kernel, .inode] : [.inode]
let kernelIfRoot: HandleMode = geteuid() == 0 ? .kernel : .inode

func isError(_ expected: FSError, _ body: () throws -> Void) -> Bool {
    do {
        try body()
        print("isError: expected \(expected), the call succeeded")
        return false
    } catch let e as FSError {
        if e != expected { print("isError: expected \(expected), got \(e)") }
        return e == expected
    } catch {
        print("isError: expected \(expected), got \(error)")
        return false
    }
}

func string(_ b: ByteBuffer) -> String { String(buffer: b) }
