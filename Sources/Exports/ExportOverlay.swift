/// Where a client rule of the served exports came from.
public enum ExportOrigin: String, Hashable, Sendable, Codable {
    /// The exports file (`vsnfs serve --exports FILE`).
    case file
    /// The directory of `vsnfs serve DIR`.
    case directory
    /// `vsnfs export add` on the running server.
    case runtime
    /// The directories of `vsnfs share`.
    case share
}

/// An export as served, with where each of its client rules came from
/// (`origins[i]` is `export.clients[i]`'s).
public struct ServedExport: Hashable, Sendable {
    public var export: Export
    public var origins: [ExportOrigin]

    public init(export: Export, origins: [ExportOrigin]) {
        precondition(export.clients.count == origins.count)
        self.export = export
        self.origins = origins
    }
}

/// Why a runtime change cannot apply to the exports served now.
public struct ExportChangeError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The changes made to a running server's exports (`vsnfs export add` and
/// `remove`), kept apart from the exports file or `serve DIR` (the base) and
/// replayed, in order, on top of the base every time it is loaded: a SIGHUP
/// re-reads the file and keeps every runtime change, until it is undone or
/// the server exits. Removing something added at runtime undoes the add;
/// removing something of the base is kept. Nothing here touches the file system.
///
/// Exports are named by host path. An add to a path already served adds its
/// client rules to that export (replacing the rule for a client it already
/// has); a remove takes away one client's rule, or the whole export. An
/// export left with no client rule is no longer served (its handles are stale).
public struct ExportOverlay: Hashable, Sendable {
    public enum Change: Hashable, Sendable {
        case add(Export)
        /// `client` nil: the whole export.
        case remove(hostPath: String, client: ClientSpec?)
    }

    /// In the order they were made; each applied to what the ones before it left.
    public private(set) var changes: [Change] = []

    public init() {}

    /// `base` (whose rules all come from `baseOrigin`) with every change
    /// applied in order. A change that no longer applies (the file changed
    /// under it) is left out and described in `skipped`.
    public func applied(to base: [Export], baseOrigin: ExportOrigin) -> (exports: [ServedExport], skipped: [String]) {
        var served = base.map { ServedExport(export: $0, origins: Array(repeating: baseOrigin, count: $0.clients.count)) }
        var skipped: [String] = []
        for change in changes {
            do {
                try Self.apply(change, to: &served, strict: false)
            } catch {
                skipped.append(error.description)
            }
        }
        return (served, skipped)
    }

    /// Records `change` if it applies to what `base` and the changes so far
    /// serve, and returns the result; otherwise throws and records nothing.
    public mutating func record(_ change: Change, base: [Export],
                                baseOrigin: ExportOrigin) throws(ExportChangeError) -> [ServedExport] {
        var served = self.applied(to: base, baseOrigin: baseOrigin).exports
        try Self.apply(change, to: &served, strict: true)
        // Removing what was added at runtime forgets the add; a remove is kept
        // only for what the base has, and stays in force across reloads.
        switch change {
        case .add:
            changes.append(change)
        case .remove(let path, nil):
            changes.removeAll { $0.hostPath == path }
            if base.contains(where: { $0.hostPath == path }) { changes.append(change) }
        case .remove(let path, let client?):
            changes = changes.compactMap { earlier in
                guard case .add(var export) = earlier, export.hostPath == path else { return earlier }
                export.clients.removeAll { $0.client == client }
                return export.clients.isEmpty ? nil : .add(export)
            }
            if base.contains(where: { $0.hostPath == path && $0.clients.contains { $0.client == client } }) {
                changes.append(change)
            }
        }
        return served
    }

    /// `strict`: a remove of something not served is an error (the request's
    /// answer), rather than nothing to do (a replay after the file changed).
    static func apply(_ change: Change, to served: inout [ServedExport], strict: Bool) throws(ExportChangeError) {
        switch change {
        case .add(let added):
            if let fsid = added.fsid,
               let other = served.first(where: { $0.export.handleID == fsid && $0.export.hostPath != added.hostPath }) {
                throw ExportChangeError("fsid=\(fsid) is already used by \(quotedPath(other.export.hostPath))")
            }
            guard let index = served.firstIndex(where: { $0.export.hostPath == added.hostPath }) else {
                if served.contains(where: { $0.export.handleID == added.handleID }) {
                    throw ExportChangeError("\(quotedPath(added.hostPath)) has the export id of another export; give it an fsid=N")
                }
                served.append(ServedExport(export: added, origins: Array(repeating: .runtime, count: added.clients.count)))
                return
            }
            var entry = served[index]
            if let fsid = added.fsid, entry.export.fsid != fsid {
                throw ExportChangeError("\(quotedPath(added.hostPath)) is exported with \(entry.export.fsid.map { "fsid=\($0)" } ?? "no fsid"); an export keeps its fsid (remove it first)")
            }
            for rule in added.clients {
                if let at = entry.export.clients.firstIndex(where: { $0.client == rule.client }) {
                    entry.export.clients[at] = rule
                    entry.origins[at] = .runtime
                } else {
                    entry.export.clients.append(rule)
                    entry.origins.append(.runtime)
                }
            }
            served[index] = entry
        case .remove(let path, let client):
            guard let index = served.firstIndex(where: { $0.export.hostPath == path }) else {
                if strict { throw ExportChangeError("\(quotedPath(path)) is not exported") }
                return
            }
            guard let client else {
                served.remove(at: index)
                return
            }
            guard let at = served[index].export.clients.firstIndex(where: { $0.client == client }) else {
                if strict { throw ExportChangeError("\(quotedPath(path)) is not exported to \(client)") }
                return
            }
            served[index].export.clients.remove(at: at)
            served[index].origins.remove(at: at)
            if served[index].export.clients.isEmpty { served.remove(at: index) }
        }
    }
}

extension ExportOverlay.Change {
    var hostPath: String {
        switch self {
        case .add(let export): return export.hostPath
        case .remove(let path, _): return path
        }
    }
}
