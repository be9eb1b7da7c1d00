import Glibc
import NIOCore
import Testing
@testable import HostFS

/// NFS offsets and sizes are unsigned 64-bit; off_t is signed. A READ at offset
/// 2^63 (found by FuzzProcedures) trapped converting it, killing the server;
/// WRITE and SETATTR's size had the same conversion. Past off_t: READ answers
/// 0 bytes and eof, its range trimmed as knfsd trims it; WRITE and SETATTR
/// answer EFBIG (NFS3ERR_FBIG).
@Suite struct LargeOffsetTests {
    static let offsets: [UInt64] = [1 << 63, UInt64(Int64.max) + 2, UInt64.max]

    @Test(arguments: bothModes) func readPastTheLargestOffsetIsEmptyAtEOF(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "data")
        let fs = try box.fs(mode)
        let f = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root).handle
        for offset in Self.offsets {
            var buffer = ByteBuffer()
            let r = try fs.read(f, offset: offset, count: 4096, appendingTo: &buffer, as: root)
            #expect(r.count == 0 && r.eof && buffer.readableBytes == 0, "read at \(offset)")
            // The event-loop path: the object is in the open-file cache now.
            let quick = try fs.readWithoutBlocking(f, offset: offset, count: 4096, appendingTo: &buffer, as: root)
            #expect(quick?.count == 0 && quick?.eof == true && buffer.readableBytes == 0, "read without blocking at \(offset)")
        }
        // A range that ends past the largest offset is trimmed (the kernel refuses it, EINVAL).
        for offset in [UInt64(Int64.max), UInt64(Int64.max) - 5] {
            var buffer = ByteBuffer()
            let r = try fs.read(f, offset: offset, count: 10, appendingTo: &buffer, as: root)
            #expect(r.count == 0 && r.eof, "read at \(offset)")
        }
    }

    @Test(arguments: bothModes) func writeAndTruncatePastTheLargestOffsetAreTooBig(mode: HandleMode) throws {
        let box = Sandbox()
        box.hostFile("f", "data")
        let fs = try box.fs(mode)
        let f = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root).handle
        let data = ByteBuffer(bytes: [1, 2, 3])
        for offset in Self.offsets + [UInt64(Int64.max) - 1] {  // the last: offset fits, offset + 3 does not
            #expect(isError(.errno(EFBIG)) { _ = try fs.write(f, offset: offset, data: data, stability: .unstable, as: root) },
                    "write at \(offset)")
        }
        for size in Self.offsets {
            #expect(isError(.errno(EFBIG)) { _ = try fs.setattr(f, SetAttributes(size: size), as: root) }, "truncate to \(size)")
        }
        #expect(try fs.getattr(f, as: root).size == 4)
    }
}
