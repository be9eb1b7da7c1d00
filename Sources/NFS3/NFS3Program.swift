import Exports
import NFSCore
import HostFS
import NIOCore
import ONCRPC
import Transport
import XDR

/// NFS (program 100003) version 3 (RFC 1813) over HostFS.
///
/// Every NFSv3 call: decode the arguments (failure: GARBAGE_ARGS), then on
/// the thread pool, as one closure: check the handle (BADHANDLE), find its
/// export, look up the peer's access in the *current* auth table (none:
/// NFS3ERR_ACCES), refuse changes on read-only exports (NFS3ERR_ROFS),
/// squash the credential, run the procedure, encode the result.
public struct NFS3Program: RPCProgram {
    public let program: UInt32 = NFSProgramNumber.nfs
    public let versions: ClosedRange<UInt32> = 3...3
    public let server: NFSServerContext

    public init(server: NFSServerContext) {
        self.server = server
    }

    public var name: String { "NFS" }

    public func procedureName(_ procedure: UInt32, version: UInt32) -> String? {
        if version == 4 { return procedure == 0 ? "NULL" : procedure == 1 ? "COMPOUND" : nil }
        guard version == 3 else { return nil }
        return NFS3Procedure(rawValue: procedure).map { "\($0)".uppercased() }
    }

    public func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        self.answer(call, context: context).future(on: context.eventLoop)
    }

    /// Calls answered on the event loop come back `.now`, without a future.
    public func answer(_ call: RPCCall, context: RPCCallContext) -> RPCAnswer {
        guard let procedure = NFS3Procedure(rawValue: call.procedure) else {
            return .now(.procedureUnavailable)
        }
        let shares = server.shareReservations
        switch procedure {
        case .null:
            return .now(.success(results: ByteBuffer()))
        case .getattr:
            if let reply = serveWithoutBlocking(call, context, NFS3GetAttrArgs.self, handle: \.object, { args, h, env in
                try env.fs.getattrWithoutBlocking(h).map { NFS3GetAttrResult.ok(env.attributes($0)) }
            }) { return reply }
            return serve(call, context, NFS3GetAttrArgs.self, handle: \.object) { args, h, env -> NFS3GetAttrResult in
                .ok(env.attributes(try env.fs.getattr(h, as: env.cred)))
            }
        case .setattr:
            return serve(call, context, NFS3SetAttrArgs.self, handle: \.object) { args, h, env -> NFS3SetAttrResult in
                if args.newAttributes.size != nil { try Self.checkShareReservations(shares, h, env, write: true) }
                try server.fileChanges.willChange(h, by: .nfs3, as: env.cred, fs: env.fs)
                let wcc = try env.fs.setattr(h, env.setAttributes(args.newAttributes),
                                             guardCtime: args.guardCtime.map(FSTime.init), as: env.cred)
                return .ok(env.wcc(wcc))
            }
        case .lookup:
            if let reply = serveWithoutBlocking(call, context, NFS3LookupArgs.self, handle: \.directory, { args, h, env -> NFS3LookupResult? in
                switch try env.fs.lookupWithoutBlocking(h, args.name.bytes, as: env.cred) {
                case nil:
                    return nil
                case .found(let node)?:
                    return .ok(NFS3LookupOK(object: NFS3FileHandle(node.handle.bytes),
                                            objectAttributes: env.postOp(node.attributes),
                                            directoryAttributes: env.postOp(node.directory.after)))
                case .absent(let directory)?:
                    return .fail(.noent, env.postOp(directory))
                }
            }) { return reply }
            return serve(call, context, NFS3LookupArgs.self, handle: \.directory) { args, h, env -> NFS3LookupResult in
                let node: NodeResult
                do {
                    node = try env.fs.lookup(h, args.name.bytes, as: env.cred)
                } catch {
                    // The directory's attributes with a failed LOOKUP let the client
                    // keep its cache of the directory (negative lookups are common).
                    let status = NFS3ErrorMapping.status(for: error)
                    guard status == .noent || status == .acces || status == .nametoolong else { throw error }
                    return .fail(status, env.postOp(try? env.fs.getattr(h, as: env.cred)))
                }
                return .ok(NFS3LookupOK(object: NFS3FileHandle(node.handle.bytes),
                                        objectAttributes: env.postOp(node.attributes),
                                        directoryAttributes: env.postOp(node.directory.after)))
            }
        case .access:
            return serve(call, context, NFS3AccessArgs.self, handle: \.object) { args, h, env -> NFS3AccessResult in
                let (granted, attributes) = try env.fs.access(h, requested: AccessMask(rawValue: args.access & AccessMask.all.rawValue),
                                                              as: env.cred)
                var bits = granted
                if env.access.readOnly { bits.subtract([.modify, .extend, .delete]) }
                return .ok(NFS3AccessOK(objectAttributes: env.postOp(attributes), access: bits.rawValue))
            }
        case .readlink:
            return serve(call, context, NFS3ReadlinkArgs.self, handle: \.object) { args, h, env -> NFS3ReadlinkResult in
                let (target, attributes) = try env.fs.readlink(h, as: env.cred)
                return .ok(NFS3ReadlinkOK(symlinkAttributes: env.postOp(attributes), data: NFS3Name(target)))
            }
        case .read:
            return read(call, context)
        case .write:
            // Small writes to memory-backed files (tmpfs) on the event loop: no thread hops.
            // Without a tmpfs export, WRITE goes straight to the pool.
            if server.hostFS.servesMemoryBackedExport, !server.fileChanges.mayConflict, let reply = serveWithoutBlocking(call, context, NFS3WriteArgs.self, handle: \.file, modifies: true, { args, h, env -> NFS3WriteResult? in
                guard args.count <= EventLoopLimits.maximumWrite, !shares.anyDenial else { return nil }
                return try Self.write(args, env) { data, stability in
                    try env.fs.writeWithoutBlocking(h, offset: args.offset, data: data, stability: stability, as: env.cred)
                }
            }) { return reply }
            return serve(call, context, NFS3WriteArgs.self, handle: \.file) { args, h, env -> NFS3WriteResult in
                try Self.checkShareReservations(shares, h, env, write: true)
                try server.fileChanges.willChange(h, by: .nfs3, as: env.cred, fs: env.fs)
                return try Self.write(args, env) { data, stability in
                    try env.fs.write(h, offset: args.offset, data: data, stability: stability, as: env.cred)
                }!
            }
        case .create:
            return serve(call, context, NFS3CreateArgs.self, handle: \.whereTo.directory) { args, h, env -> NFS3CreateResult in
                let how: CreateHow
                switch args.how {
                case .unchecked(let a): how = .unchecked(try env.setAttributes(a))
                case .guarded(let a): how = .guarded(try env.setAttributes(a))
                case .exclusive(let v): how = .exclusive(verifier: v.value)
                }
                return .ok(env.newObject(try env.fs.create(h, args.whereTo.name.bytes, how: how, as: env.cred)))
            }
        case .mkdir:
            return serve(call, context, NFS3MkdirArgs.self, handle: \.whereTo.directory) { args, h, env -> NFS3MkdirResult in
                .ok(env.newObject(try env.fs.mkdir(h, args.whereTo.name.bytes, attributes: env.setAttributes(args.attributes), as: env.cred)))
            }
        case .symlink:
            return serve(call, context, NFS3SymlinkArgs.self, handle: \.whereTo.directory) { args, h, env -> NFS3SymlinkResult in
                .ok(env.newObject(try env.fs.symlink(h, args.whereTo.name.bytes, target: args.target.bytes,
                                                     attributes: env.setAttributes(args.attributes), as: env.cred)))
            }
        case .mknod:
            return serve(call, context, NFS3MknodArgs.self, handle: \.whereTo.directory) { args, h, env -> NFS3MknodResult in
                let kind: SpecialNode
                let attributes: NFS3SetAttributes
                switch args.what {
                case .fifo(let a): (kind, attributes) = (.fifo, a)
                case .socket(let a): (kind, attributes) = (.socket, a)
                case .characterDevice(let a, let spec): (kind, attributes) = (.characterDevice(major: spec.major, minor: spec.minor), a)
                case .blockDevice(let a, let spec): (kind, attributes) = (.blockDevice(major: spec.major, minor: spec.minor), a)
                case .other: throw NFS3Status.badtype
                }
                // Device nodes only for root on an export that lets root in.
                let allowDevices = env.access.squash == .noRootSquash && env.cred.uid == 0
                return .ok(env.newObject(try env.fs.mknod(h, args.whereTo.name.bytes, kind: kind, attributes: env.setAttributes(attributes),
                                                          allowDevices: allowDevices, as: env.cred)))
            }
        case .remove:
            return serve(call, context, NFS3RemoveArgs.self, handle: \.directory) { args, h, env -> NFS3RemoveResult in
                try server.fileChanges.willChange(h, args.name.bytes, by: .nfs3, as: env.cred, fs: env.fs)
                return .ok(env.wcc(try env.fs.remove(h, args.name.bytes, as: env.cred)))
            }
        case .rmdir:
            return serve(call, context, NFS3RmdirArgs.self, handle: \.directory) { args, h, env -> NFS3RmdirResult in
                .ok(env.wcc(try env.fs.rmdir(h, args.name.bytes, as: env.cred)))
            }
        case .rename:
            return serve(call, context, NFS3RenameArgs.self, handle: \.from.directory) { args, h, env -> NFS3RenameResult in
                let to = try env.sameExportHandle(args.to.directory, as: h)
                try server.fileChanges.willChange(h, args.from.name.bytes, by: .nfs3, as: env.cred, fs: env.fs)
                try server.fileChanges.willChange(to, args.to.name.bytes, by: .nfs3, as: env.cred, fs: env.fs)
                let (from, toWcc) = try env.fs.rename(from: h, args.from.name.bytes, to: to, args.to.name.bytes, as: env.cred)
                return .ok(NFS3RenameWcc(fromDirectoryWcc: env.wcc(from), toDirectoryWcc: env.wcc(toWcc)))
            }
        case .link:
            return serve(call, context, NFS3LinkArgs.self, handle: \.file) { args, h, env -> NFS3LinkResult in
                let dir = try env.sameExportHandle(args.link.directory, as: h)
                let (attributes, wcc) = try env.fs.link(h, to: dir, args.link.name.bytes, as: env.cred)
                return .ok(NFS3LinkWcc(fileAttributes: env.postOp(attributes), linkDirectoryWcc: env.wcc(wcc)))
            }
        case .readdir:
            return serve(call, context, NFS3ReaddirArgs.self, handle: \.directory,
                         replyCapacity: { Int(min($0.count, NFS3Limits.maxReaddirSize)) + 64 }) { args, h, env -> NFS3ReaddirResult in
                let count = Int(min(args.count, NFS3Limits.maxReaddirSize))
                guard count > Self.readdirReplyOverhead else { throw NFS3Status.toosmall }
                let listing = try env.fs.readdir(h, cookie: args.cookie, cookieVerifier: args.cookieVerifier.value,
                                                 maxBytes: count - Self.readdirReplyOverhead, plus: false, as: env.cred)
                return .ok(NFS3ReaddirOK(
                    directoryAttributes: env.postOp(listing.directoryAttributes),
                    cookieVerifier: NFS3Verifier(listing.cookieVerifier),
                    entries: listing.entries.map { NFS3DirEntry(fileid: $0.fileid, name: NFS3Name($0.name), cookie: $0.cookie) },
                    eof: listing.eof))
            }
        case .readdirplus:
            // dircount is a hint and ignored, as knfsd does: Linux sends maxcount/8,
            // which would cut each reply to about 60% of the entries maxcount allows.
            return serve(call, context, NFS3ReaddirPlusArgs.self, handle: \.directory,
                         replyCapacity: { Int(min($0.maxCount, NFS3Limits.maxReaddirSize)) + 64 }) { args, h, env -> NFS3ReaddirPlusResult in
                let maxCount = Int(min(args.maxCount, NFS3Limits.maxReaddirSize))
                guard maxCount > Self.readdirReplyOverhead else { throw NFS3Status.toosmall }
                let listing = try env.fs.readdir(h, cookie: args.cookie, cookieVerifier: args.cookieVerifier.value,
                                                 maxBytes: maxCount - Self.readdirReplyOverhead,
                                                 dirBytes: nil,
                                                 plus: true, as: env.cred)
                // All handles in one buffer, each entry's a slice of it: one allocation per
                // reply instead of a ByteBuffer (two mallocs) per entry. Slices are taken after
                // the last write, so they share the storage without copying it.
                var handleBytes = ByteBuffer()
                handleBytes.reserveCapacity(listing.entries.reduce(0) { $0 + ($1.handle?.bytes.count ?? 0) })
                for e in listing.entries { if let h = e.handle { handleBytes.writeBytes(h.bytes) } }
                var at = handleBytes.readerIndex
                var entries: [NFS3DirEntryPlus] = []
                entries.reserveCapacity(listing.entries.count)
                for e in listing.entries {
                    var handle: NFS3FileHandle?
                    if let h = e.handle {
                        handle = NFS3FileHandle(bytes: handleBytes.getSlice(at: at, length: h.bytes.count)!)
                        at += h.bytes.count
                    }
                    entries.append(NFS3DirEntryPlus(fileid: e.fileid, name: NFS3Name(e.name), cookie: e.cookie,
                                                    attributes: env.postOp(e.attributes), handle: handle))
                }
                return .ok(NFS3ReaddirPlusOK(
                    directoryAttributes: env.postOp(listing.directoryAttributes),
                    cookieVerifier: NFS3Verifier(listing.cookieVerifier),
                    entries: entries,
                    eof: listing.eof))
            }
        case .fsstat:
            return serve(call, context, NFS3FSStatArgs.self, handle: \.object) { args, h, env -> NFS3FSStatResult in
                let s = try env.fs.fsstat(h, as: env.cred)
                return .ok(NFS3FSStatOK(objectAttributes: env.postOp(s.attributes), totalBytes: s.totalBytes,
                                        freeBytes: s.freeBytes, availableBytes: s.availableBytes, totalFiles: s.totalFiles,
                                        freeFiles: s.freeFiles, availableFiles: s.availableFiles, invariantSeconds: 0))
            }
        case .fsinfo:
            return serve(call, context, NFS3FSInfoArgs.self, handle: \.object) { args, h, env -> NFS3FSInfoResult in
                let info = try env.fs.fsinfo(h, as: env.cred)
                var properties: UInt32 = 0
                if info.supportsLinks { properties |= NFS3FSInfoOK.propertyLink }
                if info.supportsSymlinks { properties |= NFS3FSInfoOK.propertySymlink }
                if info.homogeneous { properties |= NFS3FSInfoOK.propertyHomogeneous }
                if info.canSetTime { properties |= NFS3FSInfoOK.propertyCanSetTime }
                return .ok(NFS3FSInfoOK(objectAttributes: env.postOp(info.attributes),
                                        rtmax: NFS3Limits.maxReadSize, rtpref: NFS3Limits.maxReadSize, rtmult: 4096,
                                        wtmax: NFS3Limits.maxWriteSize, wtpref: NFS3Limits.maxWriteSize, wtmult: 4096,
                                        dtpref: NFS3Limits.preferredReaddirSize, maxFileSize: info.maxFileSize,
                                        timeDelta: NFS3Time(info.timeGranularity), properties: properties))
            }
        case .pathconf:
            return serve(call, context, NFS3PathConfArgs.self, handle: \.object) { args, h, env -> NFS3PathConfResult in
                let p = try env.fs.pathconf(h, as: env.cred)
                return .ok(NFS3PathConfOK(objectAttributes: env.postOp(p.attributes), linkMax: p.linkMax,
                                          nameMax: p.nameMax, noTrunc: p.noTrunc, chownRestricted: p.chownRestricted,
                                          caseInsensitive: p.caseInsensitive, casePreserving: p.casePreserving))
            }
        case .commit:
            return serve(call, context, NFS3CommitArgs.self, handle: \.file) { args, h, env -> NFS3CommitResult in
                let (verifier, wcc) = try env.fs.commit(h, offset: args.offset, count: args.count, as: env.cred)
                return .ok(NFS3CommitOK(fileWcc: env.wcc(wcc), verifier: NFS3Verifier(verifier)))
            }
        }
    }

    /// READDIR3resok / READDIRPLUS3resok bytes besides the entries: status,
    /// post_op_attr with attributes, cookie verifier, list end, eof.
    static let readdirReplyOverhead = 4 + 4 + NFS3Attributes.xdrSize + 8 + 4 + 4

    // MARK: - The one path every procedure takes

    /// Decodes `Args`, then on the thread pool authorizes the call and runs `body`;
    /// errors become the failure arm with the mapped status.
    private func serve<Args: XDRDecodable & Sendable, OK, Fail: NFS3FailureArm>(
        _ call: RPCCall, _ context: RPCCallContext, _ type: Args.Type,
        handle: KeyPath<Args, NFS3FileHandle> & Sendable,
        replyCapacity: @escaping @Sendable (Args) -> Int = { _ in 512 },
        _ body: @escaping @Sendable (Args, ObjectHandle, NFS3CallEnvironment) throws -> NFS3Result<OK, Fail>
    ) -> RPCAnswer {
        var arguments = call.arguments
        guard let args = try? Args(xdr: &arguments) else {
            return .now(.garbageArguments)
        }
        let server = self.server
        let peer = context.peer
        let credential = call.credential
        let allocator = context.allocator
        let procedure = call.procedure
        // The one list of changing procedures (NFS3ERR_ROFS on read-only exports).
        let modifies = NFS3Procedure(rawValue: procedure)?.modifies ?? true
        return .later(server.threadPool.runIfActive(eventLoop: context.eventLoop) {
            let result: NFS3Result<OK, Fail>
            do {
                let (h, env) = try NFS3CallEnvironment.authorize(args[keyPath: handle], modifies: modifies, server: server,
                                                                  peer: peer, credential: credential)
                result = try body(args, h, env)
            } catch {
                let status = NFS3ErrorMapping.status(for: error)
                if status == .serverfault || status == .io {
                    server.logger.warning("NFSv3 procedure \(procedure) from \(peer): \(error)")
                } else {
                    server.logger.debug("NFSv3 procedure \(procedure) from \(peer): \(status) (\(error))")
                }
                result = .fail(status, .empty)
            }
            var out = allocator.buffer(capacity: result.status == .ok ? replyCapacity(args) : 128)
            result.encode(xdr: &out)
            return .success(results: out)
        })
    }

    /// `serve` on the event loop, for a call that HostFS can answer without
    /// blocking: `body` returns nil when it would block, and so does this; the
    /// caller then takes the thread-pool path, which also answers every error
    /// (one place maps errors). Saves the two thread hops per call.
    private func serveWithoutBlocking<Args: XDRDecodable, OK, Fail: NFS3FailureArm>(
        _ call: RPCCall, _ context: RPCCallContext, _ type: Args.Type, handle: KeyPath<Args, NFS3FileHandle>,
        modifies: Bool = false,
        _ body: (Args, ObjectHandle, NFS3CallEnvironment) throws -> NFS3Result<OK, Fail>?
    ) -> RPCAnswer? {
        var arguments = call.arguments
        guard let args = try? Args(xdr: &arguments) else { return nil }
        let result: NFS3Result<OK, Fail>
        do {
            let (h, env) = try NFS3CallEnvironment.authorize(args[keyPath: handle], modifies: modifies, server: server,
                                                              peer: context.peer, credential: call.credential)
            guard let r = try body(args, h, env) else { return nil }
            result = r
        } catch {
            return nil
        }
        var out = context.makeResultsBuffer(capacity: 512)
        result.encode(xdr: &out)
        return context.successRecord(&out)
    }

    /// WRITE's result from one of HostFS's writes (`perform`, given the data and the
    /// stability to sync with; nil when it would block): the one place WRITE's
    /// arguments and stability become a reply. `async` exports answer as asked
    /// without syncing (as knfsd does).
    static func write(_ args: NFS3WriteArgs, _ env: NFS3CallEnvironment,
                      _ perform: (ByteBuffer, WriteStability) throws -> WriteResult?) throws -> NFS3WriteResult? {
        guard let data = args.data.getSlice(at: args.data.readerIndex, length: Int(args.count)) else { throw NFS3Status.inval }
        let stability: WriteStability = env.access.sync ? WriteStability(args.stable) : .unstable
        guard let result = try perform(data, stability) else { return nil }
        let committed = env.access.sync ? NFS3StableHow(result.committed) : args.stable
        return .ok(NFS3WriteOK(fileWcc: env.wcc(result.wcc), count: result.count, committed: committed,
                               verifier: NFS3Verifier(result.verifier)))
    }

    /// RFC 8881 §9.7: while an NFSv4 open denies reading (`write` false) or
    /// writing the file, an NFSv3 READ, or WRITE and SETATTR of the size, is
    /// refused (ACCES: NFSv3 has no share error). Costs a getattr only while
    /// some open denies something.
    static func checkShareReservations(_ shares: ShareReservations, _ h: ObjectHandle, _ env: NFS3CallEnvironment,
                                       write: Bool) throws {
        guard let denials = shares.active else { return }
        let attributes = try env.fs.getattr(h, as: env.cred)
        if denials.denies(fsid: attributes.fsid, fileid: attributes.fileid, write: write) { throw NFS3Status.acces }
    }

    /// READ writes the reply header, then has HostFS append the file data
    /// straight into the reply buffer (no second copy of up to 1 MiB).
    private func read(_ call: RPCCall, _ context: RPCCallContext) -> RPCAnswer {
        var arguments = call.arguments
        guard let args = try? NFS3ReadArgs(xdr: &arguments) else {
            return .now(.garbageArguments)
        }
        let server = self.server
        let peer = context.peer
        let credential = call.credential
        let allocator = context.allocator
        if args.count <= EventLoopLimits.maximumRead,
           var out = Self.readReply(args, server: server, peer: peer, credential: credential, allocator: allocator,
                                    withoutBlocking: true) {
            return context.successRecord(&out)
        }
        return .later(server.threadPool.runIfActive(eventLoop: context.eventLoop) {
            .success(results: Self.readReply(args, server: server, peer: peer, credential: credential, allocator: allocator,
                                             withoutBlocking: false)!)
        })
    }

    /// The READ3res. `withoutBlocking`: nil when HostFS would block or fails
    /// (the thread pool then answers); otherwise never nil.
    private static func readReply(_ args: NFS3ReadArgs, server: NFSServerContext, peer: PeerIdentity,
                                  credential: RPCCredential, allocator: ByteBufferAllocator,
                                  withoutBlocking: Bool) -> ByteBuffer? {
        let count = min(args.count, NFS3Limits.maxReadSize)
        // status, post_op_attr (present), count, eof, data length
        let headerSize = 4 + 4 + NFS3Attributes.xdrSize + 4 + 4 + 4
        // With headroom: an event-loop reply then goes out as this one buffer.
        var out = RPCCallContext.makeResultsBuffer(capacity: headerSize + Int(count) + 4, allocator: allocator)
        do {
            let (h, env) = try NFS3CallEnvironment.authorize(args.file, modifies: false, server: server,
                                                              peer: peer, credential: credential)
            let shares = server.shareReservations
            if withoutBlocking && shares.anyDenial { return nil }
            try checkShareReservations(shares, h, env, write: false)
            out.moveWriterIndex(forwardBy: headerSize)
            let read: (count: Int, eof: Bool, attributes: FileAttributes)
            if withoutBlocking {
                guard let r = try env.fs.readWithoutBlocking(h, offset: args.offset, count: count, appendingTo: &out,
                                                             as: env.cred) else { return nil }
                read = r
            } else {
                read = try env.fs.read(h, offset: args.offset, count: count, appendingTo: &out, as: env.cred)
            }
            let (n, eof, attributes) = read
            out.writeRepeatingByte(0, count: xdrPadding(n))
            let end = out.writerIndex
            out.moveWriterIndex(to: out.readerIndex)
            out.writeXDREnum(NFS3Status.ok)
            env.postOp(attributes).encode(xdr: &out)
            out.writeXDRUInt32(UInt32(n))
            out.writeXDRBool(eof)
            out.writeXDRUInt32(UInt32(n))
            out.moveWriterIndex(to: end)
        } catch {
            if withoutBlocking { return nil }
            out.moveWriterIndex(to: out.readerIndex)
            NFS3ReadResult.fail(NFS3ErrorMapping.status(for: error), .none).encode(xdr: &out)
        }
        return out
    }
}

/// Who is calling, with what rights, on which export: settled once per call.
struct NFS3CallEnvironment {
    let fs: HostFileSystem
    /// Kept whole: copying its ExportAccess out (a large value) cost every call
    /// about 200 instructions more in a callgrind profile of NFSv3 WRITEs.
    let call: CallAuthorization
    var access: ExportAccess { call.access }
    var cred: Credentials { call.credentials }

    /// Checks the handle, then authorizes the call for its export (NFSCore's
    /// `CallAuthorization`, whose refusals map to STALE, ACCES and ROFS).
    static func authorize(_ fh: NFS3FileHandle, modifies: Bool, server: NFSServerContext, peer: PeerIdentity,
                          credential: RPCCredential) throws -> (ObjectHandle, NFS3CallEnvironment) {
        let h = try server.hostFS.decodeHandle(fh.bytes.readableBytesView)
        let call = try CallAuthorization.authorize(h, modifies: modifies, table: server.authTable, peer: peer,
                                                   credential: credential)
        return (h, NFS3CallEnvironment(fs: server.hostFS, call: call))
    }

    /// A second handle of the same call (RENAME's target directory, LINK's
    /// directory): it must name the same export (else NFS3ERR_XDEV).
    func sameExportHandle(_ fh: NFS3FileHandle, as first: ObjectHandle) throws -> ObjectHandle {
        let h = try fs.decodeHandle(fh.bytes.readableBytesView)
        guard h.exportID == first.exportID else { throw NFS3Status.xdev }
        return h
    }

    // Attributes out and in, as this client sees them (owners mapped, see ExportOptions).

    func attributes(_ a: FileAttributes) -> NFS3Attributes {
        NFS3Attributes(a, for: call.access.options)
    }

    func postOp(_ a: FileAttributes?) -> NFS3PostOpAttributes {
        NFS3PostOpAttributes(a, for: call.access.options)
    }

    func wcc(_ w: WccData) -> NFS3WccData {
        NFS3WccData(w, for: call.access.options)
    }

    func setAttributes(_ s: NFS3SetAttributes) throws -> SetAttributes {
        try SetAttributes(s, from: call.access.options)
    }

    func newObject(_ node: NodeResult) -> NFS3NewObjectOK {
        NFS3NewObjectOK(object: NFS3FileHandle(node.handle.bytes), objectAttributes: postOp(node.attributes),
                        directoryWcc: wcc(node.directory))
    }
}
