import Transport

/// The text form of the stable client records (RFC 8881 §8.4.2.1), one
/// client a line: the owner string in hex, the host (`vsock:3`, `inet:10.0.0.2`,
/// `unix:1000`) and the AUTH_SYS uid of its EXCHANGE_ID (`-` for none).
/// Lines that do not parse are skipped: a damaged file costs those clients
/// their reclaims, never the server its start.
public enum ClientRecordsFile {
    public static func encode(_ records: Set<StableClient>) -> String {
        records.map { record in
            let owner = record.key.owner.map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
            let host: String
            switch record.key.host {
            case .vsock(let cid): host = "vsock:\(cid)"
            case .inet(let address): host = "inet:\(address)"
            case .unix(let uid): host = "unix:\(uid)"
            }
            return "\(owner.isEmpty ? "-" : owner) \(host) \(record.principal.map(String.init) ?? "-")\n"
        }.sorted().joined()
    }

    public static func decode(_ text: String) -> [StableClient] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let owner = hexBytes(fields[0]), let host = peerHost(fields[1]) else { return nil }
            let principal: UInt32?
            if fields[2] == "-" { principal = nil } else {
                guard let uid = UInt32(fields[2]) else { return nil }
                principal = uid
            }
            return StableClient(key: ClientOwnerKey(owner: owner, host: host), principal: principal)
        }
    }

    static func hexBytes(_ text: Substring) -> [UInt8]? {
        if text == "-" { return [] }
        guard text.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    static func peerHost(_ text: Substring) -> PeerHost? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let kind = text[..<colon], value = String(text[text.index(after: colon)...])
        switch kind {
        case "vsock": return UInt32(value).map { .vsock(cid: $0) }
        case "inet": return IPAddress(value).map { .inet($0) }
        case "unix": return UInt32(value).map { .unix(uid: $0) }
        default: return nil
        }
    }
}
