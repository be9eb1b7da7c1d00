import Exports
import HostFS
import NFS3
import NFSCore
import NIOCore
import ONCRPC
import NIOConcurrencyHelpers
import Transport
import XDR

/// MOUNT v3 (program 100005, RFC 1813 appendix I), answered per peer from
/// the current auth table: a client sees and mounts only what it may.
public struct MountProgram: RPCProgram {
    public let program: UInt32 = NFSProgramNumber.mount
    public let versions: ClosedRange<UInt32> = 3...3
    public let server: NFSServerContext
    /// The MNTs clients made and have not unmounted (DUMP's answer).
    let mounts = MountList()

    /// DUMP keeps at most this many (client, path) records; the oldest go first.
    static let maxMountRecords = 4096

    public init(server: NFSServerContext) {
        self.server = server
    }

    public var name: String { "MOUNT" }

    public func procedureName(_ procedure: UInt32, version: UInt32) -> String? {
        MountProcedure(rawValue: procedure).map { "\($0)".uppercased() }
    }

    public func handle(_ call: RPCCall, context: RPCCallContext) -> EventLoopFuture<RPCReplyBody> {
        guard let procedure = MountProcedure(rawValue: call.procedure) else {
            return context.eventLoop.makeSucceededFuture(.procedureUnavailable)
        }
        var args = call.arguments
        switch procedure {
        case .null:
            return context.eventLoop.makeSucceededFuture(.success(results: ByteBuffer()))
        case .mnt:
            guard let path = try? MountPathArgs(xdr: &args) else {
                return context.eventLoop.makeSucceededFuture(.garbageArguments)
            }
            let server = self.server
            let mounts = self.mounts
            let peer = context.peer
            let allocator = context.allocator
            return server.threadPool.runIfActive(eventLoop: context.eventLoop) {
                let result = Self.mount(path.path, peer: peer, server: server, mounts: mounts)
                var out = allocator.buffer(capacity: 128)
                result.encode(xdr: &out)
                return .success(results: out)
            }
        case .dump:
            let records = mounts.records.withLockedValue { $0 }
            let result = MountDumpResult(entries: records.map {
                MountEntry(hostname: NFS3Name($0.host), directory: NFS3Name($0.path))
            })
            return context.eventLoop.makeSucceededFuture(.success(results: encode(result, context)))
        case .umnt:
            guard let path = try? MountPathArgs(xdr: &args) else {
                return context.eventLoop.makeSucceededFuture(.garbageArguments)
            }
            let host = context.peer.host.description
            let normalized = Self.normalize(path.path.bytes)
            mounts.records.withLockedValue { $0.removeAll { $0.host == host && $0.path == normalized } }
            return context.eventLoop.makeSucceededFuture(.success(results: ByteBuffer()))
        case .umntall:
            let host = context.peer.host.description
            mounts.records.withLockedValue { $0.removeAll { $0.host == host } }
            return context.eventLoop.makeSucceededFuture(.success(results: ByteBuffer()))
        case .export:
            let visible = server.authTable.exports(visibleTo: context.peer)
            let result = MountExportResult(exports: visible.map { export in
                MountExportEntry(directory: NFS3Name(export.mountPath),
                                 groups: export.clients.map { NFS3Name($0.client.description) })
            })
            return context.eventLoop.makeSucceededFuture(.success(results: encode(result, context)))
        }
    }

    private func encode<T: XDREncodable>(_ value: T, _ context: RPCCallContext) -> ByteBuffer {
        var out = context.allocator.buffer(capacity: 256)
        value.encode(xdr: &out)
        return out
    }

    /// `/a//b/` -> `/a/b`; always starts with `/`.
    static func normalize(_ path: [UInt8]) -> [UInt8] { ExportPaths.normalize(path) }

    /// MNT: the export whose mount path is the longest component-wise prefix
    /// of `path` that the peer may use, then the directory below it.
    static func mount(_ requested: NFS3Name, peer: PeerIdentity, server: NFSServerContext, mounts: MountList) -> MountMntResult {
        let path = normalize(requested.bytes)
        let table = server.authTable
        var best: (index: Int, rest: [UInt8])?
        var deniedMatch = false
        for (index, export) in table.exports.enumerated() {
            let root = normalize(Array(export.mountPath.utf8))
            let rest: [UInt8]
            if root == [0x2F] {
                rest = path
            } else if path == root {
                rest = []
            } else if path.count > root.count, path.starts(with: root), path[root.count] == 0x2F {
                rest = Array(path[root.count...])
            } else {
                continue
            }
            guard table.access(for: peer, exportAt: index) != nil else {
                deniedMatch = true
                continue
            }
            if best == nil || rest.count < best!.rest.count { best = (index, rest) }
        }
        guard let best else {
            if deniedMatch {
                server.logger.info("MNT \(requested) refused: \(peer) has no access")
                return .fail(.acces)
            }
            return .fail(.noent)
        }
        let id = table.ids[best.index]
        do {
            // Like mountd, the path is resolved with the server's own authority; the
            // client's identity applies from the first NFS call on.
            guard !best.rest.split(separator: 0x2F).contains(where: { $0.elementsEqual([0x2E, 0x2E]) }) else {
                return .fail(.acces)
            }
            var handle = try server.hostFS.rootHandle(exportID: id)
            for component in best.rest.split(separator: 0x2F) {
                let node = try server.hostFS.lookup(handle, Array(component), as: .root)
                guard node.attributes.type == .directory else { return .fail(.notdir) }
                handle = node.handle
            }
            mounts.records.withLockedValue { records in
                let record = MountRecord(host: peer.host.description, path: path)
                if !records.contains(record) {
                    if records.count >= maxMountRecords { records.removeFirst() }
                    records.append(record)
                }
            }
            return .ok(handle: NFS3FileHandle(handle.bytes), authFlavors: [RPCAuthFlavor.sys])
        } catch {
            return .fail(MountStatus.mapping(error))
        }
    }
}

/// One MNT a client made and has not unmounted (for DUMP).
struct MountRecord: Hashable, Sendable {
    /// The peer's host part: `vsock:3`, `127.0.0.1`, `unix`.
    var host: String
    var path: [UInt8]
}

/// DUMP's list, shared by the copies of one `MountProgram` (MNT and UMNT change it).
final class MountList: Sendable {
    let records = NIOLockedValueBox<[MountRecord]>([])
}
