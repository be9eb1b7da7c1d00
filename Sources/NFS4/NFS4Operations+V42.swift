import HostFS
import NFS4State
import NFS4Wire
import NFSCore

// NFSv4.2's data operations (RFC 7862 §15): SEEK, ALLOCATE, DEALLOCATE, COPY
// (within this server, done before the reply), CLONE. The decoder admits them
// only in minor version 2 COMPOUNDs.
extension NFS4CompoundRunner {
    /// The current filehandle as a regular file with its stateid checked for reading or writing.
    mutating func regularFile(_ stateID: StateID, write: Bool) throws -> (ObjectHandle, CallAuthorization) {
        let (h, call) = try object(modifies: write)
        let attributes = try fs.getattr(h, as: call.credentials)
        guard attributes.type == .regular else { throw attributes.type == .directory ? NFS4Status.isdir : NFS4Status.inval }
        try checkStateID(try resolve(stateID), file: Self.fileKey(attributes), write: write)
        if write { try state.delegations.willChange(Self.fileKey(attributes)) }
        return (h, call)
    }

    mutating func seek(_ args: NFS4SeekArgs) throws -> NFS4Result {
        let (h, call) = try regularFile(args.stateID, write: false)
        let (eof, offset) = try fs.seek(h, offset: args.offset, hole: args.what == .hole, as: call.credentials)
        return .seek(.ok(NFS4SeekResOK(eof: eof, offset: offset)))
    }

    mutating func allocate(_ args: NFS4AllocateArgs, deallocate: Bool) throws -> NFS4Result {
        let (h, call) = try regularFile(args.stateID, write: true)
        try fs.allocate(h, offset: args.offset, length: args.length, punchHole: deallocate, as: call.credentials)
        return .status(deallocate ? .deallocate : .allocate, .ok)
    }

    /// The saved filehandle (COPY's and CLONE's source) as a regular file of the
    /// same export as `destination`, with its stateid checked for reading.
    mutating func savedSource(_ stateID: StateID, sameExportAs destination: ObjectHandle) throws -> ObjectHandle {
        let source = try savedObject(sameExportAs: destination)
        let call = try authorize(source, modifies: false)
        let attributes = try fs.getattr(source, as: call.credentials)
        guard attributes.type == .regular else { throw attributes.type == .directory ? NFS4Status.isdir : NFS4Status.inval }
        try checkStateID(try resolve(stateID), file: Self.fileKey(attributes), write: false)
        return source
    }

    mutating func copy(_ args: NFS4CopyArgs) throws -> NFS4Result {
        // Only copies within this server (no source servers): inter-server copy is not offered.
        guard args.sourceServers.isEmpty else { throw NFS4Status.offloadDenied }
        let (destination, call) = try regularFile(args.destinationStateID, write: true)
        let source = try savedSource(args.sourceStateID, sameExportAs: destination)
        let count = try fs.copy(from: source, offset: args.sourceOffset, to: destination, offset: args.destinationOffset,
                                count: args.count, as: call.credentials)
        // Done before the reply and synced: no callback, no COMMIT needed.
        let (verifier, _) = try fs.commit(destination, offset: 0, count: 0, as: call.credentials)
        return .copy(.ok(NFS4CopyResOK(
            response: WriteResponse4(callbackID: nil, count: count, committed: .fileSync, verifier: Verifier4(verifier)),
            requirements: CopyRequirements4(consecutive: true, synchronous: true))))
    }

    mutating func clone(_ args: NFS4CloneArgs) throws -> NFS4Result {
        let (destination, call) = try regularFile(args.destinationStateID, write: true)
        let source = try savedSource(args.sourceStateID, sameExportAs: destination)
        try fs.clone(from: source, offset: args.sourceOffset, to: destination, offset: args.destinationOffset,
                     count: args.count, as: call.credentials)
        return .status(.clone, .ok)
    }
}
