import NFS4State
import NFS4Wire
import Transport

/// One NFSv4.1 client record as `vsnfs status` shows it.
public struct NFS4ClientStatus: Sendable, Equatable {
    /// The client ID, in hex as knfsd's /proc/fs/nfsd/clients shows it.
    public var clientID: String
    public var confirmed: Bool
    /// Its sessions' IDs, in hex.
    public var sessions: [String]
    /// Operations run in its sessions (SEQUENCE included), by RFC name, most used first.
    public var operations: [(name: String, count: Int)]

    public static func == (a: Self, b: Self) -> Bool {
        a.clientID == b.clientID && a.confirmed == b.confirmed && a.sessions == b.sessions
            && a.operations.map(\.name) == b.operations.map(\.name) && a.operations.map(\.count) == b.operations.map(\.count)
    }
}

extension NFS4Program {
    /// The client records of `host` (client records are keyed by owner and
    /// peer, so these are exactly the clients that host's connections made).
    public func clients(of host: PeerHost) -> [NFS4ClientStatus] {
        state.tables.withLockedValue { t in
            t.clients.clients.values.filter { $0.key.host == host }.sorted { $0.clientID < $1.clientID }.map { record in
                let counts = t.operationCounts[record.clientID] ?? [:]
                return NFS4ClientStatus(
                    clientID: hex(record.clientID), confirmed: record.confirmed,
                    sessions: record.sessions.map { hex($0.high) + hex($0.low) }.sorted(),
                    operations: counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.rawValue < $1.key.rawValue }
                        .map { ($0.key.name, $0.value) })
            }
        }
    }
}

private func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
