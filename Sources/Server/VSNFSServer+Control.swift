#if canImport(Glibc)
import Glibc
#endif
import Control
import Exports
import NFS3
import NFS4
import ONCRPC
import Transport

/// The control socket's requests, answered from the server's own state: the
/// served exports (changed only through `change`, the path reloads take too)
/// and the RPC server's connections.
extension VSNFSServer {
    func answer(_ request: ControlRequest) async -> ControlResponse {
        switch request {
        case .status:
            return ControlResponse(status: await self.status())
        case .exportList:
            return ControlResponse(exports: Self.entries(self.servedExports))
        case .exportAdd(let path, let clients, let options):
            let export: Export
            do {
                export = try ExportsFile.parseEntry(path: path, clients: clients, options: options, source: "export add")
            } catch {
                return .failure("cannot export \(path): " + error.diagnostics.map(\.message).joined(separator: "; "))
            }
            return await self.runChange(.add(export), describing: "export add \(path) to \(clients.joined(separator: " "))") {
                // The same check, and message, as `vsnfs exports check` and a reload.
                try ExportsSource.checkDirectory(export.hostPath, origin: "")
            }
        case .exportRemove(let path, let client):
            // The parser normalizes the path (and the client spec) as the file's grammar does.
            let parsed: Export
            do {
                parsed = try ExportsFile.parseEntry(path: path, clients: [client ?? "*"], options: nil, source: "export remove")
            } catch {
                return .failure("cannot remove \(path): " + error.diagnostics.map(\.message).joined(separator: "; "))
            }
            let change = ExportOverlay.Change.remove(hostPath: parsed.hostPath, client: client == nil ? nil : parsed.clients[0].client)
            return await self.runChange(change, describing: "export remove \(path)" + (client.map { " from \($0)" } ?? "")) {}
        }
    }

    /// Runs `check` and the change on the thread pool (they open directories).
    private func runChange(_ change: ExportOverlay.Change, describing description: String,
                           check: @escaping @Sendable () throws -> Void) async -> ControlResponse {
        do {
            let served = try await self.context.threadPool.runIfActive {
                try check()
                return try self.change(change)
            }
            self.logger.notice("\(description): \(served.count) export(s) served")
            return ControlResponse(exports: Self.entries(served))
        } catch {
            return .failure("\(error)")
        }
    }

    static func entries(_ served: [ServedExport]) -> [ControlResponse.ExportEntry] {
        served.map { entry in
            ControlResponse.ExportEntry(
                path: entry.export.hostPath, mountPath: entry.export.mountPath, fsid: entry.export.fsid,
                clients: zip(entry.export.clients, entry.origins).map { rule, origin in
                    .init(client: rule.client.description, options: rule.options.resolvedDescription, origin: origin.rawValue)
                })
        }
    }

    func status() async -> ControlResponse.ServerStatus {
        let connections = await self.rpcServer.connectionSnapshots()
        let table = self.context.authTable
        var clients: [ControlResponse.ServerStatus.ConnectedClient] = []
        var authRows: [ControlResponse.ServerStatus.AuthRow] = []
        var seen: Set<String> = []
        for connection in connections {
            let identity = connection.peer.host.description
            var exports: [ControlResponse.ServerStatus.ClientExport] = []
            var domains: [(domain: String, exports: [String])] = []
            for (index, export) in table.exports.enumerated() {
                guard let access = table.access(for: connection.peer, exportAt: index) else { continue }
                exports.append(.init(path: export.hostPath, mountPath: export.mountPath,
                                     client: access.client.description, access: access.readOnly ? "ro" : "rw"))
                let domain = access.client.description
                if let at = domains.firstIndex(where: { $0.domain == domain }) {
                    domains[at].exports.append(export.mountPath)
                } else {
                    domains.append((domain, [export.mountPath]))
                }
            }
            if seen.insert(identity).inserted {
                if domains.isEmpty { domains = [("-no-domain-", [])] }
                authRows += domains.map { .init(peer: identity, domain: $0.domain, exports: $0.exports) }
            }
            let nfsVersions = Set(connection.operations.filter { $0.operation.program == 100_003 }.map(\.operation.version))
            // Client records belong to the peer, not to one connection (a
            // client may bind several): each connection of a peer that spoke
            // NFSv4 shows them.
            let nfs4Clients = nfsVersions.contains(4) ? self.nfs4.clients(of: connection.peer.host).map { client in
                ControlResponse.ServerStatus.NFS4Client(
                    clientID: client.clientID, confirmed: client.confirmed, sessions: client.sessions,
                    operations: client.operations.map { .init(operation: $0.name, count: $0.count) })
            } : nil
            let sessions: String
            if let nfs4Clients {
                let count = nfs4Clients.map(\.sessions.count).reduce(0, +)
                sessions = count == 0 ? "none" : "\(count) of \(nfs4Clients.count) NFSv4 client(s)"
            } else {
                sessions = "none (NFSv3)"
            }
            clients.append(.init(
                peer: connection.peer.description, identity: identity, listener: connection.listener.description,
                connectedSeconds: connection.connectedSeconds, exports: exports,
                nfsVersions: nfsVersions.sorted().map(String.init), sessions: sessions,
                calls: connection.operations.reduce(connection.otherCalls) { $0 + $1.count },
                operations: connection.operations.map {
                    .init(program: $0.program, version: $0.operation.version, procedure: $0.procedure, count: $0.count)
                } + (connection.otherCalls > 0
                    ? [.init(program: "other", version: 0, procedure: "other", count: connection.otherCalls)] : []),
                nfs4Clients: nfs4Clients))
        }
        let kernel = Self.kernelVsockSockets(ports: Set(self.rpcServer.listeningSpecs.compactMap {
            if case .vsock(_, let port) = $0 { return port }
            return nil
        }))
        return ControlResponse.ServerStatus(
            version: vsnfsVersion, pid: getpid(), listeners: self.rpcServer.listeningSpecs.map(\.description),
            clients: clients, authTable: authRows, vsockSockets: kernel.sockets, vsockSocketsUnavailable: kernel.why)
    }

    /// The kernel's vsock sockets on `ports` (the vsock listeners'), from
    /// vsock_diag: what the kernel itself says listens and is connected, beside
    /// the server's own list of connections.
    static func kernelVsockSockets(ports: Set<UInt32>) -> (sockets: [String]?, why: String?) {
        guard !ports.isEmpty else { return (nil, "no vsock listener") }
        do {
            let sockets = try listVsockSockets().filter { ports.contains($0.localPort) }
            return (sockets.map(\.description), nil)
        } catch {
            return (nil, "\(error)")
        }
    }
}
