import HostFS

/// Who is about to change a file: an NFSv3 call (no client state), or an
/// NFSv4.1 client (whose own delegations do not stand in its way).
public enum FileChanger: Sendable, Hashable {
    case nfs3
    case nfs4(clientID: UInt64)
}

/// State that must be given back before a file changes: NFSv4 read
/// delegations (RFC 8881 §10.4). NFSv3's and NFSv4's modifying operations
/// ask before they touch the file; while a recall runs the answer is
/// `FSError.errno(EAGAIN)`, which both versions send as "retry later"
/// (NFS3ERR_JUKEBOX, NFS4ERR_DELAY).
public protocol FileChangeGate: Sendable {
    /// Cheap: whether any state could conflict at all (no lock, no syscall).
    var mayConflict: Bool { get }
    /// Throws `FSError.errno(EAGAIN)` (and starts recalls) while state of
    /// another holder covers the file. Runs on the thread pool.
    func willChange(_ file: ObjectHandle, by changer: FileChanger, as credentials: Credentials) throws
}

/// The server's one gate, installed by the NFSv4 program when it starts;
/// empty (every change allowed) without one.
public final class FileChangeGates: Sendable {
    /// Set once, when the NFSv4 program starts (every NFSv3 WRITE asks `mayConflict`).
    private let installed = InstalledOnce<any FileChangeGate>("file change gate")

    public init() {}

    /// Installs the NFSv4 program's gate; a server has one, installed once.
    public func install(_ gate: any FileChangeGate) {
        installed.install(gate)
    }

    private var current: (any FileChangeGate)? { installed.value }

    /// Whether the changes below can be refused at all (the event-loop paths
    /// that must not call the filesystem fall back to the thread pool then).
    public var mayConflict: Bool { installed.read { $0.mayConflict } ?? false }

    /// Before writing to, truncating or setting attributes of `file`.
    public func willChange(_ file: ObjectHandle, by changer: FileChanger, as credentials: Credentials,
                           fs: HostFileSystem) throws {
        guard mayConflict, let gate = current else { return }
        try gate.willChange(file, by: changer, as: credentials)
    }

    /// Before removing or renaming `name` in `directory` (or renaming over it):
    /// the object the name names, if there is one.
    public func willChange(_ directory: ObjectHandle, _ name: [UInt8], by changer: FileChanger,
                           as credentials: Credentials, fs: HostFileSystem) throws {
        guard mayConflict, let gate = current else { return }
        guard let node = try? fs.lookup(directory, name, as: credentials) else { return }
        try gate.willChange(node.handle, by: changer, as: credentials)
    }
}
