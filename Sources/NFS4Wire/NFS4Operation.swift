import NIOCore
import XDR

/// One operation of a COMPOUND (nfs_argop4) with its arguments.
public enum NFS4Operation: Sendable, Hashable, XDREncodable {
    // Sessions and clients (RFC 8881 §18.33-18.51).
    case sequence(NFS4SequenceArgs)
    case exchangeID(NFS4ExchangeIDArgs)
    case createSession(NFS4CreateSessionArgs)
    case destroySession(SessionID)
    case destroyClientID(ClientID)
    case bindConnToSession(NFS4BindConnToSessionArgs)
    case backchannelCtl(NFS4BackchannelCtlArgs)
    case reclaimComplete(oneFS: Bool)
    case secinfoNoName(SecinfoStyle4)
    case secinfo(NFS4Name)
    // Filehandles.
    case putrootfh
    case putpubfh
    case putfh(NFS4FileHandle)
    case getfh
    case savefh
    case restorefh
    case lookup(NFS4Name)
    case lookupp
    // Attributes and access.
    case getattr(Bitmap4)
    case setattr(NFS4SetattrArgs)
    case verify(NFS4Fattr)
    case nverify(NFS4Fattr)
    case access(UInt32)
    // Opens and I/O.
    case open(NFS4OpenArgs)
    case openDowngrade(NFS4OpenDowngradeArgs)
    case close(NFS4CloseArgs)
    case read(NFS4ReadArgs)
    case write(NFS4WriteArgs)
    case commit(NFS4CommitArgs)
    // Namespace.
    case create(NFS4CreateArgs)
    case remove(NFS4Name)
    case rename(NFS4RenameArgs)
    case link(NFS4Name)
    case readdir(NFS4ReaddirArgs)
    case readlink
    // Locks and state.
    case lock(NFS4LockArgs)
    case lockt(NFS4LocktArgs)
    case locku(NFS4LockuArgs)
    case testStateid([StateID])
    case freeStateid(StateID)
    case delegreturn(StateID)
    // NFSv4.2 (RFC 7862).
    case seek(NFS4SeekArgs)
    case allocate(NFS4AllocateArgs)
    case deallocate(NFS4AllocateArgs)
    case copy(NFS4CopyArgs)
    case clone(NFS4CloneArgs)
    /// A valid operation this layer does not decode, whose arguments were
    /// skipped: the server answers it NFS4ERR_NOTSUPP.
    case unsupported(NFS4Opcode)

    public var opcode: NFS4Opcode {
        switch self {
        case .sequence: return .sequence
        case .exchangeID: return .exchangeID
        case .createSession: return .createSession
        case .destroySession: return .destroySession
        case .destroyClientID: return .destroyClientid
        case .bindConnToSession: return .bindConnToSession
        case .backchannelCtl: return .backchannelCtl
        case .reclaimComplete: return .reclaimComplete
        case .secinfoNoName: return .secinfoNoName
        case .secinfo: return .secinfo
        case .putrootfh: return .putrootfh
        case .putpubfh: return .putpubfh
        case .putfh: return .putfh
        case .getfh: return .getfh
        case .savefh: return .savefh
        case .restorefh: return .restorefh
        case .lookup: return .lookup
        case .lookupp: return .lookupp
        case .getattr: return .getattr
        case .setattr: return .setattr
        case .verify: return .verify
        case .nverify: return .nverify
        case .access: return .access
        case .open: return .open
        case .openDowngrade: return .openDowngrade
        case .close: return .close
        case .read: return .read
        case .write: return .write
        case .commit: return .commit
        case .create: return .create
        case .remove: return .remove
        case .rename: return .rename
        case .link: return .link
        case .readdir: return .readdir
        case .readlink: return .readlink
        case .lock: return .lock
        case .lockt: return .lockt
        case .locku: return .locku
        case .testStateid: return .testStateid
        case .freeStateid: return .freeStateid
        case .delegreturn: return .delegreturn
        case .seek: return .seek
        case .allocate: return .allocate
        case .deallocate: return .deallocate
        case .copy: return .copy
        case .clone: return .clone
        case .unsupported(let opcode): return opcode
        }
    }

    /// Decodes the arguments of `opcode`. Returns nil for an operation this
    /// layer neither decodes nor can skip (the COMPOUND stops there with
    /// NFS4ERR_NOTSUPP); throws XDRError when the arguments do not decode.
    public static func decode(_ opcode: NFS4Opcode, from buffer: inout ByteBuffer) throws -> NFS4Operation? {
        switch opcode {
        case .sequence: return .sequence(try NFS4SequenceArgs(xdr: &buffer))
        case .exchangeID: return .exchangeID(try NFS4ExchangeIDArgs(xdr: &buffer))
        case .createSession: return .createSession(try NFS4CreateSessionArgs(xdr: &buffer))
        case .destroySession: return .destroySession(try SessionID(xdr: &buffer))
        case .destroyClientid: return .destroyClientID(try buffer.readXDRUInt64())
        case .bindConnToSession: return .bindConnToSession(try NFS4BindConnToSessionArgs(xdr: &buffer))
        case .backchannelCtl: return .backchannelCtl(try NFS4BackchannelCtlArgs(xdr: &buffer))
        case .reclaimComplete: return .reclaimComplete(oneFS: try buffer.readXDRBool())
        case .secinfoNoName: return .secinfoNoName(try buffer.readXDREnum())
        case .secinfo: return .secinfo(try NFS4Name(xdr: &buffer))
        case .putrootfh: return .putrootfh
        case .putpubfh: return .putpubfh
        case .putfh: return .putfh(try NFS4FileHandle(xdr: &buffer))
        case .getfh: return .getfh
        case .savefh: return .savefh
        case .restorefh: return .restorefh
        case .lookup: return .lookup(try NFS4Name(xdr: &buffer))
        case .lookupp: return .lookupp
        case .getattr: return .getattr(try Bitmap4(xdr: &buffer))
        case .setattr: return .setattr(try NFS4SetattrArgs(xdr: &buffer))
        case .verify: return .verify(try NFS4Fattr(xdr: &buffer))
        case .nverify: return .nverify(try NFS4Fattr(xdr: &buffer))
        case .access: return .access(try buffer.readXDRUInt32())
        case .open: return .open(try NFS4OpenArgs(xdr: &buffer))
        case .openDowngrade: return .openDowngrade(try NFS4OpenDowngradeArgs(xdr: &buffer))
        case .close: return .close(try NFS4CloseArgs(xdr: &buffer))
        case .read: return .read(try NFS4ReadArgs(xdr: &buffer))
        case .write: return .write(try NFS4WriteArgs(xdr: &buffer))
        case .commit: return .commit(try NFS4CommitArgs(xdr: &buffer))
        case .create: return .create(try NFS4CreateArgs(xdr: &buffer))
        case .remove: return .remove(try NFS4Name(xdr: &buffer))
        case .rename: return .rename(try NFS4RenameArgs(xdr: &buffer))
        case .link: return .link(try NFS4Name(xdr: &buffer))
        case .readdir: return .readdir(try NFS4ReaddirArgs(xdr: &buffer))
        case .readlink: return .readlink
        case .lock: return .lock(try NFS4LockArgs(xdr: &buffer))
        case .lockt: return .lockt(try NFS4LocktArgs(xdr: &buffer))
        case .locku: return .locku(try NFS4LockuArgs(xdr: &buffer))
        case .testStateid:
            return .testStateid(try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount, minimumElementSize: 16) {
                try StateID(xdr: &$0)
            })
        case .freeStateid: return .freeStateid(try StateID(xdr: &buffer))
        case .delegreturn: return .delegreturn(try StateID(xdr: &buffer))
        case .seek: return .seek(try NFS4SeekArgs(xdr: &buffer))
        case .allocate: return .allocate(try NFS4AllocateArgs(xdr: &buffer))
        case .deallocate: return .deallocate(try NFS4AllocateArgs(xdr: &buffer))
        case .copy: return .copy(try NFS4CopyArgs(xdr: &buffer))
        case .clone: return .clone(try NFS4CloneArgs(xdr: &buffer))
        default:
            guard try skipArguments(of: opcode, in: &buffer) else { return nil }
            return .unsupported(opcode)
        }
    }

    /// nfs_argop4: the opcode, then the arguments. `.unsupported` writes the
    /// opcode alone (its arguments were not kept).
    public func encode(xdr buffer: inout ByteBuffer) {
        buffer.writeXDREnum(opcode)
        switch self {
        case .sequence(let args): args.encode(xdr: &buffer)
        case .exchangeID(let args): args.encode(xdr: &buffer)
        case .createSession(let args): args.encode(xdr: &buffer)
        case .destroySession(let id): id.encode(xdr: &buffer)
        case .destroyClientID(let id): buffer.writeXDRUInt64(id)
        case .bindConnToSession(let args): args.encode(xdr: &buffer)
        case .backchannelCtl(let args): args.encode(xdr: &buffer)
        case .reclaimComplete(let oneFS): buffer.writeXDRBool(oneFS)
        case .secinfoNoName(let style): buffer.writeXDREnum(style)
        case .secinfo(let name), .lookup(let name), .remove(let name), .link(let name): name.encode(xdr: &buffer)
        case .putrootfh, .putpubfh, .getfh, .savefh, .restorefh, .lookupp, .readlink, .unsupported: break
        case .putfh(let handle): handle.encode(xdr: &buffer)
        case .getattr(let request): request.encode(xdr: &buffer)
        case .setattr(let args): args.encode(xdr: &buffer)
        case .verify(let fattr), .nverify(let fattr): fattr.encode(xdr: &buffer)
        case .access(let access): buffer.writeXDRUInt32(access)
        case .open(let args): args.encode(xdr: &buffer)
        case .openDowngrade(let args): args.encode(xdr: &buffer)
        case .close(let args): args.encode(xdr: &buffer)
        case .read(let args): args.encode(xdr: &buffer)
        case .write(let args): args.encode(xdr: &buffer)
        case .commit(let args): args.encode(xdr: &buffer)
        case .create(let args): args.encode(xdr: &buffer)
        case .rename(let args): args.encode(xdr: &buffer)
        case .readdir(let args): args.encode(xdr: &buffer)
        case .lock(let args): args.encode(xdr: &buffer)
        case .lockt(let args): args.encode(xdr: &buffer)
        case .locku(let args): args.encode(xdr: &buffer)
        case .testStateid(let ids): buffer.writeXDRArray(ids) { $1.encode(xdr: &$0) }
        case .freeStateid(let id), .delegreturn(let id): id.encode(xdr: &buffer)
        case .seek(let args): args.encode(xdr: &buffer)
        case .allocate(let args), .deallocate(let args): args.encode(xdr: &buffer)
        case .copy(let args): args.encode(xdr: &buffer)
        case .clone(let args): args.encode(xdr: &buffer)
        }
    }

    /// Skips the arguments of an operation this layer does not decode.
    /// Returns false for those whose arguments it cannot walk (the
    /// COMPOUND then stops at that operation); throws when they are malformed.
    static func skipArguments(of opcode: NFS4Opcode, in buffer: inout ByteBuffer) throws -> Bool {
        func skip(_ bytes: Int) throws { _ = try buffer.readXDRFixedOpaque(length: bytes) }
        func skipOpaque() throws { _ = try buffer.readXDRVariableOpaque(maxLength: NFS4Limits.maxDataLength) }
        func skipBitmap() throws { _ = try Bitmap4(xdr: &buffer) }
        let stateID = 16, deviceID = NFS4Constants.deviceIDSize
        switch opcode {
        case .openattr: try skip(4)                                    // bool createdir
        case .delegpurge, .renew: try skip(8)                          // clientid4
        case .openConfirm: try skip(stateID + 4)                       // stateid4, seqid4
        case .setclientidConfirm: try skip(8 + 8)                      // clientid4, verifier4
        case .releaseLockowner: _ = try StateOwner4(xdr: &buffer)      // lock_owner4
        case .setclientid:                                             // nfs_client_id4, cb_client4, callback_ident
            _ = try ClientOwner4(xdr: &buffer)
            try skip(4)
            _ = try NFS4Name(xdr: &buffer)
            _ = try NFS4Name(xdr: &buffer)
            try skip(4)
        case .getDirDelegation:                                        // bool, bitmap4, 2 x nfstime4, 2 x bitmap4
            try skip(4)
            try skipBitmap()
            try skip(12 + 12)
            try skipBitmap()
            try skipBitmap()
        case .getdeviceinfo:                                           // deviceid4, layouttype4, count4, bitmap4
            try skip(deviceID + 4 + 4)
            try skipBitmap()
        case .getdevicelist: try skip(4 + 4 + 8 + 8)                   // layouttype4, count4, cookie, verifier4
        case .layoutget: try skip(4 + 4 + 4 + 8 + 8 + 8 + stateID + 4)
        case .layoutcommit:                                            // offset, length, reclaim, stateid, newoffset4, newtime4, layoutupdate4
            try skip(8 + 8 + 4 + stateID)
            if try buffer.readXDRBool() { try skip(8) }
            if try buffer.readXDRBool() { try skip(12) }
            try skip(4)
            try skipOpaque()
        case .layoutreturn:                                            // reclaim, layouttype4, iomode, layoutreturn4
            try skip(4 + 4 + 4)
            if try buffer.readXDRUInt32() == 1 {                       // LAYOUTRETURN4_FILE
                try skip(8 + 8 + stateID)
                try skipOpaque()
            }
        case .setSSV:
            try skipOpaque()
            try skipOpaque()
        case .wantDelegation:                                          // want, deleg_claim4
            try skip(4)
            let claim = try buffer.readXDRUInt32()
            switch OpenClaimType4(rawValue: claim) {
            case .fh, .delegPrevFH: break
            case .previous: try skip(4)
            default: throw XDRError.invalidEnum(type: "deleg_claim4", value: claim)
            }
        case .offloadCancel, .offloadStatus: try skip(stateID)
        case .readPlus: try skip(stateID + 8 + 4)
        case .ioAdvise:                                                // stateid, offset, count, bitmap4 hints
            try skip(stateID + 8 + 8)
            try skipBitmap()
        case .copyNotify:
            try skip(stateID)
            _ = try NetLoc4(xdr: &buffer)
        case .layouterror:                                             // offset, length, stateid, device_error4<>
            try skip(8 + 8 + stateID)
            _ = try buffer.readXDRArray(maxCount: NFS4Limits.maxArrayCount, minimumElementSize: deviceID + 8) {
                _ = try $0.readXDRFixedOpaque(length: deviceID + 8)
            }
        case .layoutstats:                                             // offset, length, stateid, 2 x io_info4, deviceid4, layoutupdate4
            try skip(8 + 8 + stateID + 16 + 16 + deviceID + 4)
            try skipOpaque()
        default:
            return false
        }
        return true
    }
}
