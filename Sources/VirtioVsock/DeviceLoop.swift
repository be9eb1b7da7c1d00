import CSupport
import Glibc
import Logging

/// The device's thread: one poll(2) loop over the listener, the front-end's
/// socket, the kick eventfds and every connection's socket. All device state
/// lives here and is touched by this thread only.
///
/// Not Sendable: created and run on the device thread.
final class DeviceLoop {
    static let rxQueue = 0
    static let txQueue = 1
    /// The largest payload one packet may carry (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
    static let maximumPayload = 64 * 1024
    /// Control packets waiting for rx buffers; more means the guest stopped
    /// reading while still sending, and further replies are dropped.
    static let maximumQueuedControl = 4096
    /// Chains taken from the tx queue per turn, so rx and sockets get a turn too.
    static let txBatch = 256

    let configuration: VhostUserVsockConfiguration
    var logger: Logger
    let admit: @Sendable () -> Bool
    let onConnection: @Sendable (VsockGuestConnection) -> Void
    let listenFD: Int32
    let forwardListenFD: Int32
    let wakeFD: Int32
    let shared: DeviceSharedState
    /// Host processes connected to the forward socket, and the bytes of
    /// their `CONNECT P\n` line so far.
    var connectClients: [Int32: [UInt8]] = [:]
    /// The next local port for a host-initiated connection.
    var nextHostPort: UInt32 = 49152

    var frontEnd: Int32 = -1
    let backend: VhostUserBackend
    var streams: [GuestStream.Key: GuestStream] = [:]
    /// Header-only packets for the guest, in order (responses, resets,
    /// shutdowns, credit updates); sent before data.
    var control: [VsockHeader] = []
    var creditUpdateQueued: Set<GuestStream.Key> = []
    /// Streams whose socket poll(2) found readable (or hung up).
    var hostReadable: Set<GuestStream.Key> = []
    var status = VhostUserVsockStatus()
    var loggedForeignSource = false
    var loggedControlOverflow = false
    /// The last turn stopped with chains still available in tx.
    var moreWork = false

    init(parts: LoopParts) {
        configuration = parts.configuration
        logger = parts.logger
        logger[metadataKey: "vhost-user"] = "\(parts.configuration.socketPath)"
        logger[metadataKey: "cid"] = "\(parts.configuration.guestCID)"
        admit = parts.admit
        onConnection = parts.onConnection
        listenFD = parts.listenFD
        forwardListenFD = parts.forwardListenFD
        wakeFD = parts.wakeFD
        shared = parts.state
        backend = VhostUserBackend(guestCID: parts.configuration.guestCID)
    }

    // MARK: - The loop

    private enum Source {
        case wake, listener, frontEnd, forwardListener
        case connectClient(Int32)
        case kick(Int)
        case stream(GuestStream.Key)
    }

    func run() {
        logger.info("vhost-user-vsock device listening")
        while !shared.isStopping {
            var fds: [pollfd] = []
            var sources: [Source] = []
            func watch(_ fd: Int32, _ events: Int32, _ source: Source) {
                fds.append(pollfd(fd: fd, events: Int16(events), revents: 0))
                sources.append(source)
            }
            watch(wakeFD, POLLIN, .wake)
            watch(listenFD, POLLIN, .listener)
            if frontEnd >= 0 { watch(frontEnd, POLLIN, .frontEnd) }
            for i in 0..<VhostUserBackend.queueCount {
                let v = backend.vrings[i]
                if v.queue != nil, v.kickFD >= 0 { watch(v.kickFD, POLLIN, .kick(i)) }
            }
            let rxActive = status.brokenReason == nil && backend.activeQueue(Self.rxQueue) != nil
            if forwardListenFD >= 0 && rxActive && backend.activeQueue(Self.txQueue) != nil {
                watch(forwardListenFD, POLLIN, .forwardListener)
            }
            for fd in connectClients.keys { watch(fd, POLLIN, .connectClient(fd)) }
            for (key, s) in streams {
                var events: Int32 = 0
                if rxActive && s.wantsToReadHost && !hostReadable.contains(key) { events |= POLLIN }
                if s.pendingToHost > 0 { events |= POLLOUT }
                if events != 0 { watch(s.fd, events, .stream(key)) }
            }
            // Work left over from the last turn (a full tx batch) must not
            // wait for an event that may never come.
            let n = poll(&fds, nfds_t(fds.count), moreWork ? 0 : pollTimeout())
            if n < 0 {
                if errno == EINTR { continue }
                logger.error("poll failed: \(String(cString: strerror(errno)))")
                break
            }
            for (i, p) in fds.enumerated() where p.revents != 0 {
                switch sources[i] {
                case .wake:
                    _ = vsnfs_eventfd_drain(wakeFD)
                case .listener:
                    acceptFrontEnd()
                case .forwardListener:
                    acceptConnectClient()
                case .connectClient(let fd):
                    readConnectLine(fd)
                case .frontEnd:
                    if !serveFrontEndMessage() { disconnectFrontEnd() }
                case .kick(let q):
                    if backend.vrings[q].kickFD >= 0 { _ = vsnfs_eventfd_drain(backend.vrings[q].kickFD) }
                case .stream(let key):
                    guard let s = streams[key] else { continue }
                    if Int32(p.revents) & (POLLIN | POLLHUP | POLLERR) != 0 { hostReadable.insert(key) }
                    if s.pendingToHost > 0 && Int32(p.revents) & (POLLOUT | POLLHUP | POLLERR) != 0 {
                        flushToHost(s)
                    }
                }
            }
            expireDeadlines()
            serviceQueues()
            publish()
        }
        tearDown()
    }

    private func tearDown() {
        if frontEnd >= 0 { disconnectFrontEnd() }
        close(listenFD)
        unlink(configuration.socketPath)
        if forwardListenFD >= 0 {
            close(forwardListenFD)
            if let base = configuration.forwardBase { unlink(base) }
        }
        publish()
        logger.info("vhost-user-vsock device stopped")
    }

    func publish() {
        status.frontEndConnected = frontEnd >= 0
        status.connections = streams.count
        shared.publish(status)
    }

    // MARK: - The front-end

    private func acceptFrontEnd() {
        let fd = accept(listenFD, nil, nil)
        guard fd >= 0 else { return }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        guard frontEnd < 0 else {
            logger.warning("a second vhost-user front-end connected; refused (one front-end per device)")
            close(fd)
            return
        }
        // Messages are read whole once poll(2) reports the first byte; a
        // front-end that stalls inside one must not hold the device forever.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        frontEnd = fd
        status.frontEndSessions += 1
        logger.info("vhost-user front-end connected")
    }

    /// The front-end went away (guest shut down, QEMU restarted): everything
    /// it set up goes, and the device waits for the next one.
    private func disconnectFrontEnd() {
        close(frontEnd)
        frontEnd = -1
        resetDevice()
        logger.info("vhost-user front-end disconnected; device reset")
    }

    private func resetDevice() {
        backend.reset()
        resetStreams()
        status.brokenReason = nil
    }

    /// Closes every connection's socket (their owners see end of file); the
    /// guest's side of them is gone with its driver's reset.
    func resetStreams() {
        for s in streams.values { s.closeSocket() }
        for fd in connectClients.keys { close(fd) }
        connectClients.removeAll()
        streams.removeAll()
        control.removeAll()
        creditUpdateQueued.removeAll()
        hostReadable.removeAll()
    }

    /// Reads, handles and answers one message. False if the front-end is gone
    /// or broke the protocol (the connection is then closed).
    private func serveFrontEndMessage() -> Bool {
        var headerBytes = [UInt8](repeating: 0, count: VhostUserHeader.size)
        var fds = [Int32](repeating: -1, count: 16)
        var fdCount: Int32 = 0
        let n = headerBytes.withUnsafeMutableBytes { raw in
            vsnfs_recv_with_fds(frontEnd, raw.baseAddress!, VhostUserHeader.size, &fds, 16, &fdCount)
        }
        var passed = Array(fds[0..<Int(max(fdCount, 0))])
        func fail(_ why: String) -> Bool {
            for fd in passed { close(fd) }
            if !why.isEmpty { logger.warning("vhost-user front-end: \(why)") }
            return false
        }
        if n == 0 { return fail("") }
        if n < 0 { return fail("receive failed: \(String(cString: strerror(Int32(-n))))") }
        if n < VhostUserHeader.size && !readFully(&headerBytes, from: Int(n)) { return fail("short header") }
        let header = VhostUserHeader(bytes: headerBytes)
        guard header.flags & 0x3 == VhostUserHeader.version else { return fail("protocol version \(header.flags & 0x3)") }
        guard header.payloadSize <= VhostUserHeader.maximumPayload else {
            return fail("payload of \(header.payloadSize) bytes for request \(header.request)")
        }
        var payload = [UInt8](repeating: 0, count: Int(header.payloadSize))
        if !payload.isEmpty && !readFully(&payload, from: 0) { return fail("short payload") }

        logger.debug("vhost-user request", metadata: [
            "request": "\(VhostUserRequest(rawValue: header.request).map { "\($0)" } ?? "\(header.request)")",
            "size": "\(header.payloadSize)", "fds": "\(passed.count)",
        ])
        let ackNegotiated = backend.protocolFeatures & VhostUserProtocolFeature.replyAck != 0
        let known = VhostUserRequest(rawValue: header.request) != nil
        var reply: [UInt8]?
        var succeeded = true
        let taken = passed
        passed = []
        do {
            let (answer, effect) = try backend.handle(request: header.request, payload: payload, fds: taken)
            reply = answer
            apply(effect)
            if header.request == VhostUserRequest.setVringKick.rawValue { status.brokenReason = nil }
        } catch {
            succeeded = false
            logger.warning("vhost-user request \(header.request) refused: \(error)")
            if !known && !(ackNegotiated && header.needsReply) {
                // The front-end may wait for an answer we cannot give.
                return false
            }
            if VhostUserBackend.hasOwnReply(header.request) {
                // GET_CONFIG's failure reply is its header without data.
                reply = header.request == VhostUserRequest.getConfig.rawValue ? Array(payload.prefix(12)) : nil
                if reply == nil { return false }
            }
        }
        if reply == nil && ackNegotiated && header.needsReply && !VhostUserBackend.hasOwnReply(header.request) {
            var w = LittleEndianWriter()
            w.u64(succeeded ? 0 : 1)
            reply = w.bytes
        }
        if let reply {
            let out = VhostUserHeader(request: header.request, flags: VhostUserHeader.version | VhostUserHeader.replyFlag,
                                      payloadSize: UInt32(reply.count)).bytes + reply
            let sent = out.withUnsafeBytes { vsnfs_send_with_fds(frontEnd, $0.baseAddress!, out.count, nil, 0) }
            guard sent == out.count else { return fail("reply not sent") }
        }
        return true
    }

    private func readFully(_ buffer: inout [UInt8], from start: Int) -> Bool {
        var done = start
        while done < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(frontEnd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    private func apply(_ effect: VhostUserBackend.Effect) {
        switch effect {
        case .none:
            break
        case .reset:
            resetStreams()
            status.brokenReason = nil
        case .ringStopped(let q):
            // The driver stopped the device (reset, reboot, VM stop): its
            // sockets are gone or will be, so ours go too.
            if q == Self.txQueue && !streams.isEmpty {
                logger.info("tx ring stopped; closing \(streams.count) connection(s)")
                resetStreams()
            }
        }
    }

    // MARK: - Queues

    func markBroken(_ error: Error) {
        guard status.brokenReason == nil else { return }
        status.brokenReason = "\(error)"
        logger.error("guest broke the virtqueue rules; device stopped until the front-end resets it: \(error)")
    }

    private func serviceQueues() {
        moreWork = false
        guard status.brokenReason == nil else { return }
        do {
            if let tx = backend.activeQueue(Self.txQueue) {
                var handled = 0
                while handled < Self.txBatch, let chain = try tx.pop() {
                    handleGuestPacket(chain)
                    tx.push(head: chain.head, length: 0)
                    handled += 1
                }
                if handled > 0 { notify(Self.txQueue, tx) }
                if handled == Self.txBatch { moreWork = try tx.pendingCount() > 0 }
            }
            if let rx = backend.activeQueue(Self.rxQueue) {
                if try fillReceiveQueue(rx) > 0 { notify(Self.rxQueue, rx) }
            }
        } catch {
            markBroken(error)
        }
    }

    private func notify(_ index: Int, _ queue: SplitVirtqueue) {
        let fd = backend.vrings[index].callFD
        if fd >= 0 && queue.driverWantsInterrupt() { _ = vsnfs_eventfd_signal(fd) }
    }

    // MARK: - Deadlines

    static func monotonicNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    static func deadline(after seconds: Double) -> UInt64 {
        monotonicNanoseconds() + UInt64(max(0, seconds) * 1e9)
    }

    /// Milliseconds until the nearest stream deadline, or -1 (none).
    private func pollTimeout() -> Int32 {
        guard let nearest = streams.values.compactMap(\.deadline).min() else { return -1 }
        let now = Self.monotonicNanoseconds()
        guard nearest > now else { return 0 }
        return Int32(min((nearest - now + 999_999) / 1_000_000, 60_000))
    }

    /// Resets streams whose guest did not answer in time.
    private func expireDeadlines() {
        let now = Self.monotonicNanoseconds()
        for s in streams.values {
            guard let d = s.deadline, d <= now else { continue }
            logger.debug("guest port \(s.key.guestPort) to \(s.key.hostPort): no answer from the guest in time; reset")
            reset(s, reason: nil)
        }
    }
}
