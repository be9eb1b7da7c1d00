import Exports
import Testing

/// Runtime export changes (`vsnfs export add/remove`) on top of a base that
/// reloads replace: what is served after each, and where each rule came from.
@Suite struct ExportOverlayTests {
    func entry(_ path: String, _ clients: [String], options: String? = nil) throws -> Export {
        try ExportsFile.parseEntry(path: path, clients: clients, options: options, source: "export add")
    }

    /// "PATH: client=origin client=origin" per export, in order.
    func summary(_ served: [ServedExport]) -> [String] {
        served.map { entry in
            "\(entry.export.hostPath): " + zip(entry.export.clients, entry.origins)
                .map { "\($0.client)=\($1.rawValue)" }.joined(separator: " ")
        }
    }

    @Test func anEntryIsParsedAsTheExportsLinePathDashOptionsClients() throws {
        let export = try entry("/srv/a b", ["vsock:3", "vsock:4(ro)"], options: "rw,no_root_squash")
        #expect(export.hostPath == "/srv/a b")
        #expect(export.clients.map(\.client.description) == ["vsock:3", "vsock:4"])
        #expect(export.clients[0].options.resolvedDescription.hasPrefix("rw,no_root_squash,"))
        #expect(export.clients[1].options.resolvedDescription.hasPrefix("ro,no_root_squash,"))
        // The message the exports file gets for the same mistake.
        let fileMessage = diagnostics("/srv vsock:3(rw,bogus)\n").first?.split(separator: ": ", maxSplits: 1).last
        #expect(throws: ExportsError.self) { try entry("/srv", ["vsock:3"], options: "rw,bogus") }
        do { _ = try entry("/srv", ["vsock:3"], options: "rw,bogus") } catch let error as ExportsError {
            #expect(error.diagnostics.map(\.message) == [String(fileMessage ?? "")])
        }
        // One word per client: a second client cannot ride in on a space.
        #expect(throws: ExportsError.self) { try entry("/srv", ["vsock:3 *(rw)"]) }
        #expect(throws: ExportsError.self) { try entry("relative", ["vsock:3"]) }
    }

    @Test func addsAndRemovesApplyInOrderAndSayWhereEachRuleCameFrom() throws {
        let base = try ExportsFile.parse("/srv/a vsock:3(rw) vsock:4\n/srv/b vsock:*\n", fileName: "exports")
        var overlay = ExportOverlay()
        _ = try overlay.record(.add(try entry("/srv/c", ["vsock:5"])), base: base, baseOrigin: .file)
        _ = try overlay.record(.add(try entry("/srv/a", ["vsock:4(rw)", "vsock:6"])), base: base, baseOrigin: .file)
        let served = try overlay.record(.remove(hostPath: "/srv/b", client: nil), base: base, baseOrigin: .file)
        #expect(summary(served) == ["/srv/a: vsock:3=file vsock:4=runtime vsock:6=runtime", "/srv/c: vsock:5=runtime"])
        #expect(served[0].export.clients[1].options.readOnly == false, "a listed client takes the new options")

        // A reload: the file changed; the runtime changes are replayed on it.
        let reloaded = try ExportsFile.parse("/srv/a vsock:3 vsock:9\n/srv/b vsock:*\n/srv/d vsock:1\n", fileName: "exports")
        let replayed = overlay.applied(to: reloaded, baseOrigin: .file)
        #expect(summary(replayed.exports) == ["/srv/a: vsock:3=file vsock:9=file vsock:4=runtime vsock:6=runtime",
                                              "/srv/d: vsock:1=file", "/srv/c: vsock:5=runtime"])
        #expect(replayed.skipped.isEmpty)
    }

    @Test func removingAClientLeavesTheOthersAndTheLastOneTakesTheExport() throws {
        let base = try ExportsFile.parse("/srv/a vsock:3 vsock:4\n", fileName: "exports")
        var overlay = ExportOverlay()
        var served = try overlay.record(.remove(hostPath: "/srv/a", client: .vsockCID(3)), base: base, baseOrigin: .file)
        #expect(summary(served) == ["/srv/a: vsock:4=file"])
        served = try overlay.record(.remove(hostPath: "/srv/a", client: .vsockCID(4)), base: base, baseOrigin: .file)
        #expect(served.isEmpty)
    }

    @Test func aChangeThatDoesNotApplyIsRefusedAndNotRecorded() throws {
        let base = try ExportsFile.parse("/srv/a -fsid=7 vsock:3\n", fileName: "exports")
        var overlay = ExportOverlay()
        #expect(throws: ExportChangeError("/srv/b is not exported")) {
            try overlay.record(.remove(hostPath: "/srv/b", client: nil), base: base, baseOrigin: .file)
        }
        #expect(throws: ExportChangeError("/srv/a is not exported to vsock:9")) {
            try overlay.record(.remove(hostPath: "/srv/a", client: .vsockCID(9)), base: base, baseOrigin: .file)
        }
        #expect(throws: ExportChangeError("fsid=7 is already used by /srv/a")) {
            try overlay.record(.add(try entry("/srv/b", ["vsock:3"], options: "fsid=7")), base: base, baseOrigin: .file)
        }
        #expect(overlay.changes.isEmpty)
    }

    @Test func removingWhatWasAddedAtRuntimeUndoesTheAddButARemovalOfTheBaseIsKept() throws {
        let base = try ExportsFile.parse("/srv/a vsock:3\n", fileName: "exports")
        var overlay = ExportOverlay()
        _ = try overlay.record(.add(try entry("/srv/c", ["vsock:5"])), base: base, baseOrigin: .file)
        _ = try overlay.record(.add(try entry("/srv/c", ["vsock:6"])), base: base, baseOrigin: .file)
        _ = try overlay.record(.remove(hostPath: "/srv/c", client: .vsockCID(6)), base: base, baseOrigin: .file)
        #expect(overlay.changes == [.add(try entry("/srv/c", ["vsock:5"]))])
        _ = try overlay.record(.remove(hostPath: "/srv/c", client: nil), base: base, baseOrigin: .file)
        #expect(overlay.changes.isEmpty)
        // A file that lists /srv/c later serves it: nothing vetoes it.
        let reloaded = try ExportsFile.parse("/srv/a vsock:3\n/srv/c vsock:7\n", fileName: "exports")
        #expect(summary(overlay.applied(to: reloaded, baseOrigin: .file).exports) == ["/srv/a: vsock:3=file", "/srv/c: vsock:7=file"])

        _ = try overlay.record(.add(try entry("/srv/a", ["vsock:4"])), base: base, baseOrigin: .file)
        _ = try overlay.record(.remove(hostPath: "/srv/a", client: nil), base: base, baseOrigin: .file)
        #expect(overlay.changes == [.remove(hostPath: "/srv/a", client: nil)])
        #expect(summary(overlay.applied(to: reloaded, baseOrigin: .file).exports) == ["/srv/c: vsock:7=file"])
    }
}
