import HostFS

/// NFSv4 share reservations as the other protocols meet them (RFC 8881 §9.7):
/// an NFSv3 READ is refused while an NFSv4 open denies reading the file, a
/// WRITE or a SETATTR of the size while one denies writing. NFSv3 has no
/// open, so any denying open refuses it. The NFSv4 program installs the
/// table it keeps; NFSv3 asks through this, without knowing NFSv4.
public protocol ShareDenials: Sendable {
    /// Whether any open denies anything: while none does, NFSv3 skips the
    /// check (and the getattr it needs). Asked by every NFSv3 READ and WRITE:
    /// takes no lock, makes no system call.
    var anyDenial: Bool { get }
    /// Whether an open denies reading (`write` false) or writing the file.
    func denies(fsid: UInt64, fileid: UInt64, write: Bool) -> Bool
}

public final class ShareReservations: Sendable {
    /// Set once, when the NFSv4 program starts.
    private let installed = InstalledOnce<any ShareDenials>("share reservations")

    public init() {}

    /// Installs the NFSv4 program's table; a server has one, installed once.
    public func install(_ denials: any ShareDenials) {
        installed.install(denials)
    }

    /// Whether any NFSv4 open denies anything: the per-call question.
    public var anyDenial: Bool { installed.read { $0.anyDenial } ?? false }

    /// The installed denials when any open denies anything (nil: nothing to check).
    public var active: (any ShareDenials)? {
        anyDenial ? installed.value : nil
    }

    /// Whether an NFSv4 open denies this access to the file `attributes` describe.
    public func denies(_ attributes: FileAttributes, write: Bool) -> Bool {
        active?.denies(fsid: attributes.fsid, fileid: attributes.fileid, write: write) ?? false
    }
}
