#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOConcurrencyHelpers
import Transport

/// A handle on one RPC connection, for calls from the server to the client
/// on the same connection (the NFSv4.1 backchannel rides the fore channel's
/// connection, RFC 8881 §2.10.3.1). Safe to keep and use from any thread.
public final class RPCConnection: Sendable {
    public let peer: PeerIdentity
    public let channel: Channel
    /// Unique among this process's connections (NFSv4.1 sessions record the
    /// connections bound to them by it).
    public let id: UInt64
    private let handler: NIOLoopBound<RPCConnectionHandler>

    /// Taken once per connection.
    private static let nextID = NIOLockedValueBox<UInt64>(1)

    init(peer: PeerIdentity, channel: Channel, handler: RPCConnectionHandler) {
        self.id = Self.nextID.withLockedValue { id in
            defer { id += 1 }
            return id
        }
        self.peer = peer
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    /// Sends a call to the peer and completes with its reply. Fails with
    /// `RPCConnectionError.closed` if the connection closes first, and with
    /// `.timedOut` when no reply came within `timeout` (the XID is forgotten:
    /// a late reply is dropped).
    public func call(program: UInt32, version: UInt32, procedure: UInt32,
                     credential: RPCOpaqueAuth = .none, arguments: ByteBuffer,
                     timeout: TimeAmount? = nil) -> EventLoopFuture<RPCReplyBody> {
        let loop = self.channel.eventLoop
        if loop.inEventLoop {
            return self.handler.value.sendCall(program: program, version: version, procedure: procedure,
                                               credential: credential, arguments: arguments, timeout: timeout, on: loop)
        }
        return loop.flatSubmit {
            self.handler.value.sendCall(program: program, version: version, procedure: procedure,
                                        credential: credential, arguments: arguments, timeout: timeout, on: loop)
        }
    }

    /// Whether the connection is still open.
    public var isActive: Bool { self.channel.isActive }

    public func close() {
        self.channel.close(promise: nil)
    }
}

/// One procedure of one version of one program, as calls name it.
public struct RPCOperation: Hashable, Sendable, Comparable {
    public var program: UInt32
    public var version: UInt32
    public var procedure: UInt32

    public init(program: UInt32, version: UInt32, procedure: UInt32) {
        self.program = program
        self.version = version
        self.procedure = procedure
    }

    public static func < (a: RPCOperation, b: RPCOperation) -> Bool {
        (a.program, a.version, a.procedure) < (b.program, b.version, b.procedure)
    }
}

/// One connection's calls by operation, counted for the price of a short scan and an
/// array slot (a dictionary's hashing cost several times more per call), and bounded
/// whatever a client sends: at most `maximumProgramVersions` program versions with
/// `procedureSlots` procedures each; calls past that are counted in `others`.
public struct RPCOperationCounts: Sendable {
    public static let procedureSlots = 64
    public static let maximumProgramVersions = 16
    private var programVersions: [(program: UInt32, version: UInt32, byProcedure: [Int])] = []
    /// Calls past the bounds (an unknown procedure number, too many program versions).
    public private(set) var others = 0

    public init() {}

    public mutating func count(program: UInt32, version: UInt32, procedure: UInt32) {
        guard procedure < Self.procedureSlots else { others += 1; return }
        for index in programVersions.indices
        where programVersions[index].program == program && programVersions[index].version == version {
            programVersions[index].byProcedure[Int(procedure)] += 1
            return
        }
        guard programVersions.count < Self.maximumProgramVersions else { others += 1; return }
        var byProcedure = [Int](repeating: 0, count: Self.procedureSlots)
        byProcedure[Int(procedure)] = 1
        programVersions.append((program, version, byProcedure))
    }

    /// Every operation called at least once, with its count.
    public var counted: [RPCOperation: Int] {
        var all: [RPCOperation: Int] = [:]
        for entry in programVersions {
            for (procedure, count) in entry.byProcedure.enumerated() where count > 0 {
                all[RPCOperation(program: entry.program, version: entry.version, procedure: UInt32(procedure))] = count
            }
        }
        return all
    }
}

public enum RPCConnectionError: Error, Hashable, Sendable {
    case closed
    /// No reply within the call's timeout.
    case timedOut
}

/// Serves RPC calls on one connection and carries the server's own calls
/// to the client. Inbound: whole records (after `RecordMarkingDecoder`).
///
/// Calls are dispatched as they arrive and replies go out as each finishes,
/// in any order (the XID matches them). The handler stops asking the socket
/// for more data while `maximumCallsInFlight` calls run, and while the channel
/// is not writable (replies the client has not read fill the socket and pass
/// the channel's write watermark): a fast client, or one that sends calls and
/// never reads the replies, meets TCP back-pressure instead of growing the
/// server's memory. A connection then holds at most its calls in flight, the
/// watermark's worth of replies, and the kernel's socket buffers.
public final class RPCConnectionHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer

    public static let defaultMaximumCallsInFlight = 128

    private let peer: PeerIdentity
    private let dispatcher: RPCDispatcher
    private let maximumCallsInFlight: Int
    private var logger: Logger

    private var context: ChannelHandlerContext?
    private var connection: RPCConnection?
    private var callsInFlight = 0
    private var readPending = false
    /// Calls received but not yet run (see `mayDispatch`).
    private var waitingCalls = CircularBuffer<RPCMessage>()
    private var dispatchingWaitingCalls = false
    private var closed = false
    /// Between the first channelRead of a read burst and channelReadComplete:
    /// replies finished meanwhile (answered without a thread hop) are written
    /// and flushed once at channelReadComplete, in one writev.
    private var inReadBurst = false
    private var flushPending = false

    /// Calls dispatched (a call still waiting when the connection closes is not
    /// counted), by program, version and procedure: this connection's own
    /// counts, touched only on its event loop (no lock on the call path);
    /// `RPCServer`'s status reads them there.
    public private(set) var operationCounts = RPCOperationCounts()

    /// The server's outstanding calls to the client, by XID.
    private var outstandingCalls: [UInt32: EventLoopPromise<RPCReplyBody>] = [:]
    private var nextXID: UInt32

    public init(peer: PeerIdentity, dispatcher: RPCDispatcher,
                maximumCallsInFlight: Int = RPCConnectionHandler.defaultMaximumCallsInFlight,
                logger: Logger) {
        self.peer = peer
        self.dispatcher = dispatcher
        self.maximumCallsInFlight = max(1, maximumCallsInFlight)
        self.logger = logger
        self.logger[metadataKey: "peer"] = "\(peer)"
        self.nextXID = UInt32.random(in: 1...UInt32.max)
    }

    /// Bytes of replies waiting in the server (the socket's buffers full: the client is not
    /// reading) past which no new call runs, and below which calls run again. A few
    /// maximum-size replies, so a client that streams 1 MiB READs never waits on it;
    /// NIO's default (64 KiB) held up every call behind one such reply.
    public static let replyWatermark = ChannelOptions.Types.WriteBufferWaterMark(low: 2 << 20, high: 4 << 20)

    public func handlerAdded(context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: Self.replyWatermark)
        self.context = context
        self.connection = RPCConnection(peer: self.peer, channel: context.channel, handler: self)
    }

    /// The channel closed (NIO removes every handler then). The handler and its
    /// `RPCConnection` hold each other, and the connection holds the channel: drop our
    /// side, or the whole channel (pipeline, buffers, calls that waited) outlives it.
    /// A program that kept the `RPCConnection` keeps only a closed handle.
    public func handlerRemoved(context: ChannelHandlerContext) {
        self.closed = true
        self.failOutstandingCalls()
        self.waitingCalls.removeAll()
        self.context = nil
        self.connection = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.failOutstandingCalls()
        // Calls that waited behind the in-flight limit will never run: free their arguments now.
        self.waitingCalls.removeAll()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.inReadBurst = true
        let record = self.unwrapInboundIn(data)
        let message: RPCMessage
        do {
            message = try RPCMessage(record: record)
        } catch {
            self.logger.warning("closing connection: record is not an RPC message (\(error))")
            self.closeConnection(context: context)
            return
        }
        switch message {
        case .call:
            // One socket read can hold many calls: past the limit they wait here
            // (already in memory, and no more are read meanwhile).
            if self.waitingCalls.isEmpty && self.mayDispatch(context: context) {
                self.dispatch(message, context: context)
            } else {
                self.waitingCalls.append(message)
                self.dispatchWaitingCalls(context: context)
            }
        case .reply(let xid, let body, _):
            if let promise = self.outstandingCalls.removeValue(forKey: xid) {
                promise.succeed(body)
            } else {
                self.logger.debug("dropping reply with unknown xid \(xid)")
            }
        }
    }

    /// Calls run at once: below `maximumCallsInFlight`, and only while the channel is
    /// writable (the client reads its replies).
    private func mayDispatch(context: ChannelHandlerContext) -> Bool {
        self.callsInFlight < self.maximumCallsInFlight && context.channel.isWritable && !self.closed
    }

    /// Runs waiting calls while `mayDispatch`. Not re-entered: a call answered at once
    /// finishes inside `dispatch`, and this loop takes the next.
    private func dispatchWaitingCalls(context: ChannelHandlerContext) {
        guard !self.dispatchingWaitingCalls else { return }
        self.dispatchingWaitingCalls = true
        defer { self.dispatchingWaitingCalls = false }
        while !self.waitingCalls.isEmpty && self.mayDispatch(context: context) {
            self.dispatch(self.waitingCalls.removeFirst(), context: context)
        }
    }

    private func dispatch(_ message: RPCMessage, context: ChannelHandlerContext) {
        switch message {
        case .call(let xid, let rpcVersion, let program, let version, let procedure, let credential, let verifier, let arguments):
            // Counted here, where the call's fields are already taken apart (binding
            // them in channelRead too copied the whole call, arguments and credentials).
            self.operationCounts.count(program: program, version: version, procedure: procedure)
            self.callsInFlight += 1
            let callContext = RPCCallContext(peer: self.peer, eventLoop: context.eventLoop,
                                             allocator: context.channel.allocator, connection: self.connection!, xid: xid)
            let answer = self.dispatcher.answer(xid: xid, rpcVersion: rpcVersion, program: program, version: version,
                                                procedure: procedure, credential: credential, verifier: verifier,
                                                arguments: arguments, context: callContext)
            switch consume answer {
            case .now(let body):
                self.callFinished(xid: xid, body: body)
            case .record(let record):
                self.callFinished(record: record)
            case .later(let reply):
                reply.hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                    self.callFinished(xid: xid, result: result, program: program, procedure: procedure)
                }
            }
        case .reply:
            preconditionFailure("only calls are dispatched")
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        self.inReadBurst = false
        if self.flushPending {
            self.flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    private func callFinished(xid: UInt32, result: Result<RPCReplyBody, Error>, program: UInt32, procedure: UInt32) {
        switch result {
        case .success(let body):
            self.callFinished(xid: xid, body: body)
        case .failure(let error):
            self.logger.error("program \(program) procedure \(procedure) failed: \(error)")
            self.callFinished(xid: xid, body: .systemError)
        }
    }

    private func callFinished(xid: UInt32, body: RPCReplyBody) {
        self.callsInFlight -= 1
        guard let context = self.context, !self.closed else { return }
        self.writeRecord(context: context) { buffer in
            RPCMessage.encodeReplyHeader(xid: xid, body: body, into: &buffer)
        } payload: {
            if case .success(let results) = body { return results }
            return nil
        }
        self.resumeReadingIfWithheld(context: context)
    }

    /// A `.record` answer: the whole reply, record mark included, as one buffer.
    private func callFinished(record: ByteBuffer) {
        self.callsInFlight -= 1
        guard let context = self.context, !self.closed else { return }
        context.write(self.wrapOutboundOut(record), promise: nil)
        self.flushSoon(context: context)
        self.resumeReadingIfWithheld(context: context)
    }

    /// After a call finished or the channel became writable: run the calls that
    /// waited, then read more from the socket if none wait any longer.
    private func resumeReadingIfWithheld(context: ChannelHandlerContext) {
        self.dispatchWaitingCalls(context: context)
        if self.readPending && self.mayRead(context: context) {
            self.readPending = false
            context.read()
        }
    }

    /// The one rule for taking more calls off the socket: none wait, and one more may run.
    private func mayRead(context: ChannelHandlerContext) -> Bool {
        self.waitingCalls.isEmpty && self.mayDispatch(context: context)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.resumeReadingIfWithheld(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Writes one record: a header built in a fresh buffer, then an optional
    /// payload. Small payloads are copied in (one write); large ones (READ
    /// data) go out as a second buffer without a copy.
    private func writeRecord(context: ChannelHandlerContext, header: (inout ByteBuffer) -> Void,
                             payload: () -> ByteBuffer?) {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        buffer.writeInteger(UInt32(0), endianness: .big)  // record mark, filled in below
        header(&buffer)
        var body = payload()
        let copyLimit = 4096
        if var small = body, small.readableBytes <= copyLimit {
            buffer.writeBuffer(&small)
            body = nil
        }
        let length = buffer.readableBytes - 4 + (body?.readableBytes ?? 0)
        guard let mark = RecordMarking.singleFragmentHeader(length: length) else {
            self.logger.error("reply of \(length) bytes is too large for one record; closing")
            self.closeConnection(context: context)
            return
        }
        buffer.setInteger(mark, at: buffer.readerIndex, endianness: .big)
        context.write(self.wrapOutboundOut(buffer), promise: nil)
        if let body {
            context.write(self.wrapOutboundOut(body), promise: nil)
        }
        self.flushSoon(context: context)
    }

    /// Flushes now, or once at the end of the read burst.
    private func flushSoon(context: ChannelHandlerContext) {
        if self.inReadBurst {
            self.flushPending = true
        } else {
            context.flush()
        }
    }

    public func read(context: ChannelHandlerContext) {
        if self.mayRead(context: context) {
            context.read()
        } else {
            self.readPending = true
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // One log line per bad connection; other connections are untouched.
        if let error = error as? RecordMarkingError {
            self.logger.warning("closing connection: \(error)")
        } else if let error = error as? IOError, [ECONNRESET, EPIPE].contains(error.errnoCode) {
            self.logger.debug("connection reset: \(error)")
        } else {
            self.logger.warning("closing connection: \(error)")
        }
        self.closeConnection(context: context)
    }

    private func closeConnection(context: ChannelHandlerContext) {
        guard !self.closed else { return }
        self.closed = true
        self.failOutstandingCalls()
        context.close(promise: nil)
    }

    private func failOutstandingCalls() {
        let calls = self.outstandingCalls
        self.outstandingCalls = [:]
        for promise in calls.values { promise.fail(RPCConnectionError.closed) }
    }

    func sendCall(program: UInt32, version: UInt32, procedure: UInt32, credential: RPCOpaqueAuth,
                  arguments: ByteBuffer, timeout: TimeAmount?, on loop: EventLoop) -> EventLoopFuture<RPCReplyBody> {
        guard let context = self.context, !self.closed else {
            return loop.makeFailedFuture(RPCConnectionError.closed)
        }
        var xid = self.nextXID
        while self.outstandingCalls[xid] != nil || xid == 0 { xid &+= 1 }
        self.nextXID = xid &+ 1
        let promise = context.eventLoop.makePromise(of: RPCReplyBody.self)
        self.outstandingCalls[xid] = promise
        if let timeout {
            let expiry = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                self.outstandingCalls.removeValue(forKey: xid)?.fail(RPCConnectionError.timedOut)
            }
            promise.futureResult.whenComplete { _ in expiry.cancel() }
        }
        self.writeRecord(context: context) { buffer in
            RPCMessage.call(xid: xid, rpcVersion: RPCDispatcher.rpcVersion, program: program, version: version,
                            procedure: procedure, credential: credential, verifier: .none,
                            arguments: ByteBuffer()).encode(xdr: &buffer)
        } payload: { arguments }
        return promise.futureResult
    }
}

/// The handler lives on its channel's event loop; other threads reach it only
/// through `RPCConnection`, which hops there.
@available(*, unavailable)
extension RPCConnectionHandler: Sendable {}
