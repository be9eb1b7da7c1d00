/// Where the server listens, as given on the command line:
/// `vsock:PORT` (any local CID), `vsock:CID:PORT`, `tcp:HOST:PORT`
/// (`tcp:[::1]:2049` for IPv6; port 0 picks a free port), `unix:PATH`,
/// `hybrid:UDS_PATH:PORT:cid=N`,
/// `vhost-user:PATH:cid=N[:port=P][:forward=BASE]` (a vhost-user-vsock
/// device back-end for one VM on the Unix socket PATH; the guest gets CID N
/// and reaches host port P, 2049 by default; with forward=BASE, a guest
/// connection to any other host port Q goes to the Unix socket BASE_Q, as
/// Firecracker's hybrid vsock does it).
public enum ListenSpec: Hashable, Sendable, CustomStringConvertible {
    /// `cid == nil` binds VMADDR_CID_ANY.
    case vsock(cid: UInt32?, port: UInt32)
    case tcp(host: String, port: Int)
    case unix(path: String)
    /// Hybrid vsock (Firecracker, Cloud Hypervisor): the VMM forwards a guest's
    /// connection to host port `port` to the Unix socket `UDS_PATH_PORT`. Every
    /// connection on it is the guest with context ID `cid`, as configured here
    /// (the VMM's socket carries no identity of its own).
    case hybrid(udsPath: String, port: UInt32, cid: UInt32)
    /// A vhost-user-vsock device for one VM; the peer identity of every
    /// connection is `vsock:cid`, from this spec.
    case vhostUser(path: String, cid: UInt32, port: UInt32, forward: String? = nil)

    /// The Unix socket a hybrid listener binds: the VMM's `uds_path`, `_`, the port.
    public static func hybridSocketPath(udsPath: String, port: UInt32) -> String { "\(udsPath)_\(port)" }

    public static let defaultSpec = ListenSpec.vsock(cid: nil, port: 2049)

    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var spec: String
        public var reason: String
        public var description: String {
            "invalid listen spec '\(spec)': \(reason) (expected vsock:PORT, vsock:CID:PORT, tcp:HOST:PORT, unix:PATH, hybrid:UDS_PATH:PORT:cid=N or vhost-user:PATH:cid=N[:port=P][:forward=BASE])"
        }
    }

    public init(parsing text: String) throws {
        func fail(_ reason: String) -> ParseError { ParseError(spec: text, reason: reason) }
        guard let colon = text.firstIndex(of: ":") else { throw fail("missing transport prefix") }
        let scheme = text[..<colon]
        let rest = text[text.index(after: colon)...]
        func port<T: FixedWidthInteger>(_ s: Substring, as: T.Type, max: T, allowZero: Bool = false) throws -> T {
            guard let value = T(s), value > 0 || (allowZero && value == 0), value <= max else {
                throw fail("'\(s)' is not a port number")
            }
            return value
        }
        switch scheme {
        case "vsock":
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            switch parts.count {
            case 1:
                self = .vsock(cid: nil, port: try port(parts[0], as: UInt32.self, max: UInt32.max - 1))
            case 2:
                guard let cid = UInt32(parts[0]) else { throw fail("'\(parts[0])' is not a context ID") }
                self = .vsock(cid: cid, port: try port(parts[1], as: UInt32.self, max: UInt32.max - 1))
            default:
                throw fail("too many fields")
            }
        case "tcp":
            guard let lastColon = rest.lastIndex(of: ":") else { throw fail("missing port") }
            var host = rest[..<lastColon]
            let portText = rest[rest.index(after: lastColon)...]
            if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
            guard !host.isEmpty else { throw fail("missing host") }
            if host.contains(":") && IPAddress(String(host)) == nil { throw fail("'\(host)' is not an address") }
            self = .tcp(host: String(host), port: Int(try port(portText, as: UInt16.self, max: UInt16.max, allowZero: true)))
        case "unix":
            guard !rest.isEmpty else { throw fail("missing path") }
            self = .unix(path: String(rest))
        case "hybrid":
            // The path may hold colons: PORT and cid=N are the last two fields.
            var fields = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3 else { throw fail("expected hybrid:UDS_PATH:PORT:cid=N") }
            let cidField = fields.removeLast()
            guard cidField.hasPrefix("cid="), let cid = UInt32(cidField.dropFirst(4)), cid > 2 else {
                throw fail("'\(cidField)' is not cid=N with N a guest context ID (3 or more)")
            }
            let portNumber = try port(fields.removeLast(), as: UInt32.self, max: UInt32.max - 1)
            let path = fields.joined(separator: ":")
            guard !path.isEmpty else { throw fail("missing path") }
            self = .hybrid(udsPath: path, port: portNumber, cid: cid)
        case "vhost-user":
            // Options are the trailing key=value fields; the path is the rest
            // (it may itself contain ':').
            var fields = rest.split(separator: ":", omittingEmptySubsequences: false)
            var cid: UInt32?
            var servedPort: UInt32 = 2049
            var forward: String?
            while let last = fields.last, let eq = last.firstIndex(of: "=") {
                let key = last[..<eq]
                let value = last[last.index(after: eq)...]
                switch key {
                case "cid":
                    // 0-2 are the hypervisor, loopback and host; UInt32.max is VMADDR_CID_ANY.
                    guard let n = UInt32(value), n >= 3, n < UInt32.max else {
                        throw fail("'\(value)' is not a guest context ID (3 to 4294967294)")
                    }
                    cid = n
                case "port":
                    servedPort = try port(value, as: UInt32.self, max: UInt32.max - 1)
                case "forward":
                    guard !value.isEmpty else { throw fail("forward= needs a socket path base") }
                    forward = String(value)
                default:
                    throw fail("unknown option '\(key)' (cid=N, port=P and forward=BASE are known)")
                }
                fields.removeLast()
            }
            let path = fields.joined(separator: ":")
            guard !path.isEmpty else { throw fail("missing socket path") }
            guard let cid else { throw fail("missing cid=N (the guest's context ID)") }
            self = .vhostUser(path: path, cid: cid, port: servedPort, forward: forward)
        default:
            throw fail("unknown transport '\(scheme)'")
        }
    }

    public var description: String {
        switch self {
        case .vsock(let cid?, let port): return "vsock:\(cid):\(port)"
        case .vsock(nil, let port): return "vsock:\(port)"
        case .tcp(let host, let port): return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        case .hybrid(let path, let port, let cid): return "hybrid:\(path):\(port):cid=\(cid)"
        case .vhostUser(let path, let cid, let port, let forward):
            return "vhost-user:\(path):cid=\(cid)" + (port == 2049 ? "" : ":port=\(port)")
                + (forward.map { ":forward=\($0)" } ?? "")
        }
    }
}
