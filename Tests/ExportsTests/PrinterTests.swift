import Exports
import Testing

@Suite struct PrinterTests {
    @Test func resolvedTable() {
        let exports = parseOK("""
            /srv/src vsock:3(rw,no_root_squash) vsock:*(ro)
            "/srv/my data" -rw,async,fsid=7 vsock:10-19 fd00::/8(ro,nowcc) unix(all_squash,anonuid=1000)
            """)
        #expect(formatExportsTable(exports) == """
            /srv/src (mounted as /srv/src)
              vsock:3        rw,no_root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check
              vsock:*        ro,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check

            "/srv/my data" (mounted as "/srv/my data", fsid=7)
              vsock:10-19    rw,root_squash,anonuid=65534,anongid=65534,async,no_subtree_check
              fd00::/8       ro,root_squash,anonuid=65534,anongid=65534,async,no_subtree_check,nowcc
              unix           rw,all_squash,anonuid=1000,anongid=65534,async,no_subtree_check

            """)
        #expect(AuthTable(exports: exports).formatted() == formatExportsTable(exports))
    }

    @Test func longClientNamesWidenTheColumn() {
        let text = formatExportsTable(parseOK("/a 2001:db8:1234:5678::/64(rw,subtree_check) *"))
        #expect(text == """
            /a (mounted as /a)
              2001:db8:1234:5678::/64  rw,root_squash,anonuid=65534,anongid=65534,sync,subtree_check
              *                        ro,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check

            """)
    }

    @Test func serveModeAndEmptyTable() {
        #expect(formatExportsTable([Export(serving: "/home/me/project")]) == """
            /home/me/project (mounted as /)
              *              rw,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check

            """)
        #expect(formatExportsTable([]) == "no exports\n")
    }

    @Test func unusualPathCharactersAreEscaped() {
        let export = Export(hostPath: "/srv/a\"b\\c\td", clients: [ClientRule(client: .unix)])
        #expect(formatExportsTable([export]).hasPrefix("/srv/a\\042b\\134c\\011d (mounted as"))
        // And the escaped form reads back as the same path.
        #expect(parseOK("/srv/a\\042b\\134c\\011d unix").first?.hostPath == export.hostPath)
    }
}
