import Glibc
import NIOConcurrencyHelpers

/// Unprivileged mode: a persisted map inode -> (parent inode, name) for one export, so
/// an inode handle can be found again by walking names down from the export root.
///
/// File `<state>/index-<exportID>`: a header (magic, root dev, root inode) then
/// append-only records `op(1) ino(8) parent(8) nameLen(2) name`; op 1 = set, 2 = delete.
/// Loaded and compacted at start; a header for another root discards the file. Losing
/// records (crash, host-side renames) only costs a bounded search of the export tree.
///
/// Two mutexes, so that no event loop waits on the disk: `map` is held for no system
/// call (the event loop's LOOKUP asks `knows`); `log` serializes changes and owns the
/// log file. A change takes `log`, updates the map under `map`, and writes its record
/// after releasing `map`, so the log holds records in the order the map changed.
/// Compaction writes a snapshot of the map, under `log` only.
final class InodeIndex: Sendable {
    struct Link: Equatable {
        var parent: UInt64
        var name: [UInt8]
    }

    /// The system calls that write the log, for tests that hold one and see that
    /// lookups do not wait for it.
    struct SystemCalls: Sendable {
        var write: @Sendable (Int32, UnsafeRawPointer, Int) -> Int = { Glibc.write($0, $1, $2) }
        var fsync: @Sendable (Int32) -> Void = { _ = Glibc.fsync($0) }
    }

    private static let magic: [UInt8] = Array("VSNFSIX1".utf8)
    private let syscalls: SystemCalls
    /// Never held across a system call. Both locks are NIO's pthread mutexes, as in the
    /// open-file cache: event loops and pool threads take them on every LOOKUP and
    /// CREATE, and under contention `Synchronization.Mutex` spins (and its slow path,
    /// compiled without the thread sanitizer, hides the lock from `make test-tsan`).
    private let map: NIOLockedValueBox<[UInt64: Link]>
    /// The log file. Taken before `map`, never inside it.
    private let log: NIOLockedValueBox<LogFile>
    private let header: [UInt8]
    let path: String
    let rootIno: UInt64

    private struct LogFile {
        var fd: Int32 = -1
        /// Records appended since the last compaction.
        var appended = 0
        /// Bytes in the file: where the next record starts.
        var length: off_t = 0
    }

    init(path: String, rootDev: UInt64, rootIno: UInt64, systemCalls: SystemCalls = SystemCalls()) throws {
        self.path = path
        self.rootIno = rootIno
        self.syscalls = systemCalls
        var header = InodeIndex.magic
        header.appendBE(rootDev)
        header.appendBE(rootIno)
        self.header = header
        var loaded: [UInt64: Link] = [:]
        if let data = try? InodeIndex.readAll(path), data.count >= header.count,
           Array(data[0..<header.count]) == header {
            var i = header.count
            while i + 19 <= data.count {
                let op = data[i]
                let ino = data.readBE(i + 1, as: UInt64.self)
                let parent = data.readBE(i + 9, as: UInt64.self)
                let n = Int(data.readBE(i + 17, as: UInt16.self))
                guard i + 19 + n <= data.count else { break }
                if op == 1 {
                    loaded[ino] = Link(parent: parent, name: Array(data[i + 19..<i + 19 + n]))
                } else if op == 2 {
                    loaded[ino] = nil
                } else {
                    break   // not a record: keep what came before, not what a misread would make of the rest
                }
                i += 19 + n
            }
        }
        self.map = NIOLockedValueBox(loaded)
        var file = LogFile()
        try InodeIndex.compact(loaded, header: header, path: path, syscalls: systemCalls, into: &file)
        self.log = NIOLockedValueBox(file)
    }

    deinit { log.withLockedValue { if $0.fd >= 0 { close($0.fd) } } }

    /// Rewrites the log as the live map (`log` held: no change can come between the
    /// snapshot and the new file; lookups go on meanwhile).
    func compact() throws {
        try log.withLockedValue { file in
            try InodeIndex.compact(map.withLockedValue { $0 }, header: header, path: path, syscalls: syscalls, into: &file)
        }
    }

    /// Write `live` to a temporary file and rename it into place (`log` held, or the
    /// initializer).
    private static func compact(_ live: [UInt64: Link], header: [UInt8], path: String, syscalls: SystemCalls,
                                into file: inout LogFile) throws {
        var out = header
        for (ino, link) in live { InodeIndex.encode(op: 1, ino: ino, link: link, into: &out) }
        let tmp = path + ".tmp.\(getpid())"
        let t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard t >= 0 else { throw FSError.serverFault("cannot write \(tmp): \(FSError.current)") }
        defer { close(t) }
        try writeAll(t, out, syscalls: syscalls)
        syscalls.fsync(t)
        guard rename(tmp, path) == 0 else { throw FSError.serverFault("cannot rename \(tmp): \(FSError.current)") }
        let f = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard f >= 0 else { throw FSError.serverFault("cannot open \(path): \(FSError.current)") }
        if file.fd >= 0 { close(file.fd) }
        file.fd = f
        file.appended = 0
        file.length = off_t(out.count)
    }

    /// Append records (`log` held); compact once the log holds many more records than
    /// live entries. A record that cannot be written whole (the state directory's
    /// filesystem is full) is cut off again: a partial record would misalign every record
    /// appended after it. The entry then lives in memory only, which after a restart
    /// costs a bounded search.
    private func append(_ recs: [UInt8], count: Int, live: Int, to file: inout LogFile) {
        do {
            try InodeIndex.writeAll(file.fd, recs, syscalls: syscalls)
            file.length += off_t(recs.count)
        } catch {
            _ = ftruncate(file.fd, file.length)
        }
        file.appended += count
        if file.appended > max(65536, 2 * live) {
            try? InodeIndex.compact(map.withLockedValue { $0 }, header: header, path: path, syscalls: syscalls, into: &file)
        }
    }

    var count: Int { map.withLockedValue { $0.count } }

    func record(ino: UInt64, parent: UInt64, name: [UInt8]) {
        guard !knows(ino: ino, parent: parent, name: name) else { return }
        record([(ino, parent, name)])
    }

    /// Many records in one write: READDIRPLUS records every entry it hands a handle for,
    /// and after the first listing they are all known already (then nothing is written).
    func record(_ links: [(ino: UInt64, parent: UInt64, name: [UInt8])]) {
        guard !links.isEmpty else { return }
        log.withLockedValue { file in
            var recs: [UInt8] = []
            var n = 0
            let live: Int = map.withLockedValue { map in
                for l in links where !knows(ino: l.ino, parent: l.parent, name: l.name, in: map) {
                    let link = Link(parent: l.parent, name: l.name)
                    map[l.ino] = link
                    InodeIndex.encode(op: 1, ino: l.ino, link: link, into: &recs)
                    n += 1
                }
                return map.count
            }
            if n > 0 { append(recs, count: n, live: live, to: &file) }
        }
    }

    /// Would `record` leave the log file alone (nothing new to write)? The event
    /// loop's LOOKUP asks first, so it never writes the index file itself; this takes
    /// only the map's lock, never waits for a write.
    func knows(ino: UInt64, parent: UInt64, name: [UInt8]) -> Bool {
        map.withLockedValue { knows(ino: ino, parent: parent, name: name, in: $0) }
    }

    /// The one rule for "nothing to record": the root, over-long names, and links already held.
    private func knows(ino: UInt64, parent: UInt64, name: [UInt8], in map: [UInt64: Link]) -> Bool {
        guard ino != rootIno, name.count <= 255 else { return true }
        guard let old = map[ino] else { return false }
        return old.parent == parent && InodeIndex.sameBytes(old.name, name)
    }

    /// [UInt8] == compares element by element; this is memcmp.
    static func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    }

    /// Forget `ino` if its recorded link is (parent, name) (or any link when parent is nil).
    func remove(ino: UInt64, parent: UInt64? = nil, name: [UInt8]? = nil) {
        log.withLockedValue { file in
            let live: Int? = map.withLockedValue { map in
                guard let l = map[ino] else { return nil }
                if let parent, let name, l != Link(parent: parent, name: name) { return nil }
                map[ino] = nil
                return map.count
            }
            guard let live else { return }
            var rec: [UInt8] = []
            InodeIndex.encode(op: 2, ino: ino, link: Link(parent: 0, name: []), into: &rec)
            append(rec, count: 1, live: live, to: &file)
        }
    }

    /// The chain of (inode, name) from just below the root down to `ino`, or nil.
    func chain(to ino: UInt64) -> [(ino: UInt64, name: [UInt8])]? {
        map.withLockedValue { map in
            var out: [(ino: UInt64, name: [UInt8])] = []
            var cur = ino
            while cur != rootIno {
                guard let l = map[cur], out.count < 4096 else { return nil }
                out.append((cur, l.name))
                cur = l.parent
            }
            return out.reversed()
        }
    }

    private static func encode(op: UInt8, ino: UInt64, link: Link, into out: inout [UInt8]) {
        out.append(op)
        out.appendBE(ino)
        out.appendBE(link.parent)
        out.appendBE(UInt16(link.name.count))
        out += link.name
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let f = open(path, O_RDONLY | O_CLOEXEC)
        guard f >= 0 else { throw FSError.current }
        defer { close(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try sys { read(f, &buf, buf.count) }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    private static func writeAll(_ f: Int32, _ data: [UInt8], syscalls: SystemCalls) throws {
        var off = 0
        while off < data.count {
            let n = try data.withUnsafeBytes { p in
                try sys { syscalls.write(f, p.baseAddress! + off, data.count - off) }
            }
            off += n
        }
    }

    static func writeAll(_ f: Int32, _ data: [UInt8]) throws {
        try writeAll(f, data, syscalls: SystemCalls())
    }
}
