import HostFS
import NIOConcurrencyHelpers

/// NFSv4 share reservations as the other protocols meet them (RFC 8881 §9.7):
/// an NFSv3 READ is refused while an NFSv4 open denies reading the file, a
/// WRITE or a SETATTR of the size while one denies writing. NFSv3 has no
/// open, so any denying open refuses it. The NFSv4 program installs the
/// table it keeps; NFSv3 asks through this, without knowing NFSv4.
public protocol ShareDenials: Sendable {
    /// Whether any open denies anything: while none does, NFSv3 skips the
    /// check (and the getattr it needs). Takes a lock, makes no system call.
    var anyDenial: Bool { get }
    /// Whether an open denies reading (`write` false) or writing the file.
    func denies(fsid: UInt64, fileid: UInt64, write: Bool) -> Bool
}

public final class ShareReservations: Sendable {
    private let installed = NIOLockedValueBox<(any ShareDenials)?>(nil)

    public init() {}

    public func install(_ denials: any ShareDenials) {
        installed.withLockedValue { $0 = denials }
    }

    /// The installed denials when any open denies anything (nil: nothing to check).
    public var active: (any ShareDenials)? {
        guard let denials = installed.withLockedValue({ $0 }), denials.anyDenial else { return nil }
        return denials
    }

    /// Whether an NFSv4 open denies this access to the file `attributes` describe.
    public func denies(_ attributes: FileAttributes, write: Bool) -> Bool {
        active?.denies(fsid: attributes.fsid, fileid: attributes.fileid, write: write) ?? false
    }
}
