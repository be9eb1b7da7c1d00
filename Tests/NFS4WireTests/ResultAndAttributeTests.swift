import NFS4Wire
import NIOCore
import Testing
import XDR

@Suite struct ResultEncodingTests {
    @Test("RFC 8881 18.46: SEQUENCE4res encodes byte for byte")
    func sequenceResult() {
        let result = NFS4Result.sequence(.ok(NFS4SequenceResOK(sessionID: sampleSession, sequenceID: 9, slotID: 3,
                                                                highestSlotID: 7, targetHighestSlotID: 15, statusFlags: 0)))
        #expect(words(encoded(result)) == [53, 0, 0x0102_0304, 0x0506_0708, 0x090a_0b0c, 0x0d0e_0f10, 9, 3, 7, 15, 0])
        #expect(words(encoded(NFS4Result.sequence(.error(.badsession)))) == [53, 10052])
    }

    /// Each resok structure decodes back to itself (they are XDRCodable for clients and tests).
    @Test("RFC 8881 18 and RFC 7862 15: the resok4 structures round trip")
    func resokRoundTrips() throws {
        func roundTrip<T: XDRCodable & Equatable>(_ value: T) throws {
            var buffer = encoded(value)
            #expect(try T(xdr: &buffer) == value)
            #expect(buffer.readableBytes == 0)
        }
        try roundTrip(NFS4ExchangeIDResOK(clientID: 0x1_0000_0001, sequenceID: 1,
                                          flags: NFS4Constants.exchgidFlagUseNonPNFS | NFS4Constants.exchgidFlagConfirmedR,
                                          stateProtect: .none, serverOwner: ServerOwner4(minorID: 0, majorID: NFS4Opaque(Array("vsnfs".utf8))),
                                          serverScope: NFS4Opaque(Array("host".utf8)),
                                          serverImplID: NFSImplID4(domain: "vsnfs", name: "vsnfs 1.0", date: NFSTime4(seconds: 1, nseconds: 2))))
        try roundTrip(NFS4ExchangeIDResOK(clientID: 1, sequenceID: 1, flags: 0,
                                          stateProtect: .ssv(SSVProtInfo4(ops: StateProtectOps4(mustEnforce: [53], mustAllow: []),
                                                                          hashAlgorithm: 1, encryptionAlgorithm: 2, ssvLength: 32,
                                                                          window: 4, handles: [[1, 2], [3]])),
                                          serverOwner: ServerOwner4(minorID: 1, majorID: NFS4Opaque([])),
                                          serverScope: NFS4Opaque([]), serverImplID: nil))
        try roundTrip(NFS4CreateSessionResOK(sessionID: sampleSession, sequence: 1, flags: 0, foreChannelAttrs: sampleChannel,
                                             backChannelAttrs: sampleChannel))
        try roundTrip(NFS4BindConnToSessionResOK(sessionID: sampleSession, direction: .both, useConnInRDMAMode: false))
        try roundTrip(NFS4OpenResOK(stateID: sampleStateID, changeInfo: ChangeInfo4(atomic: true, before: 1, after: 2),
                                    resultFlags: NFS4Constants.openResultLocktypePosix, attrSet: [4, 33],
                                    delegation: .none))
        let ace = NFSACE4(type: 0, flag: 0, accessMask: 0x1, who: "EVERYONE@")
        try roundTrip(NFS4OpenResOK(stateID: sampleStateID, changeInfo: ChangeInfo4(atomic: false, before: 0, after: 0),
                                    resultFlags: 0, attrSet: [],
                                    delegation: .read(OpenReadDelegation4(stateID: sampleStateID, recall: false, permissions: ace))))
        try roundTrip(NFS4OpenResOK(stateID: sampleStateID, changeInfo: ChangeInfo4(atomic: false, before: 0, after: 0),
                                    resultFlags: 0, attrSet: [],
                                    delegation: .write(OpenWriteDelegation4(stateID: sampleStateID, recall: true,
                                                                            spaceLimit: .blocks(count: 10, bytesPerBlock: 4096),
                                                                            permissions: ace))))
        for why in [OpenNoneDelegation4.contention(serverWillPushDelegation: true), .resource(serverWillSignalAvailable: false),
                    .other(.notWanted), .other(.isDir)] {
            try roundTrip(NFS4OpenResOK(stateID: sampleStateID, changeInfo: ChangeInfo4(atomic: true, before: 5, after: 6),
                                        resultFlags: 0, attrSet: [], delegation: .noneExt(why)))
        }
        try roundTrip(NFS4WriteResOK(count: 7, committed: .dataSync, verifier: Verifier4(99)))
        try roundTrip(NFS4CreateResOK(changeInfo: ChangeInfo4(atomic: true, before: 1, after: 2), attrSet: [33]))
        try roundTrip(NFS4RenameResOK(sourceChangeInfo: ChangeInfo4(atomic: true, before: 1, after: 2),
                                      targetChangeInfo: ChangeInfo4(atomic: true, before: 3, after: 4)))
        try roundTrip(LockDenied4(offset: 0, length: .max, lockType: .write, owner: sampleOwner))
        try roundTrip(NFS4SeekResOK(eof: false, offset: 8192))
        try roundTrip(NFS4CopyResOK(response: WriteResponse4(callbackID: sampleStateID, count: 100, committed: .unstable,
                                                             verifier: Verifier4(1)),
                                    requirements: CopyRequirements4(consecutive: true, synchronous: false)))
        try roundTrip(NFS4CopyResOK(response: WriteResponse4(callbackID: nil, count: 100, committed: .fileSync,
                                                             verifier: Verifier4(1)),
                                    requirements: CopyRequirements4(consecutive: true, synchronous: true)))
        try roundTrip(NFS4ReadResOK(eof: true, data: buffer([1, 2, 3])))
        try roundTrip(NFS4AccessResOK(supported: 0x3f, access: 0x3))
    }

    @Test("RFC 8881 18.30: SETATTR4res carries attrsset whatever the status")
    func setattrResult() {
        #expect(words(encoded(NFS4Result.setattr(.ok, attributesSet: [4, 33]))) == [34, 0, 2, 0x10, 0x2])
        #expect(words(encoded(NFS4Result.failed(.setattr, .attrnotsupp))) == [34, 10032, 0])
    }

    @Test("RFC 8881 18.10: LOCK4res's NFS4ERR_DENIED carries the conflicting lock; LOCKT's NFS4_OK is void")
    func lockResults() {
        let denied = LockDenied4(offset: 1, length: 2, lockType: .read, owner: StateOwner4(clientID: 3, owner: [0xee]))
        #expect(words(encoded(NFS4Result.lock(.denied(denied)))) == [12, 10010, 0, 1, 0, 2, 1, 0, 3, 1, 0xee00_0000])
        #expect(words(encoded(NFS4Result.lock(.ok(sampleStateID)))) == [12, 0, 2, 0xaabb_ccdd, 0x1122_3344, 0x5566_7788])
        #expect(words(encoded(NFS4Result.lockt(.ok(NFS4Empty())))) == [13, 0])
        #expect(words(encoded(NFS4Result.lockt(.denied(denied)))).prefix(2) == [13, 10010])
    }

    @Test("RFC 7862 15.2: COPY4res's OFFLOAD_NO_REQS carries copy_requirements4")
    func copyResult() {
        #expect(words(encoded(NFS4Result.copy(.noRequirements(CopyRequirements4(consecutive: false, synchronous: true)))))
                == [60, 10094, 0, 1])
        let ok = NFS4Result.copy(.ok(NFS4CopyResOK(response: WriteResponse4(callbackID: nil, count: 5, committed: .fileSync,
                                                                             verifier: Verifier4(0x0102_0304_0506_0708)),
                                                   requirements: CopyRequirements4(consecutive: true, synchronous: true))))
        #expect(words(encoded(ok)) == [60, 0, 0, 0, 5, 2, 0x0102_0304, 0x0506_0708, 1, 1])
    }

    @Test("RFC 8881 18.22: READ4res writes the data slice with its length and padding")
    func readResult() {
        let file = buffer(Array(0..<10))
        let slice = file.getSlice(at: 2, length: 5)!
        let result = NFS4Result.read(.ok(NFS4ReadResOK(eof: false, data: slice)))
        #expect(Array(encoded(result).readableBytesView) == [0, 0, 0, 25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 2, 3, 4, 5, 6, 0, 0, 0])
    }

    @Test("RFC 8881 16.2.3: COMPOUND4res's status is the last result's")
    func compoundStatus() {
        let reply = NFS4CompoundResponse(tag: Array("ab".utf8), results: [.status(.putrootfh, .ok), .status(.lookup, .noent)])
        #expect(reply.status == .noent)
        #expect(words(encoded(reply)) == [2, 2, 0x6162_0000, 2, 24, 0, 15, 2])
        #expect(NFS4CompoundResponse(tag: [], results: []).status == .ok)
    }

    @Test("RFC 8881 18.23.2: READDIR entries stop at maxcount and dircount")
    func readdirBudget() {
        var attributes = NFS4Attributes()
        attributes.type = .regular
        attributes.fileid = 1
        let fattr = attributes.encode(requested: [1, 20])
        let name: NFS4Name = "name-of-eleven"                   // 14 bytes: 16 with padding
        let entrySize = 4 + 8 + (4 + 16) + (4 + 4 + 4 + 12)      // TRUE, cookie, name, fattr4
        #expect(NFS4DirectoryListWriter.size(name: name, attributes: fattr).entry == entrySize)
        // Room for the fixed 16 bytes and three entries, not four.
        var list = NFS4DirectoryListWriter(maxCount: UInt32(16 + 3 * entrySize + entrySize - 1), dirCount: 0)
        var cookie: UInt64 = 0
        while list.append(cookie: cookie + 1, name: name, attributes: fattr) { cookie += 1 }
        #expect(list.count == 3)
        let resok = NFS4ReaddirResOK(cookieVerifier: Verifier4(1), list: list, eof: false)
        let bytes = encoded(NFS4Result.readdir(.ok(resok)))
        #expect(bytes.readableBytes == 8 + list.resokSize)        // resop and status, then the resok
        #expect(list.resokSize == 16 + 3 * entrySize)
        #expect(words(bytes).suffix(2) == [0, 0])                 // no more entries; not eof
        // dircount counts cookies and names alone: two fit in 2 x 28 bytes.
        var byNames = NFS4DirectoryListWriter(maxCount: 1 << 20, dirCount: 2 * (8 + 20))
        let appended = (1...3).map { byNames.append(cookie: UInt64($0), name: name, attributes: fattr) }
        #expect(appended == [true, true, false])
        // Too small for one entry: the server answers NFS4ERR_TOOSMALL.
        var tiny = NFS4DirectoryListWriter(maxCount: 20, dirCount: 0)
        let fitted = tiny.append(cookie: 1, name: name, attributes: fattr)
        #expect(!fitted && tiny.count == 0)
    }
}

@Suite struct AttributeTests {
    @Test("RFC 8881 5: attributes are encoded in ascending order, masked to the known, readable and present")
    func encodeOrderAndMask() {
        var attributes = NFS4Attributes()
        attributes.mode = 0o755
        attributes.type = .directory
        attributes.fileid = 0x1234
        attributes.change = 77
        attributes.size = 4096
        attributes.owner = "1000"
        attributes.timeModifySet = .serverTime                // write-only: never returned
        let requested: Bitmap4 = [33, 1, 3, 4, 14, 20, 36, 48, 45, 100]   // 14 archive, 100 unknown; 45 absent
        let fattr = attributes.encode(requested: requested)
        #expect(fattr.mask.bits == [1, 3, 4, 20, 33, 36])
        #expect(words(fattr.values) == [2, 0, 77, 0, 4096, 0, 0x1234, 0o755, 4, 0x3130_3030])
        #expect(attributes.present.bits == [1, 3, 4, 20, 33, 36, 54])
    }

    @Test("RFC 8881 5.6: the REQUIRED attributes are in the table and marked so")
    func requiredAttributes() {
        let required = NFS4Attribute.allCases.filter(\.isRequired).map(\.rawValue)
        #expect(required == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 19, 75])
        #expect(NFS4Attribute.supportedAttrs.name == "supported_attrs" && NFS4Attribute.timeModifySet.name == "time_modify_set")
        #expect(NFS4Attribute.mountedOnFileid.name == "mounted_on_fileid" && NFS4Attribute.fhExpireType.name == "fh_expire_type")
        #expect(NFS4Attribute.writable.bits == [4, 33, 36, 37, 48, 54])
    }

    @Test("RFC 8881 18.30.4: SETATTR of an unsupported attribute is ATTRNOTSUPP")
    func setUnsupportedAttribute() throws {
        var values = ByteBuffer()
        values.writeXDRBool(true)                            // archive (14), not supported here
        values.writeXDRUInt32(0o600)                         // mode (33)
        let fattr = NFS4Fattr(mask: [14, 33], values: values)
        #expect(throws: NFS4Attributes.DecodeError.self) { try NFS4Attributes(decoding: fattr, for: .set) }
        do {
            _ = try NFS4Attributes(decoding: fattr, for: .set)
        } catch {
            #expect(error.status == .attrnotsupp)
        }
        // Through the COMPOUND: SETATTR decodes (its fattr4 is opaque to the
        // COMPOUND decoder); the attribute decoder refuses it.
        let request = try NFS4CompoundRequest(decoding: compound([.putrootfh, .setattr(NFS4SetattrArgs(stateID: .anonymous, attributes: fattr))]))
        guard case .setattr(let args) = request.operations.last else {
            Issue.record("no SETATTR decoded")
            return
        }
        #expect(status(of: args.attributes, .set) == .attrnotsupp)
    }

    @Test("RFC 8881 18.30.4: SETATTR of a read-only attribute is INVAL; VERIFY of a write-only one too")
    func readOnlyAndWriteOnly() {
        var type = ByteBuffer()
        type.writeXDRUInt32(1)
        #expect(status(of: NFS4Fattr(mask: [1], values: type), .set) == .inval)
        #expect(status(of: NFS4Fattr(mask: [1], values: type), .verify) == nil)
        var setTime = ByteBuffer()
        setTime.writeXDRUInt32(0)
        #expect(status(of: NFS4Fattr(mask: [54], values: setTime), .verify) == .inval)
        var error = ByteBuffer()
        error.writeXDRUInt32(0)
        #expect(status(of: NFS4Fattr(mask: [11], values: error), .verify) == .inval)
    }

    @Test("RFC 8881 18.30: attribute values that are cut short, malformed or followed by more bytes are BADXDR")
    func badValues() {
        var short = ByteBuffer()
        short.writeXDRUInt32(0)                              // size is a uint64: half of it
        #expect(status(of: NFS4Fattr(mask: [4], values: short), .set) == .badxdr)
        var extra = ByteBuffer()
        extra.writeXDRUInt32(0o644)
        extra.writeXDRUInt32(0)
        #expect(status(of: NFS4Fattr(mask: [33], values: extra), .set) == .badxdr)
        var badHow = ByteBuffer()
        badHow.writeXDRUInt32(2)                             // time_how4 has 0 and 1
        #expect(status(of: NFS4Fattr(mask: [48], values: badHow), .set) == .badxdr)
    }

    @Test("RFC 8881 18.30: the writable attributes decode")
    func decodeSettable() throws {
        var attributes = NFS4Attributes()
        attributes.size = 1 << 33
        attributes.mode = 0o4755
        attributes.owner = "1000"
        attributes.ownerGroup = "wheel@example.org"
        attributes.timeAccessSet = .serverTime
        attributes.timeModifySet = .clientTime(NFSTime4(seconds: -1, nseconds: 999_999_999))
        // The encoder never returns write-only attributes, so build the values by hand.
        var values = ByteBuffer()
        values.writeXDRUInt64(1 << 33)
        values.writeXDRUInt32(0o4755)
        NFS4Name("1000").encode(xdr: &values)
        NFS4Name("wheel@example.org").encode(xdr: &values)
        SetTime4.serverTime.encode(xdr: &values)
        SetTime4.clientTime(NFSTime4(seconds: -1, nseconds: 999_999_999)).encode(xdr: &values)
        let decoded = try NFS4Attributes(decoding: NFS4Fattr(mask: [4, 33, 36, 37, 48, 54], values: values), for: .set)
        #expect(decoded == attributes)
    }

    @Test("RFC 8881 18.31: VERIFY's attributes decode to what GETATTR encoded")
    func verifyRoundTrip() throws {
        var attributes = NFS4Attributes()
        attributes.supportedAttrs = NFS4Attribute.all
        attributes.type = .symlink
        attributes.fsid = FSID4(major: 1, minor: 2)
        attributes.filehandle = sampleHandle
        attributes.rawdev = SpecData4(specdata1: 0, specdata2: 0)
        attributes.timeModify = NFSTime4(seconds: 1_700_000_000, nseconds: 5)
        attributes.suppattrExclcreat = NFS4Attribute.writable
        attributes.linkSupport = true
        let fattr = attributes.encode(requested: NFS4Attribute.all)
        #expect(try NFS4Attributes(decoding: fattr, for: .verify) == attributes)
    }
}

func status(of fattr: NFS4Fattr, _ purpose: NFS4Attributes.Purpose) -> NFS4Status? {
    do {
        _ = try NFS4Attributes(decoding: fattr, for: purpose)
        return nil
    } catch {
        return error.status
    }
}

@Suite struct CallbackTests {
    @Test("RFC 8881 20.9 and 20.2: CB_COMPOUND with CB_SEQUENCE and CB_RECALL round trips")
    func callbackArgs() throws {
        let args = CBCompoundArgs(minorVersion: 1, operations: [
            .sequence(CBSequenceArgs(sessionID: sampleSession, sequenceID: 1, slotID: 0, highestSlotID: 0, cacheThis: false,
                                     referringCallLists: [ReferringCallList4(sessionID: sampleSession,
                                                                             calls: [ReferringCall4(sequenceID: 4, slotID: 2)])])),
            .recall(CBRecallArgs(stateID: sampleStateID, truncate: false, fileHandle: sampleHandle)),
        ])
        var bytes = encoded(args)
        #expect(words(bytes).prefix(5) == [0, 1, 0, 2, 11])     // tag, minorversion, callback_ident, count, OP_CB_SEQUENCE
        #expect(try CBCompoundArgs(xdr: &bytes) == args)
    }

    @Test("RFC 8881 20.9: CB_COMPOUND4res decodes, CB_ILLEGAL and errors included")
    func callbackResults() throws {
        var reply = ByteBuffer()
        reply.writeXDRUInt32(0)                              // NFS4_OK
        reply.writeXDRUInt32(0)                              // tag
        reply.writeXDRUInt32(2)
        reply.writeXDRUInt32(11)                             // CB_SEQUENCE, OK
        reply.writeXDRUInt32(0)
        sampleSession.encode(xdr: &reply)
        for value: UInt32 in [1, 0, 0, 0] { reply.writeXDRUInt32(value) }
        reply.writeXDRUInt32(4)                              // CB_RECALL, OK
        reply.writeXDRUInt32(0)
        let decoded = try CBCompoundResponse(xdr: &reply)
        #expect(decoded.results == [.sequence(.ok(CBSequenceResOK(sessionID: sampleSession, sequenceID: 1, slotID: 0,
                                                                  highestSlotID: 0, targetHighestSlotID: 0))),
                                    .recall(.ok)])
        var illegal = encoded(CBCompoundResponse(status: .opIllegal, tag: [], results: [.status(.illegal, .opIllegal)]))
        #expect(try CBCompoundResponse(xdr: &illegal).results == [.status(.illegal, .opIllegal)])
        var badSession = encoded(CBCompoundResponse(status: .badsession, tag: [1], results: [.sequence(.error(.badsession))]))
        #expect(try CBCompoundResponse(xdr: &badSession).results.first?.status == .badsession)
    }
}
