import NFS4Wire
import NIOCore

/// A session's fore-channel slot table and reply cache (RFC 8881 §2.10.6.1).
///
/// Each slot runs one request at a time. A request whose sequence ID is the
/// slot's plus one is new and runs; one whose sequence ID equals the slot's is
/// a retry and gets the cached reply, whole, without running again; anything
/// else is misordered. The server keeps the full reply when the client asked
/// (`sa_cachethis`); a retry of a reply it did not keep answers
/// NFS4ERR_RETRY_UNCACHED_REP, and a "retry" whose arguments differ from the
/// original's answers NFS4ERR_SEQ_FALSE_RETRY (§2.10.6.1.3.1).
public struct SlotTable: Sendable {
    struct Slot: Sendable {
        /// The sequence ID of the last request this slot accepted; 0 before the first.
        var sequenceID: UInt32 = 0
        /// A request accepted and not yet completed.
        var inProgress = false
        /// What identifies the last request's arguments (for false retries).
        var requestDigest: UInt64 = 0
        /// The last request's whole COMPOUND reply, when it was cached.
        var cachedReply: ByteBuffer?
    }

    private var slots: [Slot]
    /// The highest slot ID the client has used (sa_highest_slotid, §18.46.3).
    public private(set) var highestSlotUsed: UInt32 = 0

    /// `count`: ca_maxrequests as negotiated at CREATE_SESSION.
    public init(count: Int) {
        precondition(count >= 1)
        self.slots = Array(repeating: Slot(), count: count)
    }

    public var count: Int { slots.count }

    /// What to do with a SEQUENCE.
    public enum Verdict: Sendable, Equatable {
        /// A new request: run it, then `complete` the slot.
        case execute
        /// A retransmission of the slot's last request: send this reply as it is.
        case replay(ByteBuffer)
        /// Answer the SEQUENCE with this error (BADSLOT, SEQ_MISORDERED,
        /// SEQ_FALSE_RETRY, RETRY_UNCACHED_REP, DELAY).
        case error(NFS4Status)
    }

    /// Judges a SEQUENCE for `slotID` with `sequenceID`. `requestDigest`
    /// identifies the request's arguments (the COMPOUND's bytes after the
    /// XID), so a reused sequence ID with other arguments is told apart from a
    /// retransmission.
    public mutating func begin(slotID: UInt32, sequenceID: UInt32, requestDigest: UInt64) -> Verdict {
        guard Int(slotID) < slots.count else { return .error(.badslot) }
        var slot = slots[Int(slotID)]
        defer { slots[Int(slotID)] = slot }
        if sequenceID == slot.sequenceID &+ 1 {
            // §2.10.6.1: a new request retires the slot's cached reply.
            slot.sequenceID = sequenceID
            slot.inProgress = true
            slot.requestDigest = requestDigest
            slot.cachedReply = nil
            highestSlotUsed = max(highestSlotUsed, slotID)
            return .execute
        }
        if sequenceID == slot.sequenceID && slot.sequenceID != 0 {
            // The original is still running: the client retried too soon.
            if slot.inProgress { return .error(.delay) }
            if requestDigest != slot.requestDigest { return .error(.seqFalseRetry) }
            guard let reply = slot.cachedReply else { return .error(.retryUncachedRep) }
            return .replay(reply)
        }
        return .error(.seqMisordered)
    }

    /// Ends the request running on `slotID`, keeping `reply` (the whole
    /// COMPOUND4res) for retransmissions when `cache` is set.
    public mutating func complete(slotID: UInt32, reply: ByteBuffer?, cache: Bool) {
        guard Int(slotID) < slots.count else { return }
        slots[Int(slotID)].inProgress = false
        slots[Int(slotID)].cachedReply = cache ? reply : nil
    }

    /// Whether any request is running (DESTROY_SESSION waits for none, §18.37.3).
    public var hasRequestsInProgress: Bool { slots.contains { $0.inProgress } }

    /// Bytes held by cached replies.
    public var cachedBytes: Int { slots.reduce(0) { $0 + ($1.cachedReply?.readableBytes ?? 0) } }
}

/// A 64-bit digest of a request's bytes: enough to tell a retransmission from
/// a different request reusing a sequence ID. Every COMPOUND in a session asks
/// it of all its bytes, so it takes eight at a step (FNV-1a's constants, a
/// word at a time, then a shift to mix high bits down); each step is a
/// bijection of the state, so requests that differ in one word always differ.
/// Compared only within one server instance: the byte order is the host's.
public func requestDigest(_ bytes: ByteBufferView) -> UInt64 {
    bytes.withUnsafeBytes { p in
        let prime: UInt64 = 0x0000_0100_0000_01b3
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(p.count)
        var i = 0
        while i + 8 <= p.count {
            hash = (hash ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* prime
            hash ^= hash >> 32
            i += 8
        }
        while i < p.count {
            hash = (hash ^ UInt64(p[i])) &* prime
            i += 1
        }
        return hash
    }
}
