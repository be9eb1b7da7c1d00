import NFS3
import NIOCore
import Testing
import Transport

/// READ, WRITE and SETATTR with offsets and sizes from 2^63 up, on the wire: a
/// READ at offset 2^63 (found by FuzzProcedures) used to kill the server.
@Suite struct NFS3LargeOffsetTests {
    @Test func offsetsPastOffTAreAnsweredAndTheServerStaysUp() throws {
        let server = try NFS3TestServer(clients: [rwRule(.vsockCID(3))])
        let c3 = try server.client(.vsock(cid: 3, port: 1023))
        let file = try c3.createdHandle(try c3.create(try c3.rootHandle(), "f"))
        #expect(try c3.write(file, [1, 2, 3]).status == .ok)
        for offset: UInt64 in [1 << 63, UInt64.max] {
            let read = try c3.read(file, offset: offset, count: 4096)
            #expect(read.ok?.count == 0 && read.ok?.eof == true, "READ at \(offset): \(read)")
            #expect(try c3.write(file, offset: offset, [1]).status == .fbig, "WRITE at \(offset)")
            #expect(try c3.status(.setattr, NFS3SetAttrArgs(object: file, newAttributes: NFS3SetAttributes(size: offset))) == .fbig,
                    "SETATTR size \(offset)")
        }
        #expect(try c3.getattr(file).ok?.size == 3)
    }
}
