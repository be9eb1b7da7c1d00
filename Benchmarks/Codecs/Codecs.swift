// Encode/decode of the messages on vsnfs's hot paths, as the server sees
// them: a call record in (RPC header + AUTH_SYS + NFSv3 arguments), a reply
// out (RPC reply header + NFSv3 results). Allocation counts matter as much
// as time here: every malloc on these paths happens once per request.
import Benchmark
import NFS3
import NIOCore
import ONCRPC
import XDR

let allocator = ByteBufferAllocator()
let handle = NFS3FileHandle([UInt8](repeating: 0xA5, count: 40))
let attributes = NFS3Attributes(
    type: .regular, mode: 0o644, nlink: 1, uid: 1000, gid: 1000, size: 1 << 28, used: 1 << 28,
    rdev: NFS3SpecData(major: 0, minor: 0), fsid: 0x8000_1234, fileid: 123_456,
    atime: NFS3Time(seconds: 1_700_000_000, nseconds: 1), mtime: NFS3Time(seconds: 1_700_000_000, nseconds: 2),
    ctime: NFS3Time(seconds: 1_700_000_000, nseconds: 3))
let credential = AuthSysParameters(stamp: 1, machineName: Array("guest".utf8), uid: 1000, gid: 1000, gids: [1000, 27]).opaqueAuth

/// A call record as a client sends it (without the record mark).
func callRecord(procedure: UInt32, arguments: some XDREncodable) -> ByteBuffer {
    var args = allocator.buffer(capacity: 4200)
    arguments.encode(xdr: &args)
    var record = allocator.buffer(capacity: 4400)
    RPCMessage.call(xid: 42, rpcVersion: 2, program: 100003, version: 3, procedure: procedure,
                    credential: credential, verifier: .none, arguments: args).encode(xdr: &record)
    return record
}

let readCall = callRecord(procedure: 6, arguments: NFS3ReadArgs(file: handle, offset: 1 << 20, count: 4096))
let writeCall = callRecord(procedure: 7, arguments: NFS3WriteArgs(file: handle, offset: 1 << 20, count: 4096, stable: .unstable,
                                                                   data: ByteBuffer(repeating: 7, count: 4096)))
let getattrCall = callRecord(procedure: 1, arguments: NFS3HandleArgs(object: handle))
let lookupCall = callRecord(procedure: 3, arguments: NFS3DirOpArgs(directory: handle, name: "some-file-name.txt"))

func decodeCall<A: XDRDecodable>(_ record: ByteBuffer, _ type: A.Type) -> A {
    guard case .call(_, _, _, _, _, let cred, let verifier, var arguments) = try! RPCMessage(record: record) else { fatalError() }
    blackHole(try! RPCDispatcher.checkCredential(cred, verifier: verifier).get())
    return try! A(xdr: &arguments)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 1000,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000)

    Benchmark("decode READ call (RPC + AUTH_SYS + READ3args)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decodeCall(readCall, NFS3ReadArgs.self)) }
    }
    Benchmark("decode WRITE call, 4 KiB") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decodeCall(writeCall, NFS3WriteArgs.self)) }
    }
    Benchmark("decode GETATTR call") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decodeCall(getattrCall, NFS3HandleArgs.self)) }
    }
    Benchmark("decode LOOKUP call") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decodeCall(lookupCall, NFS3DirOpArgs.self)) }
    }
    Benchmark("encode GETATTR reply (RPC header + fattr3)") { benchmark in
        for _ in benchmark.scaledIterations {
            var out = allocator.buffer(capacity: 512)
            NFS3GetAttrResult.ok(attributes).encode(xdr: &out)
            var reply = allocator.buffer(capacity: 256)
            RPCMessage.encodeReplyHeader(xid: 42, body: .success(results: out), into: &reply)
            reply.writeBuffer(&out)
            blackHole(reply)
        }
    }
    Benchmark("encode READ reply header (4 KiB data appended)") { benchmark in
        let data = ByteBuffer(repeating: 1, count: 4096)
        for _ in benchmark.scaledIterations {
            var out = allocator.buffer(capacity: 4096 + 128)
            NFS3ReadResult.ok(NFS3ReadOK(fileAttributes: NFS3PostOpAttributes(attributes), count: 4096, eof: false,
                                         data: data)).encode(xdr: &out)
            var reply = allocator.buffer(capacity: 256)
            RPCMessage.encodeReplyHeader(xid: 42, body: .success(results: out), into: &reply)
            blackHole((reply, out))
        }
    }
    Benchmark("encode LOOKUP reply") { benchmark in
        for _ in benchmark.scaledIterations {
            var out = allocator.buffer(capacity: 512)
            NFS3LookupResult.ok(NFS3LookupOK(object: handle, objectAttributes: NFS3PostOpAttributes(attributes),
                                             directoryAttributes: NFS3PostOpAttributes(attributes))).encode(xdr: &out)
            blackHole(out)
        }
    }
    Benchmark("encode WRITE reply") { benchmark in
        let wcc = NFS3WccData(before: NFS3WccAttributes(size: 1, mtime: attributes.mtime, ctime: attributes.ctime), after: attributes)
        for _ in benchmark.scaledIterations {
            var out = allocator.buffer(capacity: 512)
            NFS3WriteResult.ok(NFS3WriteOK(fileWcc: wcc, count: 4096, committed: .unstable, verifier: NFS3Verifier(9))).encode(xdr: &out)
            blackHole(out)
        }
    }
    Benchmark("encode READDIRPLUS reply, 100 entries",
              configuration: .init(scalingFactor: .one)) { benchmark in
        let entries = (0..<100).map {
            NFS3DirEntryPlus(fileid: UInt64($0), name: NFS3Name("entry-\($0)"), cookie: UInt64($0 + 1),
                             attributes: NFS3PostOpAttributes(attributes), handle: handle)
        }
        let ok = NFS3ReaddirPlusOK(directoryAttributes: NFS3PostOpAttributes(attributes), cookieVerifier: .zero,
                                   entries: entries, eof: false)
        for _ in benchmark.scaledIterations {
            var out = allocator.buffer(capacity: 32768)
            NFS3ReaddirPlusResult.ok(ok).encode(xdr: &out)
            blackHole(out)
        }
    }
}
