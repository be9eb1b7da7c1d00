import NFS4State
import NFS4Wire
import Testing
import Transport

/// The grace period after a restart and the stable client records it comes
/// from: RFC 8881 §8.4.2 (server failure and recovery), §8.4.2.1 (stable
/// storage of clients), §9.11 (reclaims of locks), §18.51 (RECLAIM_COMPLETE).
/// What a check on `grace` answers (.ok when it does not throw). Outside
/// #expect: the macro cannot call a mutating method.
func outcome(_ grace: inout GraceTable, _ body: (inout GraceTable) throws -> Void) -> NFS4Status {
    do { try body(&grace); return .ok } catch { return error as? NFS4Status ?? .serverfault }
}

@Suite struct GraceTests {
    static let alice = StableClient(key: ClientOwnerKey(owner: Array("alice".utf8), host: .vsock(cid: 3)), principal: 0)
    static let bob = StableClient(key: ClientOwnerKey(owner: Array("bob".utf8), host: .vsock(cid: 4)), principal: 1000)
    static let start = ContinuousClock.now
    static let lease = Duration.seconds(90)

    static func restarted(with previous: [StableClient]) -> GraceTable {
        GraceTable(previous: previous, start: start, graceTime: lease)
    }

    @Test("RFC 8881 8.4.2.1: a server with no records of a previous instance has no grace period; reclaims are NO_GRACE")
    func noRecordsNoGrace() {
        var grace = Self.restarted(with: [])
        #expect(!grace.isInGrace(at: Self.start))
        do { let r = outcome(&grace) { grace in try grace.checkNotReclaim(now: Self.start) }; #expect(r == .ok) }
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 1, client: Self.alice, now: Self.start) }; #expect(r == .noGrace) }
    }

    @Test("RFC 8881 8.4.2: in grace, only reclaims by recorded clients succeed; other OPENs and LOCKs are GRACE")
    func inGraceOnlyReclaims() {
        var grace = Self.restarted(with: [Self.alice])
        let now = Self.start + .seconds(1)
        #expect(grace.isInGrace(at: now))
        do { let r = outcome(&grace) { grace in try grace.checkNotReclaim(now: now) }; #expect(r == .grace) }
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 7, client: Self.alice, now: now) }; #expect(r == .ok) }
        // Not recorded: another owner, the same owner from another host, another principal.
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 8, client: Self.bob, now: now) }; #expect(r == .reclaimBad) }
        var elsewhere = Self.alice
        elsewhere.key.host = .vsock(cid: 9)
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 9, client: elsewhere, now: now) }; #expect(r == .reclaimBad) }
        var otherPrincipal = Self.alice
        otherPrincipal.principal = 1000
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 10, client: otherPrincipal, now: now) }; #expect(r == .reclaimBad) }
    }

    @Test("RFC 8881 8.4.2.1: grace lasts one lease time; reclaims after it are NO_GRACE and unreclaimed records go")
    func graceEndsAfterLease() {
        var grace = Self.restarted(with: [Self.alice, Self.bob])
        grace.recordOpen(clientID: 7, client: Self.alice)   // alice reclaimed; bob never came back
        let later = Self.start + Self.lease + .seconds(1)
        let before = grace.generation
        _ = grace.inGrace(now: later)
        #expect(!grace.isInGrace(at: later))
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 7, client: Self.alice, now: later) }; #expect(r == .noGrace) }
        do { let r = outcome(&grace) { grace in try grace.checkNotReclaim(now: later) }; #expect(r == .ok) }
        #expect(grace.records == [Self.alice])
        #expect(grace.generation > before)
    }

    @Test("RFC 8881 18.51.4: grace ends early once every recorded client sent RECLAIM_COMPLETE")
    func reclaimCompleteEndsGrace() throws {
        var grace = Self.restarted(with: [Self.alice, Self.bob])
        let now = Self.start + .seconds(2)
        try grace.reclaimComplete(clientID: 7, key: Self.alice.key, oneFS: false, now: now)
        #expect(grace.isInGrace(at: now))   // bob may still reclaim
        // A client's reclaims after its own RECLAIM_COMPLETE are NO_GRACE.
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 7, client: Self.alice, now: now) }; #expect(r == .noGrace) }
        do { let r = outcome(&grace) { grace in try grace.checkReclaim(clientID: 8, client: Self.bob, now: now) }; #expect(r == .ok) }
        // rca_one_fs: one file system's recovery only, which ends nobody's.
        try grace.reclaimComplete(clientID: 8, key: Self.bob.key, oneFS: true, now: now)
        #expect(grace.isInGrace(at: now))
        try grace.reclaimComplete(clientID: 8, key: Self.bob.key, oneFS: false, now: now)
        #expect(!grace.isInGrace(at: now))
        do { let r = outcome(&grace) { grace in try grace.checkNotReclaim(now: now) }; #expect(r == .ok) }
    }

    @Test("RFC 8881 18.51.4: a second RECLAIM_COMPLETE is COMPLETE_ALREADY; a new client's first one is fine")
    func reclaimCompleteTwice() throws {
        var grace = Self.restarted(with: [Self.alice])
        let now = Self.start + .seconds(2)
        try grace.reclaimComplete(clientID: 8, key: Self.bob.key, oneFS: false, now: now)   // a client new to this server
        #expect(grace.isInGrace(at: now))   // alice has not completed
        let again = outcome(&grace) { grace in try grace.reclaimComplete(clientID: 8, key: Self.bob.key, oneFS: false, now: now) }
        #expect(again == .completeAlready)
    }

    @Test("RFC 8881 8.4.2.1: a client is recorded at its first open and dropped when destroyed or expired")
    func recordsFollowClients() {
        var grace = Self.restarted(with: [])
        #expect(grace.records.isEmpty)
        grace.recordOpen(clientID: 1, client: Self.alice)
        let generation = grace.generation
        grace.recordOpen(clientID: 1, client: Self.alice)   // later opens write nothing
        #expect(grace.generation == generation)
        grace.recordOpen(clientID: 2, client: Self.bob)
        #expect(grace.records == [Self.alice, Self.bob])
        grace.forget([1])
        #expect(grace.records == [Self.bob])
        grace.forget([3])   // never opened anything
        #expect(grace.records == [Self.bob])
    }

    @Test("RFC 8881 8.4.3: a previous instance's record stays while its client may still reclaim (a second restart in grace)")
    func previousRecordKeptInGrace() {
        var grace = Self.restarted(with: [Self.alice])
        grace.recordOpen(clientID: 7, client: Self.alice)   // a reclaim
        grace.forget([7])                                   // then its lease ran out, still in grace
        #expect(grace.records == [Self.alice])
        _ = grace.inGrace(now: Self.start + Self.lease + .seconds(1))
        #expect(grace.records.isEmpty)
    }

    @Test("RFC 8881 8.4.2.1: the records' file keeps owner, host and principal; damaged lines are skipped")
    func recordsFile() {
        let inet = StableClient(key: ClientOwnerKey(owner: [0, 0xff, 0x10], host: .inet(IPAddress("10.0.0.2")!)),
                                principal: nil)
        let unix = StableClient(key: ClientOwnerKey(owner: [], host: .unix(uid: 1000)), principal: 5)
        let records: Set<StableClient> = [Self.alice, Self.bob, inet, unix]
        let text = ClientRecordsFile.encode(records)
        #expect(Set(ClientRecordsFile.decode(text)) == records)
        let damaged = "zz vsock:3 0\n616c696365 vsock:x 0\n626f62 vsock:4\n" + text
        #expect(Set(ClientRecordsFile.decode(damaged)) == records)
    }
}
