import Glibc

/// Unprivileged mode: a persisted map inode -> (parent inode, name) for one export, so
/// an inode handle can be found again by walking names down from the export root.
///
/// File `<state>/index-<exportID>`: a header (magic, root dev, root inode) then
/// append-only records `op(1) ino(8) parent(8) nameLen(2) name`; op 1 = set, 2 = delete.
/// Loaded and compacted at start; a header for another root discards the file. Losing
/// records (crash, host-side renames) only costs a bounded search of the export tree.
final class InodeIndex: @unchecked Sendable {
    struct Link: Equatable {
        var parent: UInt64
        var name: [UInt8]
    }
    private static let magic: [UInt8] = Array("VSNFSIX1".utf8)
    private let lock = Lock()
    private var map: [UInt64: Link] = [:]
    private var fd: Int32 = -1
    private var appended = 0
    /// Bytes in the log file: where the next record starts.
    private var length: off_t = 0
    private let header: [UInt8]
    let path: String
    let rootIno: UInt64

    init(path: String, rootDev: UInt64, rootIno: UInt64) throws {
        self.path = path
        self.rootIno = rootIno
        var header = InodeIndex.magic
        header.appendBE(rootDev)
        header.appendBE(rootIno)
        self.header = header
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
                    map[ino] = Link(parent: parent, name: Array(data[i + 19..<i + 19 + n]))
                } else if op == 2 {
                    map[ino] = nil
                } else {
                    break   // not a record: keep what came before, not what a misread would make of the rest
                }
                i += 19 + n
            }
        }
        try compact()
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Write the live map to a temporary file and rename it into place (caller holds the
    /// lock, or is the initializer).
    private func compact() throws {
        var out = header
        for (ino, link) in map { InodeIndex.encode(op: 1, ino: ino, link: link, into: &out) }
        let tmp = path + ".tmp.\(getpid())"
        let t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard t >= 0 else { throw FSError.serverFault("cannot write \(tmp): \(FSError.current)") }
        defer { close(t) }
        try InodeIndex.writeAll(t, out)
        fsync(t)
        guard rename(tmp, path) == 0 else { throw FSError.serverFault("cannot rename \(tmp): \(FSError.current)") }
        let f = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard f >= 0 else { throw FSError.serverFault("cannot open \(path): \(FSError.current)") }
        if fd >= 0 { close(fd) }
        fd = f
        appended = 0
        length = off_t(out.count)
    }

    /// Append one record; compact once the log holds many more records than live entries.
    /// A record that cannot be written whole (the state directory's filesystem is full) is
    /// cut off again: a partial record would misalign every record appended after it. The
    /// entry then lives in memory only, which after a restart costs a bounded search.
    private func append(_ rec: [UInt8]) {
        do {
            try InodeIndex.writeAll(fd, rec)
            length += off_t(rec.count)
        } catch {
            _ = ftruncate(fd, length)
        }
        appended += 1
        if appended > max(65536, 2 * map.count) { try? compact() }
    }

    var count: Int { lock.withLock { map.count } }

    func record(ino: UInt64, parent: UInt64, name: [UInt8]) {
        lock.withLock { recordLocked(ino: ino, parent: parent, name: name) }
    }

    /// Many records under one lock: READDIRPLUS records every entry it hands a handle for,
    /// and after the first listing they are all known already.
    func record(_ links: [(ino: UInt64, parent: UInt64, name: [UInt8])]) {
        guard !links.isEmpty else { return }
        lock.withLock {
            for l in links { recordLocked(ino: l.ino, parent: l.parent, name: l.name) }
        }
    }

    /// Would `record` leave the log file alone (nothing new to write)? The event
    /// loop's LOOKUP asks first, so it never writes the index file itself.
    func knows(ino: UInt64, parent: UInt64, name: [UInt8]) -> Bool {
        lock.withLock { knowsLocked(ino: ino, parent: parent, name: name) }
    }

    /// The one rule for "nothing to record": the root, over-long names, and links already held.
    private func knowsLocked(ino: UInt64, parent: UInt64, name: [UInt8]) -> Bool {
        guard ino != rootIno, name.count <= 255 else { return true }
        guard let old = map[ino] else { return false }
        return old.parent == parent && InodeIndex.sameBytes(old.name, name)
    }

    private func recordLocked(ino: UInt64, parent: UInt64, name: [UInt8]) {
        guard !knowsLocked(ino: ino, parent: parent, name: name) else { return }
        let link = Link(parent: parent, name: name)
        map[ino] = link
        var rec: [UInt8] = []
        InodeIndex.encode(op: 1, ino: ino, link: link, into: &rec)
        append(rec)
    }

    /// [UInt8] == compares element by element; this is memcmp.
    static func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    }

    /// Forget `ino` if its recorded link is (parent, name) (or any link when parent is nil).
    func remove(ino: UInt64, parent: UInt64? = nil, name: [UInt8]? = nil) {
        lock.withLock {
            guard let l = map[ino] else { return }
            if let parent, let name, l != Link(parent: parent, name: name) { return }
            map[ino] = nil
            var rec: [UInt8] = []
            InodeIndex.encode(op: 2, ino: ino, link: Link(parent: 0, name: []), into: &rec)
            append(rec)
        }
    }

    /// The chain of (inode, name) from just below the root down to `ino`, or nil.
    func chain(to ino: UInt64) -> [(ino: UInt64, name: [UInt8])]? {
        lock.withLock {
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

    static func writeAll(_ f: Int32, _ data: [UInt8]) throws {
        var off = 0
        while off < data.count {
            let n = try data.withUnsafeBytes { p in
                try sys { write(f, p.baseAddress! + off, data.count - off) }
            }
            off += n
        }
    }
}
