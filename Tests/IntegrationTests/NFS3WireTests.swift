import Mount3
import NFS3
import NIOCore
import Testing
import XDR

/// NFSv3 / MOUNT v3 wire types: every type round-trips through its one
/// encoder and one decoder; bounds are enforced; truncation is an error.
@Suite struct NFS3WireTests {
    static let fh = NFS3FileHandle(Array(0..<64))
    static let time = NFS3Time(seconds: 1_700_000_000, nseconds: 123_456_789)
    static let attrs = NFS3Attributes(type: .regular, mode: 0o644, nlink: 1, uid: 1000, gid: 1000, size: 12345,
                                      used: 16384, rdev: NFS3SpecData(major: 0, minor: 0), fsid: 7, fileid: 42,
                                      atime: time, mtime: time, ctime: time)
    static let sattr = NFS3SetAttributes(mode: 0o600, uid: 5, gid: nil, size: 99, atime: .serverTime,
                                         mtime: .clientTime(time))
    static let wcc = NFS3WccData(before: attrs.wccAttributes, after: attrs)
    static let name: NFS3Name = NFS3Name([0x66, 0xff, 0xfe, 0x00 + 0x41])  // not UTF-8

    func roundTrip<T: XDRCodable & Equatable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var buffer = ByteBuffer()
        value.encode(xdr: &buffer)
        #expect(buffer.readableBytes % 4 == 0, sourceLocation: sourceLocation)
        let encoded = buffer
        let decoded = try T(xdr: &buffer)
        #expect(decoded == value, sourceLocation: sourceLocation)
        #expect(buffer.readableBytes == 0, sourceLocation: sourceLocation)
        // Every strict prefix is truncated data, never a value.
        for cut in Swift.stride(from: 0, to: encoded.readableBytes, by: max(1, encoded.readableBytes / 16)) {
            var prefix = encoded.getSlice(at: encoded.readerIndex, length: cut)!
            #expect(throws: (any Error).self, sourceLocation: sourceLocation) { _ = try T(xdr: &prefix) }
        }
    }

    /// READDIRPLUS entries and fattr3 are written with unchecked stores: byte for byte
    /// what the field-by-field XDR writes give, for every name and handle padding.
    @Test func readdirplusEntryBytes() throws {
        let t = { (s: UInt32) in NFS3Time(seconds: s, nseconds: s &* 7 + 1) }
        let a = NFS3Attributes(type: .characterDevice, mode: 0o4755, nlink: 3, uid: 0xFFFF_FFFE, gid: 17, size: 0x0102_0304_0506_0708,
                               used: 9, rdev: NFS3SpecData(major: 10, minor: 11), fsid: 0xA0B0_C0D0_E0F0_0010, fileid: 99,
                               atime: t(1), mtime: t(2), ctime: t(3))
        var entries: [NFS3DirEntryPlus] = []
        for i in 0..<12 {
            entries.append(NFS3DirEntryPlus(
                fileid: UInt64(i) << 40 | 5, name: NFS3Name(Array(repeating: UInt8(0x61 + i), count: i % 6)), cookie: ~UInt64(i),
                attributes: i % 3 == 0 ? .none : NFS3PostOpAttributes(a),
                handle: i % 4 == 1 ? nil : NFS3FileHandle(Array(0..<UInt8(24 + i % 5)))))
        }
        let ok = NFS3ReaddirPlusOK(directoryAttributes: NFS3PostOpAttributes(a), cookieVerifier: NFS3Verifier(3), entries: entries, eof: true)
        var got = ByteBuffer()
        ok.encode(xdr: &got)

        func fattr(_ b: inout ByteBuffer) {
            for v in [a.type.rawValue, a.mode, a.nlink, a.uid, a.gid] { b.writeXDRUInt32(v) }
            b.writeXDRUInt64(a.size); b.writeXDRUInt64(a.used)
            b.writeXDRUInt32(a.rdev.major); b.writeXDRUInt32(a.rdev.minor)
            b.writeXDRUInt64(a.fsid); b.writeXDRUInt64(a.fileid)
            for x in [a.atime, a.mtime, a.ctime] { b.writeXDRUInt32(x.seconds); b.writeXDRUInt32(x.nseconds) }
        }
        var want = ByteBuffer()
        want.writeXDRBool(true); fattr(&want)
        want.writeXDRUInt64(3)
        for e in entries {
            want.writeXDRBool(true)
            want.writeXDRUInt64(e.fileid)
            want.writeXDRVariableOpaque(e.name.bytes)
            want.writeXDRUInt64(e.cookie)
            if e.attributes.attributes != nil { want.writeXDRBool(true); fattr(&want) } else { want.writeXDRBool(false) }
            if let h = e.handle { want.writeXDRBool(true); want.writeXDRVariableOpaque(h.bytes) } else { want.writeXDRBool(false) }
        }
        want.writeXDRBool(false)
        want.writeXDRBool(true)
        #expect(Array(got.readableBytesView) == Array(want.readableBytesView))
        #expect(try NFS3ReaddirPlusOK(xdr: &got) == ok)
    }

    @Test func basicTypes() throws {
        try roundTrip(Self.attrs)
        try roundTrip(Self.sattr)
        try roundTrip(NFS3SetAttributes.none)
        try roundTrip(Self.wcc)
        try roundTrip(NFS3WccData.none)
        try roundTrip(NFS3PostOpAttributes(Self.attrs))
        try roundTrip(NFS3DirOpArgs(directory: Self.fh, name: Self.name))
        try roundTrip(Self.fh)
        #expect(NFS3Attributes.xdrSize == { var b = ByteBuffer(); Self.attrs.encode(xdr: &b); return b.readableBytes }())
    }

    @Test func argumentsOfAllProcedures() throws {
        let dirop = NFS3DirOpArgs(directory: Self.fh, name: "file")
        try roundTrip(NFS3HandleArgs(object: Self.fh))
        try roundTrip(NFS3SetAttrArgs(object: Self.fh, newAttributes: Self.sattr, guardCtime: Self.time))
        try roundTrip(NFS3SetAttrArgs(object: Self.fh, newAttributes: Self.sattr))
        try roundTrip(NFS3AccessArgs(object: Self.fh, access: 0x3f))
        try roundTrip(NFS3ReadArgs(file: Self.fh, offset: 1 << 40, count: 1 << 20))
        try roundTrip(NFS3WriteArgs(file: Self.fh, offset: 3, count: 5, stable: .dataSync, data: ByteBuffer(bytes: [1, 2, 3, 4, 5])))
        try roundTrip(NFS3CreateArgs(whereTo: dirop, how: .unchecked(Self.sattr)))
        try roundTrip(NFS3CreateArgs(whereTo: dirop, how: .guarded(Self.sattr)))
        try roundTrip(NFS3CreateArgs(whereTo: dirop, how: .exclusive(NFS3Verifier(0x0102030405060708))))
        try roundTrip(NFS3MkdirArgs(whereTo: dirop, attributes: Self.sattr))
        try roundTrip(NFS3SymlinkArgs(whereTo: dirop, attributes: .none, target: "../a/b"))
        try roundTrip(NFS3MknodArgs(whereTo: dirop, what: .fifo(Self.sattr)))
        try roundTrip(NFS3MknodArgs(whereTo: dirop, what: .socket(.none)))
        try roundTrip(NFS3MknodArgs(whereTo: dirop, what: .characterDevice(.none, NFS3SpecData(major: 1, minor: 3))))
        try roundTrip(NFS3MknodArgs(whereTo: dirop, what: .blockDevice(.none, NFS3SpecData(major: 8, minor: 0))))
        try roundTrip(NFS3MknodArgs(whereTo: dirop, what: .other(.regular)))
        try roundTrip(NFS3RenameArgs(from: dirop, to: NFS3DirOpArgs(directory: Self.fh, name: "other")))
        try roundTrip(NFS3LinkArgs(file: Self.fh, link: dirop))
        try roundTrip(NFS3ReaddirArgs(directory: Self.fh, cookie: 77, cookieVerifier: NFS3Verifier(9), count: 4096))
        try roundTrip(NFS3ReaddirPlusArgs(directory: Self.fh, cookie: 77, cookieVerifier: NFS3Verifier(9), dirCount: 512, maxCount: 8192))
        try roundTrip(NFS3CommitArgs(file: Self.fh, offset: 0, count: 0))
        try roundTrip(MountPathArgs(path: "/export/sub"))
    }

    @Test func resultsOfAllProcedures() throws {
        let post = NFS3PostOpAttributes(Self.attrs)
        try roundTrip(NFS3GetAttrResult.ok(Self.attrs))
        try roundTrip(NFS3GetAttrResult.fail(.stale))
        try roundTrip(NFS3SetAttrResult.ok(Self.wcc))
        try roundTrip(NFS3SetAttrResult.fail(.notSync, Self.wcc))
        try roundTrip(NFS3LookupResult.ok(NFS3LookupOK(object: Self.fh, objectAttributes: post, directoryAttributes: .none)))
        try roundTrip(NFS3LookupResult.fail(.noent, post))
        try roundTrip(NFS3AccessResult.ok(NFS3AccessOK(objectAttributes: post, access: 0x1f)))
        try roundTrip(NFS3ReadlinkResult.ok(NFS3ReadlinkOK(symlinkAttributes: post, data: Self.name)))
        try roundTrip(NFS3ReadResult.ok(NFS3ReadOK(fileAttributes: post, count: 3, eof: true, data: ByteBuffer(bytes: [7, 8, 9]))))
        try roundTrip(NFS3ReadResult.fail(.isdir, .none))
        try roundTrip(NFS3WriteResult.ok(NFS3WriteOK(fileWcc: Self.wcc, count: 3, committed: .fileSync, verifier: NFS3Verifier(5))))
        try roundTrip(NFS3CreateResult.ok(NFS3NewObjectOK(object: Self.fh, objectAttributes: post, directoryWcc: Self.wcc)))
        try roundTrip(NFS3CreateResult.ok(NFS3NewObjectOK(object: nil, objectAttributes: .none, directoryWcc: .none)))
        try roundTrip(NFS3RemoveResult.fail(.notempty, Self.wcc))
        try roundTrip(NFS3RenameResult.ok(NFS3RenameWcc(fromDirectoryWcc: Self.wcc, toDirectoryWcc: .none)))
        try roundTrip(NFS3LinkResult.ok(NFS3LinkWcc(fileAttributes: post, linkDirectoryWcc: Self.wcc)))
        try roundTrip(NFS3ReaddirResult.ok(NFS3ReaddirOK(
            directoryAttributes: post, cookieVerifier: NFS3Verifier(1),
            entries: [NFS3DirEntry(fileid: 1, name: ".", cookie: 1), NFS3DirEntry(fileid: 2, name: Self.name, cookie: 2)],
            eof: true)))
        try roundTrip(NFS3ReaddirPlusResult.ok(NFS3ReaddirPlusOK(
            directoryAttributes: post, cookieVerifier: NFS3Verifier(1),
            entries: [NFS3DirEntryPlus(fileid: 1, name: "a", cookie: 1, attributes: post, handle: Self.fh),
                      NFS3DirEntryPlus(fileid: 2, name: "b", cookie: 2, attributes: .none, handle: nil)],
            eof: false)))
        try roundTrip(NFS3FSStatResult.ok(NFS3FSStatOK(objectAttributes: post, totalBytes: 1, freeBytes: 2, availableBytes: 3,
                                                       totalFiles: 4, freeFiles: 5, availableFiles: 6, invariantSeconds: 0)))
        try roundTrip(NFS3FSInfoResult.ok(NFS3FSInfoOK(objectAttributes: post, rtmax: 1, rtpref: 2, rtmult: 3, wtmax: 4,
                                                       wtpref: 5, wtmult: 6, dtpref: 7, maxFileSize: 8,
                                                       timeDelta: NFS3Time(seconds: 0, nseconds: 1), properties: 0x1b)))
        try roundTrip(NFS3PathConfResult.ok(NFS3PathConfOK(objectAttributes: post, linkMax: 1, nameMax: 255, noTrunc: true,
                                                           chownRestricted: true, caseInsensitive: false, casePreserving: true)))
        try roundTrip(NFS3CommitResult.ok(NFS3CommitOK(fileWcc: Self.wcc, verifier: NFS3Verifier(77))))
        try roundTrip(MountMntResult.ok(handle: Self.fh, authFlavors: [1]))
        try roundTrip(MountMntResult.fail(.acces))
        try roundTrip(MountDumpResult(entries: [MountEntry(hostname: "vsock:3", directory: "/export")]))
        try roundTrip(MountExportResult(exports: [MountExportEntry(directory: "/export", groups: ["vsock:3", "vsock:*"]),
                                                  MountExportEntry(directory: "/other", groups: [])]))
    }

    @Test func boundsAreEnforced() {
        func expectRefused<T: XDRDecodable>(_ type: T.Type, _ fill: (inout ByteBuffer) -> Void,
                                            sourceLocation: SourceLocation = #_sourceLocation) {
            var buffer = ByteBuffer()
            fill(&buffer)
            #expect(throws: XDRError.self, sourceLocation: sourceLocation) { _ = try T(xdr: &buffer) }
        }
        // A 65-byte handle.
        expectRefused(NFS3HandleArgs.self) { $0.writeXDRVariableOpaque([UInt8](repeating: 1, count: 65)) }
        // A 256-byte name.
        expectRefused(NFS3DirOpArgs.self) {
            $0.writeXDRVariableOpaque([UInt8](repeating: 1, count: 8))
            $0.writeXDRVariableOpaque([UInt8](repeating: 0x61, count: 256))
        }
        // A 4097-byte symlink target.
        expectRefused(NFS3SymlinkArgs.self) {
            NFS3DirOpArgs(directory: NFS3FileHandle([1]), name: "l").encode(xdr: &$0)
            NFS3SetAttributes.none.encode(xdr: &$0)
            $0.writeXDRVariableOpaque([UInt8](repeating: 0x61, count: 4097))
        }
        // A 1025-byte MOUNT path.
        expectRefused(MountPathArgs.self) { $0.writeXDRVariableOpaque([UInt8](repeating: 0x2f, count: 1025)) }
        // WRITE data above wtmax (the length alone is refused; no data need follow).
        expectRefused(NFS3WriteArgs.self) {
            NFS3FileHandle([1]).encode(xdr: &$0)
            $0.writeXDRUInt64(0)
            $0.writeXDRUInt32(1 << 20 + 1)
            $0.writeXDRUInt32(2)
            $0.writeXDRUInt32(1 << 20 + 1)
        }
        // A length that claims more than was received.
        expectRefused(NFS3HandleArgs.self) { $0.writeXDRUInt32(32); $0.writeBytes([1, 2, 3, 4]) }
        // Unknown discriminants.
        expectRefused(NFS3CreateArgs.self) {
            NFS3DirOpArgs(directory: NFS3FileHandle([1]), name: "f").encode(xdr: &$0)
            $0.writeXDRUInt32(3)
        }
        expectRefused(NFS3WriteArgs.self) {
            NFS3FileHandle([1]).encode(xdr: &$0)
            $0.writeXDRUInt64(0)
            $0.writeXDRUInt32(0)
            $0.writeXDRUInt32(3)
            $0.writeXDRUInt32(0)
        }
        expectRefused(NFS3SetAttributes.self) { for _ in 0..<4 { $0.writeXDRUInt32(0) }; $0.writeXDRUInt32(7) }
    }

    @Test func statusNamesAndErrorTable() {
        #expect(NFS3Status.notSync.description == "NFS3ERR_NOT_SYNC")
        #expect(NFS3Status.jukebox.description == "NFS3ERR_JUKEBOX")
        #expect(NFS3ErrorMapping.status(errno: EMFILE) == .jukebox)
        #expect(NFS3ErrorMapping.status(errno: ENFILE) == .jukebox)
        #expect(NFS3ErrorMapping.status(errno: ENOMEM) == .jukebox)
        #expect(NFS3ErrorMapping.status(errno: EAGAIN) == .jukebox)
        #expect(NFS3ErrorMapping.status(errno: ENOTEMPTY) == .notempty)
        #expect(NFS3ErrorMapping.status(errno: EDQUOT) == .dquot)
        #expect(NFS3ErrorMapping.status(errno: ESTALE) == .stale)
        #expect(NFS3ErrorMapping.status(errno: EOPNOTSUPP) == .notsupp)
        #expect(NFS3ErrorMapping.status(errno: EXDEV) == .xdev)
        #expect(NFS3ErrorMapping.status(errno: 9999) == .io)
    }
}

import Glibc
