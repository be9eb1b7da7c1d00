import Dispatch
import Foundation
import HostFS
import Logging
import NFS4State
import NFS4Wire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Transport

/// Every NFSv4.1 table of one server, under one lock: client records and
/// sessions, opens, lock stateids. Held only to read or change the tables,
/// never across a filesystem call.
struct NFS4Tables: Sendable {
    var clients: ClientTable
    var opens: OpenTable
    var locks: LockStateTable
    /// Stable client records and the grace period after a restart (NFS4ServerState+Grace.swift).
    var grace: GraceTable
    /// Operations run in each client's sessions (SEQUENCE included), for `vsnfs status`.
    var operationCounts: [ClientID: [NFS4Opcode: Int]] = [:]

    /// Whether `clientID` is a client of `host`. Client and session IDs are
    /// not secrets, so every operation naming one (SEQUENCE's session,
    /// CREATE_SESSION's and DESTROY_CLIENTID's client, DESTROY_SESSION,
    /// BIND_CONN_TO_SESSION) is refused for a client of another host: one
    /// guest cannot use or end another guest's state.
    func owns(_ clientID: ClientID, host: PeerHost) -> Bool {
        clients.clients[clientID]?.key.host == host
    }

    func owns(session: SessionID, host: PeerHost) -> Bool {
        clients.sessions[session].map { owns($0.clientID, host: host) } ?? false
    }

    /// Releases the state of clients that are gone (lease expired, replaced,
    /// destroyed). Returns them, for the kernel locks to be released outside the lock.
    mutating func release(_ clientIDs: [ClientID]) {
        for id in clientIDs {
            opens.releaseClient(id)
            locks.releaseClient(id)
            operationCounts[id] = nil
        }
        grace.forget(clientIDs)
    }
}

/// The NFSv4 server's state and the identity it gives clients.
final class NFS4ServerState: Sendable {
    /// Contended by every COMPOUND: a pthread lock (NIOLockedValueBox), not a Mutex.
    let tables: NIOLockedValueBox<NFS4Tables>
    /// The open table's count of denying opens, readable without `tables`' lock.
    let denyingOpens = DenyingOpensGauge()
    let rangeLocks: ByteRangeLocks
    /// The high half of client, session and stateid IDs: differs per start.
    let epoch: UInt32
    /// eir_server_owner's major ID and eir_server_scope: one server instance.
    let serverOwner: [UInt8]
    let leaseSeconds: UInt32
    let clientRecords: ClientRecordStore
    let logger: Logger
    /// The back channel and read delegations (Callbacks.swift, Delegations.swift).
    let callbacks: NFS4Callbacks
    let delegations: NFS4Delegations

    /// `timers`: where the delegations' revocation timers run (their work goes to `threadPool`).
    init(fs: HostFileSystem, limits: ServerChannelLimits, leaseTime: Duration, logger: Logger,
         timers: any EventLoop, threadPool: NIOThreadPool, delegations enabled: Bool = true) {
        let epoch = UInt32.random(in: 1...UInt32.max)
        self.epoch = epoch
        self.logger = logger
        self.clientRecords = ClientRecordStore(stateDirectory: fs.options.stateDirectory)
        let previous = clientRecords.load()
        if !previous.isEmpty {
            logger.info("NFSv4 grace period of \(leaseTime) for \(previous.count) client(s) of the previous instance to reclaim")
        }
        self.tables = NIOLockedValueBox(NFS4Tables(
            clients: ClientTable(limits: limits, leaseTime: leaseTime, epoch: epoch),
            opens: OpenTable(epoch: epoch, publishingTo: denyingOpens), locks: LockStateTable(epoch: epoch),
            grace: GraceTable(previous: previous, start: .now, graceTime: leaseTime)))
        self.rangeLocks = ByteRangeLocks(fs: fs)
        let host = ProcessInfo.processInfo.hostName
        self.serverOwner = Array("vsnfs:\(host)".utf8)
        self.leaseSeconds = UInt32(leaseTime.components.seconds)
        self.callbacks = NFS4Callbacks(tables: tables, timeout: NFS4Callbacks.timeout(leaseTime: leaseTime))
        self.delegations = NFS4Delegations(epoch: epoch, callbacks: callbacks, fs: fs, leaseTime: leaseTime,
                                           timers: timers, threadPool: threadPool, enabled: enabled)
        // Leases run out whether or not a COMPOUND arrives (knfsd's laundromat):
        // a guest that was killed must not keep its locks on host files until
        // another client happens to call.
        Self.scheduleLeaseCheck(after: Self.leaseCheckPeriod(leaseTime), of: self, threadPool: threadPool)
    }

    /// How often the timer looks for leases that ran out: a quarter of the
    /// lease, at least a second (so state goes at most 1.25 leases after the
    /// client's last renewal).
    static func leaseCheckPeriod(_ leaseTime: Duration) -> Duration {
        max(.seconds(1), leaseTime / 4)
    }

    /// The check runs on the thread pool; its timer is a Dispatch timer, not
    /// one on an event loop: a task always scheduled on a loop costs every turn
    /// of that loop a deadline check (about 200 instructions per NFSv3 call at
    /// one call in flight, in callgrind). Stops when the state is gone.
    private static func scheduleLeaseCheck(after period: Duration, of state: NFS4ServerState,
                                           threadPool: NIOThreadPool) {
        let (seconds, attoseconds) = period.components
        let delay = DispatchTimeInterval.nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + delay) { [weak state] in
            guard let state else { return }
            threadPool.submit { poolState in
                guard case .active = poolState else { return }
                state.expireLeases(now: .now)
                Self.scheduleLeaseCheck(after: period, of: state, threadPool: threadPool)
            }
        }
    }

    /// Ends the leases that ran out (RFC 8881 §8.3) and releases their state.
    func expireLeases(now: ContinuousClock.Instant) {
        let expired = tables.withLockedValue { t -> [ClientID] in
            let gone = t.clients.expireLeases(now: now)
            t.release(gone)
            return gone
        }
        for id in expired { rangeLocks.releaseClient(id) }
        delegations.releaseClients(expired)
        delegations.revokeOverdue(now: now)
        persistClientRecords()
    }

    /// Whether `expireLeases(now:)` has nothing to do: no lease ran out, no
    /// recall is overdue, the client records on disk are current. Asked on the
    /// event loop, which then skips it; otherwise the COMPOUND goes to the pool,
    /// which runs it (it may release kernel locks and fsync the records).
    func leasesNeedNoWork(now: ContinuousClock.Instant) -> Bool {
        let (expired, generation) = tables.withLockedValue { t in
            _ = t.grace.inGrace(now: now)   // as persistClientRecords: a grace period whose time is up ends
            return (t.clients.hasExpiredLease(now: now), t.grace.generation)
        }
        return !expired && (generation == 0 || clientRecords.isStored(generation)) && !delegations.hasOverdue(now: now)
    }

    /// Releases the state of replaced or destroyed clients (their kernel locks too).
    func release(_ clientIDs: [ClientID]) {
        guard !clientIDs.isEmpty else { return }
        tables.withLockedValue { $0.release(clientIDs) }
        for id in clientIDs { rangeLocks.releaseClient(id) }
        delegations.releaseClients(clientIDs)
        persistClientRecords()
    }
}
