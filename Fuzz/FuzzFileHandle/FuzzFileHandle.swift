// libFuzzer target: file-handle decoding (HostFileSystem.decodeHandle, the
// check every NFSv3 call's handle passes before any system call), and what
// HostFS does with a handle that passes it.
//
// Input: byte 0 is a set of flags, the rest is the handle.
//   bit 0   use the export in inode-handle mode (else kernel-handle mode)
//   bit 1   seal it: put the export's id at bytes 2-5 and append the 8-byte
//           tag under the key this target writes, so that a handle a client
//           could never forge gets past the tag to the body's decoding
//           and to the file system (GETATTR and LOOKUP as root, read-only)
// Without bit 1 the bytes go in as they are, tag and all.
//
// VSNFS_FUZZ_WRITE_SEEDS=DIR writes the root handles of both exports as
// seeds (sealed, that is without their tag) to DIR/FuzzFileHandle, then exits.
import FuzzDriver
import CSupport
import Exports
import Foundation
import HostFS
import Logging

/// The key this target's state directories hold (HostFS reads `handle-key`).
let handleKey: [UInt8] = Array("vsnfs-fuzz-key!!".utf8)

final class Fixture: Sendable {
    let work: String
    /// Kernel handles (index 0) and inode handles (index 1), each with one export.
    let fileSystems: [HostFileSystem]
    let exportID: UInt32 = 0x0000_0F22

    init() {
        work = NSTemporaryDirectory() + "vsnfs-fuzz-handle-\(getpid())"
        let fm = FileManager.default
        try? fm.removeItem(atPath: work)
        var systems: [HostFileSystem] = []
        for (name, mode) in [("kernel", HandleMode.kernel), ("inode", HandleMode.inode)] {
            let state = "\(work)/\(name)/state", export = "\(work)/\(name)/export"
            try! fm.createDirectory(atPath: state, withIntermediateDirectories: true)
            try! fm.createDirectory(atPath: export + "/dir", withIntermediateDirectories: true)
            precondition(fm.createFile(atPath: export + "/file", contents: Data("data".utf8)))
            precondition(fm.createFile(atPath: state + "/handle-key", contents: Data(handleKey)))
            systems.append(try! HostFileSystem(exports: [ExportRoot(id: exportID, hostPath: export)],
                                               options: HostFSOptions(stateDirectory: state, handleMode: mode),
                                               logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })))
        }
        fileSystems = systems
        atexit { try? FileManager.default.removeItem(atPath: fixture.work) }
    }
}

let fixture = Fixture()

/// Opens the exports before the first input (libFuzzer counts allocations per input).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> CInt {
    _ = fixture
    if let dir = ProcessInfo.processInfo.environment["VSNFS_FUZZ_WRITE_SEEDS"] {
        let path = dir + "/FuzzFileHandle"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (mode, fs) in fixture.fileSystems.enumerated() {
            let root = try! fs.rootHandle(exportID: fixture.exportID).bytes
            for (name, handle) in [("root", root), ("file", try! fs.lookup(try! fs.rootHandle(exportID: fixture.exportID),
                                                                         Array("file".utf8), as: .root).handle.bytes)] {
                let seed = [UInt8(mode) | 2] + handle.dropLast(8)
                precondition(FileManager.default.createFile(atPath: "\(path)/\(name)-\(mode == 0 ? "kernel" : "inode")",
                                                            contents: Data(seed)))
            }
        }
        exit(0)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFileHandle(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count)
    guard let flags = input.first else { return 0 }
    let fs = fixture.fileSystems[Int(flags & 1)]
    var handle = Array(input.dropFirst())
    let sealed = flags & 2 != 0
    if sealed {
        guard handle.count >= 6 else { return 0 }
        let id = fixture.exportID
        handle[2...5] = [UInt8(id >> 24), UInt8(truncatingIfNeeded: id >> 16), UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id)]
        let tag = handleKey.withUnsafeBufferPointer { k in
            handle.withUnsafeBufferPointer { hostfs_siphash24(k.baseAddress, $0.baseAddress, $0.count) }
        }
        for i in 0..<8 { handle.append(UInt8(truncatingIfNeeded: tag >> (56 - 8 * UInt64(i)))) }
    }
    guard let decoded = try? fs.decodeHandle(handle) else { return 0 }
    precondition(decoded.bytes == handle && decoded.exportID == fixture.exportID)
    _ = try? fs.getattr(decoded, as: .root)
    _ = try? fs.lookup(decoded, Array("file".utf8), as: .root)
    return 0
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzFileHandle_main")
public func fuzzFileHandleMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzFileHandle)
}
