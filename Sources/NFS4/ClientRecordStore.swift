import Glibc
import NFS4State
import NIOConcurrencyHelpers
import Synchronization

/// The stable client records on disk: `nfs4-clients` in the state directory
/// (RFC 8881 §8.4.2.1). Read once at start; rewritten (temporary file, fsync,
/// rename) when the records change. Called on the thread pool, never with the
/// state tables locked; its own lock only orders the writes, so an older set
/// never replaces a newer one.
final class ClientRecordStore: Sendable {
    let path: String
    private let written = NIOLockedValueBox<UInt64>(0)
    /// `written`'s value, read without its lock (which a pool thread holds across fsync).
    private let stored = Atomic<UInt64>(0)

    init(stateDirectory: String) {
        self.path = stateDirectory + "/nfs4-clients"
    }

    /// The records the previous instance left (none when there is no file).
    func load() -> [StableClient] {
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > 16 << 20 { break }   // bounded: a runaway file costs reclaims, not memory
        }
        return ClientRecordsFile.decode(String(decoding: bytes, as: UTF8.self))
    }

    /// Whether the records of `generation` are on disk already (`store` would not write).
    func isStored(_ generation: UInt64) -> Bool {
        generation <= stored.load(ordering: .acquiring)
    }

    /// Writes `records` if `generation` is newer than what is on disk.
    func store(_ records: Set<StableClient>, generation: UInt64) throws {
        try written.withLockedValue { last in
            guard generation > last else { return }
            let tmp = path + ".tmp"
            let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StoreError(path: tmp, errno: errno) }
            let text = Array(ClientRecordsFile.encode(records).utf8)
            var done = 0
            while done < text.count {
                let n = text[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { let e = errno; close(fd); unlink(tmp); throw StoreError(path: tmp, errno: e) }
                done += n
            }
            guard fsync(fd) == 0 else { let e = errno; close(fd); unlink(tmp); throw StoreError(path: tmp, errno: e) }
            close(fd)
            guard rename(tmp, path) == 0 else { let e = errno; unlink(tmp); throw StoreError(path: path, errno: e) }
            last = generation
            stored.store(generation, ordering: .releasing)
        }
    }

    struct StoreError: Error, CustomStringConvertible {
        var path: String
        var errno: Int32
        var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
    }
}
