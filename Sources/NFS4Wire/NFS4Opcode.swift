// Operation numbers: nfs_opnum4 (RFC 8881 §16.2, RFC 7862 §15) and
// nfs_cb_opnum4 (RFC 8881 §20, RFC 7862 §16).

/// nfs_opnum4: every fore-channel operation of NFSv4.0, 4.1 and 4.2,
/// including those this server answers NFS4ERR_NOTSUPP.
public enum NFS4Opcode: UInt32, Sendable, Hashable, CaseIterable {
    case access = 3
    case close = 4
    case commit = 5
    case create = 6
    case delegpurge = 7
    case delegreturn = 8
    case getattr = 9
    case getfh = 10
    case link = 11
    case lock = 12
    case lockt = 13
    case locku = 14
    case lookup = 15
    case lookupp = 16
    case nverify = 17
    case open = 18
    case openattr = 19
    /// NFSv4.0 only (RFC 8881 §18.20: MUST NOT be used in 4.1).
    case openConfirm = 20
    case openDowngrade = 21
    case putfh = 22
    case putpubfh = 23
    case putrootfh = 24
    case read = 25
    case readdir = 26
    case readlink = 27
    case remove = 28
    case rename = 29
    /// NFSv4.0 only.
    case renew = 30
    case restorefh = 31
    case savefh = 32
    case secinfo = 33
    case setattr = 34
    /// NFSv4.0 only.
    case setclientid = 35
    /// NFSv4.0 only.
    case setclientidConfirm = 36
    case verify = 37
    case write = 38
    /// NFSv4.0 only.
    case releaseLockowner = 39
    // NFSv4.1 (RFC 8881).
    case backchannelCtl = 40
    case bindConnToSession = 41
    case exchangeID = 42
    case createSession = 43
    case destroySession = 44
    case freeStateid = 45
    case getDirDelegation = 46
    case getdeviceinfo = 47
    case getdevicelist = 48
    case layoutcommit = 49
    case layoutget = 50
    case layoutreturn = 51
    case secinfoNoName = 52
    case sequence = 53
    case setSSV = 54
    case testStateid = 55
    case wantDelegation = 56
    case destroyClientid = 57
    case reclaimComplete = 58
    // NFSv4.2 (RFC 7862).
    case allocate = 59
    case copy = 60
    case copyNotify = 61
    case deallocate = 62
    case ioAdvise = 63
    case layouterror = 64
    case layoutstats = 65
    case offloadCancel = 66
    case offloadStatus = 67
    case readPlus = 68
    case seek = 69
    case writeSame = 70
    case clone = 71
    /// OP_ILLEGAL: the resop of the reply to an opcode outside the protocol.
    case illegal = 10044

    /// The first minor version whose COMPOUND may carry this operation. An
    /// operation of a later minor version is OP_ILLEGAL in an earlier one
    /// (RFC 8881 §16.2.3; RFC 7862 §15.1).
    public var minorVersion: UInt32 {
        switch rawValue {
        case 3...39: return 0
        case 40...58: return 1
        case 59...71: return 2
        default: return 0
        }
    }

    /// The opcode as a COMPOUND of `minorVersion` sees it: nil when the
    /// number is OP_ILLEGAL there.
    public static func valid(_ raw: UInt32, minorVersion: UInt32) -> NFS4Opcode? {
        guard let op = NFS4Opcode(rawValue: raw), op != .illegal, op.minorVersion <= minorVersion else { return nil }
        return op
    }
}

extension NFS4Opcode {
    /// The RFC's name (`OPEN_DOWNGRADE`, `EXCHANGE_ID`), for logs and `vsnfs status`.
    public var name: String {
        var out = ""
        var previous: Character?
        for c in "\(self)" {
            if c.isUppercase, let p = previous, p.isLowercase { out.append("_") }
            out += c.uppercased()
            previous = c
        }
        return out
    }
}

/// nfs_cb_opnum4: the back channel's operations.
public enum CBOpcode: UInt32, Sendable, Hashable, CaseIterable {
    case getattr = 3
    case recall = 4
    // NFSv4.1.
    case layoutrecall = 5
    case notify = 6
    case pushDeleg = 7
    case recallAny = 8
    case recallableObjAvail = 9
    case recallSlot = 10
    case sequence = 11
    case wantsCancelled = 12
    case notifyLock = 13
    case notifyDeviceid = 14
    // NFSv4.2.
    case offload = 15
    case illegal = 10044
}

/// Program and procedure numbers, and the protocol's fixed sizes (RFC 8881 §2.2, §16, §20).
public enum NFS4Constants {
    /// NFS4_PROGRAM, the same number as NFSv3's.
    public static let program: UInt32 = 100003
    public static let version: UInt32 = 4
    /// NFSPROC4_NULL and NFSPROC4_COMPOUND.
    public static let procedureNull: UInt32 = 0
    public static let procedureCompound: UInt32 = 1
    /// The minor versions this wire layer decodes; 0 is answered MINOR_VERS_MISMATCH.
    public static let supportedMinorVersions: ClosedRange<UInt32> = 1...2
    /// The callback program's number is the client's choice (csa_cb_program,
    /// bca_cb_program); its version is 1 and its procedures these.
    public static let callbackVersion: UInt32 = 1
    public static let callbackProcedureNull: UInt32 = 0
    public static let callbackProcedureCompound: UInt32 = 1

    public static let fhSize = 128             // NFS4_FHSIZE
    public static let verifierSize = 8         // NFS4_VERIFIER_SIZE
    public static let otherSize = 12           // NFS4_OTHER_SIZE
    public static let opaqueLimit = 1024       // NFS4_OPAQUE_LIMIT
    public static let sessionIDSize = 16       // NFS4_SESSIONID_SIZE
    public static let deviceIDSize = 16        // NFS4_DEVICEID4_SIZE
    public static let uint32Max: UInt32 = .max // NFS4_UINT32_MAX
    public static let uint64Max: UInt64 = .max // NFS4_UINT64_MAX
    public static let int64Max: Int64 = .max   // NFS4_INT64_MAX

    // ACCESS4 bits (RFC 8881 §18.1).
    public static let accessRead: UInt32 = 0x01
    public static let accessLookup: UInt32 = 0x02
    public static let accessModify: UInt32 = 0x04
    public static let accessExtend: UInt32 = 0x08
    public static let accessDelete: UInt32 = 0x10
    public static let accessExecute: UInt32 = 0x20

    // EXCHANGE_ID flags (RFC 8881 §18.35).
    public static let exchgidFlagSuppMovedRefer: UInt32 = 0x0000_0001
    public static let exchgidFlagSuppMovedMigr: UInt32 = 0x0000_0002
    public static let exchgidFlagBindPrincStateid: UInt32 = 0x0000_0100
    public static let exchgidFlagUseNonPNFS: UInt32 = 0x0001_0000
    public static let exchgidFlagUsePNFSMDS: UInt32 = 0x0002_0000
    public static let exchgidFlagUsePNFSDS: UInt32 = 0x0004_0000
    public static let exchgidFlagMaskPNFS: UInt32 = 0x0007_0000
    public static let exchgidFlagUpdConfirmedRecA: UInt32 = 0x4000_0000
    public static let exchgidFlagConfirmedR: UInt32 = 0x8000_0000

    // CREATE_SESSION flags (RFC 8881 §18.36).
    public static let createSessionFlagPersist: UInt32 = 0x1
    public static let createSessionFlagConnBackChan: UInt32 = 0x2
    public static let createSessionFlagConnRDMA: UInt32 = 0x4

    // SEQUENCE sr_status_flags (RFC 8881 §18.46).
    public static let seq4StatusCBPathDown: UInt32 = 0x0000_0001
    public static let seq4StatusCBGSSContextsExpiring: UInt32 = 0x0000_0002
    public static let seq4StatusCBGSSContextsExpired: UInt32 = 0x0000_0004
    public static let seq4StatusExpiredAllStateRevoked: UInt32 = 0x0000_0008
    public static let seq4StatusExpiredSomeStateRevoked: UInt32 = 0x0000_0010
    public static let seq4StatusAdminStateRevoked: UInt32 = 0x0000_0020
    public static let seq4StatusRecallableStateRevoked: UInt32 = 0x0000_0040
    public static let seq4StatusLeaseMoved: UInt32 = 0x0000_0080
    public static let seq4StatusRestartReclaimNeeded: UInt32 = 0x0000_0100
    public static let seq4StatusCBPathDownSession: UInt32 = 0x0000_0200
    public static let seq4StatusBackchannelFault: UInt32 = 0x0000_0400
    public static let seq4StatusDevidChanged: UInt32 = 0x0000_0800
    public static let seq4StatusDevidDeleted: UInt32 = 0x0000_1000

    // OPEN share_access / share_deny and want flags (RFC 8881 §18.16).
    public static let shareAccessRead: UInt32 = 0x1
    public static let shareAccessWrite: UInt32 = 0x2
    public static let shareAccessBoth: UInt32 = 0x3
    public static let shareDenyNone: UInt32 = 0x0
    public static let shareDenyRead: UInt32 = 0x1
    public static let shareDenyWrite: UInt32 = 0x2
    public static let shareDenyBoth: UInt32 = 0x3
    public static let shareAccessWantDelegMask: UInt32 = 0xFF00
    public static let shareAccessWantNoPreference: UInt32 = 0x0000
    public static let shareAccessWantReadDeleg: UInt32 = 0x0100
    public static let shareAccessWantWriteDeleg: UInt32 = 0x0200
    public static let shareAccessWantAnyDeleg: UInt32 = 0x0300
    public static let shareAccessWantNoDeleg: UInt32 = 0x0400
    public static let shareAccessWantCancel: UInt32 = 0x0500
    public static let shareAccessWantSignalDelegWhenResrcAvail: UInt32 = 0x10000
    public static let shareAccessWantPushDelegWhenUncontended: UInt32 = 0x20000

    // OPEN4resok rflags.
    public static let openResultConfirm: UInt32 = 0x02
    public static let openResultLocktypePosix: UInt32 = 0x04
    public static let openResultPreserveUnlinked: UInt32 = 0x08
    public static let openResultMayNotifyLock: UInt32 = 0x20

    // fh_expire_type (RFC 8881 §5.8.1.3).
    public static let fh4Persistent: UInt32 = 0x00
    public static let fh4NoexpireWithOpen: UInt32 = 0x01
    public static let fh4Volatile: UInt32 = 0x02
    public static let fh4VolMigration: UInt32 = 0x04
    public static let fh4VolRename: UInt32 = 0x08

    // aclsupport (RFC 8881 §6.2.1.2).
    public static let aclSupportAllow: UInt32 = 0x1
    public static let aclSupportDeny: UInt32 = 0x2
    public static let aclSupportAudit: UInt32 = 0x4
    public static let aclSupportAlarm: UInt32 = 0x8

    // RPC authentication flavors a callback_sec_parms4 / secinfo4 names.
    public static let authNone: UInt32 = 0
    public static let authSys: UInt32 = 1
    public static let rpcsecGSS: UInt32 = 6
}
