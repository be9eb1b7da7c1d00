import NFS4State
import NFS4Wire
import Testing

/// Open stateids and share reservations: RFC 8881 §8.2 (stateids), §9.7
/// (share reservations), §18.16 (OPEN), §18.18 (OPEN_DOWNGRADE), §18.2 (CLOSE).
@Suite struct OpenStateTests {
    static let file = FileKey(fsid: 1, fileid: 100)
    static let alice = OpenOwner(clientID: 1, owner: Array("alice".utf8))
    static let bob = OpenOwner(clientID: 2, owner: Array("bob".utf8))

    @Test("RFC 8881 9.7: an open whose access meets another owner's deny is SHARE_DENIED, and the reverse")
    func shareDenials() throws {
        var table = OpenTable(epoch: 5)
        _ = try table.open(owner: Self.alice, file: Self.file, access: .read, deny: .write)
        #expect(throws: NFS4Status.shareDenied) {
            try table.open(owner: Self.bob, file: Self.file, access: .write, deny: [])
        }
        // Reading is not denied.
        _ = try table.open(owner: Self.bob, file: Self.file, access: .read, deny: [])
        // Denying read to a file alice reads is refused too.
        #expect(throws: NFS4Status.shareDenied) {
            try table.open(owner: OpenOwner(clientID: 3, owner: [3]), file: Self.file, access: .read, deny: .read)
        }
        // Another file is unaffected.
        _ = try table.open(owner: Self.bob, file: FileKey(fsid: 1, fileid: 101), access: .both, deny: .both)
    }

    @Test("RFC 8881 9.7: an NFSv3 WRITE is refused while an open denies writing")
    func denyWriteAppliesToNFSv3() throws {
        var table = OpenTable(epoch: 5)
        #expect(!table.deniesWrite(Self.file))
        let open = try table.open(owner: Self.alice, file: Self.file, access: .read, deny: .write)
        #expect(table.deniesWrite(Self.file))
        #expect(!table.deniesWrite(Self.file, except: Self.alice))
        try table.close(open.stateID, clientID: 1)
        #expect(!table.deniesWrite(Self.file))
    }

    @Test("RFC 8881 9.7: an NFSv3 READ is refused while an open denies reading; denying opens are counted through upgrade, downgrade, close and release, and published to the lock-free gauge NFSv3 reads")
    func denyReadAndDenyingOpens() throws {
        let gauge = DenyingOpensGauge()
        var table = OpenTable(epoch: 5, publishingTo: gauge)
        #expect(table.denyingOpens == 0)
        _ = try table.open(owner: Self.alice, file: Self.file, access: .read, deny: [])
        #expect(table.denyingOpens == 0 && !gauge.anyDenial && !table.deniesRead(Self.file))
        // The same owner again, now denying reading: one open, one denying.
        let upgraded = try table.open(owner: Self.alice, file: Self.file, access: .read, deny: .read)
        #expect(table.denyingOpens == 1 && gauge.anyDenial && table.deniesRead(Self.file) && !table.deniesWrite(Self.file))
        #expect(!table.deniesRead(FileKey(fsid: 1, fileid: 101)))
        let downgraded = try table.downgrade(upgraded.stateID, clientID: 1, access: .read, deny: [])
        #expect(table.denyingOpens == 0 && !gauge.anyDenial && !table.deniesRead(Self.file))
        _ = try table.open(owner: Self.bob, file: FileKey(fsid: 1, fileid: 101), access: .read, deny: .both)
        #expect(table.denyingOpens == 1 && gauge.anyDenial)
        table.releaseClient(2)
        #expect(table.denyingOpens == 0 && !gauge.anyDenial)
        try table.close(downgraded.stateID, clientID: 1)
        #expect(table.count == 0)
    }

    @Test("RFC 8881 8.2.2, 8.2.4: bad, old and stale stateids")
    func badOldAndStaleStateids() throws {
        var table = OpenTable(epoch: 5)
        let first = try table.open(owner: Self.alice, file: Self.file, access: .read, deny: [])
        let upgraded = try table.open(owner: Self.alice, file: Self.file, access: .write, deny: [])
        #expect(upgraded.stateID.otherLow == first.stateID.otherLow)
        #expect(upgraded.stateID.seqid == first.stateID.seqid + 1)
        #expect(upgraded.access == .both)
        // The earlier seqid of a live open: OLD_STATEID. Seqid 0: the current one.
        #expect(throws: NFS4Status.oldStateid) { try table.validate(first.stateID, clientID: 1) }
        var current = first.stateID
        current.seqid = 0
        #expect(try table.validate(current, clientID: 1).stateID == upgraded.stateID)
        // A seqid ahead of the server's: BAD_STATEID.
        var ahead = upgraded.stateID
        ahead.seqid += 5
        #expect(throws: NFS4Status.badStateid) { try table.validate(ahead, clientID: 1) }
        // One this server never issued, another client's, a special one: BAD_STATEID.
        #expect(throws: NFS4Status.badStateid) {
            try table.validate(StateID(seqid: 1, otherHigh: 5, otherLow: 999), clientID: 1)
        }
        #expect(throws: NFS4Status.badStateid) { try table.validate(upgraded.stateID, clientID: 2) }
        #expect(throws: NFS4Status.badStateid) { try table.validate(.anonymous, clientID: 1) }
        // One from before a restart (another epoch): STALE_STATEID.
        let restarted = OpenTable(epoch: 6)
        #expect(throws: NFS4Status.staleStateid) { try restarted.validate(upgraded.stateID, clientID: 1) }
        // A closed open's stateid is BAD_STATEID.
        try table.close(upgraded.stateID, clientID: 1)
        #expect(throws: NFS4Status.badStateid) { try table.validate(upgraded.stateID, clientID: 1) }
    }

    @Test("RFC 8881 18.18.3: OPEN_DOWNGRADE only to modes the open has held")
    func downgrade() throws {
        var table = OpenTable(epoch: 5)
        _ = try table.open(owner: Self.alice, file: Self.file, access: .read, deny: [])
        let both = try table.open(owner: Self.alice, file: Self.file, access: .write, deny: [])
        let down = try table.downgrade(both.stateID, clientID: 1, access: .read, deny: [])
        #expect(down.access == .read && down.stateID.seqid == both.stateID.seqid + 1)
        // Write-only was never held on its own.
        #expect(throws: NFS4Status.inval) {
            try table.downgrade(down.stateID, clientID: 1, access: .write, deny: [])
        }
        // Nor a wider mode than the open has now.
        #expect(throws: NFS4Status.inval) {
            try table.downgrade(down.stateID, clientID: 1, access: .both, deny: [])
        }
    }

    @Test("RFC 8881 8.3: releasing a client (lease expiry) drops its opens and their share reservations")
    func releaseClient() throws {
        var table = OpenTable(epoch: 5)
        _ = try table.open(owner: Self.alice, file: Self.file, access: .both, deny: .both)
        #expect(throws: NFS4Status.shareDenied) {
            try table.open(owner: Self.bob, file: Self.file, access: .read, deny: [])
        }
        table.releaseClient(1)
        #expect(table.count == 0)
        _ = try table.open(owner: Self.bob, file: Self.file, access: .read, deny: [])
    }

    @Test("RFC 8881 8.2.2: seqids wrap past 2^32-1 to 1, never 0")
    func seqidWraps() {
        #expect(OpenTable.nextSeqid(.max) == 1)
        #expect(OpenTable.nextSeqid(7) == 8)
    }
}
