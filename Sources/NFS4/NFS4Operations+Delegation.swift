import HostFS
import NFS4State
import NFS4Wire
import NFSCore

// The back channel's operations and read delegations (RFC 8881 §18.33
// BACKCHANNEL_CTL, §18.6 DELEGRETURN, §18.16 OPEN's delegations and
// CLAIM_DELEGATE_CUR / CLAIM_DELEG_CUR_FH, §10.2).
extension NFS4CompoundRunner {
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED (§18.46.3) while the client has a
    /// revoked delegation it has not freed.
    func delegationStatusFlags(_ clientID: ClientID) -> UInt32 {
        state.delegations.hasRevoked(clientID) ? ClientTable.StatusFlags.recallableStateRevoked.rawValue : 0
    }

    /// After CREATE_SESSION: the session's callback program and credential,
    /// and, with CREATE_SESSION4_FLAG_CONN_BACK_CHAN, this connection as its back channel.
    func sessionCreated(_ session: SessionID, args: NFS4CreateSessionArgs, backChannel: Bool) {
        state.callbacks.register(session, minorVersion: minorVersion, program: args.callbackProgram,
                                 security: args.securityParameters)
        if backChannel, let rpcConnection { state.callbacks.bind(session, connection: rpcConnection) }
    }

    /// After BIND_CONN_TO_SESSION for the back channel.
    func backChannelBound(_ session: SessionID) {
        if let rpcConnection { state.callbacks.bind(session, connection: rpcConnection) }
    }

    /// BACKCHANNEL_CTL (§18.33): a new callback program and credential for the
    /// session of this COMPOUND.
    mutating func backchannelCtl(_ args: NFS4BackchannelCtlArgs) throws -> NFS4Result {
        _ = try requireSession()
        guard let session = sessionID else { throw NFS4Status.opNotInSession }
        try state.callbacks.update(session, program: args.callbackProgram, security: args.securityParameters)
        return .status(.backchannelCtl, .ok)
    }

    /// DELEGRETURN (§18.6).
    mutating func delegReturn(_ stateID: StateID) throws -> NFS4Result {
        let clientID = try requireSession()
        _ = try currentNode()
        let id = try resolve(stateID)
        guard DelegationTable.isDelegationStateID(id) else { throw NFS4Status.badStateid }
        try state.delegations.giveBack(id, clientID: clientID)
        return .status(.delegreturn, .ok)
    }

    /// The delegation OPEN answers with (§10.4, §18.16.3): a read delegation
    /// for an open for reading only, with no deny, of a file nobody has open
    /// for writing, to a client whose callback path is up; otherwise none,
    /// with the reason when the client asked for one (OPEN4_SHARE_ACCESS_WANT_*).
    mutating func offerDelegation(_ args: NFS4OpenArgs, access: ShareBits, deny: ShareBits, creating: Bool,
                         file: ObjectHandle, key: FileKey, clientID: ClientID) -> OpenDelegation4 {
        let want = args.shareAccess & NFS4Constants.shareAccessWantDelegMask
        if want == NFS4Constants.shareAccessWantNoDeleg { return .noneExt(.other(.notWanted)) }
        let explicit = want != NFS4Constants.shareAccessWantNoPreference
        func none(_ why: OpenNoneDelegation4) -> OpenDelegation4 { explicit ? .noneExt(why) : .none }
        if want == NFS4Constants.shareAccessWantWriteDeleg { return none(.other(.notSuppFtype)) }
        switch args.claim {
        case .null, .fh: break
        default: return .none
        }
        guard access == .read, deny.isEmpty, !creating else { return none(.contention(serverWillPushDelegation: false)) }
        let writers = state.tables.withLockedValue { t in t.opens.opens(of: key).contains { $0.access.contains(.write) } }
        guard !writers else { return none(.contention(serverWillPushDelegation: false)) }
        let fileHandle = pseudo().handle(.object(file)).bytes
        guard let d = state.delegations.grant(key, handle: file, fileHandle: fileHandle, to: clientID) else {
            return none(.resource(serverWillSignalAvailable: false))
        }
        // nfsace4 with no access bits: the client asks ACCESS itself (as knfsd does).
        let ace = NFSACE4(type: 0, flag: 0, accessMask: 0, who: NFS4Name([]))
        return .read(OpenReadDelegation4(stateID: d.stateID, recall: false, permissions: ace))
    }

    /// CLAIM_DELEGATE_CUR / CLAIM_DELEG_CUR_FH (§18.16.3): the client opens
    /// under a delegation it holds; the stateid must name one of its live ones.
    func checkDelegationClaim(_ stateID: StateID) throws {
        let clientID = try requireSession()
        guard DelegationTable.isDelegationStateID(stateID) else { throw NFS4Status.badStateid }
        _ = try state.delegations.validate(stateID, clientID: clientID)
    }

    /// A READ under a read delegation's stateid (§9.1.4): the client's, of this file.
    func checkDelegationStateID(_ stateID: StateID, file: FileKey, write: Bool) throws {
        let clientID = try requireSession()
        let d = try state.delegations.validate(stateID, clientID: clientID)
        guard d.file == file else { throw NFS4Status.badStateid }
        if write { throw NFS4Status.openmode }
    }

    /// Before this COMPOUND changes `file`: delegations of it are recalled
    /// first (NFS4ERR_DELAY meanwhile).
    func willChange(_ file: ObjectHandle, credentials: Credentials) throws {
        let clientID = try? requireSession()
        try server.fileChanges.willChange(file, by: .nfs4(clientID: clientID ?? 0), as: credentials, fs: fs)
    }

    func willChange(_ directory: ObjectHandle, _ name: [UInt8], credentials: Credentials) throws {
        let clientID = try? requireSession()
        try server.fileChanges.willChange(directory, name, by: .nfs4(clientID: clientID ?? 0), as: credentials, fs: fs)
    }
}
