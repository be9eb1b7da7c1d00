import NFS4State
import NFS4Wire
import Testing

@Suite struct DelegationTableTests {
    let file = FileKey(fsid: 1, fileid: 42)
    let other = FileKey(fsid: 1, fileid: 43)

    @Test("RFC 8881 10.2: read delegations of a file to several clients; one per client; stateids told apart from opens and locks")
    func grantRules() throws {
        var t = DelegationTable(epoch: 7)
        #expect(t.mayGrant(file, to: 1))
        let a = t.grant(file, fileHandle: [1], to: 1)
        #expect(DelegationTable.isDelegationStateID(a.stateID))
        #expect(!LockStateTable.isLockStateID(a.stateID))
        #expect(a.stateID.otherHigh == 7 && a.stateID.seqid == 1)
        #expect(!t.mayGrant(file, to: 1))
        #expect(t.mayGrant(file, to: 2))
        let b = t.grant(file, fileHandle: [1], to: 2)
        #expect(t.conflicting(file, except: nil).map(\.stateID) == [a.stateID, b.stateID])
        #expect(t.conflicting(file, except: 1).map(\.stateID) == [b.stateID])
        #expect(t.conflicting(other, except: nil).isEmpty)
        // While one is recalled no new one is given.
        let first = t.markRecalled(a.stateID.otherLow, now: .now)
        let second = t.markRecalled(a.stateID.otherLow, now: .now)
        #expect(first && !second)
        #expect(!t.mayGrant(file, to: 3))
    }

    @Test("RFC 8881 18.6, 8.2.4: DELEGRETURN by the holder only; a returned stateid is BAD_STATEID; another epoch's is STALE")
    func giveBack() throws {
        var t = DelegationTable(epoch: 7)
        let d = t.grant(file, fileHandle: [1], to: 1)
        #expect(throws: NFS4Status.badStateid) { try t.giveBack(d.stateID, clientID: 2) }
        var stale = d.stateID
        stale.otherHigh = 8
        #expect(throws: NFS4Status.staleStateid) { try t.giveBack(stale, clientID: 1) }
        #expect(try t.giveBack(d.stateID, clientID: 1) == d)
        #expect(t.isEmpty)
        #expect(throws: NFS4Status.badStateid) { try t.giveBack(d.stateID, clientID: 1) }
    }

    @Test("RFC 8881 10.4.6, 18.38: a recall past the deadline revokes; DELEG_REVOKED until FREE_STATEID; a live one is LOCKS_HELD")
    func revocation() throws {
        var t = DelegationTable(epoch: 7)
        let d = t.grant(file, fileHandle: [1], to: 1)
        let e = t.grant(other, fileHandle: [2], to: 1)
        let start = ContinuousClock.now
        _ = t.markRecalled(d.stateID.otherLow, now: start)
        #expect(t.revokeRecalled(before: start).isEmpty)
        let revoked = t.revokeRecalled(before: start + .seconds(1))
        #expect(revoked.map(\.stateID) == [d.stateID])
        #expect(t.hasRevoked(1) && !t.hasRevoked(2))
        #expect(t.conflicting(file, except: nil).isEmpty)
        #expect(throws: NFS4Status.delegRevoked) { try t.validate(d.stateID, clientID: 1) }
        #expect(throws: NFS4Status.delegRevoked) { try t.giveBack(d.stateID, clientID: 1) }
        #expect(throws: NFS4Status.locksHeld) { try t.free(e.stateID, clientID: 1) }
        try t.free(d.stateID, clientID: 1)
        #expect(!t.hasRevoked(1))
        #expect(t.count == 1)
    }

    @Test("A client gone takes its delegations; the live ones are returned for their leases")
    func releaseClient() {
        var t = DelegationTable(epoch: 7)
        let d = t.grant(file, fileHandle: [1], to: 1)
        let e = t.grant(other, fileHandle: [2], to: 1)
        _ = t.grant(file, fileHandle: [1], to: 2)
        _ = t.markRecalled(e.stateID.otherLow, now: .now - .seconds(10))
        _ = t.revokeRecalled(before: .now)
        #expect(t.releaseClient(1).map(\.stateID) == [d.stateID])
        #expect(t.count == 1)
    }

    @Test("RFC 8881 10.4.6: a delegation whose recall cannot succeed is revoked at once, once; recalled-and-live is what a retry checks")
    func revokeOne() throws {
        var t = DelegationTable(epoch: 7)
        let d = t.grant(file, fileHandle: [1], to: 1)
        #expect(!t.isBeingRecalled(d.stateID.otherLow))
        _ = t.markRecalled(d.stateID.otherLow, now: .now)
        #expect(t.isBeingRecalled(d.stateID.otherLow))
        #expect(t.revoke(d.stateID.otherLow)?.stateID == d.stateID)
        #expect(t.revoke(d.stateID.otherLow) == nil)
        #expect(!t.isBeingRecalled(d.stateID.otherLow))
        #expect(t.revokeRecalled(before: .now + .seconds(100)).isEmpty)
        #expect(t.hasRevoked(1))
        #expect(throws: NFS4Status.delegRevoked) { try t.validate(d.stateID, clientID: 1) }
        #expect(!t.mayGrant(file, to: 2))
        try t.free(d.stateID, clientID: 1)
        #expect(t.revoke(d.stateID.otherLow) == nil)
        #expect(t.mayGrant(file, to: 2))
    }
}
