import NFS4State
import NFS4Wire
import NIOCore
import Testing
import Transport

/// Sessions and client records: RFC 8881 §2.10 (sessions), §18.35
/// (EXCHANGE_ID), §18.36 (CREATE_SESSION), §18.46 (SEQUENCE), §8.3 (leases).
@Suite struct SessionTests {
    static let t0 = ContinuousClock.now
    static let guest3 = PeerHost.vsock(cid: 3)
    static let guest4 = PeerHost.vsock(cid: 4)
    static let asked = ChannelAttrs(maxRequestSize: 1_049_620, maxResponseSize: 1_049_480, maxResponseSizeCached: 7584,
                                    maxOperations: 50, maxRequests: 128)
    static let back = ChannelAttrs(maxRequestSize: 4096, maxResponseSize: 4096, maxResponseSizeCached: 0,
                                   maxOperations: 2, maxRequests: 1)

    /// A confirmed client with one session, as a Linux mount makes it.
    static func mounted(_ table: inout ClientTable, owner: String = "Linux NFSv4.2 guest", host: PeerHost = guest3,
                        connection: ConnectionID = 1) throws -> Session {
        let exchange = try table.exchangeID(owner: Array(owner.utf8), verifier: Verifier4(7), host: host, principal: 0,
                                            update: false, now: t0)
        return try table.createSession(clientID: exchange.clientID, sequence: exchange.sequenceID, fore: asked,
                                       back: back, callbackProgram: 0x4000_0000, backChannelOnThisConnection: true,
                                       connection: connection, principal: 0, now: t0).session
    }

    static func reply(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test("RFC 8881 18.36.3: the fore channel gets the smaller limits, the back channel is echoed as asked")
    func channelAttributesNegotiated() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table)
        #expect(session.foreChannel.maxOperations == ServerChannelLimits.standard.maxOperations)
        #expect(session.foreChannel.maxRequests == ServerChannelLimits.standard.maxRequests)
        #expect(session.foreChannel.maxResponseSizeCached == 7584)
        #expect(session.foreChannel.headerPadSize == 0)
        #expect(session.backChannel == Self.back)
        #expect(session.slots.count == Int(ServerChannelLimits.standard.maxRequests))
    }

    @Test("RFC 8881 2.10.6.1: a retransmission is answered from the reply cache without running again")
    func replayServedFromCache() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table)
        let first = try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 1, highestSlotID: 0,
                                       requestDigest: 42, connection: 1, now: Self.t0)
        #expect(first.verdict == .execute)
        table.complete(sessionID: session.id, slotID: 0, reply: Self.reply("the whole COMPOUND reply"), cache: true)
        // The same request on a new connection (the relay reconnected): the cached reply, as it was.
        let again = try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 1, highestSlotID: 0,
                                       requestDigest: 42, connection: 2, now: Self.t0)
        #expect(again.verdict == .replay(Self.reply("the whole COMPOUND reply")))
        // The next request retires the cache.
        #expect(try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 2, highestSlotID: 0,
                                   requestDigest: 43, connection: 2, now: Self.t0).verdict == .execute)
    }

    @Test("RFC 8881 2.10.6.1: a sequence ID neither the slot's nor the next is SEQ_MISORDERED")
    func misorderedSequence() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table)
        #expect(try table.sequence(sessionID: session.id, slotID: 3, sequenceID: 2, highestSlotID: 3,
                                   requestDigest: 1, connection: 1, now: Self.t0).verdict == .error(.seqMisordered))
        #expect(try table.sequence(sessionID: session.id, slotID: 3, sequenceID: 1, highestSlotID: 3,
                                   requestDigest: 1, connection: 1, now: Self.t0).verdict == .execute)
        table.complete(sessionID: session.id, slotID: 3, reply: nil, cache: false)
        #expect(try table.sequence(sessionID: session.id, slotID: 3, sequenceID: 0, highestSlotID: 3,
                                   requestDigest: 1, connection: 1, now: Self.t0).verdict == .error(.seqMisordered))
        #expect(try table.sequence(sessionID: session.id, slotID: 3, sequenceID: 5, highestSlotID: 3,
                                   requestDigest: 1, connection: 1, now: Self.t0).verdict == .error(.seqMisordered))
    }

    @Test("RFC 8881 2.10.6.1.3.1: a reused sequence ID with other arguments is SEQ_FALSE_RETRY")
    func falseRetry() throws {
        var slots = SlotTable(count: 4)
        #expect(slots.begin(slotID: 1, sequenceID: 1, requestDigest: 100) == .execute)
        slots.complete(slotID: 1, reply: Self.reply("reply"), cache: true)
        #expect(slots.begin(slotID: 1, sequenceID: 1, requestDigest: 101) == .error(.seqFalseRetry))
        #expect(slots.begin(slotID: 1, sequenceID: 1, requestDigest: 100) == .replay(Self.reply("reply")))
    }

    @Test("RFC 8881 18.46.3: a retry of a reply not cached (sa_cachethis false) is RETRY_UNCACHED_REP")
    func retryOfUncachedReply() {
        var slots = SlotTable(count: 1)
        #expect(slots.begin(slotID: 0, sequenceID: 1, requestDigest: 5) == .execute)
        slots.complete(slotID: 0, reply: Self.reply("reply"), cache: false)
        #expect(slots.begin(slotID: 0, sequenceID: 1, requestDigest: 5) == .error(.retryUncachedRep))
    }

    @Test("RFC 8881 2.10.6.2: a retry while the original still runs is DELAY")
    func retryWhileInProgress() {
        var slots = SlotTable(count: 1)
        #expect(slots.begin(slotID: 0, sequenceID: 1, requestDigest: 5) == .execute)
        #expect(slots.begin(slotID: 0, sequenceID: 1, requestDigest: 5) == .error(.delay))
        #expect(slots.hasRequestsInProgress)
    }

    @Test("RFC 8881 18.46.3: a slot past the table is BADSLOT; an unknown session BADSESSION")
    func badSlotAndBadSession() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table)
        let top = UInt32(session.slots.count)
        #expect(try table.sequence(sessionID: session.id, slotID: top, sequenceID: 1, highestSlotID: 0,
                                   requestDigest: 1, connection: 1, now: Self.t0).verdict == .error(.badslot))
        #expect(throws: NFS4Status.badHighSlot) {
            try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 1, highestSlotID: top,
                               requestDigest: 1, connection: 1, now: Self.t0)
        }
        #expect(throws: NFS4Status.badsession) {
            try table.sequence(sessionID: SessionID(high: 1, low: 2), slotID: 0, sequenceID: 1, highestSlotID: 0,
                               requestDigest: 1, connection: 1, now: Self.t0)
        }
        try table.destroySession(session.id)
        #expect(throws: NFS4Status.badsession) {
            try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 1, highestSlotID: 0,
                               requestDigest: 1, connection: 1, now: Self.t0)
        }
    }

    @Test("RFC 8881 2.10.3.1, 18.46.3: the callback path is down until a connection is bound for it again")
    func callbackPathDownAfterReconnect() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table, connection: 1)
        var s = try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 1, highestSlotID: 0,
                                   requestDigest: 1, connection: 1, now: Self.t0)
        #expect(!s.statusFlags.contains(.callbackPathDown))
        table.complete(sessionID: session.id, slotID: 0, reply: nil, cache: false)
        #expect(table.connectionClosed(1) == [session.id])
        // The client's next SEQUENCE comes on a new connection: bound for the fore channel only.
        s = try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 2, highestSlotID: 0,
                               requestDigest: 2, connection: 2, now: Self.t0)
        #expect(s.verdict == .execute)
        #expect(s.statusFlags.contains(.callbackPathDown))
        table.complete(sessionID: session.id, slotID: 0, reply: nil, cache: false)
        try table.bind(connection: 2, to: session.id, fore: true, back: true)
        s = try table.sequence(sessionID: session.id, slotID: 0, sequenceID: 3, highestSlotID: 0,
                               requestDigest: 3, connection: 2, now: Self.t0)
        #expect(!s.statusFlags.contains(.callbackPathDown))
        #expect(table.sessions[session.id]?.backChannelConnection == 2)
    }

    @Test("RFC 8881 18.36.4: a retransmitted CREATE_SESSION gets the same session; a skipped sequence is misordered")
    func createSessionReplayAndMisorder() throws {
        var table = ClientTable(epoch: 9)
        let exchange = try table.exchangeID(owner: Array("o".utf8), verifier: Verifier4(1), host: Self.guest3,
                                            principal: 0, update: false, now: Self.t0)
        #expect(!exchange.confirmed && exchange.sequenceID == 1)
        let created = try table.createSession(clientID: exchange.clientID, sequence: 1, fore: Self.asked,
                                              back: Self.back, callbackProgram: 1, backChannelOnThisConnection: false,
                                              connection: 1, principal: 0, now: Self.t0)
        let replayed = try table.createSession(clientID: exchange.clientID, sequence: 1, fore: Self.asked,
                                               back: Self.back, callbackProgram: 1, backChannelOnThisConnection: false,
                                               connection: 1, principal: 0, now: Self.t0)
        #expect(replayed.isReplay && replayed.session.id == created.session.id)
        #expect(table.sessions.count == 1)
        #expect(throws: NFS4Status.seqMisordered) {
            try table.createSession(clientID: exchange.clientID, sequence: 5, fore: Self.asked, back: Self.back,
                                    callbackProgram: 1, backChannelOnThisConnection: false, connection: 1,
                                    principal: 0, now: Self.t0)
        }
        #expect(throws: NFS4Status.staleClientid) {
            try table.createSession(clientID: 0xdead, sequence: 1, fore: Self.asked, back: Self.back,
                                    callbackProgram: 1, backChannelOnThisConnection: false, connection: 1,
                                    principal: 0, now: Self.t0)
        }
    }

    @Test("RFC 8881 18.35.5: the same client again gets its confirmed record; a restarted client a new one that replaces it")
    func exchangeIDCases() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table)
        let again = try table.exchangeID(owner: Array("Linux NFSv4.2 guest".utf8), verifier: Verifier4(7),
                                         host: Self.guest3, principal: 0, update: false, now: Self.t0)
        #expect(again.confirmed && again.clientID == session.clientID)
        // Rebooted: a new verifier. A new record, confirmed by its CREATE_SESSION, which replaces the old.
        let rebooted = try table.exchangeID(owner: Array("Linux NFSv4.2 guest".utf8), verifier: Verifier4(8),
                                            host: Self.guest3, principal: 0, update: false, now: Self.t0)
        #expect(!rebooted.confirmed && rebooted.clientID != session.clientID)
        let created = try table.createSession(clientID: rebooted.clientID, sequence: rebooted.sequenceID,
                                              fore: Self.asked, back: Self.back, callbackProgram: 1,
                                              backChannelOnThisConnection: true, connection: 2, principal: 0,
                                              now: Self.t0)
        #expect(created.replacedClients == [session.clientID])
        #expect(!table.knows(session.clientID))
        #expect(table.sessions[session.id] == nil)
        // An update of a record that does not exist.
        #expect(throws: NFS4Status.noent) {
            try table.exchangeID(owner: Array("nobody".utf8), verifier: Verifier4(1), host: Self.guest3,
                                 principal: 0, update: true, now: Self.t0)
        }
    }

    @Test("RFC 8881 2.4: two clients with one owner string on different peers keep independent state")
    func ownerCollisionAcrossPeers() throws {
        var table = ClientTable(epoch: 9)
        var opens = OpenTable(epoch: 9)
        // Cloned VMs: the same owner string and the same verifier, different CIDs.
        let a = try Self.mounted(&table, owner: "clone", host: Self.guest3, connection: 1)
        let b = try Self.mounted(&table, owner: "clone", host: Self.guest4, connection: 2)
        #expect(a.clientID != b.clientID)
        #expect(table.knows(a.clientID) && table.knows(b.clientID))
        #expect(table.sessions[a.id] != nil && table.sessions[b.id] != nil)
        let file = FileKey(fsid: 1, fileid: 10)
        let openA = try opens.open(owner: OpenOwner(clientID: a.clientID, owner: [1]), file: file, access: .read, deny: [])
        let openB = try opens.open(owner: OpenOwner(clientID: b.clientID, owner: [1]), file: file, access: .read, deny: [])
        #expect(openA.stateID != openB.stateID)
        // Each client's stateid is its own: the other's is BAD_STATEID to it.
        #expect(throws: NFS4Status.badStateid) { try opens.validate(openA.stateID, clientID: b.clientID) }
        // A's guest reboots: only A's record is replaced.
        let rebooted = try table.exchangeID(owner: Array("clone".utf8), verifier: Verifier4(99), host: Self.guest3,
                                            principal: 0, update: false, now: Self.t0)
        let replaced = try table.createSession(clientID: rebooted.clientID, sequence: rebooted.sequenceID,
                                               fore: Self.asked, back: Self.back, callbackProgram: 1,
                                               backChannelOnThisConnection: true, connection: 3, principal: 0,
                                               now: Self.t0).replacedClients
        #expect(replaced == [a.clientID])
        for id in replaced { opens.releaseClient(id) }
        #expect(table.knows(b.clientID))
        #expect(try opens.validate(openB.stateID, clientID: b.clientID) == openB)
    }

    @Test("RFC 8881 8.3: a client that stops renewing loses its record and sessions after the lease")
    func leaseExpiry() throws {
        var table = ClientTable(leaseTime: .seconds(90), epoch: 9)
        let quiet = try Self.mounted(&table, owner: "quiet", host: Self.guest3)
        let busy = try Self.mounted(&table, owner: "busy", host: Self.guest4, connection: 2)
        _ = try table.sequence(sessionID: busy.id, slotID: 0, sequenceID: 1, highestSlotID: 0, requestDigest: 1,
                               connection: 2, now: Self.t0 + .seconds(80))
        #expect(table.expireLeases(now: Self.t0 + .seconds(89)) == [])
        #expect(table.expireLeases(now: Self.t0 + .seconds(91)) == [quiet.clientID])
        #expect(!table.knows(quiet.clientID) && table.knows(busy.clientID))
        #expect(table.sessions[quiet.id] == nil)
    }

    @Test("RFC 8881 18.50.4: DESTROY_CLIENTID is refused while the client has sessions")
    func destroyClientWithSessions() throws {
        var table = ClientTable(epoch: 9)
        let session = try Self.mounted(&table)
        #expect(throws: NFS4Status.clientidBusy) { try table.destroyClient(session.clientID) }
        try table.destroySession(session.id)
        try table.destroyClient(session.clientID)
        #expect(throws: NFS4Status.staleClientid) { try table.destroyClient(session.clientID) }
    }

    @Test("RFC 8881 2.10.6.1.3: the request digest tells a changed request from a retransmission, in any byte")
    func requestDigestSeesEveryByte() {
        var bytes: [UInt8] = (0..<4099).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let original = requestDigest(ByteBuffer(bytes: bytes).readableBytesView)
        #expect(requestDigest(ByteBuffer(bytes: bytes).readableBytesView) == original)
        // One byte in a whole word, in the tail, and a byte more or less.
        for index in [0, 7, 8, 2048, 4095, 4096, 4098] {
            var changed = bytes
            changed[index] ^= 0x40
            #expect(requestDigest(ByteBuffer(bytes: changed).readableBytesView) != original)
        }
        #expect(requestDigest(ByteBuffer(bytes: bytes.dropLast()).readableBytesView) != original)
        bytes.append(0)
        #expect(requestDigest(ByteBuffer(bytes: bytes).readableBytesView) != original)
        // A slice is digested as its own bytes.
        var buffer = ByteBuffer(bytes: [9, 9, 9] + bytes.dropLast())
        buffer.moveReaderIndex(forwardBy: 3)
        #expect(requestDigest(buffer.readableBytesView) == original)
    }
}
