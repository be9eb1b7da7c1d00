import CSupport
import Glibc

// The virtio-vsock side of the device thread: packets from the guest, the
// connection table, credit, and filling the guest's receive buffers.
extension DeviceLoop {
    /// Puts control packets, then data, into the guest's receive buffers.
    /// Returns the number of buffers used.
    func fillReceiveQueue(_ rx: SplitVirtqueue) throws -> Int {
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
    func readReadySockets() {
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
                // Closed entirely: the guest's RST should follow; do not wait forever.
                if both { s.deadline = Self.deadline(after: configuration.closeTimeout) }
            case let n? where n < 0:
                reset(s, reason: nil)
            default:
                break
            }
        }
    }

    /// Puts control packets, then pending data, into receive buffers.
    /// Returns the number of buffers used.
    func sendToGuest(_ rx: SplitVirtqueue) throws -> Int {
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

    func queueControl(_ header: VsockHeader) {
        guard control.count < Self.maximumQueuedControl else {
            if !loggedControlOverflow {
                logger.warning("guest sends but does not read; dropping replies")
                loggedControlOverflow = true
            }
            return
        }
        control.append(header)
    }

    func queueControl(for s: GuestStream, op: VsockHeader.Op, flags: UInt32 = 0) {
        queueControl(VsockHeader(srcCID: VsockHeader.hostCID, dstCID: configuration.guestCID, srcPort: s.key.hostPort,
                                 dstPort: s.key.guestPort, op: op, flags: flags))
    }

    /// A reset in answer to `packet` (never to a reset).
    func answerWithReset(_ packet: VsockHeader) {
        guard packet.knownOp != .reset else { return }
        queueControl(VsockHeader(srcCID: VsockHeader.hostCID, dstCID: configuration.guestCID, srcPort: packet.dstPort,
                                 dstPort: packet.srcPort, type: packet.type, op: .reset))
    }

    /// Ends a stream with a reset to the guest (reason: logged, for a guest
    /// that broke the rules).
    func reset(_ s: GuestStream, reason: String?) {
        if let reason {
            status.streamsResetForViolations += 1
            logger.warning("connection from guest port \(s.key.guestPort) to \(s.key.hostPort) reset: \(reason)")
        }
        queueControl(for: s, op: .reset)
        remove(s)
    }

    func remove(_ s: GuestStream) {
        s.closeSocket()
        streams[s.key] = nil
        hostReadable.remove(s.key)
    }

    func handleGuestPacket(_ chain: DescriptorChain) {
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
            s.deadline = nil
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

    func acceptRequest(_ header: VsockHeader, key: GuestStream.Key) {
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
            guard admit() else {   // the process's descriptor budget; it logs
                close(pair[0])
                close(pair[1])
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

    func acceptConnectClient() {
        let fd = accept(forwardListenFD, nil, nil)
        guard fd >= 0 else { return }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        connectClients[fd] = []
    }

    /// Reads a host process's `CONNECT P\n`; anything else closes it.
    func readConnectLine(_ fd: Int32) {
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
        s.deadline = Self.deadline(after: configuration.connectTimeout)
        // Bytes sent after the line go to the guest once it has accepted.
        s.toGuest = Array(line[(newline + 1)...])
        streams[key] = s
        queueControl(for: s, op: .request)
    }

    func allocateHostPort(guestPort: UInt32) -> UInt32? {
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

    func queueCreditUpdate(_ s: GuestStream) {
        guard !creditUpdateQueued.contains(s.key) else { return }
        creditUpdateQueued.insert(s.key)
        queueControl(for: s, op: .creditUpdate)
    }

    func flushToHost(_ s: GuestStream) {
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
    func progressClose(_ s: GuestStream) {
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
