import Exports
import Testing
import Transport

private func vsock(_ cid: UInt32) -> PeerIdentity { .vsock(cid: cid, port: 1023) }
private func tcp(_ address: String) -> PeerIdentity { .inet(IPAddress(address)!, port: 40000) }
private let unixPeer = PeerIdentity.unix(uid: 1000, gid: 1000, pid: 4242)

/// A table for one export line, and a lookup that names the winning rule.
private struct OneExport {
    let table: AuthTable
    init(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) {
        table = AuthTable(exports: parseOK(line, sourceLocation: sourceLocation))
    }
    func winner(_ peer: PeerIdentity) -> String? {
        table.access(for: peer, exportAt: 0)?.client.description
    }
}

@Suite struct AuthTableTests {
    @Test func vsockPrecedenceExactThenNarrowestRangeThenVsockAnyThenAnyone() {
        // Written least specific first, to show that file order does not decide.
        let t = OneExport("/srv *(ro) vsock:*(ro,async) vsock:1-100(rw) vsock:5-10(rw,all_squash) vsock:7(rw,no_root_squash)")
        #expect(t.winner(vsock(7)) == "vsock:7")
        #expect(t.winner(vsock(5)) == "vsock:5-10")
        #expect(t.winner(vsock(10)) == "vsock:5-10")
        #expect(t.winner(vsock(4)) == "vsock:1-100")
        #expect(t.winner(vsock(100)) == "vsock:1-100")
        #expect(t.winner(vsock(101)) == "vsock:*")
        #expect(t.winner(vsock(0)) == "vsock:*")
        #expect(t.winner(tcp("192.0.2.1")) == "*")
        #expect(t.winner(unixPeer) == "*")

        // The winner's options are the ones returned.
        let exact = t.table.access(for: vsock(7), exportAt: 0)
        #expect(exact?.readOnly == false)
        #expect(exact?.squash == .noRootSquash)
        #expect(t.table.access(for: vsock(6), exportAt: 0)?.squash == .allSquash)
        #expect(t.table.access(for: vsock(500), exportAt: 0)?.options
                == ExportOptions(readOnly: true, squash: .rootSquash, sync: false))
    }

    @Test func vsockPrecedenceHoldsInFileOrderToo() {
        let t = OneExport("/srv vsock:7(rw) vsock:5-10(rw) vsock:1-100 vsock:* *")
        #expect([7, 6, 50, 200].map { t.winner(vsock($0)) } == ["vsock:7", "vsock:5-10", "vsock:1-100", "vsock:*"])
    }

    @Test func equalWidthRangesEarlierOnTheLineWins() {
        #expect(OneExport("/srv vsock:1-10(ro) vsock:5-14(rw)").winner(vsock(7)) == "vsock:1-10")
        #expect(OneExport("/srv vsock:5-14(rw) vsock:1-10(ro)").winner(vsock(7)) == "vsock:5-14")
        // Outside the overlap each range still applies.
        let t = OneExport("/srv vsock:1-10(ro) vsock:5-14(rw)")
        #expect(t.winner(vsock(2)) == "vsock:1-10")
        #expect(t.winner(vsock(12)) == "vsock:5-14")
        #expect(t.winner(vsock(15)) == nil)
    }

    @Test func rangeEndsAndFullRange() {
        let t = OneExport("/srv vsock:0-4294967294(ro) vsock:3-3(rw)")
        #expect(t.winner(vsock(3)) == "vsock:3-3")
        #expect(t.winner(vsock(0)) == "vsock:0-4294967294")
        #expect(t.winner(vsock(4294967294)) == "vsock:0-4294967294")
        #expect(t.winner(vsock(4294967295)) == nil)
    }

    @Test func noMatchingRuleMeansNoAccess() {
        let t = OneExport("/srv vsock:3(rw)")
        #expect(t.winner(vsock(3)) == "vsock:3")
        #expect(t.winner(vsock(4)) == nil)
        #expect(t.table.access(for: vsock(3), exportAt: 1) == nil)
        #expect(t.table.access(for: vsock(3), exportAt: -1) == nil)
    }

    @Test func vsockRulesNeverMatchOtherTransportsAndViceVersa() {
        let vsockOnly = OneExport("/srv vsock:* vsock:0-4294967294 vsock:1")
        #expect(vsockOnly.winner(tcp("127.0.0.1")) == nil)
        #expect(vsockOnly.winner(tcp("::1")) == nil)
        #expect(vsockOnly.winner(unixPeer) == nil)

        let ipOnly = OneExport("/srv 0.0.0.0/0 ::/0 127.0.0.1")
        #expect(ipOnly.winner(vsock(1)) == nil)
        #expect(ipOnly.winner(unixPeer) == nil)
        #expect(ipOnly.winner(tcp("127.0.0.1")) == "127.0.0.1")

        let unixOnly = OneExport("/srv unix(rw)")
        #expect(unixOnly.winner(unixPeer) == "unix")
        #expect(unixOnly.winner(.unix(uid: 0, gid: 0, pid: 1)) == "unix")
        #expect(unixOnly.winner(vsock(2)) == nil)
        #expect(unixOnly.winner(tcp("127.0.0.1")) == nil)
    }

    @Test func starMatchesEveryTransport() {
        let t = OneExport("/srv *(rw)")
        #expect(t.winner(vsock(3)) == "*")
        #expect(t.winner(tcp("10.0.0.1")) == "*")
        #expect(t.winner(tcp("fe80::1")) == "*")
        #expect(t.winner(unixPeer) == "*")
    }

    @Test func unixBeatsStar() {
        let t = OneExport("/srv *(ro) unix(rw)")
        #expect(t.winner(unixPeer) == "unix")
        #expect(t.table.access(for: unixPeer, exportAt: 0)?.readOnly == false)
        #expect(t.winner(vsock(3)) == "*")
    }

    @Test func ipv4ExactThenLongestPrefixThenStar() {
        let t = OneExport("/srv *(ro,all_squash) 10.0.0.0/8(ro) 10.0.0.0/24(rw) 10.0.0.5(rw,no_root_squash)")
        #expect(t.winner(tcp("10.0.0.5")) == "10.0.0.5")
        #expect(t.winner(tcp("10.0.0.6")) == "10.0.0.0/24")
        #expect(t.winner(tcp("10.0.0.255")) == "10.0.0.0/24")
        #expect(t.winner(tcp("10.0.1.0")) == "10.0.0.0/8")
        #expect(t.winner(tcp("10.255.255.255")) == "10.0.0.0/8")
        #expect(t.winner(tcp("11.0.0.1")) == "*")
        #expect(t.winner(tcp("fd00::1")) == "*")
        #expect(t.table.access(for: tcp("10.0.0.5"), exportAt: 0)?.squash == .noRootSquash)
        #expect(t.table.access(for: tcp("11.0.0.1"), exportAt: 0)?.squash == .allSquash)
    }

    @Test func ipv6ExactThenLongestPrefix() {
        let t = OneExport("/srv fd00::/8(ro) fd00:1::/32(rw) ::1(rw,no_root_squash)")
        #expect(t.winner(tcp("::1")) == "::1")
        #expect(t.winner(tcp("fd00:1::5")) == "fd00:1::/32")
        #expect(t.winner(tcp("fd00:1:ffff::5")) == "fd00:1::/32")
        #expect(t.winner(tcp("fd12::1")) == "fd00::/8")
        #expect(t.winner(tcp("2001:db8::1")) == nil)
        #expect(t.winner(tcp("10.0.0.1")) == nil)
    }

    @Test func ipv4MappedPeersMatchIPv4Rules() {
        let t = OneExport("/srv 10.0.0.5(rw) 10.0.0.0/8(ro) ::/0(ro)")
        #expect(t.winner(tcp("::ffff:10.0.0.5")) == "10.0.0.5")
        #expect(t.winner(tcp("::ffff:10.1.2.3")) == "10.0.0.0/8")
        // A mapped peer is IPv4: IPv6 rules do not cover it.
        #expect(t.winner(tcp("::ffff:192.0.2.1")) == nil)
        #expect(t.winner(tcp("2001:db8::1")) == "::/0")

        // Rules written in mapped form are IPv4 rules.
        let mappedRules = OneExport("/srv ::ffff:10.0.0.5(rw) ::ffff:172.16.0.0/108(ro)")
        #expect(mappedRules.winner(tcp("10.0.0.5")) == "10.0.0.5")
        #expect(mappedRules.winner(tcp("::ffff:10.0.0.5")) == "10.0.0.5")
        #expect(mappedRules.winner(tcp("172.31.0.1")) == "172.16.0.0/12")
        #expect(mappedRules.winner(tcp("172.32.0.1")) == nil)
    }

    @Test func tablesBuiltFromHandMadeExportsNormalizeRules() {
        // Not every Export comes from the parser: mapped and unmasked rules still match as IPv4 networks.
        let export = Export(hostPath: "/srv", clients: [
            ClientRule(client: .network(IPAddress("::ffff:10.1.2.3")!, prefix: 104), options: .defaults),
            ClientRule(client: .address(IPAddress("::ffff:192.0.2.7")!), options: .defaults),
        ])
        let table = AuthTable(exports: [export])
        #expect(table.access(for: tcp("10.9.9.9"), exportAt: 0)?.client == export.clients[0].client)
        #expect(table.access(for: tcp("192.0.2.7"), exportAt: 0)?.client == export.clients[1].client)
        #expect(table.access(for: tcp("11.0.0.1"), exportAt: 0) == nil)
    }

    @Test func clientSpecMatchesAgreesWithTheTableForOneRule() {
        let peers: [PeerIdentity] = [vsock(3), vsock(9), tcp("10.0.0.1"), tcp("::ffff:10.0.0.1"), tcp("fd00::1"), unixPeer]
        let specs: [ClientSpec] = [.vsockCID(3), .vsockRange(5, 10), .vsockAny, .address(IPAddress("10.0.0.1")!),
                                   .network(IPAddress("fd00::")!, prefix: 8), .unix, .anyone,
                                   // Hand-made, not normalized: IPv4-mapped forms.
                                   .address(IPAddress("::ffff:10.0.0.1")!),
                                   .network(IPAddress("::ffff:10.0.0.0")!, prefix: 104)]
        for spec in specs {
            let table = AuthTable(exports: [Export(hostPath: "/srv", clients: [ClientRule(client: spec)])])
            for peer in peers {
                #expect(spec.matches(peer) == (table.access(for: peer, exportAt: 0) != nil), "\(spec) vs \(peer)")
            }
        }
    }

    @Test func lookupByMountPathAndVisibleExports() {
        let exports = parseOK("""
            /srv/private vsock:3(rw)
            /srv/public *(ro)
            /srv/ci vsock:10-19(rw) unix
            """)
        let table = AuthTable(exports: exports)
        #expect(table.exportIndex(mountPath: "/srv/public") == 1)
        #expect(table.exportIndex(mountPath: "/srv") == nil)
        #expect(table.access(for: vsock(3), mountPath: "/srv/private")?.readWrite == true)
        #expect(table.access(for: vsock(4), mountPath: "/srv/private") == nil)
        #expect(table.access(for: vsock(4), mountPath: "/nope") == nil)
        #expect(table.access(for: vsock(4), to: exports[1])?.client == .anyone)
        #expect(table.exports(visibleTo: vsock(3)).map(\.hostPath) == ["/srv/private", "/srv/public"])
        #expect(table.exports(visibleTo: vsock(12)).map(\.hostPath) == ["/srv/public", "/srv/ci"])
        #expect(table.exports(visibleTo: unixPeer).map(\.hostPath) == ["/srv/public", "/srv/ci"])
        #expect(table.exports(visibleTo: tcp("10.0.0.1")).map(\.hostPath) == ["/srv/public"])
        #expect(AuthTable(exports: []).exports(visibleTo: vsock(3)).isEmpty)
    }

    @Test func aReloadedTableJudgesAnOldExportByItsMountPath() {
        let old = parseOK("/srv vsock:3(rw)")
        let new = AuthTable(exports: parseOK("/srv vsock:3(ro)"))
        #expect(new.access(for: vsock(3), to: old[0])?.readOnly == true)
    }

    @Test func serveDirectoryTable() {
        let table = AuthTable(exports: [Export(serving: "/home/me/project")])
        for peer in [vsock(3), vsock(4294967294), tcp("127.0.0.1"), tcp("::1"), unixPeer] {
            let access = table.access(for: peer, mountPath: "/")
            #expect(access?.readWrite == true, "\(peer)")
            #expect(access?.squash == .rootSquash, "\(peer)")
            #expect(access?.sync == true, "\(peer)")
            #expect(access?.map(uid: 0, gid: 0, gids: [0]) == MappedIdentity(uid: 65534, gid: 65534, gids: [65534]))
            #expect(access?.map(uid: 501, gid: 20, gids: [12]) == MappedIdentity(uid: 501, gid: 20, gids: [12]))
        }
        #expect(table.access(for: vsock(3), mountPath: "/home/me/project") == nil)
        #expect(table.exports(visibleTo: vsock(3)).map(\.mountPath) == ["/"])
    }

    @Test func tableIsASendableValue() async {
        let table = AuthTable(exports: parseOK("/srv vsock:3(rw)"))
        let fromAnotherTask = await Task.detached { table.access(for: vsock(3), exportAt: 0)?.readWrite }.value
        #expect(fromAnotherTask == true)
    }
}

@Suite struct SquashTests {
    @Test func rootSquashMapsRootUidAndGidEverywhere() {
        let options = ExportOptions(squash: .rootSquash)
        #expect(options.map(uid: 0, gid: 0, gids: [0, 10, 0, 27])
                == MappedIdentity(uid: 65534, gid: 65534, gids: [65534, 10, 65534, 27]))
        // gid 0 is squashed even for a non-root uid, as knfsd does.
        #expect(options.map(uid: 1000, gid: 0, gids: [1000, 0])
                == MappedIdentity(uid: 1000, gid: 65534, gids: [1000, 65534]))
        #expect(options.map(uid: 1000, gid: 1000, gids: [4, 24])
                == MappedIdentity(uid: 1000, gid: 1000, gids: [4, 24]))
    }

    @Test func rootSquashUsesAnonuidAndAnongid() {
        let access = parseOK("/srv vsock:3(rw,anonuid=1000,anongid=100)")[0].clients[0].options
        #expect(access.squash == .rootSquash)
        #expect(access.map(uid: 0, gid: 0, gids: [0]) == MappedIdentity(uid: 1000, gid: 100, gids: [100]))
    }

    @Test func allSquashMapsEveryoneAndDropsGroups() {
        let table = AuthTable(exports: parseOK("/srv vsock:3(rw,all_squash,anonuid=1234,anongid=4321)"))
        let access = table.access(for: vsock(3), exportAt: 0)
        #expect(access?.map(uid: 1000, gid: 1000, gids: [4, 27]) == MappedIdentity(uid: 1234, gid: 4321, gids: []))
        #expect(access?.map(uid: 0, gid: 0, gids: [0]) == MappedIdentity(uid: 1234, gid: 4321, gids: []))
        #expect(ExportOptions(squash: .allSquash).map(uid: 5, gid: 6, gids: [7])
                == MappedIdentity(uid: 65534, gid: 65534, gids: []))
    }

    @Test func noRootSquashPassesThrough() {
        let access = parseOK("/srv vsock:3(rw,no_root_squash,anonuid=1)")[0].clients[0].options
        #expect(access.map(uid: 0, gid: 0, gids: [0, 5]) == MappedIdentity(uid: 0, gid: 0, gids: [0, 5]))
        #expect(access.map(uid: 1000, gid: 100, gids: []) == MappedIdentity(uid: 1000, gid: 100, gids: []))
    }
}
