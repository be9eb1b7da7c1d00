import Logging
import NFS4State
import NFS4Wire
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XDR

/// The NFSv4.1 back channel (RFC 8881 §2.10.3.1, §20): calls from the server
/// to the client on a connection the client bound for it (CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
/// BIND_CONN_TO_SESSION), to its callback program (csa_cb_program, version 1)
/// with the credential it chose (csa_sec_parms: AUTH_SYS or AUTH_NONE).
///
/// The session table says which connection carries a session's back channel
/// (`Session.backChannelConnection`, nil: SEQ4_STATUS_CB_PATH_DOWN); this
/// class holds the connections themselves. A connection that closes, or
/// does not answer the CB_NULL sent when it is bound, takes the path down.
/// Callbacks never hold up the fore channel: each is sent and its reply
/// handled on the connection's event loop. One back channel slot (slot 0):
/// a session's callbacks go out one at a time, the others wait in order.
final class NFS4Callbacks: Sendable {
    struct Channel {
        /// The connection bound for the back channel; nil before one is.
        var connection: RPCConnection?
        var program: UInt32
        /// The minor version of the COMPOUND that created the session: every
        /// CB_COMPOUND carries it (a Linux client looks the session up by it
        /// and answers BADSESSION to any other).
        var minorVersion: UInt32
        /// nil: the client offered no flavor the server speaks (only RPCSEC_GSS).
        var credential: RPCOpaqueAuth?
        /// Slot 0's next sequence ID (§2.10.6.1: the first is 1).
        var sequenceID: UInt32 = 1
        var busy = false
        var waiting: [CBOperation] = []
    }

    private let channels = NIOLockedValueBox<[SessionID: Channel]>([:])
    private let tables: NIOLockedValueBox<NFS4Tables>
    let timeout: TimeAmount
    let logger: Logger

    init(tables: NIOLockedValueBox<NFS4Tables>, timeout: TimeAmount = .seconds(10),
         logger: Logger = Logger(label: "vsnfs.nfs4.callback")) {
        self.tables = tables
        self.timeout = timeout
        self.logger = logger
    }

    /// The credential callbacks carry: the first of csa_sec_parms the server
    /// speaks (AUTH_SYS, AUTH_NONE); nil when the client offered only RPCSEC_GSS.
    static func credential(_ parameters: [CallbackSecParms4]) -> RPCOpaqueAuth? {
        for p in parameters {
            switch p {
            case .none: return RPCOpaqueAuth.none
            case .sys(let s):
                return AuthSysParameters(stamp: s.stamp, machineName: s.machineName.bytes, uid: s.uid, gid: s.gid,
                                         gids: s.gids).opaqueAuth
            case .gss: continue
            }
        }
        return nil
    }

    /// CREATE_SESSION (§18.36): the session's callback program and csa_sec_parms.
    func register(_ session: SessionID, minorVersion: UInt32, program: UInt32, security: [CallbackSecParms4]) {
        let credential = Self.credential(security)
        channels.withLockedValue {
            $0[session] = Channel(connection: nil, program: program, minorVersion: minorVersion, credential: credential)
        }
    }

    /// `connection` now carries `session`'s back channel (already recorded in
    /// the session table): keep it, watch it close, and probe it with CB_NULL.
    func bind(_ session: SessionID, connection: RPCConnection) {
        let outcome = channels.withLockedValue { channels -> (known: Bool, usable: Bool)? in
            guard var channel = channels[session] else { return nil }
            let known = channels.values.contains { $0.connection?.id == connection.id }
            channel.connection = connection
            channels[session] = channel
            return (known, channel.credential != nil)
        }
        guard let outcome else { return }
        if !outcome.known {
            let id = connection.id
            connection.channel.closeFuture.whenComplete { _ in self.connectionClosed(id) }
        }
        guard outcome.usable else {
            logger.info("session \(session): no AUTH_SYS or AUTH_NONE for callbacks; callback path down")
            pathDown(session, connection: connection.id)
            return
        }
        probe(session)
    }

    /// BACKCHANNEL_CTL (§18.33): a new program or credential for the session's callbacks.
    func update(_ session: SessionID, program: UInt32, security: [CallbackSecParms4]) throws(NFS4Status) {
        guard let credential = Self.credential(security) else { throw .encrAlgUnsupp }
        channels.withLockedValue { channels in
            channels[session]?.program = program
            channels[session]?.credential = credential
        }
        probe(session)
    }

    /// CB_NULL (§20, procedure 0): the path is up when the client answers.
    func probe(_ session: SessionID) {
        guard let channel = channels.withLockedValue({ $0[session] }), let connection = channel.connection,
              let credential = channel.credential else { return }
        // After this COMPOUND's reply goes out (the client learns its session first).
        connection.channel.eventLoop.scheduleTask(in: .milliseconds(5)) {
            connection.call(program: channel.program, version: NFS4Constants.callbackVersion,
                            procedure: NFS4Constants.callbackProcedureNull, credential: credential,
                            arguments: ByteBuffer(), timeout: self.timeout).whenComplete { result in
                switch result {
                case .success(.success):
                    self.logger.debug("session \(session): CB_NULL answered; callback path up")
                case .success(let other):
                    self.logger.info("session \(session): CB_NULL answered \(other); callback path down")
                    self.pathDown(session, connection: connection.id)
                case .failure(let error):
                    self.logger.info("session \(session): CB_NULL: \(error); callback path down")
                    self.pathDown(session, connection: connection.id)
                }
            }
        }
    }

    /// Whether `clientID` has a session whose back channel is up (a delegation may be given).
    func pathUp(for clientID: ClientID) -> Bool {
        session(for: clientID) != nil
    }

    private func session(for clientID: ClientID) -> SessionID? {
        let candidates = tables.withLockedValue { t in
            t.clients.sessions.values.filter { $0.clientID == clientID && $0.backChannelConnection != nil }.map(\.id)
        }
        return channels.withLockedValue { channels in
            candidates.first { channels[$0]?.connection?.isActive == true && channels[$0]?.credential != nil }
        }
    }

    /// CB_RECALL (§20.2) of a delegation to its client, on any of its sessions
    /// with a live back channel. False when there is none (the delegation is
    /// revoked once its lease runs out).
    @discardableResult
    func recall(_ delegation: Delegation) -> Bool {
        guard let session = session(for: delegation.clientID) else {
            logger.info("client \(delegation.clientID): no callback path to recall \(delegation.stateID)")
            return false
        }
        send(.recall(CBRecallArgs(stateID: delegation.stateID, truncate: false,
                                  fileHandle: NFS4FileHandle(delegation.fileHandle))), on: session)
        return true
    }

    /// Sends one operation (after CB_SEQUENCE) when slot 0 is free.
    private func send(_ operation: CBOperation, on session: SessionID) {
        let ready = channels.withLockedValue { channels -> Channel? in
            guard var channel = channels[session], channel.connection != nil, channel.credential != nil else { return nil }
            if channel.busy {
                channel.waiting.append(operation)
                channels[session] = channel
                return nil
            }
            channel.busy = true
            channels[session] = channel
            return channel
        }
        guard let channel = ready, let connection = channel.connection, let credential = channel.credential else { return }
        var arguments = ByteBuffer()
        CBCompoundArgs(tag: Array("vsnfs".utf8), minorVersion: channel.minorVersion, operations: [
            .sequence(CBSequenceArgs(sessionID: session, sequenceID: channel.sequenceID, slotID: 0, highestSlotID: 0,
                                     cacheThis: false)),
            operation,
        ]).encode(xdr: &arguments)
        connection.call(program: channel.program, version: NFS4Constants.callbackVersion,
                        procedure: NFS4Constants.callbackProcedureCompound, credential: credential,
                        arguments: arguments, timeout: timeout).whenComplete { result in
            var sequenced = false
            switch result {
            case .success(.success(var results)):
                if let reply = try? CBCompoundResponse(xdr: &results) {
                    sequenced = reply.results.first?.status == .ok
                    if reply.status != .ok {
                        self.logger.info("session \(session): CB_COMPOUND \(operation.opcode): \(reply.status.rfcName)")
                    }
                } else {
                    self.logger.info("session \(session): CB_COMPOUND reply unreadable")
                }
            case .success(let other):
                self.logger.info("session \(session): CB_COMPOUND answered \(other)")
            case .failure(let error):
                self.logger.info("session \(session): CB_COMPOUND \(operation.opcode): \(error); callback path down")
                self.pathDown(session, connection: connection.id)
            }
            self.finished(session, sequenced: sequenced)
        }
    }

    /// Frees slot 0 (its sequence ID advanced when the client's CB_SEQUENCE
    /// took the call) and sends the next waiting operation.
    private func finished(_ session: SessionID, sequenced: Bool) {
        let next = channels.withLockedValue { channels -> CBOperation? in
            guard var channel = channels[session] else { return nil }
            if sequenced { channel.sequenceID = channel.sequenceID == .max ? 1 : channel.sequenceID + 1 }
            channel.busy = false
            let next = channel.waiting.isEmpty ? nil : channel.waiting.removeFirst()
            channels[session] = channel
            return next
        }
        if let next { send(next, on: session) }
    }

    /// The session's back channel is down (no answer, closed): the session
    /// table says so (SEQ4_STATUS_CB_PATH_DOWN) until the client binds another.
    private func pathDown(_ session: SessionID, connection: ConnectionID) {
        tables.withLockedValue { t in t.clients.backChannelLost(session, connection: connection) }
    }

    private func connectionClosed(_ connection: ConnectionID) {
        tables.withLockedValue { t in _ = t.clients.connectionClosed(connection) }
        channels.withLockedValue { channels in
            for (id, channel) in channels where channel.connection?.id == connection {
                channels[id]?.connection = nil
                channels[id]?.busy = false
                channels[id]?.waiting = []
            }
        }
    }

    /// DESTROY_SESSION, or a client gone: its channels go.
    func forget(_ sessions: Set<SessionID>) {
        guard !sessions.isEmpty else { return }
        channels.withLockedValue { channels in for id in sessions { channels.removeValue(forKey: id) } }
    }
}
