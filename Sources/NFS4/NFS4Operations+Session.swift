import HostFS
import NFS4State
import NFS4Wire
import NFSCore

// Client and session operations (RFC 8881 §18.35-18.37, §18.33-18.34, §18.50-18.51).
extension NFS4CompoundRunner {
    mutating func exchangeID(_ args: NFS4ExchangeIDArgs) throws -> NFS4Result {
        guard case .none = args.stateProtect else { throw NFS4Status.encrAlgUnsupp }
        let update = args.flags & NFS4Constants.exchgidFlagUpdConfirmedRecA != 0
        let host = peer.host
        let principal = self.principal
        let exchange = try state.tables.withLockedValue { t in
            try t.clients.exchangeID(owner: args.clientOwner.ownerID.bytes, verifier: args.clientOwner.verifier,
                                     host: host, principal: principal, update: update, now: .now)
        }
        var flags = NFS4Constants.exchgidFlagUseNonPNFS
        if exchange.confirmed { flags |= NFS4Constants.exchgidFlagConfirmedR }
        let owner = NFS4Opaque(state.serverOwner)
        return .exchangeID(.ok(NFS4ExchangeIDResOK(
            clientID: exchange.clientID, sequenceID: exchange.sequenceID, flags: flags, stateProtect: .none,
            serverOwner: ServerOwner4(minorID: 0, majorID: owner), serverScope: owner, serverImplID: nil)))
    }

    mutating func createSession(_ args: NFS4CreateSessionArgs) throws -> NFS4Result {
        let back = args.flags & NFS4Constants.createSessionFlagConnBackChan != 0
        let connection = self.connection
        let principal = self.principal
        let host = peer.host
        let creation = try state.tables.withLockedValue { t in
            guard t.owns(args.clientID, host: host) else { throw NFS4Status.staleClientid }
            return try t.clients.createSession(clientID: args.clientID, sequence: args.sequence, fore: args.foreChannelAttrs,
                                        back: args.backChannelAttrs, callbackProgram: args.callbackProgram,
                                        backChannelOnThisConnection: back, connection: connection,
                                        principal: principal, now: .now)
        }
        state.release(creation.replacedClients)
        let session = creation.session
        if !creation.isReplay { sessionCreated(session.id, args: args, backChannel: back) }
        return .createSession(.ok(NFS4CreateSessionResOK(
            sessionID: session.id, sequence: args.sequence, flags: back ? NFS4Constants.createSessionFlagConnBackChan : 0,
            foreChannelAttrs: session.foreChannel, backChannelAttrs: session.backChannel)))
    }

    mutating func destroySession(_ id: SessionID) throws -> NFS4Result {
        let host = peer.host
        try state.tables.withLockedValue { t in
            guard t.owns(session: id, host: host) else { throw NFS4Status.badsession }
            try t.clients.destroySession(id)
        }
        state.callbacks.forget([id])
        return .status(.destroySession, .ok)
    }

    mutating func destroyClientID(_ id: ClientID) throws -> NFS4Result {
        let host = peer.host
        try state.tables.withLockedValue { t in
            guard t.owns(id, host: host) else { throw NFS4Status.staleClientid }
            try t.clients.destroyClient(id)
        }
        state.release([id])
        return .status(.destroyClientid, .ok)
    }

    mutating func bindConnToSession(_ args: NFS4BindConnToSessionArgs) throws -> NFS4Result {
        let fore = args.direction != .back
        let back = args.direction != .fore
        let connection = self.connection
        let host = peer.host
        try state.tables.withLockedValue { t in
            guard t.owns(session: args.sessionID, host: host) else { throw NFS4Status.badsession }
            try t.clients.bind(connection: connection, to: args.sessionID, fore: fore, back: back)
        }
        if back { backChannelBound(args.sessionID) }
        let direction: ChannelDirFromServer4 = fore && back ? .both : (fore ? .fore : .back)
        return .bindConnToSession(.ok(NFS4BindConnToSessionResOK(sessionID: args.sessionID, direction: direction,
                                                                  useConnInRDMAMode: false)))
    }

    /// The security flavors every export takes: AUTH_SYS, then AUTH_NONE.
    static let flavors: [SecInfo4] = [.flavor(1), .flavor(0)]
}
