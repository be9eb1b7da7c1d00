import NFS4Wire
import NIOCore
import Testing
import XDR

@Suite struct CompoundDecodingTests {
    @Test("RFC 8881 18: every operation's arguments round trip through a COMPOUND", arguments: sampleOperations)
    func operationRoundTrip(_ sample: (section: String, operation: NFS4Operation)) throws {
        let request = try NFS4CompoundRequest(decoding: compound([.putrootfh, sample.operation, .getfh], minorVersion: 2))
        #expect(request.failure == nil, "\(sample.section)")
        #expect(request.operations == [.putrootfh, sample.operation, .getfh], "\(sample.section)")
    }

    @Test("RFC 8881 16.2: every operation NFS4Operation decodes is sampled")
    func samplesCoverEveryOperation() {
        let sampled = Set(sampleOperations.map(\.operation.opcode))
        let decoded: Set<NFS4Opcode> = [
            .sequence, .exchangeID, .createSession, .destroySession, .destroyClientid, .bindConnToSession,
            .backchannelCtl, .reclaimComplete, .secinfoNoName, .secinfo, .putrootfh, .putpubfh, .putfh, .getfh,
            .savefh, .restorefh, .lookup, .lookupp, .getattr, .setattr, .verify, .nverify, .access, .open,
            .openDowngrade, .close, .read, .write, .commit, .create, .remove, .rename, .link, .readdir, .readlink,
            .lock, .lockt, .locku, .testStateid, .freeStateid, .delegreturn, .seek, .allocate, .deallocate, .copy,
            .clone,
        ]
        #expect(sampled == decoded)
    }

    /// EXCHANGE_ID as a Linux 4.1 client sends it, built word by word from
    /// RFC 8881 §18.35.1's XDR.
    @Test("RFC 8881 18.35: EXCHANGE_ID args decode from a byte-exact fixture")
    func exchangeIDFixture() throws {
        let bytes: [UInt8] = [
            0, 0, 0, 0,                          // tag: empty
            0, 0, 0, 1,                          // minorversion 1
            0, 0, 0, 1,                          // one operation
            0, 0, 0, 42,                         // OP_EXCHANGE_ID
            0x5f, 0x3c, 0x6a, 0x21, 0, 0, 0, 9,  // co_verifier
            0, 0, 0, 16,                         // co_ownerid<>: 16 bytes
        ] + Array("Linux NFSv4.1 vm".utf8) + [
            0, 0, 1, 1,                          // eia_flags: SUPP_MOVED_REFER | BIND_PRINC_STATEID
            0, 0, 0, 0,                          // SP4_NONE
            0, 0, 0, 1,                          // eia_client_impl_id<1>: one
            0, 0, 0, 10,                         // nii_domain
        ] + Array("kernel.org".utf8) + [0, 0] + [
            0, 0, 0, 5,                          // nii_name
        ] + Array("Linux".utf8) + [0, 0, 0] + [
            0, 0, 0, 0, 0x67, 0x45, 0x23, 0x01,  // nii_date.seconds
            0, 0, 0, 0,                          // nii_date.nseconds
        ]
        let request = try NFS4CompoundRequest(decoding: buffer(bytes))
        #expect(request.failure == nil)
        #expect(request.minorVersion == 1 && request.tag.isEmpty)
        let expected = NFS4ExchangeIDArgs(
            clientOwner: ClientOwner4(verifier: Verifier4(0x5f3c_6a21_0000_0009), ownerID: NFS4Opaque(Array("Linux NFSv4.1 vm".utf8))),
            flags: NFS4Constants.exchgidFlagSuppMovedRefer | NFS4Constants.exchgidFlagBindPrincStateid,
            stateProtect: .none,
            clientImplID: NFSImplID4(domain: "kernel.org", name: "Linux", date: NFSTime4(seconds: 0x6745_2301, nseconds: 0)))
        #expect(request.operations == [.exchangeID(expected)])
        // And the encoder writes exactly those bytes back.
        #expect(Array(encoded(request).readableBytesView) == bytes)
    }

    /// Every prefix of a sample COMPOUND: no crash, the operations wholly
    /// inside decode, and BADXDR names the one the prefix cuts.
    @Test("RFC 8881 15.2: a COMPOUND truncated at every byte boundary fails with BADXDR at the cut operation")
    func truncationAtEveryByte() throws {
        let operations: [NFS4Operation] = [
            sampleOperations[0].operation,                          // SEQUENCE
            .putfh(sampleHandle),
            open(.create(.exclusive4_1(verifier: Verifier4(1), attributes: sampleFattr)), .null("file")),
            .write(NFS4WriteArgs(stateID: .current, offset: 0, stable: .unstable, data: buffer(Array(repeating: 7, count: 13)))),
            .getattr([1, 3, 4]),
        ]
        let whole = compound(operations, tag: Array("tag".utf8))
        let headerSize = 8 + 4 + 4                                 // tag "tag" padded, minorversion, numops
        var ends: [Int] = []
        var end = headerSize
        for operation in operations {
            end += encoded(operation).readableBytes
            ends.append(end)
        }
        #expect(end == whole.readableBytes)
        for length in 0..<whole.readableBytes {
            let prefix = whole.getSlice(at: whole.readerIndex, length: length)!
            guard length >= headerSize else {
                #expect(throws: NFS4CompoundHeaderError.self) { try NFS4CompoundRequest(decoding: prefix) }
                continue
            }
            let request = try NFS4CompoundRequest(decoding: prefix)
            let complete = ends.filter { $0 <= length }.count
            #expect(request.operations == Array(operations.prefix(complete)), "prefix of \(length) bytes")
            let failure = try #require(request.failure, "prefix of \(length) bytes")
            #expect(failure.index == complete && failure.status == .badxdr, "prefix of \(length) bytes: \(failure)")
            // The resop is the cut operation's own when its opcode arrived.
            let opcodeArrived = length >= (complete == 0 ? headerSize : ends[complete - 1]) + 4
            #expect(failure.opcode == (opcodeArrived ? operations[complete].opcode : .illegal), "prefix of \(length) bytes")
        }
        #expect(try NFS4CompoundRequest(decoding: whole).failure == nil)
    }

    @Test("RFC 8881 2.10.6.4: more operations than ca_maxoperations is TOO_MANY_OPS at the first")
    func tooManyOperations() throws {
        let operations: [NFS4Operation] = [sampleOperations[0].operation] + Array(repeating: .getfh, count: 8)
        let limits = NFS4DecodeLimits(foreChannel: sampleChannel)             // ca_maxoperations 8
        let request = try NFS4CompoundRequest(decoding: compound(operations), limits: limits)
        #expect(request.operations.isEmpty)
        #expect(request.failure?.index == 0 && request.failure?.opcode == .sequence && request.failure?.status == .tooManyOps)
        let fits = try NFS4CompoundRequest(decoding: compound(Array(operations.prefix(8))), limits: limits)
        #expect(fits.failure == nil && fits.operations.count == 8)
    }

    @Test("RFC 8881 2.10.6.4: a request over ca_maxrequestsize is REQ_TOO_BIG, the RPC header counted")
    func requestTooBig() throws {
        let write = NFS4Operation.write(NFS4WriteArgs(stateID: sampleStateID, offset: 0, stable: .unstable,
                                                      data: buffer(Array(repeating: 1, count: 1000))))
        let args = compound([sampleOperations[0].operation, .putfh(sampleHandle), write])
        let limits = NFS4DecodeLimits(maxOperations: 8, maxRequestSize: args.readableBytes + 100)
        #expect(try NFS4CompoundRequest(decoding: args, limits: limits, rpcHeaderSize: 100).failure == nil)
        let over = try NFS4CompoundRequest(decoding: args, limits: limits, rpcHeaderSize: 101)
        #expect(over.failure == NFS4DecodeFailure(index: 0, opcode: .sequence, status: .reqTooBig, reason: over.failure?.reason ?? ""))
        #expect(over.operations.isEmpty)
    }

    @Test("RFC 8881 16.2.3: a tag over the limit or a header cut short is GARBAGE_ARGS")
    func headerErrors() throws {
        let long = compound([.getfh], tag: Array(repeating: 0x61, count: 129))
        #expect(throws: NFS4CompoundHeaderError.self) { try NFS4CompoundRequest(decoding: long) }
        let fits = try NFS4CompoundRequest(decoding: compound([.getfh], tag: Array(repeating: 0x61, count: 128)))
        #expect(fits.tag.count == 128 && fits.operations == [.getfh])
        // A tag length beyond the bytes received is refused before allocating.
        #expect(throws: NFS4CompoundHeaderError.self) {
            try NFS4CompoundRequest(decoding: buffer([0, 0, 0, 100, 1, 2, 3, 4]), limits: NFS4DecodeLimits(
                maxOperations: 1, maxRequestSize: 1 << 20, maxTagLength: 1 << 20))
        }
    }

    @Test("RFC 8881 16.2.3: minor version 0 (and 3) is MINOR_VERS_MISMATCH with no results")
    func minorVersionMismatch() throws {
        for minor: UInt32 in [0, 3] {
            let request = try NFS4CompoundRequest(decoding: compound([.putrootfh, .getfh], minorVersion: minor, tag: [9]))
            #expect(request.minorVersionMismatch && request.operations.isEmpty && request.failure == nil)
            let reply = encoded(NFS4CompoundResponse.minorVersionMismatch(tag: request.tag))
            #expect(words(reply) == [10021, 1, 0x0900_0000, 0])
        }
        #expect(try !NFS4CompoundRequest(decoding: compound([.getfh], minorVersion: 2)).minorVersionMismatch)
    }

    @Test("RFC 8881 15.2: an unknown opcode is OP_ILLEGAL with resop OP_ILLEGAL, and the reply ends there")
    func illegalOpcode() throws {
        var args = compound([.putrootfh, .getfh])
        // Append a third operation, number 9999, and bump numops.
        args.setInteger(UInt32(3), at: args.readerIndex + 8, endianness: .big)
        args.writeXDRUInt32(9999)
        let request = try NFS4CompoundRequest(decoding: args)
        #expect(request.operations == [.putrootfh, .getfh])
        let failure = try #require(request.failure)
        #expect(failure.index == 2 && failure.opcode == .illegal && failure.status == .opIllegal)
        let results: [NFS4Result] = [.status(.putrootfh, .ok), .getfh(.ok(sampleHandle)), failure.result]
        let reply = NFS4CompoundResponse(tag: request.tag, results: results)
        #expect(reply.status == .opIllegal)
        #expect(words(encoded(reply)).suffix(2) == [10044, 10044])
    }

    @Test("RFC 7862 15.1: a 4.2 operation in a 4.1 COMPOUND is OP_ILLEGAL")
    func laterMinorVersionOperation() throws {
        let seek = sampleOperations.first { $0.operation.opcode == .seek }!.operation
        let in41 = try NFS4CompoundRequest(decoding: compound([.putrootfh, seek], minorVersion: 1))
        #expect(in41.failure?.index == 1 && in41.failure?.status == .opIllegal && in41.failure?.opcode == .illegal)
        let in42 = try NFS4CompoundRequest(decoding: compound([.putrootfh, seek], minorVersion: 2))
        #expect(in42.failure == nil && in42.operations == [.putrootfh, seek])
    }

    @Test("RFC 8881 15.2: unsupported operations are skipped when their arguments can be, else the COMPOUND stops there")
    func unsupportedOperations() throws {
        var args = ByteBuffer()
        args.writeXDRUInt32(0)                        // tag
        args.writeXDRUInt32(2)                        // minorversion
        args.writeXDRUInt32(5)                        // numops
        args.writeXDRUInt32(NFS4Opcode.openattr.rawValue)
        args.writeXDRBool(true)                       // createdir
        args.writeXDRUInt32(NFS4Opcode.releaseLockowner.rawValue)
        sampleOwner.encode(xdr: &args)
        args.writeXDRUInt32(NFS4Opcode.getfh.rawValue)
        args.writeXDRUInt32(NFS4Opcode.writeSame.rawValue)
        args.writeRepeatingByte(0, count: 64)
        args.writeXDRUInt32(NFS4Opcode.getfh.rawValue)
        let request = try NFS4CompoundRequest(decoding: args)
        #expect(request.operations == [.unsupported(.openattr), .unsupported(.releaseLockowner), .getfh])
        #expect(request.failure?.index == 3 && request.failure?.opcode == .writeSame && request.failure?.status == .notsupp)
        #expect(words(encoded(request.failure!.result)) == [70, 10004])
    }

    @Test("RFC 8881 18.16: an undefined createmode4 or claim is BADXDR at that OPEN")
    func badUnionDiscriminant() throws {
        var args = compound([.putrootfh, open(.noCreate, .fh)])
        // The claim type is the last word: make it 7, past CLAIM_DELEG_PREV_FH.
        args.setInteger(UInt32(7), at: args.writerIndex - 4, endianness: .big)
        let request = try NFS4CompoundRequest(decoding: args)
        #expect(request.operations == [.putrootfh])
        #expect(request.failure?.index == 1 && request.failure?.opcode == .open && request.failure?.status == .badxdr)
    }

    @Test("RFC 8881 18.32: WRITE's data is a slice of the request, not a copy")
    func writeDataIsASlice() throws {
        let payload = Array(repeating: UInt8(0x5a), count: 4096)
        let args = compound([.write(NFS4WriteArgs(stateID: sampleStateID, offset: 0, stable: .unstable, data: buffer(payload)))])
        let request = try NFS4CompoundRequest(decoding: args)
        guard case .write(let write) = request.operations.first else {
            Issue.record("no WRITE decoded")
            return
        }
        #expect(Array(write.data.readableBytesView) == payload)
        let sharesStorage = args.withUnsafeReadableBytes { whole in
            write.data.withUnsafeReadableBytes { data in
                data.baseAddress! >= whole.baseAddress! && data.baseAddress! + data.count <= whole.baseAddress! + whole.count
            }
        }
        #expect(sharesStorage)
    }

    @Test("RFC 8881 18.48: a TEST_STATEID count beyond the bytes received is refused before allocating")
    func hostileArrayCount() throws {
        var args = ByteBuffer()
        args.writeXDRUInt32(0)
        args.writeXDRUInt32(1)
        args.writeXDRUInt32(1)
        args.writeXDRUInt32(NFS4Opcode.testStateid.rawValue)
        args.writeXDRUInt32(1000)                     // 1000 stateids promised, one sent
        sampleStateID.encode(xdr: &args)
        let request = try NFS4CompoundRequest(decoding: args)
        #expect(request.failure?.index == 0 && request.failure?.status == .badxdr)
    }
}

@Suite struct TypeTests {
    @Test("RFC 8881 8.2.3: the special stateids")
    func specialStateIDs() {
        #expect(StateID.anonymous.special == .anonymous)
        #expect(StateID.readBypass.special == .readBypass)
        #expect(StateID.current.special == .current)
        #expect(StateID.invalid.special == .invalid)
        #expect(StateID(seqid: 5, otherHigh: 0, otherLow: 0).special == .reserved)
        #expect(StateID(seqid: 0, otherHigh: .max, otherLow: .max).special == .reserved)
        #expect(sampleStateID.special == nil)
        #expect(words(encoded(StateID.readBypass)) == [.max, .max, .max, .max])
        #expect(words(encoded(StateID.current)) == [1, 0, 0, 0])
        let other: [UInt8] = Array(1...12)
        #expect(StateID(seqid: 3, other: other).other == other)
    }

    @Test("RFC 8881 15.1 and RFC 7862 11.1: nfsstat4 values and names")
    func statusValues() {
        // 19 POSIX-like values, NFS4ERR_BADHANDLE, 10003-10072, 10074-10094 (10073 is unassigned).
        #expect(NFS4Status.allCases.count == 19 + 1 + 70 + 21)
        #expect(NFS4Status.badxdr.rawValue == 10036 && NFS4Status.opIllegal.rawValue == 10044)
        #expect(NFS4Status.deadsession.rawValue == 10078 && NFS4Status.delegRevoked.rawValue == 10087)
        #expect(NFS4Status.offloadNoReqs.rawValue == 10094)
        #expect(NFS4Status.badStateid.rfcName == "NFS4ERR_BAD_STATEID")
        #expect(NFS4Status.minorVersMismatch.rfcName == "NFS4ERR_MINOR_VERS_MISMATCH")
        #expect(NFS4Status.ok.rfcName == "NFS4_OK")
    }

    @Test("RFC 8881 16.2 and RFC 7862 15: opcodes by minor version")
    func opcodes() {
        #expect(NFS4Opcode.allCases.count == 70)
        #expect(NFS4Opcode.sequence.rawValue == 53 && NFS4Opcode.reclaimComplete.rawValue == 58)
        #expect(NFS4Opcode.clone.rawValue == 71 && NFS4Opcode.seek.rawValue == 69)
        #expect(NFS4Opcode.valid(2, minorVersion: 2) == nil)               // 0-2 are unassigned
        #expect(NFS4Opcode.valid(10044, minorVersion: 2) == nil)           // OP_ILLEGAL itself is illegal
        #expect(NFS4Opcode.valid(58, minorVersion: 1) == .reclaimComplete)
        #expect(NFS4Opcode.valid(59, minorVersion: 1) == nil)
        #expect(NFS4Opcode.valid(71, minorVersion: 2) == .clone)
        #expect(NFS4Opcode.valid(72, minorVersion: 2) == nil)
        #expect(CBOpcode.sequence.rawValue == 11 && CBOpcode.recall.rawValue == 4 && CBOpcode.offload.rawValue == 15)
    }

    @Test("RFC 8881 3.3.7: bitmap4 bit n is in word n / 32")
    func bitmaps() {
        let bitmap: Bitmap4 = [0, 1, 31, 32, 55, 75]
        #expect(bitmap.words == [0x8000_0003, 0x0080_0001, 0x0000_0800])
        #expect(bitmap.bits == [0, 1, 31, 32, 55, 75])
        #expect(bitmap.contains(55) && !bitmap.contains(54) && !bitmap.contains(200))
        #expect(bitmap.intersection([1, 32, 100]).bits == [1, 32])
        #expect(bitmap.subtracting([0, 75]).words == [0x8000_0002, 0x0080_0001])
        #expect(Bitmap4(words: [1, 0, 0]).trimmed().words == [1])
    }
}
