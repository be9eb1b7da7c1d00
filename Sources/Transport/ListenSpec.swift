/// Where the server listens, as given on the command line:
/// `vsock:PORT` (any local CID), `vsock:CID:PORT`, `tcp:HOST:PORT`
/// (`tcp:[::1]:2049` for IPv6; port 0 picks a free port), `unix:PATH`,
/// `hybrid:UDS_PATH:PORT:cid=N`.
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

    /// The Unix socket a hybrid listener binds: the VMM's `uds_path`, `_`, the port.
    public static func hybridSocketPath(udsPath: String, port: UInt32) -> String { "\(udsPath)_\(port)" }

    public static let defaultSpec = ListenSpec.vsock(cid: nil, port: 2049)

    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var spec: String
        public var reason: String
        public var description: String {
            "invalid listen spec '\(spec)': \(reason) (expected vsock:PORT, vsock:CID:PORT, tcp:HOST:PORT, unix:PATH or hybrid:UDS_PATH:PORT:cid=N)"
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
        }
    }
}
