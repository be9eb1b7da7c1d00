#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The control socket's protocol: the client sends one request as one line
/// of JSON, the server answers with one line of JSON and closes the
/// connection. `vsnfs status --json` and the `export` verbs print the
/// answer as it came.
public enum ControlRequest: Codable, Hashable, Sendable {
    case status
    case exportList
    /// `options`: default options for every client (the exports line's `-OPTIONS`).
    case exportAdd(path: String, clients: [String], options: String?)
    /// `client` nil: the whole export.
    case exportRemove(path: String, client: String?)

    private enum CodingKeys: String, CodingKey { case verb, path, clients, options, client }

    public var verb: String {
        switch self {
        case .status: return "status"
        case .exportList: return "export-list"
        case .exportAdd: return "export-add"
        case .exportRemove: return "export-remove"
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .verb) {
        case "status": self = .status
        case "export-list": self = .exportList
        case "export-add":
            self = .exportAdd(path: try c.decode(String.self, forKey: .path),
                              clients: try c.decode([String].self, forKey: .clients),
                              options: try c.decodeIfPresent(String.self, forKey: .options))
        case "export-remove":
            self = .exportRemove(path: try c.decode(String.self, forKey: .path),
                                 client: try c.decodeIfPresent(String.self, forKey: .client))
        case let verb:
            throw DecodingError.dataCorruptedError(forKey: .verb, in: c, debugDescription: "unknown verb '\(verb)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(verb, forKey: .verb)
        switch self {
        case .status, .exportList: break
        case .exportAdd(let path, let clients, let options):
            try c.encode(path, forKey: .path)
            try c.encode(clients, forKey: .clients)
            try c.encodeIfPresent(options, forKey: .options)
        case .exportRemove(let path, let client):
            try c.encode(path, forKey: .path)
            try c.encodeIfPresent(client, forKey: .client)
        }
    }
}

/// The answer: `{"ok": true, ...}` with `exports` (export verbs) or `status`,
/// or `{"ok": false, "error": "one line"}`.
public struct ControlResponse: Codable, Hashable, Sendable {
    public var ok: Bool
    public var error: String?
    public var exports: [ExportEntry]?
    public var status: ServerStatus?

    public init(ok: Bool = true, error: String? = nil, exports: [ExportEntry]? = nil, status: ServerStatus? = nil) {
        self.ok = ok
        self.error = error
        self.exports = exports
        self.status = status
    }

    public static func failure(_ message: String) -> ControlResponse { ControlResponse(ok: false, error: message) }

    public struct ExportEntry: Codable, Hashable, Sendable {
        /// The directory on the host.
        public var path: String
        /// What clients mount (the host path, or `/` for `serve DIR`).
        public var mountPath: String
        public var fsid: UInt32?
        public var clients: [Client]

        public init(path: String, mountPath: String, fsid: UInt32?, clients: [Client]) {
            self.path = path
            self.mountPath = mountPath
            self.fsid = fsid
            self.clients = clients
        }

        public struct Client: Codable, Hashable, Sendable {
            /// The client spec in exports-file spelling (`vsock:3`, `127.0.0.1`, `*`).
            public var client: String
            /// Every option stated (`rw,root_squash,anonuid=65534,...`).
            public var options: String
            /// `file` (exports file), `directory` (`serve DIR`) or `runtime` (`export add`).
            public var origin: String

            public init(client: String, options: String, origin: String) {
                self.client = client
                self.options = options
                self.origin = origin
            }
        }
    }

    public struct ServerStatus: Codable, Hashable, Sendable {
        public var version: String
        public var pid: Int32
        public var listeners: [String]
        public var clients: [ConnectedClient]
        /// One row per connected peer and the client rule it matched, as knfsd's `auth.unix.ip` cache.
        public var authTable: [AuthRow]
        /// The kernel's own view of the vsock listeners' ports (vsock_diag through
        /// libnl-3): each socket, listening or connected; nil when it cannot be had.
        public var vsockSockets: [String]?
        /// Why `vsockSockets` is nil (no vsock listener, vsock_diag not loaded, libnl-3 missing).
        public var vsockSocketsUnavailable: String?

        public init(version: String, pid: Int32, listeners: [String], clients: [ConnectedClient], authTable: [AuthRow],
                    vsockSockets: [String]? = nil, vsockSocketsUnavailable: String? = nil) {
            self.version = version
            self.pid = pid
            self.listeners = listeners
            self.clients = clients
            self.authTable = authTable
            self.vsockSockets = vsockSockets
            self.vsockSocketsUnavailable = vsockSocketsUnavailable
        }

        public struct ConnectedClient: Codable, Hashable, Sendable {
            /// `vsock:CID:PORT`, `tcp:ADDRESS:PORT` or `unix:uid=U,gid=G,pid=P`.
            public var peer: String
            /// The identity exports match: `vsock:CID`, the address, or `unix`.
            public var identity: String
            /// The listener the connection arrived on.
            public var listener: String
            public var connectedSeconds: Int
            /// The exports this identity may mount now, with its access.
            public var exports: [ClientExport]
            /// NFS versions it has called (`3`), in order.
            public var nfsVersions: [String]
            /// NFSv4.1 sessions in short: `none (NFSv3)`, `none`, or how many of
            /// how many clients; `nfs4Clients` has them in full.
            public var sessions: String
            public var calls: Int
            /// Calls by RPC procedure (an NFSv4 COMPOUND counts once here).
            public var operations: [OperationCount]
            /// The NFSv4.1 client records of this peer, their sessions and the
            /// operations inside their COMPOUNDs; nil for a peer that has none.
            public var nfs4Clients: [NFS4Client]?

            public init(peer: String, identity: String, listener: String, connectedSeconds: Int,
                        exports: [ClientExport], nfsVersions: [String], sessions: String, calls: Int,
                        operations: [OperationCount], nfs4Clients: [NFS4Client]? = nil) {
                self.peer = peer
                self.identity = identity
                self.listener = listener
                self.connectedSeconds = connectedSeconds
                self.exports = exports
                self.nfsVersions = nfsVersions
                self.sessions = sessions
                self.calls = calls
                self.operations = operations
                self.nfs4Clients = nfs4Clients
            }
        }

        public struct NFS4Client: Codable, Hashable, Sendable {
            /// The client ID in hex.
            public var clientID: String
            /// Whether a CREATE_SESSION confirmed it (RFC 8881 §18.35.4).
            public var confirmed: Bool
            /// Its session IDs in hex.
            public var sessions: [String]
            /// Operations run in its sessions, by RFC name (`SEQUENCE`, `OPEN`), most used first.
            public var operations: [NFS4OperationCount]

            public init(clientID: String, confirmed: Bool, sessions: [String], operations: [NFS4OperationCount]) {
                self.clientID = clientID
                self.confirmed = confirmed
                self.sessions = sessions
                self.operations = operations
            }
        }

        public struct NFS4OperationCount: Codable, Hashable, Sendable {
            public var operation: String
            public var count: Int

            public init(operation: String, count: Int) {
                self.operation = operation
                self.count = count
            }
        }

        public struct ClientExport: Codable, Hashable, Sendable {
            public var path: String
            public var mountPath: String
            /// The client rule that granted access.
            public var client: String
            /// `rw` or `ro`.
            public var access: String

            public init(path: String, mountPath: String, client: String, access: String) {
                self.path = path
                self.mountPath = mountPath
                self.client = client
                self.access = access
            }
        }

        public struct OperationCount: Codable, Hashable, Sendable {
            /// `NFS`, `MOUNT`, or the program number.
            public var program: String
            public var version: UInt32
            /// `READ`, `MNT`, ..., or the procedure number.
            public var procedure: String
            public var count: Int

            public init(program: String, version: UInt32, procedure: String, count: Int) {
                self.program = program
                self.version = version
                self.procedure = procedure
                self.count = count
            }
        }

        public struct AuthRow: Codable, Hashable, Sendable {
            /// `nfsd`, as knfsd's table names its one class.
            public var `class`: String
            /// The identity (`vsock:3`, `127.0.0.1`, `unix`).
            public var peer: String
            /// The client rule it matched, or `-no-domain-`.
            public var domain: String
            /// The exports it matched `domain` for.
            public var exports: [String]

            public init(class: String = "nfsd", peer: String, domain: String, exports: [String]) {
                self.class = `class`
                self.peer = peer
                self.domain = domain
                self.exports = exports
            }
        }
    }
}

extension ControlResponse {
    /// Pretty, with sorted keys: what `--json` prints.
    public func prettyJSON() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data(#"{"ok":false,"error":"cannot encode the answer"}"#.utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// One line, for the socket.
    public func jsonLine() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data(#"{"ok":false,"error":"cannot encode the answer"}"#.utf8)
        return Array(data) + [0x0A]
    }
}

extension ControlRequest {
    public func jsonLine() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    public init(jsonLine bytes: some Collection<UInt8>) throws {
        self = try JSONDecoder().decode(ControlRequest.self, from: Data(bytes))
    }
}
