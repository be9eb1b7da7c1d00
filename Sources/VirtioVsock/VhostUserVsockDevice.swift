import CSupport
import Glibc
import Logging
import NIOConcurrencyHelpers

/// A guest connection the device accepted, handed to its owner as the other
/// end of a socket pair. The peer identity is the device's configured CID,
/// never anything the guest sent.
public struct VsockGuestConnection: Sendable {
    /// A connected AF_UNIX stream socket; the receiver owns it and must close it.
    public let fd: Int32
    public let guestCID: UInt64
    public let guestPort: UInt32
    public let hostPort: UInt32
}

public struct VhostUserVsockConfiguration: Sendable {
    /// The Unix socket the front-end (QEMU's vhost-user-vsock-pci chardev) connects to.
    public var socketPath: String
    /// The guest's CID, given to the guest in the config space and required
    /// as the source of every packet it sends.
    public var guestCID: UInt64
    /// Host ports guests may connect to; a request for any other is reset.
    public var ports: Set<UInt32>
    /// The receive buffer each connection advertises (buf_alloc).
    public var bufferSize: UInt32
    /// Connections beyond this many are refused with a reset.
    public var maximumConnections: Int
    /// Opt-in forwarding of every other port, as Firecracker's hybrid vsock
    /// does it: a guest connection to host port P goes to the Unix socket
    /// `forwardBase_P` (reset if nothing listens there), and a host process
    /// that connects to `forwardBase` and sends `CONNECT P\n` reaches guest
    /// port P (answered `OK hostport\n` once the guest accepts). nil: the
    /// guest reaches nothing on the host but `ports`, and nothing reaches it.
    public var forwardBase: String?
    /// How long a host-initiated connection waits for the guest's RESPONSE.
    public var connectTimeout: Double
    /// How long, after the host side closed and we sent SHUTDOWN, the guest
    /// has to answer with its RST before the device resets the connection.
    public var closeTimeout: Double

    public init(socketPath: String, guestCID: UInt64, ports: Set<UInt32>, bufferSize: UInt32 = 256 * 1024,
                maximumConnections: Int = 256, forwardBase: String? = nil, connectTimeout: Double = 10,
                closeTimeout: Double = 10) {
        self.socketPath = socketPath
        self.guestCID = guestCID
        self.ports = ports
        self.bufferSize = bufferSize
        self.maximumConnections = maximumConnections
        self.forwardBase = forwardBase
        self.connectTimeout = connectTimeout
        self.closeTimeout = closeTimeout
    }
}

/// What the device is doing, for status output and tests.
public struct VhostUserVsockStatus: Sendable, Equatable {
    public var frontEndConnected = false
    /// Front-end connections accepted so far.
    public var frontEndSessions = 0
    public var connections = 0
    /// Why the device stopped serving its queues, until the front-end resets it.
    public var brokenReason: String?
    /// Packets dropped because their source CID was not the configured one.
    public var foreignSourcePackets = 0
    /// Streams reset because the guest broke their rules (credit, lengths).
    public var streamsResetForViolations = 0
}

/// A vhost-user-vsock device back-end: listens on a Unix socket for the
/// front-end, serves the guest's rx and tx virtqueues on a thread of its own,
/// and hands each guest connection to a host port in `ports` to `onConnection`
/// as a socket. One device per VM (one socket, one CID).
public final class VhostUserVsockDevice: Sendable {
    public let configuration: VhostUserVsockConfiguration
    private let wakeFD: Int32
    private let state: DeviceSharedState

    /// Binds the socket (replacing a stale socket file at the path) and starts
    /// the device's thread.
    /// `admit` is asked before each guest connection to a served port is handed
    /// on (the process's descriptor budget): false resets the guest's connection.
    public init(configuration: VhostUserVsockConfiguration, logger: Logger,
                admit: @escaping @Sendable () -> Bool = { true },
                onConnection: @escaping @Sendable (VsockGuestConnection) -> Void) throws {
        self.configuration = configuration
        let listenFD = try Self.bindListener(path: configuration.socketPath)
        var forwardFD: Int32 = -1
        if let base = configuration.forwardBase {
            do {
                forwardFD = try Self.bindListener(path: base)
            } catch {
                close(listenFD)
                throw error
            }
        }
        let wake = vsnfs_eventfd()
        guard wake >= 0 else {
            close(listenFD)
            if forwardFD >= 0 { close(forwardFD) }
            throw VirtioVsockError.system(call: "eventfd", errno: -wake)
        }
        wakeFD = wake
        let state = DeviceSharedState()
        self.state = state
        let loopParts = LoopParts(configuration: configuration, logger: logger, admit: admit, onConnection: onConnection,
                                  listenFD: listenFD, forwardListenFD: forwardFD, wakeFD: wake, state: state)
        do {
            let thread = try startThread {
                DeviceLoop(parts: loopParts).run()
            }
            state.mutex.withLockedValue { $0.thread = thread }
        } catch {
            close(listenFD)
            if forwardFD >= 0 { close(forwardFD) }
            close(wake)
            throw error
        }
    }

    /// A snapshot of the device's state.
    public var status: VhostUserVsockStatus { state.mutex.withLockedValue { $0.status } }

    /// Stops the thread, closes every connection and the listener, removes the
    /// socket file. Waits for the thread to end.
    public func shutdown() {
        let thread: pthread_t? = state.mutex.withLockedValue { s in
            s.stopping = true
            defer { s.thread = nil }
            return s.thread
        }
        _ = vsnfs_eventfd_signal(wakeFD)
        if let thread { pthread_join(thread, nil) }
    }

    deinit {
        shutdown()
        close(wakeFD)
    }

    private static func bindListener(path: String) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw VirtioVsockError.system(call: "bind \(path)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw VirtioVsockError.system(call: "socket", errno: errno) }
        var st = stat()
        if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        // Whoever connects is taken for this VM's front-end (or, on the forward
        // socket, for a host process allowed to reach the guest): owner only,
        // set before listen(2) so nobody can connect in between. A QEMU
        // running as another user needs the file's group or mode changed.
        guard rc == 0, chmod(path, 0o600) == 0, listen(fd, 4) == 0 else {
            let e = errno
            close(fd)
            throw VirtioVsockError.system(call: "bind \(path)", errno: e)
        }
        return fd
    }
}

/// What the device thread starts with (all Sendable, so it can cross into the thread).
struct LoopParts: Sendable {
    let configuration: VhostUserVsockConfiguration
    let logger: Logger
    let admit: @Sendable () -> Bool
    let onConnection: @Sendable (VsockGuestConnection) -> Void
    let listenFD: Int32
    /// The forward socket BASE (host processes send `CONNECT P\n`), or -1.
    let forwardListenFD: Int32
    let wakeFD: Int32
    let state: DeviceSharedState
}

/// State the device's thread and its owner share: the status snapshot and
/// the stop request. A class of its own so the thread does not keep the
/// device alive (the device's deinit stops the thread).
final class DeviceSharedState: Sendable {
    struct Shared {
        var status = VhostUserVsockStatus()
        var stopping = false
        var thread: pthread_t?
    }
    let mutex = NIOLockedValueBox(Shared())
    func publish(_ status: VhostUserVsockStatus) { mutex.withLockedValue { $0.status = status } }
    var isStopping: Bool { mutex.withLockedValue { $0.stopping } }
}

private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

private func startThread(_ body: @escaping @Sendable () -> Void) throws -> pthread_t {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { raw in
        let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
        body.run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw VirtioVsockError.system(call: "pthread_create", errno: rc)
    }
    return thread
}
