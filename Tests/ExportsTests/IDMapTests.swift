import Exports
import Testing

/// `map_uid=GUEST:HOST:COUNT` / `map_gid=...`: the grammar, its errors, and
/// the mapping both ways with squashing after it.
@Suite struct IDMapGrammarTests {
    @Test func severalRangesPerClientInFileOrder() {
        let options = parseOK("/srv vsock:3(rw,map_uid=1000:501:1,map_uid=2000:3000:10,map_gid=1000:20)")[0]
            .clients[0].options
        #expect(options.uidMap.ranges == [IDRange(guest: 1000, host: 501, count: 1),
                                          IDRange(guest: 2000, host: 3000, count: 10)])
        // GUEST:HOST is a count of 1.
        #expect(options.gidMap.ranges == [IDRange(guest: 1000, host: 20, count: 1)])
        #expect(parseOK("/srv vsock:3(rw)")[0].clients[0].options.uidMap.isIdentity)
    }

    @Test func aClientListNamingAMapReplacesTheLinesMap() {
        let rules = parseOK("/srv -rw,map_uid=1000:501:1,map_gid=1000:20:1 vsock:3 vsock:4(map_uid=0:7000:1)")[0].clients
        #expect(rules[0].options.uidMap.ranges == [IDRange(guest: 1000, host: 501, count: 1)])
        #expect(rules[1].options.uidMap.ranges == [IDRange(guest: 0, host: 7000, count: 1)])
        // map_gid was not named by vsock:4: the line's stands.
        #expect(rules[1].options.gidMap.ranges == [IDRange(guest: 1000, host: 20, count: 1)])
    }

    @Test func overlappingRangesAreErrorsAtTheLaterRange() {
        #expect(diagnostics("/srv vsock:3(map_uid=1000:501:10,map_uid=1005:9000:1)") == [
            "exports:1:34: map_uid=1005:9000:1 overlaps map_uid=1000:501:10 (they share guest ids); "
            + "each guest id and each host id may be in one range only",
        ])
        #expect(diagnostics("/srv vsock:3(map_gid=1:100:5,map_gid=50:104:1)") == [
            "exports:1:30: map_gid=50:104:1 overlaps map_gid=1:100:5 (they share host ids); "
            + "each guest id and each host id may be in one range only",
        ])
        // A uid range and a gid range are separate maps.
        #expect(diagnostics("/srv vsock:3(map_uid=1000:501:1,map_gid=1000:501:1)") == [])
        // Ranges of different clients never meet.
        #expect(diagnostics("/srv vsock:3(map_uid=1000:501:1) vsock:4(map_uid=1000:501:1)") == [])
    }

    @Test func badRangesPointAtTheValue() {
        #expect(diagnostics("/srv vsock:3(map_uid)")
                == ["exports:1:14: option 'map_uid' needs a value: map_uid=GUEST:HOST:COUNT, e.g. map_uid=1000:501:1"])
        #expect(diagnostics("/srv vsock:3(map_uid=1000)") == [
            "exports:1:22: '1000' is not an id range: write map_uid=GUEST:HOST:COUNT, e.g. map_uid=1000:501:1 "
            + "(ids and count from 0 to 4294967295)",
        ])
        #expect(diagnostics("/srv vsock:3(map_gid=a:b:c)").first?.hasPrefix("exports:1:22: 'a:b:c' is not an id range") == true)
        #expect(diagnostics("/srv vsock:3(map_uid=1:2:3:4)").first?.hasPrefix("exports:1:22: '1:2:3:4' is not") == true)
        #expect(diagnostics("/srv vsock:3(map_uid=1000:501:0)")
                == ["exports:1:22: map_uid=1000:501:0 maps no ids: COUNT must be at least 1"])
        #expect(diagnostics("/srv vsock:3(map_uid=4294967295:0:2)")
                == ["exports:1:22: map_uid=4294967295:0:2 runs past id 4294967295: lower COUNT"])
        #expect(diagnostics("/srv vsock:3(map_uids=1:2:3)")
                == ["exports:1:14: unknown option 'map_uids'; did you mean 'map_uid'?"])
    }

    @Test func checkPrintsTheRanges() {
        let exports = parseOK("/srv vsock:3(rw,map_uid=1000:501:1,map_uid=2000:3000:10,map_gid=1000:20:1)")
        #expect(formatExportsTable(exports) == """
            /srv (mounted as /srv)
              vsock:3        rw,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check,\
            map_uid=1000:501:1,map_uid=2000:3000:10,map_gid=1000:20:1

            """)
    }
}

@Suite struct IDMapMappingTests {
    /// guest 1000 <-> host 501; guest 2000...2009 <-> host 3000...3009.
    let options = parseOK("/srv vsock:3(rw,map_uid=1000:501:1,map_uid=2000:3000:10,map_gid=1000:20:1)")[0]
        .clients[0].options

    @Test func credentialsComeInMapped() {
        #expect(options.map(uid: 1000, gid: 1000, gids: [1000, 5])
                == MappedIdentity(uid: 501, gid: 20, gids: [20, 5]))
        #expect(options.map(uid: 2009, gid: 7, gids: []) == MappedIdentity(uid: 3009, gid: 7, gids: []))
        // Outside every range: unchanged.
        #expect(options.map(uid: 1001, gid: 1001, gids: []) == MappedIdentity(uid: 1001, gid: 1001, gids: []))
    }

    @Test func ownersGoOutMapped() {
        #expect(options.guestUID(501) == 1000)
        #expect(options.guestUID(3005) == 2005)
        #expect(options.guestGID(20) == 1000)
        #expect(options.guestUID(1001) == 1001)
        #expect(options.guestUID(0) == 0)
    }

    /// A host id that is a mapping target shows only as its guest id; the
    /// host id equal to that guest id shows as anonuid, never as the same
    /// guest id. And a guest id equal to a target does not pass through.
    @Test func noIdIsSeenOrUsedAsTwo() {
        #expect(options.guestUID(1000) == 65534)   // host 1000 is not guest 1000 (that is host 501)
        #expect(options.guestUID(2003) == 65534)
        #expect(options.guestGID(1000) == 65534)
        #expect(options.map(uid: 501, gid: 20, gids: [20]) == MappedIdentity(uid: 65534, gid: 65534, gids: [65534]))
        #expect(options.map(uid: 3004, gid: 1, gids: []) == MappedIdentity(uid: 65534, gid: 1, gids: []))
        // Owners set by the guest: the same map, and no host id for those ids.
        #expect(options.hostOwnerUID(1000) == 501)
        #expect(options.hostOwnerUID(42) == 42)
        #expect(options.hostOwnerUID(501) == nil)
        #expect(options.hostOwnerGID(20) == nil)
        // A swap is one-to-one both ways.
        let swap = parseOK("/srv vsock:3(map_uid=1000:501:1,map_uid=501:1000:1)")[0].clients[0].options
        #expect(swap.map(uid: 501, gid: 1, gids: []).uid == 1000)
        #expect(swap.guestUID(1000) == 501)
        #expect(swap.guestUID(501) == 1000)
    }

    @Test func rootSquashJudgesTheHostIdAfterMapping() {
        // Guest root, unmapped: squashed.
        #expect(options.map(uid: 0, gid: 0, gids: [0]) == MappedIdentity(uid: 65534, gid: 65534, gids: [65534]))
        // A map that sends guest 0 elsewhere is honoured: no host root involved.
        let moved = parseOK("/srv vsock:3(rw,map_uid=0:7000:1,map_gid=0:7000:1)")[0].clients[0].options
        #expect(moved.map(uid: 0, gid: 0, gids: [0]) == MappedIdentity(uid: 7000, gid: 7000, gids: [7000]))
        // A map onto host 0 is squashed under root_squash...
        let ontoRoot = "/srv vsock:3(rw,map_uid=1000:0:1,map_gid=1000:0:1"
        #expect(parseOK(ontoRoot + ")")[0].clients[0].options.map(uid: 1000, gid: 1000, gids: [])
                == MappedIdentity(uid: 65534, gid: 65534, gids: []))
        // ...and reaches it with no_root_squash.
        #expect(parseOK(ontoRoot + ",no_root_squash)")[0].clients[0].options.map(uid: 1000, gid: 1000, gids: [])
                == MappedIdentity(uid: 0, gid: 0, gids: []))
    }

    @Test func allSquashIgnoresTheMapForCredentialsButOwnersStillGoOutMapped() {
        let squashed = parseOK("/srv vsock:3(rw,all_squash,anonuid=7,anongid=8,map_uid=1000:501:1)")[0]
            .clients[0].options
        #expect(squashed.map(uid: 1000, gid: 1000, gids: [1]) == MappedIdentity(uid: 7, gid: 8, gids: []))
        #expect(squashed.guestUID(501) == 1000)
        #expect(squashed.guestUID(1000) == 7)   // no guest id: anonuid
    }

    @Test func anEmptyMapIsTheIdentity() {
        let plain = ExportOptions(readOnly: false, squash: .noRootSquash)
        for id: UInt32 in [0, 1, 501, 1000, 65534, .max] {
            #expect(plain.guestUID(id) == id && plain.guestGID(id) == id && plain.hostOwnerUID(id) == id)
        }
        #expect(plain.map(uid: 1000, gid: 1000, gids: [1, 2]) == MappedIdentity(uid: 1000, gid: 1000, gids: [1, 2]))
    }

    @Test func rangeEdges() {
        let map = IDMap(validRanges: [IDRange(guest: 4_294_967_290, host: 0, count: 6)])
        #expect(map.host(forGuest: 4_294_967_295) == 5)
        #expect(map.host(forGuest: 4_294_967_289) == 4_294_967_289)
        #expect(map.guest(forHost: 5) == 4_294_967_295)
        #expect(map.guest(forHost: 6) == 6)
        #expect(map.host(forGuest: 0) == nil)   // host 0 is guest 4294967290's
    }
}
