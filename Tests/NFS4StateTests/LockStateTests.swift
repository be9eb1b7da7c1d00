import NFS4State
import NFS4Wire
import Testing

/// Lock stateids: RFC 8881 §8.2 (stateids), §18.10 (LOCK's open-to-lock-owner
/// transition), §18.12 (LOCKU), §18.38 (FREE_STATEID).
@Suite struct LockStateTests {
    static let file = FileKey(fsid: 1, fileid: 100)
    static let owner = LockOwner(clientID: 1, owner: Array("lo".utf8))

    @Test("RFC 8881 18.10.4: one lock stateid per lock-owner and file, its seqid advancing with each LOCK and LOCKU")
    func oneStateIDPerOwnerAndFile() throws {
        var table = LockStateTable(epoch: 7)
        let first = table.begin(owner: Self.owner, file: Self.file, openOther: 3, handle: [1])
        #expect(LockStateTable.isLockStateID(first.stateID))
        #expect(table.begin(owner: Self.owner, file: Self.file, openOther: 3, handle: [1]).stateID == first.stateID)
        let advanced = table.advance(first.stateID.otherLow)
        let granted = try #require(advanced)
        #expect(granted.seqid == first.stateID.seqid + 1)
        #expect(try table.validate(granted, clientID: 1).stateID == granted)
        // Another file of the same owner: another stateid.
        let other = table.begin(owner: Self.owner, file: FileKey(fsid: 1, fileid: 101), openOther: 4, handle: [2])
        #expect(other.stateID.otherLow != first.stateID.otherLow)
        #expect(table.count == 2)
    }

    @Test("RFC 8881 8.2.4: another client's, an older, and an earlier server's lock stateid are refused")
    func refusals() throws {
        var table = LockStateTable(epoch: 7)
        let state = table.begin(owner: Self.owner, file: Self.file, openOther: 3, handle: [1])
        let advanced = table.advance(state.stateID.otherLow)
        let current = try #require(advanced)
        _ = table.advance(state.stateID.otherLow)
        #expect(throws: NFS4Status.badStateid) { try table.validate(current, clientID: 2) }
        #expect(throws: NFS4Status.oldStateid) { try table.validate(current, clientID: 1) }
        var stale = current
        stale.otherHigh = 6
        #expect(throws: NFS4Status.staleStateid) { try table.validate(stale, clientID: 1) }
    }

    @Test("RFC 8881 18.38: FREE_STATEID ends the lock stateid; a client's release ends them all")
    func freeAndRelease() throws {
        var table = LockStateTable(epoch: 7)
        let state = table.begin(owner: Self.owner, file: Self.file, openOther: 3, handle: [1])
        let freed = try table.free(state.stateID, clientID: 1)
        #expect(freed.handle == [1])
        #expect(throws: NFS4Status.badStateid) { try table.validate(state.stateID, clientID: 1) }
        _ = table.begin(owner: Self.owner, file: Self.file, openOther: 3, handle: [1])
        _ = table.begin(owner: LockOwner(clientID: 2, owner: [9]), file: Self.file, openOther: 5, handle: [1])
        table.releaseClient(1)
        #expect(table.count == 1)
    }
}
