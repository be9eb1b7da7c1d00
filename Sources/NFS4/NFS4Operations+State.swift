import HostFS
import NFS4State
import NFS4Wire
import NFSCore
import NIOCore

// Opens, I/O under stateids, and byte-range locks (RFC 8881 §18.16-18.18,
// §18.2, §18.22, §18.32, §18.10-18.12, §18.48, §18.38).
extension NFS4CompoundRunner {
    static let shareAccessMask = NFS4Constants.shareAccessBoth
    /// OPEN4_SHARE_ACCESS_WANT_* and their flags (§18.16.3): delegation wishes in share_access.
    static let shareWantMask: UInt32 = ~0xFF

    mutating func open(_ args: NFS4OpenArgs) throws -> NFS4Result {
        let clientID = try requireSession()
        let accessBits = args.shareAccess & ~Self.shareWantMask
        guard accessBits & ~Self.shareAccessMask == 0, accessBits != 0,
              args.shareDeny & ~Self.shareAccessMask == 0 else { throw NFS4Status.inval }
        let access = ShareBits(rawValue: accessBits)
        let deny = ShareBits(rawValue: args.shareDeny)
        var creating = false
        if case .create = args.openHow { creating = true }
        let writes = creating || access.contains(.write)
        if case .previous = args.claim { try state.checkReclaim(clientID) } else { try state.checkNotReclaim() }

        let file: ObjectHandle
        var call: CallAuthorization
        var changeInfo: ChangeInfo4
        var attrSet = Bitmap4(words: [])
        var created = false
        var claim = args.claim
        switch claim {
        case .delegateCur(let delegation, let name):
            // Opens under a delegation the client holds: by name, as CLAIM_NULL (§18.16.3).
            try checkDelegationClaim(try resolve(delegation))
            claim = .null(name)
        case .delegCurFH(let delegation):
            try checkDelegationClaim(try resolve(delegation))
            claim = .fh
        default: break
        }
        switch claim {
        case .null(let name):
            let (dir, dirCall) = try object(modifies: writes)
            guard !name.bytes.isEmpty else { throw NFS4Status.inval }
            call = dirCall
            switch args.openHow {
            case .noCreate:
                let node = try fs.lookup(dir, name.bytes, as: call.credentials)
                file = node.handle
                let after = node.directory.after.map(NFS4AttributeMapping.change) ?? 0
                changeInfo = ChangeInfo4(atomic: false, before: after, after: after)
            case .create(let how):
                let hostHow: CreateHow
                var exclusiveAttributes: SetAttributes?
                switch how {
                case .unchecked(let fattr):
                    let (set, mask) = try NFS4AttributeMapping.setAttributes(fattr, from: call.access.options)
                    hostHow = .unchecked(set)
                    attrSet = mask
                case .guarded(let fattr):
                    let (set, mask) = try NFS4AttributeMapping.setAttributes(fattr, from: call.access.options)
                    hostHow = .guarded(set)
                    attrSet = mask
                case .exclusive4(let verifier):
                    hostHow = .exclusive(verifier: verifier.value)
                case .exclusive4_1(let verifier, let fattr):
                    guard fattr.mask.intersection(NFS4AttributeMapping.exclusiveCreateAttributes.union(
                        [NFS4Attribute.timeAccessSet.rawValue, NFS4Attribute.timeModifySet.rawValue])) == fattr.mask,
                        fattr.mask.intersection([NFS4Attribute.timeAccessSet.rawValue,
                                                 NFS4Attribute.timeModifySet.rawValue]).isEmpty else {
                        throw NFS4Status.inval
                    }
                    let (set, mask) = try NFS4AttributeMapping.setAttributes(fattr, from: call.access.options)
                    hostHow = .exclusive(verifier: verifier.value)
                    exclusiveAttributes = set
                    attrSet = mask
                }
                let node = try fs.create(dir, name.bytes, how: hostHow, as: call.credentials)
                if let set = exclusiveAttributes, set != .none {
                    _ = try fs.setattr(node.handle, set, as: call.credentials)
                }
                file = node.handle
                changeInfo = NFS4AttributeMapping.changeInfo(node.directory)
                // Created here when the directory changed (its ctime, which a lookup leaves alone).
                created = node.directory.before.map(NFS4AttributeMapping.change) != node.directory.after.map(NFS4AttributeMapping.change)
                    || node.directory.before == nil
            }
        case .fh, .previous:
            // CLAIM_PREVIOUS (a reclaim in grace, checked above): the current filehandle is the file.
            guard case .noCreate = args.openHow else { throw NFS4Status.inval }
            (file, call) = try object(modifies: writes)
            changeInfo = ChangeInfo4(atomic: false, before: 0, after: 0)
        case .delegateCur, .delegCurFH:
            throw NFS4Status.serverfault  // turned into CLAIM_NULL / CLAIM_FH above
        case .delegatePrev, .delegPrevFH:
            // For clients whose delegations outlive their own restart (RFC 8881
            // §10.2.1); not offered: NOTSUPP, as §18.16.3 says.
            throw NFS4Status.notsupp
        }

        let attributes = try fs.getattr(file, as: call.credentials)
        switch attributes.type {
        case .regular: break
        case .directory: throw NFS4Status.isdir
        case .symlink: throw NFS4Status.symlink
        default: throw NFS4Status.wrongType
        }
        if !created {
            // The owner may write a file it just created whatever its mode (as knfsd allows).
            var wanted: AccessMask = []
            if access.contains(.read) { wanted.insert(.read) }
            if access.contains(.write) { wanted.insert(.modify) }
            let (granted, _) = try fs.access(file, requested: wanted, as: call.credentials)
            if !granted.isSuperset(of: wanted) {
                // Reading for execution (§18.16.3): READ or EXECUTE permission.
                let (exec, _) = try fs.access(file, requested: .execute, as: call.credentials)
                if access != .read || !exec.contains(.execute) { throw NFS4Status.access }
            }
        }
        let key = Self.fileKey(attributes)
        if writes { try state.delegations.willChange(key) }
        let owner = OpenOwner(clientID: clientID, owner: args.owner.owner.bytes)
        let open = try state.tables.withLockedValue { t in try t.opens.open(owner: owner, file: key, access: access, deny: deny) }
        state.recordOpen(clientID)
        current = .object(file)
        currentStateID = open.stateID
        let delegation = offerDelegation(args, access: access, deny: deny, creating: creating, file: file, key: key,
                                         clientID: clientID)
        return .open(.ok(NFS4OpenResOK(stateID: open.stateID, changeInfo: changeInfo,
                                       resultFlags: NFS4Constants.openResultLocktypePosix, attrSet: attrSet, delegation: delegation)))
    }

    mutating func openDowngrade(_ args: NFS4OpenDowngradeArgs) throws -> NFS4Result {
        let clientID = try requireSession()
        _ = try currentNode()
        let stateID = try resolve(args.openStateID)
        let access = ShareBits(rawValue: args.shareAccess & ~Self.shareWantMask)
        let deny = ShareBits(rawValue: args.shareDeny)
        let open = try state.tables.withLockedValue { t in
            try t.opens.downgrade(stateID, clientID: clientID, access: access, deny: deny)
        }
        currentStateID = open.stateID
        return .openDowngrade(.ok(open.stateID))
    }

    mutating func close(_ args: NFS4CloseArgs) throws -> NFS4Result {
        let clientID = try requireSession()
        _ = try currentNode()
        let stateID = try resolve(args.openStateID)
        try state.tables.withLockedValue { t in try t.opens.close(stateID, clientID: clientID) }
        // §18.2.4: the stateid returned is meaningless; this one is invalid.
        let closed = StateID(seqid: .max, otherHigh: 0, otherLow: 0)
        currentStateID = nil
        return .close(.ok(closed))
    }

    /// A READ's or WRITE's stateid (§8.2.3, §9.1.4): the special ones need no
    /// open, but a WRITE under them meets other owners' deny-write shares; an
    /// open or lock stateid must be this client's, of this file, and for
    /// WRITE from an open with write access.
    func checkStateID(_ stateID: StateID, file: FileKey, write: Bool) throws {
        let clientID = try requireSession()
        if DelegationTable.isDelegationStateID(stateID) && stateID.special == nil {
            return try checkDelegationStateID(stateID, file: file, write: write)
        }
        try state.tables.withLockedValue { t in
            switch stateID.special {
            case .anonymous?, .readBypass?:
                if write && t.opens.deniesWrite(file) { throw NFS4Status.locked }
                // The READ bypass stateid bypasses locks; the anonymous one meets deny-read shares (§8.2.3).
                if !write && stateID.special == .anonymous && t.opens.deniesRead(file) { throw NFS4Status.locked }
                return
            case .current?, .invalid?, .reserved?:
                throw NFS4Status.badStateid
            case nil:
                break
            }
            let open: OpenState
            if LockStateTable.isLockStateID(stateID) {
                let lock = try t.locks.validate(StateID(seqid: 0, otherHigh: stateID.otherHigh, otherLow: stateID.otherLow),
                                                clientID: clientID)
                guard let o = try? t.opens.validate(StateID(seqid: 0, otherHigh: stateID.otherHigh, otherLow: lock.openOther),
                                                    clientID: clientID) else { throw NFS4Status.badStateid }
                open = o
            } else {
                open = try t.opens.validate(stateID, clientID: clientID)
            }
            guard open.file == file else { throw NFS4Status.badStateid }
            if write && !open.access.contains(.write) { throw NFS4Status.openmode }
        }
    }

    mutating func read(_ args: NFS4ReadArgs) throws -> NFS4Result {
        try read(args, withoutBlocking: false)!
    }

    /// READ; `withoutBlocking`: through HostFS's `readWithoutBlocking`, nil (nothing
    /// read, nothing changed) when that would block.
    func read(_ args: NFS4ReadArgs, withoutBlocking: Bool) throws -> NFS4Result? {
        let (h, call) = try object()
        let stateID = try resolve(args.stateID)
        let count = min(args.count, UInt32(NFS4AttributeMapping.maxIOSize))
        var data = allocator.buffer(capacity: Int(count))
        let read = withoutBlocking
            ? try fs.readWithoutBlocking(h, offset: args.offset, count: count, appendingTo: &data, as: call.credentials)
            : try fs.read(h, offset: args.offset, count: count, appendingTo: &data, as: call.credentials)
        guard let (_, eof, attributes) = read else { return nil }
        guard attributes.type == .regular else { throw attributes.type == .directory ? NFS4Status.isdir : NFS4Status.inval }
        try checkStateID(stateID, file: Self.fileKey(attributes), write: false)
        return .read(.ok(NFS4ReadResOK(eof: eof, data: data)))
    }

    mutating func write(_ args: NFS4WriteArgs) throws -> NFS4Result {
        try write(args, withoutBlocking: false)!
    }

    /// WRITE; `withoutBlocking`: through HostFS's `getattrWithoutBlocking` and
    /// `writeWithoutBlocking`, nil when either would block or a delegation is to be
    /// recalled first; nothing is written then. (An error of the write itself is
    /// thrown after it; the pool's WRITE then repeats it, same data, same offset.)
    func write(_ args: NFS4WriteArgs, withoutBlocking: Bool) throws -> NFS4Result? {
        let (h, call) = try object(modifies: true)
        let stateID = try resolve(args.stateID)
        let before: FileAttributes
        if withoutBlocking {
            guard let attributes = try fs.getattrWithoutBlocking(h) else { return nil }
            before = attributes
        } else {
            before = try fs.getattr(h, as: call.credentials)
        }
        guard before.type == .regular else { throw before.type == .directory ? NFS4Status.isdir : NFS4Status.inval }
        let key = Self.fileKey(before)
        try checkStateID(stateID, file: key, write: true)
        if withoutBlocking {
            if state.delegations.conflicts(key) { return nil }
        } else {
            try state.delegations.willChange(key)
        }
        return try Self.write(args, call) { stability in
            withoutBlocking
                ? try fs.writeWithoutBlocking(h, offset: args.offset, data: args.data, stability: stability, as: call.credentials)
                : try fs.write(h, offset: args.offset, data: args.data, stability: stability, as: call.credentials)
        }
    }

    /// WRITE's result from one of HostFS's writes (`perform`, given the stability to
    /// sync with; nil when it would block): the one place WRITE's stability becomes a
    /// reply. `async` exports answer as asked without syncing, as NFSv3 WRITE does.
    static func write(_ args: NFS4WriteArgs, _ call: CallAuthorization,
                      _ perform: (WriteStability) throws -> WriteResult?) throws -> NFS4Result? {
        let asked = WriteStability(rawValue: args.stable.rawValue) ?? .fileSync
        let stability: WriteStability = call.access.sync ? asked : .unstable
        guard let result = try perform(stability) else { return nil }
        let committed = call.access.sync ? StableHow4(rawValue: result.committed.rawValue) ?? .fileSync : args.stable
        return .write(.ok(NFS4WriteResOK(count: result.count, committed: committed, verifier: Verifier4(result.verifier))))
    }

    // MARK: Locks

    static func rangeType(_ type: NFS4LockType) -> RangeLockType {
        type == .read || type == .readBlocking ? .read : .write
    }

    static func checkRange(offset: UInt64, length: UInt64) throws {
        guard length != 0 else { throw NFS4Status.inval }
        if length != .max && offset > UInt64.max - length { throw NFS4Status.inval }
    }

    static func denied(_ conflict: RangeLockConflict) -> LockDenied4 {
        // The kernel does not say whose lock it is.
        LockDenied4(offset: conflict.offset, length: conflict.length,
                    lockType: conflict.type == .read ? .read : .write, owner: StateOwner4(clientID: 0, owner: []))
    }

    mutating func lock(_ args: NFS4LockArgs) throws -> NFS4Result {
        let clientID = try requireSession()
        let (h, call) = try object()
        try Self.checkRange(offset: args.offset, length: args.length)
        if args.reclaim { try state.checkReclaim(clientID) } else { try state.checkNotReclaim() }
        let attributes = try fs.getattr(h, as: call.credentials)
        guard attributes.type == .regular else { throw attributes.type == .directory ? NFS4Status.isdir : NFS4Status.inval }
        let file = Self.fileKey(attributes)
        let handle = h.bytes
        let lockState: LockState = try state.tables.withLockedValue { t in
            switch args.locker {
            case .newLockOwner(let o):
                let open = try t.opens.validate(o.openStateID, clientID: clientID)
                guard open.file == file else { throw NFS4Status.badStateid }
                if Self.rangeType(args.lockType) == .write && !open.access.contains(.write) { throw NFS4Status.openmode }
                return t.locks.begin(owner: LockOwner(clientID: clientID, owner: o.lockOwner.owner.bytes), file: file,
                                     openOther: open.stateID.otherLow, handle: handle)
            case .existingLockOwner(let e):
                let lock = try t.locks.validate(e.lockStateID, clientID: clientID)
                guard lock.file == file else { throw NFS4Status.badStateid }
                return lock
            }
        }
        let owner = LockOwnerKey(clientID: clientID, owner: lockState.owner.owner)
        if let conflict = try state.rangeLocks.lock(h, owner: owner, type: Self.rangeType(args.lockType),
                                                     offset: args.offset, length: args.length) {
            // A reclaimed lock someone else took while the server was down (§8.4.2.1).
            if args.reclaim { throw NFS4Status.reclaimConflict }
            return .lock(.denied(Self.denied(conflict)))
        }
        guard let stateID = state.tables.withLockedValue({ $0.locks.advance(lockState.stateID.otherLow) }) else {
            throw NFS4Status.badStateid
        }
        currentStateID = stateID
        return .lock(.ok(stateID))
    }

    mutating func lockt(_ args: NFS4LocktArgs) throws -> NFS4Result {
        let clientID = try requireSession()
        let (h, call) = try object()
        try Self.checkRange(offset: args.offset, length: args.length)
        try state.checkNotReclaim()   // locks not yet reclaimed would not show (§9.11)
        let attributes = try fs.getattr(h, as: call.credentials)
        guard attributes.type == .regular else { throw attributes.type == .directory ? NFS4Status.isdir : NFS4Status.inval }
        let owner = LockOwnerKey(clientID: clientID, owner: args.owner.owner.bytes)
        if let conflict = try state.rangeLocks.test(h, owner: owner, type: Self.rangeType(args.lockType),
                                                     offset: args.offset, length: args.length) {
            return .lockt(.denied(Self.denied(conflict)))
        }
        return .lockt(.ok(NFS4Empty()))
    }

    mutating func locku(_ args: NFS4LockuArgs) throws -> NFS4Result {
        let clientID = try requireSession()
        let (h, _) = try object()
        try Self.checkRange(offset: args.offset, length: args.length)
        let stateID = try resolve(args.lockStateID)
        let lock = try state.tables.withLockedValue { t in try t.locks.validate(stateID, clientID: clientID) }
        try state.rangeLocks.unlock(h, owner: LockOwnerKey(clientID: clientID, owner: lock.owner.owner),
                                    offset: args.offset, length: args.length)
        guard let next = state.tables.withLockedValue({ $0.locks.advance(lock.stateID.otherLow) }) else {
            throw NFS4Status.badStateid
        }
        currentStateID = next
        return .locku(.ok(next))
    }

    mutating func testStateIDs(_ ids: [StateID]) throws -> NFS4Result {
        let clientID = try requireSession()
        let delegations = state.delegations
        let codes: [NFS4Status] = state.tables.withLockedValue { t in
            ids.map { id in
                do {
                    if id.special != nil { return .badStateid }
                    if DelegationTable.isDelegationStateID(id) { return delegations.test(id, clientID: clientID) }
                    if LockStateTable.isLockStateID(id) { _ = try t.locks.validate(id, clientID: clientID) }
                    else { _ = try t.opens.validate(id, clientID: clientID) }
                    return .ok
                } catch {
                    return error as? NFS4Status ?? .serverfault
                }
            }
        }
        return .testStateid(.ok(codes))
    }

    mutating func freeStateID(_ id: StateID) throws -> NFS4Result {
        let clientID = try requireSession()
        guard id.special == nil else { throw NFS4Status.badStateid }
        if DelegationTable.isDelegationStateID(id) {
            try state.delegations.free(id, clientID: clientID)
            return .status(.freeStateid, .ok)
        }
        guard LockStateTable.isLockStateID(id) else {
            // An open stateid is ended by CLOSE (§18.38.3).
            _ = try state.tables.withLockedValue { t in try t.opens.validate(id, clientID: clientID) }
            throw NFS4Status.locksHeld
        }
        let lock = try state.tables.withLockedValue { t in try t.locks.free(id, clientID: clientID) }
        if let h = try? fs.decodeHandle(lock.handle) {
            try? state.rangeLocks.unlock(h, owner: LockOwnerKey(clientID: clientID, owner: lock.owner.owner),
                                         offset: 0, length: .max)
        }
        return .status(.freeStateid, .ok)
    }
}
