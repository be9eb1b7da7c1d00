import CSupport
import Glibc

/// One guest stream connection to a host port, from the device's side: the
/// guest's (port) and ours, the host end of its socket pair, credit both
/// ways, and the bytes in between.
///
/// Not Sendable: owned by one device's event-loop thread.
final class GuestStream {
    struct Key: Hashable {
        var guestPort: UInt32
        var hostPort: UInt32
    }

    let key: Key
    /// Our end of the socket pair (non-blocking); the other end went to the delegate.
    let fd: Int32
    var credit: VsockCredit
    /// Guest bytes not yet written into the socket (at most our buffer size,
    /// since the guest may not send more than the credit we give).
    var toHost: [UInt8] = []
    var toHostStart = 0
    /// Host bytes read from the socket and not yet put into rx buffers (at
    /// most the guest's credit at the time of the read, and one read's size).
    var toGuest: [UInt8] = []
    var toGuestStart = 0

    /// SHUTDOWN flags the guest has sent (VsockHeader.shutdownReceive/Send).
    var guestShutdown: UInt32 = 0
    /// The socket gave end of file: the host side sends no more.
    var hostEOF = false
    /// We sent the guest a SHUTDOWN with these flags.
    var shutdownSent: UInt32 = 0
    /// shutdown(SHUT_WR) done on our end after the guest's SEND shutdown.
    var hostWriteClosed = false
    /// A host-initiated connection (CONNECT on the forward socket) waiting
    /// for the guest's RESPONSE.
    var connecting = false
    /// When the device gives up on the guest (no RESPONSE to our REQUEST, or
    /// no RST after our final SHUTDOWN), in monotonic nanoseconds.
    var deadline: UInt64?

    init(key: Key, fd: Int32, credit: VsockCredit) {
        self.key = key
        self.fd = fd
        self.credit = credit
    }

    var pendingToHost: Int { toHost.count - toHostStart }
    var pendingToGuest: Int { toGuest.count - toGuestStart }

    /// Whether to read the socket: there is credit, nothing left over, and
    /// the host side has not ended.
    var wantsToReadHost: Bool {
        !connecting && !hostEOF && pendingToGuest == 0 && credit.sendWindow > 0
            && guestShutdown & VsockHeader.shutdownReceive == 0
    }

    /// Writes what it can of `toHost` into the socket. Returns the bytes
    /// written, or -errno for a socket that cannot take more ever (EPIPE).
    func flushToHost() -> Int {
        var total = 0
        while pendingToHost > 0 {
            let n = toHost.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + toHostStart, pendingToHost, vsnfs_msg_nosignal())
            }
            if n > 0 {
                toHostStart += n
                total += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            return -Int(errno)
        }
        if pendingToHost == 0 {
            toHost.removeAll(keepingCapacity: true)
            toHostStart = 0
        } else if toHostStart > 65536 {
            toHost.removeFirst(toHostStart)
            toHostStart = 0
        }
        if total > 0 { credit.consume(UInt32(total)) }
        return total
    }

    /// Reads at most `limit` bytes from the socket into `toGuest`.
    /// Returns the bytes read, 0 at end of file, nil if none are ready, or -errno.
    func readFromHost(limit: Int) -> Int? {
        guard limit > 0 else { return nil }
        toGuestStart = 0
        var result: Int?
        // One allocation, read into directly (no staging copy).
        toGuest = [UInt8](unsafeUninitializedCapacity: limit) { buffer, count in
            count = 0
            while true {
                let n = recv(fd, buffer.baseAddress!, limit, 0)
                if n >= 0 {
                    count = n
                    result = n
                    return
                }
                if errno == EINTR { continue }
                result = (errno == EAGAIN || errno == EWOULDBLOCK) ? nil : -Int(errno)
                return
            }
        }
        return result
    }

    func closeSocket() { close(fd) }
}
