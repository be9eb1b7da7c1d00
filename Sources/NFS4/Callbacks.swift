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
///
/// A callback that does not reach its operation (no answer within the
/// timeout, the connection closed, an RPC-level rejection, an unreadable
/// reply, a CB_SEQUENCE error) takes the session's path down, and so do the
/// callbacks queued behind it; its sender learns it (`Outcome.pathFailed`).
final class NFS4Callbacks: Sendable {
    /// How one callback ended.
    enum Outcome: Sendable {
        /// The client's CB_SEQUENCE took the call and the operation answered
        /// `status`, on the back channel `connection`.
        case answered(NFS4Status, connection: ConnectionID)
        /// It never reached the operation; the session's callback path is down.
        case pathFailed(String)
    }

    /// A callback waiting for slot 0, and who hears how it ended.
    struct Pending: Sendable {
        var operation: CBOperation
        var done: @Sendable (Outcome) -> Void
    }

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
        var waiting: [Pending] = []
    }

    private let channels = NIOLockedValueBox<[SessionID: Channel]>([:])
    private let tables: NIOLockedValueBox<NFS4Tables>
    let timeout: TimeAmount
    let logger: Logger

    /// How long a callback waits for its reply, as knfsd: a tenth of the
    /// lease, at least a second (9 s with the default 90 s lease).
    static func timeout(leaseTime: Duration) -> TimeAmount {
        .nanoseconds(max(Int64(1_000_000_000), Int64(leaseTime.components.seconds) * 100_000_000))
    }

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
    /// with a live back channel. `failed` runs once if the recall cannot
    /// succeed: no such session; the call did not reach CB_RECALL (that
    /// session's path is down already); or CB_RECALL answered an error (the
    /// path is taken down here). CB_RECALL's NFS4ERR_DELAY is retried
    /// (`recallRetryDelay`) and so, once, are NFS4ERR_BADHANDLE and
    /// NFS4ERR_BAD_STATEID (the client may not have read the OPEN reply that
    /// gave the delegation yet), each while `stillRecalled` says the
    /// delegation is neither returned nor revoked. Past the DELAY retries the
    /// delegation stays recalled (revoked one lease after the recall).
    func recall(_ delegation: Delegation, stillRecalled: @escaping @Sendable () -> Bool,
                failed: @escaping @Sendable (String) -> Void) {
        recall(delegation, attempt: 0, stillRecalled: stillRecalled, failed: failed)
    }

    /// The wait before retrying a CB_RECALL answered `status` after `attempt`
    /// tries; nil: not retried.
    static func recallRetryDelay(_ status: NFS4Status, attempt: Int) -> TimeAmount? {
        switch status {
        case .delay where attempt < 8:
            // 0.2, 0.4, 0.8, 1.6, then 2 s (knfsd waits 2 s each time).
            return .milliseconds(min(2000, 200 << attempt))
        case .badhandle where attempt == 0, .badStateid where attempt == 0:
            return .milliseconds(500)
        default:
            return nil
        }
    }

    private func recall(_ delegation: Delegation, attempt: Int, stillRecalled: @escaping @Sendable () -> Bool,
                        failed: @escaping @Sendable (String) -> Void) {
        guard let session = session(for: delegation.clientID) else {
            logger.info("client \(delegation.clientID): no callback path to recall \(delegation.stateID)")
            failed("no callback path")
            return
        }
        let operation = CBOperation.recall(CBRecallArgs(stateID: delegation.stateID, truncate: false,
                                                        fileHandle: NFS4FileHandle(delegation.fileHandle)))
        send(operation, on: session) { outcome in
            switch outcome {
            case .answered(.ok, _):
                return
            case .answered(let status, let connection):
                guard stillRecalled() else { return }
                if let delay = Self.recallRetryDelay(status, attempt: attempt) {
                    guard let loop = self.channels.withLockedValue({ $0[session]?.connection?.channel.eventLoop }) else {
                        failed("no back channel")
                        return
                    }
                    self.logger.debug("session \(session): CB_RECALL of \(delegation.stateID): \(status.rfcName); again in \(delay)")
                    loop.scheduleTask(in: delay) {
                        guard stillRecalled() else { return }
                        self.recall(delegation, attempt: attempt + 1, stillRecalled: stillRecalled, failed: failed)
                    }
                    return
                }
                if status == .delay {
                    // Alive but busy: no path down; the lease timer decides.
                    self.logger.info("session \(session): CB_RECALL of \(delegation.stateID): still NFS4ERR_DELAY; revoked one lease after the recall unless returned")
                    return
                }
                self.logger.info("session \(session): CB_RECALL of \(delegation.stateID): \(status.rfcName); callback path down")
                self.pathDown(session, connection: connection)
                failed("CB_RECALL \(status.rfcName)")
            case .pathFailed(let why):
                failed(why)
            }
        }
    }

    /// Sends one operation (after CB_SEQUENCE) when slot 0 is free; `done` hears how it ended.
    private func send(_ operation: CBOperation, on session: SessionID, done: @escaping @Sendable (Outcome) -> Void) {
        enum Slot { case free(Channel), queued, noChannel }
        let slot = channels.withLockedValue { channels -> Slot in
            guard var channel = channels[session], channel.connection != nil, channel.credential != nil else { return .noChannel }
            if channel.busy {
                channel.waiting.append(Pending(operation: operation, done: done))
                channels[session] = channel
                return .queued
            }
            channel.busy = true
            channels[session] = channel
            return .free(channel)
        }
        guard case .free(let channel) = slot, let connection = channel.connection,
              let credential = channel.credential else {
            if case .noChannel = slot { done(.pathFailed("no back channel")) }
            return
        }
        let sequenceID = channel.sequenceID
        var arguments = ByteBuffer()
        CBCompoundArgs(tag: Array("vsnfs".utf8), minorVersion: channel.minorVersion, operations: [
            .sequence(CBSequenceArgs(sessionID: session, sequenceID: sequenceID, slotID: 0, highestSlotID: 0,
                                     cacheThis: false)),
            operation,
        ]).encode(xdr: &arguments)
        connection.call(program: channel.program, version: NFS4Constants.callbackVersion,
                        procedure: NFS4Constants.callbackProcedureCompound, credential: credential,
                        arguments: arguments, timeout: timeout).whenComplete { result in
            let outcome = Self.outcome(of: result, operation: operation, session: session, sequenceID: sequenceID,
                                       connection: connection.id)
            var sequenced = false
            switch outcome {
            case .answered(let status, _):
                sequenced = true
                if status != .ok {
                    self.logger.info("session \(session): CB_COMPOUND \(operation.opcode): \(status.rfcName)")
                }
            case .pathFailed(let why):
                self.logger.info("session \(session): CB_COMPOUND \(operation.opcode): \(why); callback path down")
                self.pathDown(session, connection: connection.id)
            }
            let abandoned = self.finished(session, sequenced: sequenced, pathFailed: !sequenced)
            done(outcome)
            for pending in abandoned { pending.done(.pathFailed("callback path down")) }
        }
    }

    /// What a CB_COMPOUND's reply says: the operation's status once the
    /// client's CB_SEQUENCE took the call (the slot's sequence ID advances),
    /// or why it did not get there.
    static func outcome(of result: Result<RPCReplyBody, any Error>, operation: CBOperation, session: SessionID,
                        sequenceID: UInt32, connection: ConnectionID) -> Outcome {
        switch result {
        case .success(.success(var results)):
            guard let reply = try? CBCompoundResponse(xdr: &results) else { return .pathFailed("reply unreadable") }
            guard case .sequence(let sequence)? = reply.results.first else {
                return .pathFailed("reply without CB_SEQUENCE (\(reply.status.rfcName))")
            }
            guard case .ok(let ok) = sequence else { return .pathFailed("CB_SEQUENCE \(sequence.status.rfcName)") }
            guard ok.sessionID == session, ok.sequenceID == sequenceID, ok.slotID == 0 else {
                return .pathFailed("CB_SEQUENCE answered for another session or slot")
            }
            if reply.results.count > 1 {
                let result = reply.results[1]
                guard result.opcode == operation.opcode else {
                    return .pathFailed("reply for \(result.opcode), not \(operation.opcode)")
                }
                return .answered(result.status, connection: connection)
            }
            // Only CB_SEQUENCE's result: the operation was not reached.
            return reply.status == .ok ? .pathFailed("reply without \(operation.opcode)'s result")
                : .answered(reply.status, connection: connection)
        case .success(let other):
            return .pathFailed("answered \(other)")
        case .failure(let error):
            return .pathFailed("\(error)")
        }
    }

    /// Frees slot 0 (its sequence ID advanced when the client's CB_SEQUENCE
    /// took the call) and sends the next waiting operation. After a path
    /// failure the waiting operations are not sent: they are returned, to
    /// fail too.
    private func finished(_ session: SessionID, sequenced: Bool, pathFailed: Bool) -> [Pending] {
        let (next, abandoned) = channels.withLockedValue { channels -> (Pending?, [Pending]) in
            guard var channel = channels[session] else { return (nil, []) }
            if sequenced { channel.sequenceID = channel.sequenceID == .max ? 1 : channel.sequenceID + 1 }
            channel.busy = false
            var abandoned: [Pending] = []
            var next: Pending?
            if pathFailed {
                abandoned = channel.waiting
                channel.waiting = []
            } else if !channel.waiting.isEmpty {
                next = channel.waiting.removeFirst()
            }
            channels[session] = channel
            return (next, abandoned)
        }
        if let next { send(next.operation, on: session, done: next.done) }
        return abandoned
    }

    /// The session's back channel is down (no answer, closed): the session
    /// table says so (SEQ4_STATUS_CB_PATH_DOWN) until the client binds another.
    private func pathDown(_ session: SessionID, connection: ConnectionID) {
        tables.withLockedValue { t in t.clients.backChannelLost(session, connection: connection) }
    }

    /// The connection closed: the call in flight on it fails (and with it
    /// the path), and the callbacks waiting behind it fail here.
    private func connectionClosed(_ connection: ConnectionID) {
        tables.withLockedValue { t in _ = t.clients.connectionClosed(connection) }
        let abandoned = channels.withLockedValue { channels -> [Pending] in
            var abandoned: [Pending] = []
            for (id, channel) in channels where channel.connection?.id == connection {
                abandoned += channel.waiting
                channels[id]?.connection = nil
                channels[id]?.busy = false
                channels[id]?.waiting = []
            }
            return abandoned
        }
        for pending in abandoned { pending.done(.pathFailed("connection closed")) }
    }

    /// DESTROY_SESSION, or a client gone: its channels go (callbacks waiting on them fail).
    func forget(_ sessions: Set<SessionID>) {
        guard !sessions.isEmpty else { return }
        let abandoned = channels.withLockedValue { channels in
            sessions.flatMap { channels.removeValue(forKey: $0)?.waiting ?? [] }
        }
        for pending in abandoned { pending.done(.pathFailed("session destroyed")) }
    }
}
