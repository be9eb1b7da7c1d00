#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import ONCRPC
import Transport
import XDR

/// Registers the server's programs with the local rpcbind (RFC 1833,
/// RPCBPROC_SET over rpcbind's AF_LOCAL socket, which tells rpcbind who we
/// are), so tools that look programs up — libtirpc's `rpcinfo -t`, mount.nfs
/// without port= — find them on the TCP listeners. vsock has no rpcbind
/// netid; guests are given the port directly.
public struct RPCBindRegistration: Sendable {
    public static let program: UInt32 = 100_000
    public static let version: UInt32 = 4
    static let setProcedure: UInt32 = 1
    static let unsetProcedure: UInt32 = 2
    public static let defaultSocketPath = "/run/rpcbind.sock"

    public struct Entry: Hashable, Sendable {
        public var program: UInt32
        public var version: UInt32
        public var netid: String
        public var universalAddress: String
    }

    public let entries: [Entry]
    /// TCP listeners left out: rpcbind keeps one address per program, version
    /// and netid (a second SET replaces the first), so only the first listener
    /// of each address family is registered.
    public let unregistered: [ListenSpec]
    public let socketPath: String

    /// One entry per (program, version) on the first TCP listener of each
    /// family (netid tcp or tcp6).
    public init(programs: [(program: UInt32, version: UInt32)], listeners: [ListenSpec],
                socketPath: String = RPCBindRegistration.defaultSocketPath) {
        var entries: [Entry] = []
        var unregistered: [ListenSpec] = []
        var netids: Set<String> = []
        for case .tcp(let host, let port) in listeners {
            let v6 = host.contains(":")
            let netid = v6 ? "tcp6" : "tcp"
            guard netids.insert(netid).inserted else {
                unregistered.append(.tcp(host: host, port: port))
                continue
            }
            let address = v6 ? host : (IPAddress(host) == nil ? "0.0.0.0" : host)
            let uaddr = "\(address).\(port >> 8).\(port & 0xff)"
            for (program, version) in programs {
                entries.append(Entry(program: program, version: version, netid: netid, universalAddress: uaddr))
            }
        }
        self.entries = entries
        self.unregistered = unregistered
        self.socketPath = socketPath
    }

    /// Registers every entry, replacing stale registrations of the same
    /// program and version (a previous run that did not unregister).
    public func register() throws {
        guard !self.entries.isEmpty else { return }
        let client = try BlockingRPCClient(unixPath: self.socketPath)
        for entry in self.entries {
            _ = try self.send(client, Self.unsetProcedure, entry)
            guard try self.send(client, Self.setProcedure, entry) else {
                throw RegistrationError(entry: entry)
            }
        }
    }

    /// Removes our registrations; errors are ignored (rpcbind may be gone).
    public func unregister() {
        guard !self.entries.isEmpty, let client = try? BlockingRPCClient(unixPath: self.socketPath) else { return }
        for entry in self.entries { _ = try? self.send(client, Self.unsetProcedure, entry) }
    }

    private func send(_ client: BlockingRPCClient, _ procedure: UInt32, _ entry: Entry) throws -> Bool {
        var args = ByteBuffer()
        args.writeXDRUInt32(entry.program)
        args.writeXDRUInt32(entry.version)
        args.writeXDRString(entry.netid)
        args.writeXDRString(procedure == Self.setProcedure ? entry.universalAddress : "")
        args.writeXDRString("\(geteuid())")
        let reply = try client.call(program: Self.program, version: Self.version, procedure: procedure,
                                    credential: AuthSysParameters(uid: geteuid(), gid: getegid()).opaqueAuth,
                                    arguments: args)
        guard case .success(var results) = reply else { throw RegistrationError(entry: entry, reply: reply) }
        return try results.readXDRBool()
    }

    public struct RegistrationError: Error, CustomStringConvertible {
        public var entry: Entry
        public var reply: RPCReplyBody?
        public var description: String {
            "rpcbind refused program \(entry.program) version \(entry.version) on \(entry.netid) \(entry.universalAddress)"
                + (reply.map { " (\($0))" } ?? "")
        }
    }
}
