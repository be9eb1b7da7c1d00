#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOConcurrencyHelpers

/// How many connections the listeners of one process hold at once. Every connection
/// is a descriptor; past the budget the listeners stop accepting, so the descriptors the
/// open-file cache and the server itself need stay free and existing clients keep being
/// served. Connections past it wait in the listen backlog and are accepted as others close.
///
/// Hitting the budget, or `accept` failing for want of descriptors, is logged once per
/// burst: again only after no listener has had to wait for `quietPeriod`.
public final class ConnectionBudget: Sendable {
    /// Connections held at once, across every listener.
    public let limit: Int
    /// RLIMIT_NOFILE and the descriptors kept for open files, for the log line.
    public let descriptorLimit: Int
    public let keptForFiles: Int
    private let logger: Logger
    static let quietPeriod: Duration = .seconds(5)

    private struct State {
        /// Descriptors held by connections: one per accepted socket, two per
        /// vhost-user guest connection.
        var open = 0
        /// Listeners waiting for a connection to close, by listener.
        var waiters: [ObjectIdentifier: @Sendable () -> Void] = [:]
        var withholding = 0
        var lastWithheld: ContinuousClock.Instant?
    }
    /// NIO's pthread lock: every event loop takes it as connections open and close,
    /// and `Synchronization.Mutex`'s contended path is invisible to the thread sanitizer.
    private let state = NIOLockedValueBox(State())

    public init(limit: Int, descriptorLimit: Int, keptForFiles: Int, logger: Logger) {
        self.limit = max(1, limit)
        self.descriptorLimit = descriptorLimit
        self.keptForFiles = keptForFiles
        self.logger = logger
    }

    /// The budget RLIMIT_NOFILE leaves: the soft limit, less the descriptors open now,
    /// those `listeners` will take, the `keptForFiles` of the open-file cache, and a
    /// reserve (1/32 of the limit, at least 8) for what the server opens for a moment.
    public static func fromDescriptorLimit(keptForFiles: Int, listeners: Int, logger: Logger) -> ConnectionBudget {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let soft = limit.rlim_cur == rlim_t.max ? 1 << 20 : Int(clamping: limit.rlim_cur)
        let reserve = max(8, soft / 32)
        let left = soft - openDescriptorCount() - listeners - keptForFiles - reserve
        return ConnectionBudget(limit: left, descriptorLimit: soft, keptForFiles: keptForFiles, logger: logger)
    }

    /// Descriptors open in this process (/proc/self/fd); 32 if that cannot be read.
    static func openDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 32 }
        defer { closedir(dir) }
        var count = -1   // the descriptor opendir itself holds
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count)
    }

    public var openConnections: Int { self.state.withLockedValue { $0.open } }

    /// True if one more connection may be accepted now. Otherwise `wake` is called once
    /// a connection closes (the caller asks again), and the wait is logged once per burst.
    func admit(_ listener: ObjectIdentifier, wake: @escaping @Sendable () -> Void) -> Bool {
        let (admitted, open, newBurst) = self.state.withLockedValue { state -> (Bool, Int, Bool) in
            if state.open < self.limit { return (true, state.open, false) }
            state.waiters[listener] = wake
            return (false, state.open, Self.startWithholding(&state))
        }
        if newBurst {
            self.logger.warning("accept: connection limit reached (\(open) open; file descriptor limit \(self.descriptorLimit), \(self.keptForFiles) of them kept for open files); raise `ulimit -n` to serve more at once; the others wait until connections close")
        }
        return admitted
    }

    /// `accept` failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
    /// the listener waits until a connection closes (`wake`) or its own retry timer fires;
    /// logged once per burst.
    func outOfDescriptors(_ listener: ObjectIdentifier, errno code: Int32, wake: @escaping @Sendable () -> Void) {
        let (open, newBurst) = self.state.withLockedValue { state -> (Int, Bool) in
            state.waiters[listener] = wake
            return (state.open, Self.startWithholding(&state))
        }
        if newBurst {
            switch code {
            case EMFILE:
                self.logger.warning("accept: out of file descriptors (limit \(self.descriptorLimit), \(open) connections open); raise `ulimit -n`; accepting again as descriptors free up")
            case ENFILE:
                self.logger.warning("accept: the system is out of file descriptors (\(open) connections open); raise fs.file-max; accepting again as descriptors free up")
            default:
                self.logger.warning("accept: \(String(cString: strerror(code))) (\(open) connections open); accepting again as memory frees up")
            }
        }
    }

    /// A listener that waited goes on (it was woken).
    func stopWithholding(_ listener: ObjectIdentifier) {
        self.state.withLockedValue { state in
            state.waiters[listener] = nil
            state.withholding = max(0, state.withholding - 1)
            state.lastWithheld = .now
        }
    }

    /// A new burst if no listener waits now and none waited within the quiet period.
    private static func startWithholding(_ state: inout State) -> Bool {
        let quiet = state.lastWithheld.map { $0.duration(to: .now) > quietPeriod } ?? true
        let newBurst = state.withholding == 0 && quiet
        state.withholding += 1
        state.lastWithheld = .now
        return newBurst
    }

    /// For the vhost-user device, which answers a guest's connection request at once
    /// and has no backlog to leave it in: true, and `descriptors` counted open until
    /// `closed(descriptors:)`, if the budget has room for them; otherwise false (the
    /// device resets the guest's connection; the guest may try again), logged once per
    /// burst. A device connection holds two descriptors, the socket pair's two ends.
    func admitWithoutWaiting(descriptors: Int) -> Bool {
        let (admitted, open, newBurst) = self.state.withLockedValue { state -> (Bool, Int, Bool) in
            if state.open + descriptors <= self.limit {
                state.open += descriptors
                return (true, state.open, false)
            }
            let quiet = state.lastWithheld.map { $0.duration(to: .now) > Self.quietPeriod } ?? true
            state.lastWithheld = .now
            return (false, state.open, quiet && state.withholding == 0)
        }
        if newBurst {
            self.logger.warning("vhost-user: connection limit reached (\(open) descriptors held by connections; file descriptor limit \(self.descriptorLimit), \(self.keptForFiles) of them kept for open files); guest connections are reset until others close; raise `ulimit -n` to serve more at once")
        }
        return admitted
    }

    func opened() {
        self.state.withLockedValue { $0.open += 1 }
    }

    func closed(descriptors: Int = 1) {
        let waiters = self.state.withLockedValue { state -> [@Sendable () -> Void] in
            state.open -= descriptors
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for wake in waiters { wake() }
    }
}

/// On a listening channel: accepts only while the `ConnectionBudget` has room, counts the
/// connections it accepts until they close, and after `accept` fails for want of
/// descriptors waits for a connection to close (at most `retryInterval`) instead of
/// trying again at once (the listen socket stays readable: that spun a core).
final class AcceptGate: ChannelDuplexHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel
    typealias OutboundIn = Never

    static let retryInterval: TimeAmount = .seconds(1)

    private let budget: ConnectionBudget
    private var context: ChannelHandlerContext?
    private var readWithheld = false
    /// `accept` failed with `lastErrno`: the next read waits.
    private var outOfDescriptors = false
    private var lastErrno: Int32 = EMFILE
    private var retry: Scheduled<Void>?

    init(budget: ConnectionBudget) {
        self.budget = budget
    }

    private var id: ObjectIdentifier { ObjectIdentifier(self) }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.retry?.cancel()
        self.retry = nil
        self.context = nil
        if self.readWithheld { self.budget.stopWithholding(self.id) }
    }

    func read(context: ChannelHandlerContext) {
        guard !self.readWithheld else { return }
        if self.outOfDescriptors {
            self.readWithheld = true
            self.budget.outOfDescriptors(self.id, errno: self.lastErrno, wake: self.wakeOnLoop(context))
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            self.retry = context.eventLoop.scheduleTask(in: Self.retryInterval) { bound.value.wake() }
            return
        }
        if self.budget.admit(self.id, wake: self.wakeOnLoop(context)) {
            context.read()
        } else {
            self.readWithheld = true
        }
    }

    private func wakeOnLoop(_ context: ChannelHandlerContext) -> @Sendable () -> Void {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        return { loop.execute { bound.value.wake() } }
    }

    /// A connection closed, or the retry interval passed: ask again.
    private func wake() {
        guard self.readWithheld, let context = self.context else { return }
        self.retry?.cancel()
        self.retry = nil
        self.readWithheld = false
        self.outOfDescriptors = false
        self.budget.stopWithholding(self.id)
        self.read(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = Self.unwrapInboundIn(data)
        let budget = self.budget
        budget.opened()
        accepted.closeFuture.whenComplete { _ in budget.closed() }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode) {
            // The listener stays open (NIO does not close it for these); the next read waits.
            self.outOfDescriptors = true
            self.lastErrno = error.errnoCode
            return
        }
        if let error = error as? IOError, error.errnoCode == ECONNABORTED {
            return   // the client gave up before we accepted it
        }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension AcceptGate: Sendable {}
