#if canImport(Glibc)
import Glibc
#endif
import CSupport

/// One registration rpcbind holds (RFC 1833 `rpcb`).
public struct RPCBindMapping: Hashable, Sendable {
    public var program: UInt32
    public var version: UInt32
    public var netid: String
    /// The universal address: `h1.h2.h3.h4.p1.p2` for tcp/udp, `::.p1.p2` style for tcp6, a path for local.
    public var address: String
    public var owner: String

    /// The port in a tcp/udp universal address (its last two fields), or nil.
    public var port: Int? {
        guard netid.hasPrefix("tcp") || netid.hasPrefix("udp") else { return nil }
        let fields = address.split(separator: ".")
        guard fields.count >= 3, let high = Int(fields[fields.count - 2]), let low = Int(fields[fields.count - 1]),
              (0...255).contains(high), (0...255).contains(low) else { return nil }
        return high << 8 | low
    }
}

public enum RPCBindQueryError: Error, Equatable, CustomStringConvertible {
    /// libtirpc.so.3 could not be loaded (the detail is dlopen's reason).
    case libtirpcMissing(String)
    /// rpcbind did not answer (the detail is libtirpc's message).
    case failed(String)
    /// This is an address- or thread-sanitizer build, where libtirpc cannot run.
    case sanitizerBuild

    public var description: String {
        switch self {
        case .libtirpcMissing: return "libtirpc not installed (apt-get install libtirpc3)"
        case .failed(let why): return "rpcbind query failed: \(why)"
        case .sanitizerBuild:
            return "rpcbind registrations cannot be listed by a sanitizer build (libtirpc's XDR calls land in the sanitizer's interceptors)"
        }
    }
}

/// Every registration rpcbind on `host` holds, through libtirpc's rpcb_getmaps.
public func listRPCBindMappings(host: String = "127.0.0.1") throws -> [RPCBindMapping] {
    var out: UnsafeMutablePointer<vsnfs_rpcb_mapping>?
    var count = 0
    var error = [CChar](repeating: 0, count: 256)
    let rc = vsnfs_rpcb_mappings(host, &out, &count, &error, error.count)
    guard rc == 0, let out else {
        let why = text(ofCString: error)
        switch rc {
        case VSNFS_DIAG_NO_LIBRARY: throw RPCBindQueryError.libtirpcMissing(why)
        case VSNFS_DIAG_SANITIZED: throw RPCBindQueryError.sanitizerBuild
        default: throw RPCBindQueryError.failed(why)
        }
    }
    defer { free(out) }
    return UnsafeBufferPointer(start: out, count: count).map { m in
        var m = m
        func text<T>(_ field: inout T) -> String {
            withUnsafeBytes(of: &field) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }
        return RPCBindMapping(program: m.program, version: m.version, netid: text(&m.netid),
                              address: text(&m.address), owner: text(&m.owner))
    }
}
