import Glibc
import HostFS
import Logging
import NFS4State
import NFS4Wire
import NFSCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// Read delegations (RFC 8881 §10.2, §10.4) and the host kernel leases behind
/// them. A delegation is given on OPEN for reading when nothing conflicts
/// and the client's callback path is up; a host lease (`HostLease`) on the
/// file makes a host process that opens it for writing or truncates it wait
/// while the delegation is recalled (CB_RECALL); DELEGRETURN
/// releases the lease and the process goes on. The lease's inotify watch
/// recalls it the same way, after the fact, when a host process renames,
/// unlinks, links, chmods, chowns or touches the file. The server's own changes
/// (NFSv3, other NFSv4 clients) ask first (`FileChangeGate`): NFS4ERR_DELAY /
/// NFS3ERR_JUKEBOX while the recall runs. A delegation is revoked (§10.4.6)
/// when its recall cannot succeed (no callback path, no answer, an error:
/// see `NFS4Callbacks.recall`), or when it is not returned within a lease
/// period of its recall (a timer on `timers` checks then, whether or not the
/// client sends anything): its lease is released, and the client sees
/// SEQ4_STATUS_RECALLABLE_STATE_REVOKED until it frees it.
final class NFS4Delegations: FileChangeGate {
    private let table: NIOLockedValueBox<DelegationTable>
    /// The lease behind each live delegation, by the low half of its stateid's `other`.
    private let leases = NIOLockedValueBox<[UInt64: HostLease]>([:])
    private let live = Atomic<Int>(0)
    let callbacks: NFS4Callbacks
    let fs: HostFileSystem
    let leaseTime: Duration
    let logger: Logger
    /// Delegations are offered at all (`--nfs4-delegations off` turns them off).
    let enabled: Bool
    /// Where the revocation timers run; their work (releasing host leases)
    /// runs on `threadPool`, as does a revocation after a failed callback.
    let timers: any EventLoop
    let threadPool: NIOThreadPool

    init(epoch: UInt32, callbacks: NFS4Callbacks, fs: HostFileSystem, leaseTime: Duration, timers: any EventLoop,
         threadPool: NIOThreadPool, enabled: Bool = true, logger: Logger = Logger(label: "vsnfs.nfs4.delegation")) {
        self.table = NIOLockedValueBox(DelegationTable(epoch: epoch))
        self.callbacks = callbacks
        self.fs = fs
        self.leaseTime = leaseTime
        self.timers = timers
        self.threadPool = threadPool
        self.enabled = enabled
        self.logger = logger
    }

    var mayConflict: Bool { live.load(ordering: .relaxed) > 0 }

    private func updateCount(_ t: DelegationTable) {
        live.store(t.count, ordering: .relaxed)
    }

    // MARK: Giving

    /// A read delegation of `file` for `clientID`, or nil: the callback path
    /// is down, the client holds one, another client's is being recalled, or
    /// the host lease cannot be had (the file is open for writing somewhere,
    /// the server neither owns it nor has CAP_LEASE, the filesystem has no
    /// leases, no inotify watch is left).
    func grant(_ file: FileKey, handle: ObjectHandle, fileHandle: [UInt8], to clientID: ClientID) -> Delegation? {
        guard enabled, callbacks.pathUp(for: clientID),
              table.withLockedValue({ $0.mayGrant(file, to: clientID) }) else { return nil }
        let other = NIOLockedValueBox<UInt64?>(nil)
        let lease: HostLease
        do {
            lease = try HostLease.take(handle, in: fs) { [weak self] in
                guard let self, let id = other.withLockedValue({ $0 }) else { return }
                self.leaseBroken(id)
            }
        } catch {
            logger.debug("no read delegation for client \(clientID): host lease: \(error)")
            return nil
        }
        let granted = table.withLockedValue { t -> Delegation? in
            guard t.mayGrant(file, to: clientID) else { return nil }
            let d = t.grant(file, fileHandle: fileHandle, to: clientID)
            updateCount(t)
            return d
        }
        guard let granted else {
            lease.release()
            return nil
        }
        leases.withLockedValue { $0[granted.stateID.otherLow] = lease }
        other.withLockedValue { $0 = granted.stateID.otherLow }
        // A break between taking the lease and recording it found no delegation yet.
        if lease.isBreaking { leaseBroken(granted.stateID.otherLow) }
        return granted
    }

    // MARK: Recalling

    /// The host is breaking the lease behind delegation `other`, or changed
    /// the file's metadata or name (its watch). Again while the recall runs: nothing.
    private func leaseBroken(_ other: UInt64) {
        guard let d = table.withLockedValue({ $0.delegation(other: other) }) else { return }
        logger.debug("host lease broken or file changed on the host: recalling \(d.stateID) from client \(d.clientID)")
        recall([d])
    }

    /// Sends CB_RECALL for each delegation not recalled yet, and sets the
    /// timer that revokes it if it is not returned within a lease. One whose
    /// recall cannot succeed is revoked at once (right here when the client
    /// has no callback path; later, on the thread pool, when the callback fails).
    private func recall(_ delegations: [Delegation]) {
        let now = ContinuousClock.now
        for d in delegations where table.withLockedValue({ $0.markRecalled(d.stateID.otherLow, now: now) }) {
            scheduleRevocation(after: leaseTime)
            let other = d.stateID.otherLow
            let table = self.table
            callbacks.recall(d, stillRecalled: { table.withLockedValue { $0.isBeingRecalled(other) } }) { [weak self] why in
                guard let self else { return }
                // A callback's reply arrives on an event loop: the lease release waits for the pool there.
                if MultiThreadedEventLoopGroup.currentEventLoop == nil {
                    self.revoke(other, because: "its recall cannot succeed (\(why))")
                } else {
                    self.threadPool.submit { _ in self.revoke(other, because: "its recall failed (\(why))") }
                }
            }
        }
    }

    /// Runs `revokeOverdue` on the thread pool once `delay` has passed.
    private func scheduleRevocation(after delay: Duration) {
        let (seconds, attoseconds) = delay.components
        // A little past the deadline: `revokeOverdue` revokes what is strictly older.
        let amount = TimeAmount.seconds(seconds) + .nanoseconds(attoseconds / 1_000_000_000) + .milliseconds(20)
        timers.scheduleTask(in: amount) { [weak self] in
            guard let self else { return }
            self.threadPool.submit { state in
                guard case .active = state else { return }
                self.revokeOverdue(now: .now)
            }
        }
    }

    /// Before a change to `file` by `changer`: any delegation of it (the
    /// changer's own too: a client about to write returns its read delegation
    /// first, and the server's own write would otherwise wait on its own
    /// lease) is recalled, and the change waits (EAGAIN: DELAY, JUKEBOX).
    func willChange(_ file: ObjectHandle, by changer: FileChanger, as credentials: Credentials) throws {
        guard mayConflict else { return }
        guard let attributes = try? fs.getattr(file, as: credentials), attributes.type == .regular else { return }
        try willChange(FileKey(fsid: attributes.fsid, fileid: attributes.fileid))
    }

    func willChange(_ key: FileKey) throws {
        guard mayConflict else { return }
        let held = table.withLockedValue { $0.conflicting(key, except: nil) }
        guard !held.isEmpty else { return }
        recall(held)
        // Revoked at once (no callback path): nothing to wait for.
        guard table.withLockedValue({ $0.conflicting(key, except: nil) }).isEmpty else { throw FSError.errno(EAGAIN) }
    }

    // MARK: Ending

    /// DELEGRETURN (§18.6).
    func giveBack(_ stateID: StateID, clientID: ClientID) throws {
        let d = try table.withLockedValue { t -> Result<Delegation, NFS4Status> in
            let r = Result { () throws(NFS4Status) in try t.giveBack(stateID, clientID: clientID) }
            updateCount(t)
            return r
        }.get()
        leases.withLockedValue { $0.removeValue(forKey: d.stateID.otherLow) }?.release()
    }

    /// TEST_STATEID of a delegation stateid (§18.48): OK, or why not.
    func test(_ stateID: StateID, clientID: ClientID) -> NFS4Status {
        do {
            _ = try validate(stateID, clientID: clientID)
            return .ok
        } catch {
            return error as? NFS4Status ?? .serverfault
        }
    }

    /// The delegation a READ's stateid names (§9.1.4: a read delegation's stateid reads).
    func validate(_ stateID: StateID, clientID: ClientID) throws -> Delegation {
        try table.withLockedValue { t in
            Result { () throws(NFS4Status) in try t.validate(stateID, clientID: clientID) }
        }.get()
    }

    /// FREE_STATEID (§18.38) of a revoked delegation.
    func free(_ stateID: StateID, clientID: ClientID) throws {
        try table.withLockedValue { t -> Result<Void, NFS4Status> in
            let r = Result { () throws(NFS4Status) in try t.free(stateID, clientID: clientID) }
            updateCount(t)
            return r
        }.get()
    }

    /// Whether `revokeOverdue(now:)` has any to revoke.
    func hasOverdue(now: ContinuousClock.Instant) -> Bool {
        mayConflict && table.withLockedValue { $0.hasRecalled(before: now - leaseTime) }
    }

    /// Whether a change of `key` would recall a delegation (`willChange` would do more than look).
    func conflicts(_ key: FileKey) -> Bool {
        mayConflict && !table.withLockedValue { $0.conflicting(key, except: nil) }.isEmpty
    }

    /// Revokes the delegations recalled more than a lease period ago.
    func revokeOverdue(now: ContinuousClock.Instant) {
        guard mayConflict else { return }
        let revoked = table.withLockedValue { $0.revokeRecalled(before: now - leaseTime) }
        released(revoked, because: "not returned within the lease")
    }

    /// Revokes one delegation now (its recall cannot succeed).
    private func revoke(_ other: UInt64, because why: String) {
        let revoked = table.withLockedValue { $0.revoke(other) }
        released(revoked.map { [$0] } ?? [], because: why)
    }

    /// After `revoked` were marked revoked (§10.4.6): their host leases go
    /// (a host process waiting on one goes on).
    private func released(_ revoked: [Delegation], because why: String) {
        for d in revoked {
            logger.info("delegation \(d.stateID) of client \(d.clientID) revoked: \(why)")
            leases.withLockedValue { $0.removeValue(forKey: d.stateID.otherLow) }?.release()
        }
    }

    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED for `clientID`.
    func hasRevoked(_ clientID: ClientID) -> Bool {
        mayConflict && table.withLockedValue { $0.hasRevoked(clientID) }
    }

    /// Clients gone (lease expired, replaced, destroyed): their delegations and leases go.
    func releaseClients(_ clientIDs: [ClientID]) {
        guard !clientIDs.isEmpty else { return }
        let gone = table.withLockedValue { t -> [Delegation] in
            let gone = clientIDs.flatMap { t.releaseClient($0) }
            updateCount(t)
            return gone
        }
        let released = leases.withLockedValue { leases in gone.compactMap { leases.removeValue(forKey: $0.stateID.otherLow) } }
        for lease in released { lease.release() }
    }
}
