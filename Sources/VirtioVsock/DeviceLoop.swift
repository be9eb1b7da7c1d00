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
            let n = poll(&fds, nfds_t(fds.count), moreWork ? 0 : -1)
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

    private func publish() {
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
    private func resetStreams() {
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

    private func markBroken(_ error: Error) {
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

    /// Puts control packets, then data, into the guest's receive buffers.
    /// Returns the number of buffers used.
    private func fillReceiveQueue(_ rx: SplitVirtqueue) throws -> Int {
        var used = 0
        // Read what sockets have (as far as credit allows), send it, and read
        // again while buffers last: poll(2) is not asked about sockets already
        // known to be readable, so nothing else would come back to them.
        while true {
            let before = used
            readReadySockets()
            used += try sendToGuest(rx)
            if used == before { return used }
        }
    }

    /// Reads sockets known to be readable, as far as each one's credit allows.
    private func readReadySockets() {
        for key in hostReadable {
            guard let s = streams[key] else {
                hostReadable.remove(key)
                continue
            }
            guard s.wantsToReadHost else { continue }
            let limit = min(Int(s.credit.sendWindow), Self.maximumPayload)
            switch s.readFromHost(limit: limit) {
            case nil:
                hostReadable.remove(key)
            case 0?:
                hostReadable.remove(key)
                s.hostEOF = true
                // Our end of the pair: POLLHUP means the owner closed it entirely.
                var p = pollfd(fd: s.fd, events: 0, revents: 0)
                _ = poll(&p, 1, 0)
                let both = Int32(p.revents) & POLLHUP != 0
                let flags = VsockHeader.shutdownSend | (both ? VsockHeader.shutdownReceive : 0)
                s.shutdownSent |= flags
                queueControl(for: s, op: .shutdown, flags: flags)
            case let n? where n < 0:
                reset(s, reason: nil)
            default:
                break
            }
        }
    }

    /// Puts control packets, then pending data, into receive buffers.
    /// Returns the number of buffers used.
    private func sendToGuest(_ rx: SplitVirtqueue) throws -> Int {
        var used = 0
        while !control.isEmpty || streams.values.contains(where: { $0.pendingToGuest > 0 && $0.credit.sendWindow > 0 }) {
            guard let chain = try rx.pop() else { break }
            guard chain.writableLength >= VsockHeader.size else {
                throw VirtioVsockError.badDescriptor("receive buffer of \(chain.writableLength) bytes cannot hold a packet header")
            }
            if !control.isEmpty {
                var header = control.removeFirst()
                let key = GuestStream.Key(guestPort: header.dstPort, hostPort: header.srcPort)
                if let s = streams[key] {
                    let (bufAlloc, fwd) = s.credit.advertised()
                    header.bufAlloc = bufAlloc
                    header.fwdCount = fwd
                }
                if header.knownOp == .creditUpdate { creditUpdateQueued.remove(key) }
                let bytes = header.bytes
                bytes.withUnsafeBytes { _ = chain.scatterWritable([$0]) }
                rx.push(head: chain.head, length: UInt32(bytes.count))
                used += 1
                continue
            }
            guard let s = streams.values.first(where: { $0.pendingToGuest > 0 && $0.credit.sendWindow > 0 }) else {
                break
            }
            let count = min(s.pendingToGuest, chain.writableLength - VsockHeader.size, Int(s.credit.sendWindow))
            let (bufAlloc, fwd) = s.credit.advertised()
            let header = VsockHeader(srcCID: VsockHeader.hostCID, dstCID: configuration.guestCID,
                                     srcPort: s.key.hostPort, dstPort: s.key.guestPort, length: UInt32(count),
                                     op: .readWrite, bufAlloc: bufAlloc, fwdCount: fwd)
            s.credit.send(UInt32(count))
            let headerBytes = header.bytes
            let written = headerBytes.withUnsafeBytes { h in
                s.toGuest.withUnsafeBytes { d in
                    chain.scatterWritable([h, UnsafeRawBufferPointer(rebasing: d[s.toGuestStart..<s.toGuestStart + count])])
                }
            }
            s.toGuestStart += count
            rx.push(head: chain.head, length: UInt32(written))
            used += 1
        }
        return used
    }

    // MARK: - Packets from the guest

    private func queueControl(_ header: VsockHeader) {
        guard control.count < Self.maximumQueuedControl else {
            if !loggedControlOverflow {
                logger.warning("guest sends but does not read; dropping replies")
                loggedControlOverflow = true
            }
            return
        }
        control.append(header)
    }

    private func queueControl(for s: GuestStream, op: VsockHeader.Op, flags: UInt32 = 0) {
        queueControl(VsockHeader(srcCID: VsockHeader.hostCID, dstCID: configuration.guestCID, srcPort: s.key.hostPort,
                                 dstPort: s.key.guestPort, op: op, flags: flags))
    }

    /// A reset in answer to `packet` (never to a reset).
    private func answerWithReset(_ packet: VsockHeader) {
        guard packet.knownOp != .reset else { return }
        queueControl(VsockHeader(srcCID: VsockHeader.hostCID, dstCID: configuration.guestCID, srcPort: packet.dstPort,
                                 dstPort: packet.srcPort, type: packet.type, op: .reset))
    }

    /// Ends a stream with a reset to the guest (reason: logged, for a guest
    /// that broke the rules).
    private func reset(_ s: GuestStream, reason: String?) {
        if let reason {
            status.streamsResetForViolations += 1
            logger.warning("connection from guest port \(s.key.guestPort) to \(s.key.hostPort) reset: \(reason)")
        }
        queueControl(for: s, op: .reset)
        remove(s)
    }

    private func remove(_ s: GuestStream) {
        s.closeSocket()
        streams[s.key] = nil
        hostReadable.remove(s.key)
    }

    private func handleGuestPacket(_ chain: DescriptorChain) {
        let head = chain.gatherReadable(limit: VsockHeader.size)
        guard let header = VsockHeader(bytes: head) else {
            logger.warning("guest sent a packet of \(chain.readableLength) bytes, shorter than a header; dropped")
            return
        }
        // Identity comes from the device's configuration; a packet claiming
        // another source is dropped (a reset would go to a CID that is not there).
        guard header.srcCID == configuration.guestCID else {
            status.foreignSourcePackets += 1
            if !loggedForeignSource {
                logger.warning("guest sent a packet from CID \(header.srcCID), not its own; dropped (logged once)")
                loggedForeignSource = true
            }
            return
        }
        let key = GuestStream.Key(guestPort: header.srcPort, hostPort: header.dstPort)
        if header.knownOp == .reset {
            if let s = streams[key] { remove(s) }
            return
        }
        guard header.dstCID == VsockHeader.hostCID, header.type == VsockHeader.typeStream, let op = header.knownOp else {
            answerWithReset(header)
            return
        }
        let payloadLength = Int(header.length)
        guard payloadLength <= Self.maximumPayload, payloadLength <= chain.readableLength - VsockHeader.size else {
            if let s = streams[key] {
                reset(s, reason: "payload length \(header.length) is past its buffer (\(chain.readableLength - VsockHeader.size) bytes)")
            } else {
                answerWithReset(header)
            }
            return
        }
        if op == .request {
            acceptRequest(header, key: key)
            return
        }
        guard let s = streams[key] else {
            answerWithReset(header)
            return
        }
        s.credit.peerAdvertised(bufAlloc: header.bufAlloc, fwdCount: header.fwdCount)
        if s.connecting && op != .response {
            reset(s, reason: "\(op) before the RESPONSE to the device's REQUEST")
            return
        }
        switch op {
        case .request, .reset:
            break
        case .response:
            guard s.connecting else {
                reset(s, reason: "RESPONSE to a connection the device did not request")
                return
            }
            s.connecting = false
            let ok = Array("OK \(s.key.hostPort)\n".utf8)
            let sent = ok.withUnsafeBytes { send(s.fd, $0.baseAddress!, ok.count, vsnfs_msg_nosignal()) }
            if sent != ok.count { reset(s, reason: nil) }
        case .readWrite:
            guard s.guestShutdown & VsockHeader.shutdownSend == 0 else {
                reset(s, reason: "data after the guest's SHUTDOWN(SEND)")
                return
            }
            guard s.credit.receive(header.length) else {
                reset(s, reason: "\(header.length) bytes with only \(s.credit.ourFreeSpace) of credit")
                return
            }
            if payloadLength > 0 {
                let packet = chain.gatherReadable(limit: VsockHeader.size + payloadLength)
                s.toHost.append(contentsOf: packet[VsockHeader.size...])
                flushToHost(s)
            }
        case .creditUpdate:
            break
        case .creditRequest:
            queueCreditUpdate(s)
        case .shutdown:
            s.guestShutdown |= header.flags & (VsockHeader.shutdownSend | VsockHeader.shutdownReceive)
            if s.guestShutdown & VsockHeader.shutdownReceive != 0 {
                s.toGuest.removeAll()
                s.toGuestStart = 0
            }
            progressClose(s)
        }
    }

    private func acceptRequest(_ header: VsockHeader, key: GuestStream.Key) {
        if let existing = streams[key] {
            reset(existing, reason: "a second REQUEST for a connected port pair")
            return
        }
        let served = configuration.ports.contains(header.dstPort)
        guard served || configuration.forwardBase != nil else {
            answerWithReset(header)
            return
        }
        guard streams.count < configuration.maximumConnections else {
            logger.warning("connection from guest port \(header.srcPort) refused: \(streams.count) connections open")
            answerWithReset(header)
            return
        }
        let ourEnd: Int32
        var theirEnd: Int32 = -1
        if served {
            var pair: [Int32] = [-1, -1]
            let rc = vsnfs_stream_socketpair(&pair, 1)
            guard rc == 0 else {
                logger.error("socketpair failed: \(String(cString: strerror(-rc)))")
                answerWithReset(header)
                return
            }
            ourEnd = pair[0]
            theirEnd = pair[1]
        } else {
            // Opt-in forwarding, as Firecracker's hybrid vsock does it: a
            // guest connection to host port P goes to the Unix socket BASE_P.
            let path = "\(configuration.forwardBase!)_\(header.dstPort)"
            let fd = unixConnectNonBlocking(path: path)
            guard fd >= 0 else {
                logger.debug("guest port \(header.srcPort) to \(header.dstPort): \(path): \(String(cString: strerror(-fd)))")
                answerWithReset(header)
                return
            }
            ourEnd = fd
        }
        let s = GuestStream(key: key, fd: ourEnd,
                            credit: VsockCredit(ourBufferSize: configuration.bufferSize, peerBufferSize: header.bufAlloc,
                                                peerForwarded: header.fwdCount))
        streams[key] = s
        queueControl(for: s, op: .response)
        if theirEnd >= 0 {
            onConnection(VsockGuestConnection(fd: theirEnd, guestCID: configuration.guestCID, guestPort: header.srcPort,
                                              hostPort: header.dstPort))
        }
    }

    // MARK: - Host-initiated connections (forward socket)

    private func acceptConnectClient() {
        let fd = accept(forwardListenFD, nil, nil)
        guard fd >= 0 else { return }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        connectClients[fd] = []
    }

    /// Reads a host process's `CONNECT P\n`; anything else closes it.
    private func readConnectLine(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 64, 0) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        var line = connectClients[fd] ?? []
        if n > 0 { line += buffer[0..<n] }
        func drop() {
            connectClients[fd] = nil
            close(fd)
        }
        guard n > 0 else { return drop() }
        guard let newline = line.firstIndex(of: UInt8(ascii: "\n")) else {
            if line.count >= 64 { drop() } else { connectClients[fd] = line }
            return
        }
        connectClients[fd] = nil
        let words = String(decoding: line[..<newline], as: UTF8.self).split(separator: " ")
        guard words.count == 2, words[0] == "CONNECT", let port = UInt32(words[1]), port < UInt32.max else {
            close(fd)
            return
        }
        guard streams.count < configuration.maximumConnections, let hostPort = allocateHostPort(guestPort: port) else {
            close(fd)
            return
        }
        let key = GuestStream.Key(guestPort: port, hostPort: hostPort)
        let s = GuestStream(key: key, fd: fd,
                            credit: VsockCredit(ourBufferSize: configuration.bufferSize, peerBufferSize: 0, peerForwarded: 0))
        s.connecting = true
        // Bytes sent after the line go to the guest once it has accepted.
        s.toGuest = Array(line[(newline + 1)...])
        streams[key] = s
        queueControl(for: s, op: .request)
    }

    private func allocateHostPort(guestPort: UInt32) -> UInt32? {
        for _ in 0..<16384 {
            let candidate = nextHostPort
            nextHostPort = nextHostPort >= 65535 ? 49152 : nextHostPort + 1
            if streams[GuestStream.Key(guestPort: guestPort, hostPort: candidate)] == nil
                && !configuration.ports.contains(candidate) {
                return candidate
            }
        }
        return nil
    }

    private func queueCreditUpdate(_ s: GuestStream) {
        guard !creditUpdateQueued.contains(s.key) else { return }
        creditUpdateQueued.insert(s.key)
        queueControl(for: s, op: .creditUpdate)
    }

    private func flushToHost(_ s: GuestStream) {
        let n = s.flushToHost()
        if n < 0 {
            reset(s, reason: nil)
            return
        }
        if s.credit.creditUpdateNeeded { queueCreditUpdate(s) }
        progressClose(s)
    }

    /// After the guest's SHUTDOWN: once its data is in the socket, pass the
    /// end of its sending on; when it neither sends nor receives, the stream
    /// ends with a reset, which the guest's close waits for.
    private func progressClose(_ s: GuestStream) {
        guard streams[s.key] === s, s.pendingToHost == 0 else { return }
        if s.guestShutdown & VsockHeader.shutdownSend != 0 && !s.hostWriteClosed {
            Glibc.shutdown(s.fd, Int32(SHUT_WR))
            s.hostWriteClosed = true
        }
        if s.guestShutdown == VsockHeader.shutdownSend | VsockHeader.shutdownReceive {
            queueControl(for: s, op: .reset)
            remove(s)
        }
    }
}

/// A non-blocking AF_UNIX stream socket connected to `path`, or -errno. A
/// listener whose backlog is full answers EAGAIN at once instead of blocking
/// the device.
func unixConnectNonBlocking(path: String) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return -ENAMETOOLONG }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: path.utf8)
        raw[path.utf8.count] = 0
    }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { return -errno }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        let e = errno
        close(fd)
        return -e
    }
    return fd
}
