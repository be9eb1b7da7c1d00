import Exports
import Testing

/// The list of supported client forms that name/netgroup/wildcard errors end with.
let supported = "use vsock:CID, vsock:LOW-HIGH, vsock:*, an IP address, ADDRESS/PREFIX, unix, or *"

@Suite struct DiagnosticTests {
    @Test func formatIsFileLineColumnMessage() {
        let diagnostic = ExportsDiagnostic(file: "/etc/vsnfs/exports", line: 3, column: 14, message: "boom")
        #expect(diagnostic.description == "/etc/vsnfs/exports:3:14: boom")
        let error = ExportsError.invalid([diagnostic, ExportsDiagnostic(file: "f", line: 4, column: 1, message: "two")])
        #expect(error.description == "/etc/vsnfs/exports:3:14: boom\nf:4:1: two")
    }

    @Test func fileNameComesFromTheCaller() {
        do {
            _ = try ExportsFile.parse("/srv vsock:3(bogus)", fileName: "/etc/vsnfs/exports")
            Issue.record("expected an error")
        } catch {
            #expect(error == .invalid([ExportsDiagnostic(file: "/etc/vsnfs/exports", line: 1, column: 14,
                                                         message: "unknown option 'bogus'")]))
        }
    }

    @Test func unknownAndUnsupportedOptions() {
        #expect(diagnostics("/srv vsock:3(rw,bogus)") == ["exports:1:17: unknown option 'bogus'"])
        #expect(diagnostics("/srv vsock:3(RW)") == ["exports:1:14: unknown option 'RW'; did you mean 'rw'?"])
        #expect(diagnostics("/srv vsock:3(no_root_sqash)")
                == ["exports:1:14: unknown option 'no_root_sqash'; did you mean 'no_root_squash'?"])
        #expect(diagnostics("/srv vsock:3(anonid=5)") == ["exports:1:14: unknown option 'anonid'"])  // anonuid and anongid tie
        #expect(diagnostics("/srv vsock:3(x)") == ["exports:1:14: unknown option 'x'"])
        #expect(diagnostics("/srv vsock:3(crossmnt)") == ["exports:1:14: option 'crossmnt' is not supported by vsnfs"])
        #expect(diagnostics("/srv -bogus vsock:3") == ["exports:1:7: unknown option 'bogus'"])
    }

    @Test func badNumbersPointAtTheValue() {
        #expect(diagnostics("/srv vsock:3(anonuid=abc)")
                == ["exports:1:22: anonuid needs a number from 0 to 4294967295, got 'abc'"])
        #expect(diagnostics("/srv vsock:3(anonuid=-2)")
                == ["exports:1:22: anonuid needs a number from 0 to 4294967295, got '-2'"])
        #expect(diagnostics("/srv vsock:3(anongid=4294967296)")
                == ["exports:1:22: anongid needs a number from 0 to 4294967295, got '4294967296'"])
        #expect(diagnostics("/srv vsock:3(fsid=uuid)")
                == ["exports:1:19: fsid needs a number from 0 to 4294967295 or 'root', got 'uuid'"])
        #expect(diagnostics("/srv vsock:3(anonuid=)")
                == ["exports:1:21: anonuid needs a number from 0 to 4294967295, got ''"])
        #expect(diagnostics("/srv vsock:3(anonuid)") == ["exports:1:14: option 'anonuid' needs a value: anonuid=N"])
        #expect(diagnostics("/srv vsock:3(rw=1)") == ["exports:1:14: option 'rw' takes no value"])
    }

    @Test func badPaths() {
        #expect(diagnostics("srv/data vsock:3")
                == ["exports:1:1: export path must be absolute (start with '/'), got 'srv/data'"])
        #expect(diagnostics("vsock:3(rw)") == [
            "exports:1:1: export path must be absolute (start with '/'), got 'vsock:3(rw)'; "
            + "the line must start with the directory to export",
        ])
        #expect(diagnostics("/srv/../etc vsock:3")
                == ["exports:1:1: export path '/srv/../etc' must not contain '.' or '..' components"])
        #expect(diagnostics("/srv/./x vsock:3")
                == ["exports:1:1: export path '/srv/./x' must not contain '.' or '..' components"])
        #expect(diagnostics("\"\" vsock:3") == ["exports:1:1: empty export path"])
        #expect(diagnostics("  /srv/a\\000 vsock:3") == ["exports:1:3: export path contains a NUL byte"])
    }

    @Test func spaceBeforeParenthesisIsTheClassicTrap() {
        #expect(diagnostics("/srv vsock:3 (rw)") == [
            "exports:1:14: space between client 'vsock:3' and '(rw)': exports(5) reads this as 'vsock:3' "
            + "with default options plus everyone ('*') with (rw); write 'vsock:3(rw)' with no space, "
            + "or '*(rw)' if you mean everyone",
        ])
        #expect(diagnostics("/srv (rw)") == [
            "exports:1:6: options '(rw)' have no client: exports(5) reads this as everyone ('*'); "
            + "write '*(rw)' if you mean everyone, or put the client directly before '('",
        ])
        #expect(diagnostics("/srv vsock:3(ro) (rw)") == [
            "exports:1:18: options '(rw)' have no client: exports(5) reads this as everyone ('*'); "
            + "write '*(rw)' if you mean everyone, or put the client directly before '('",
        ])
    }

    @Test func contradictoryOptions() {
        #expect(diagnostics("/srv vsock:3(rw,ro)") == ["exports:1:17: 'ro' contradicts 'rw' in the same option list"])
        #expect(diagnostics("/srv vsock:3(sync,async)")
                == ["exports:1:19: 'async' contradicts 'sync' in the same option list"])
        #expect(diagnostics("/srv vsock:3(no_subtree_check,subtree_check)")
                == ["exports:1:31: 'subtree_check' contradicts 'no_subtree_check' in the same option list"])
        #expect(diagnostics("/srv vsock:3(root_squash,no_root_squash)")
                == ["exports:1:26: 'no_root_squash' contradicts 'root_squash' in the same option list"])
        #expect(diagnostics("/srv vsock:3(all_squash,no_all_squash)")
                == ["exports:1:25: 'no_all_squash' contradicts 'all_squash' in the same option list"])
        #expect(diagnostics("/srv vsock:3(anonuid=1,anonuid=2)")
                == ["exports:1:24: 'anonuid=2' contradicts 'anonuid=1' in the same option list"])
        #expect(diagnostics("/srv vsock:3(secure,insecure)")
                == ["exports:1:21: 'insecure' contradicts 'secure' in the same option list"])
        #expect(diagnostics("/srv vsock:3(no_root_squash,all_squash)") == [
            "exports:1:29: 'all_squash' contradicts 'no_root_squash' in the same option list "
            + "(all_squash squashes root as well)",
        ])
        #expect(diagnostics("/srv vsock:3(all_squash,no_root_squash)") == [
            "exports:1:25: 'no_root_squash' contradicts 'all_squash' in the same option list "
            + "(all_squash squashes root as well)",
        ])
        #expect(diagnostics("/srv -rw,ro vsock:3") == ["exports:1:10: 'ro' contradicts 'rw' in the same option list"])
        // Repeating an option is harmless; overriding the line's defaults is not a contradiction.
        #expect(diagnostics("/srv -ro vsock:3(rw,rw,anonuid=5,anonuid=5)") == [])
    }

    @Test func samePathTwice() {
        #expect(diagnostics("/srv vsock:3\n/srv vsock:4") == ["exports:2:1: '/srv' is already exported on line 1"])
        #expect(diagnostics("/srv vsock:3\n# c\n  /srv/ vsock:4")
                == ["exports:3:3: '/srv' is already exported on line 1"])
    }

    @Test func sameFsidTwice() {
        #expect(diagnostics("/a vsock:3(fsid=1)\n/b vsock:3(fsid=1)")
                == ["exports:2:12: fsid=1 is already used by '/a' on line 1"])
        #expect(diagnostics("/a -fsid=0 vsock:3\n/b vsock:3(fsid=root)")
                == ["exports:2:12: fsid=0 is already used by '/a' on line 1"])
        #expect(diagnostics("/srv -fsid=1 vsock:3(fsid=2)")
                == ["exports:1:22: fsid=2 conflicts with fsid=1 earlier in this export; an export has one fsid"])
        #expect(diagnostics("/srv -fsid=1 vsock:3(fsid=1) vsock:4") == [])
    }

    @Test func sameClientTwiceInOneExport() {
        #expect(diagnostics("/srv vsock:3(rw) vsock:3(ro)")
                == ["exports:1:18: client 'vsock:3' appears twice in this export (first at column 6)"])
        #expect(diagnostics("/srv 10.0.0.0/8 10.1.2.3/8")
                == ["exports:1:17: client '10.0.0.0/8' appears twice in this export (first at column 6)"])
        #expect(diagnostics("/srv vsock:3 \\\n  vsock:3")
                == ["exports:2:3: client 'vsock:3' appears twice in this export (first at line 1, column 6)"])
        #expect(diagnostics("/srv *(ro) *") == ["exports:1:12: client '*' appears twice in this export (first at column 6)"])
        // The same client on different exports is fine.
        #expect(diagnostics("/a vsock:3\n/b vsock:3") == [])
    }

    @Test func namesNetgroupsAndWildcardsAreNotSupported() {
        #expect(diagnostics("/srv host.example.com(rw)") == [
            "exports:1:6: host names ('host.example.com') are not supported: vsnfs never resolves names; \(supported)",
        ])
        #expect(diagnostics("/srv localhost") == [
            "exports:1:6: host names ('localhost') are not supported: vsnfs never resolves names; \(supported)",
        ])
        #expect(diagnostics("/srv @trusted(rw)") == ["exports:1:6: netgroups ('@trusted') are not supported; \(supported)"])
        #expect(diagnostics("/srv *.example.com(ro)") == [
            "exports:1:6: wildcard host names ('*.example.com') are not supported: vsnfs never resolves names; "
            + supported,
        ])
        #expect(diagnostics("/srv tcp:1.2.3.4") == ["exports:1:6: unrecognised client 'tcp:1.2.3.4'; \(supported)"])
    }

    @Test func badVsockSpecs() {
        #expect(diagnostics("/srv vsock:abc")
                == ["exports:1:12: 'abc' is not a vsock CID (a number from 0 to 4294967294), a range LOW-HIGH, or *"])
        #expect(diagnostics("/srv vsock:9-3") == ["exports:1:12: vsock range 9-3 is empty: LOW must not exceed HIGH"])
        #expect(diagnostics("/srv vsock:3-x") == ["exports:1:14: 'x' is not a vsock CID (a number from 0 to 4294967294)"])
        #expect(diagnostics("/srv vsock:3-") == ["exports:1:13: vsock range needs two CIDs, LOW-HIGH, e.g. vsock:3-10"])
        #expect(diagnostics("/srv vsock:-1") == ["exports:1:12: vsock range needs two CIDs, LOW-HIGH, e.g. vsock:3-10"])
        #expect(diagnostics("/srv vsock:4294967295")
                == ["exports:1:12: CID 4294967295 is VMADDR_CID_ANY, not a peer; use vsock:* for any guest"])
        #expect(diagnostics("/srv vsock:4294967296(rw)")
                == ["exports:1:12: '4294967296' is not a vsock CID (a number from 0 to 4294967294), a range LOW-HIGH, or *"])
        #expect(diagnostics("/srv vsock:") == ["exports:1:6: 'vsock:' needs a CID: vsock:CID, vsock:LOW-HIGH or vsock:*"])
    }

    @Test func badAddressesAndNetworks() {
        #expect(diagnostics("/srv 10.0.0.0/33") == ["exports:1:15: '33' is not a prefix length for IPv4 (0-32)"])
        #expect(diagnostics("/srv fd00::/129") == ["exports:1:13: '129' is not a prefix length for IPv6 (0-128)"])
        #expect(diagnostics("/srv 10.0.0.0/") == ["exports:1:15: '' is not a prefix length for IPv4 (0-32)"])
        #expect(diagnostics("/srv /8") == ["exports:1:6: '/8' is not a network: expected ADDRESS/PREFIX like 10.0.0.0/8 or fd00::/8"])
        // A '/' that ends a continued line: the diagnostic is at the '/', not
        // before the next line's first column (FuzzExports found column 0).
        #expect(diagnostics("/srv /\\\nv") == ["exports:1:6: '/v' is not a network: expected ADDRESS/PREFIX like 10.0.0.0/8 or fd00::/8"])
        #expect(diagnostics("/srv 10.0.0.0/\\\n") == ["exports:1:15: '' is not a prefix length for IPv4 (0-32)"])
        #expect(diagnostics("/srv example.com/24") == [
            "exports:1:6: 'example.com' in 'example.com/24' is not an IP address: a network is ADDRESS/PREFIX "
            + "like 10.0.0.0/8 or fd00::/8 (host names are not supported)",
        ])
        #expect(diagnostics("/srv 10.0.0") == ["exports:1:6: '10.0.0' is not a valid IPv4 address"])
        #expect(diagnostics("/srv 10.0.0.256") == ["exports:1:6: '10.0.0.256' is not a valid IPv4 address"])
        #expect(diagnostics("/srv fd00:::1") == ["exports:1:6: 'fd00:::1' is not a valid IPv6 address"])
    }

    @Test func malformedClientWords() {
        #expect(diagnostics("/srv vsock:3(rw vsock:4") == [
            "exports:1:13: missing ')' to close the options of 'vsock:3' (options are separated by commas, with no spaces)",
        ])
        #expect(diagnostics("/srv vsock:3(rw)x") == ["exports:1:17: unexpected 'x' after ')'; separate clients with spaces"])
        #expect(diagnostics("/srv vsock:3(rw,,async)") == ["exports:1:17: empty option (stray ',')"])
        #expect(diagnostics("/srv vsock:3(rw,)") == ["exports:1:17: empty option (stray ',')"])
        #expect(diagnostics("/srv vsock:3 -rw")
                == ["exports:1:14: default options ('-rw') must come directly after the path"])
        #expect(diagnostics("/srv \"\" vsock:3") == ["exports:1:6: empty client name"])
        #expect(diagnostics("/srv - vsock:3")
                == ["exports:1:6: '-' must be followed by default options, e.g. -rw,no_subtree_check"])
    }

    @Test func unterminatedQuoteSkipsOnlyItsLine() {
        #expect(diagnostics("\"/srv/a vsock:3\n/srv/b vsock:3(bogus)") == [
            "exports:1:1: unterminated '\"': the quoted text runs to the end of the line",
            "exports:2:16: unknown option 'bogus'",
        ])
    }

    @Test func exportWithoutClients() {
        #expect(diagnostics("/srv") == ["exports:1:1: export '/srv' lists no clients; add one or more, e.g. 'vsock:3(rw)' or '*(ro)'"])
        #expect(diagnostics("/srv -rw # comment")
                == ["exports:1:1: export '/srv' lists no clients; add one or more, e.g. 'vsock:3(rw)' or '*(ro)'"])
    }

    @Test func everyErrorInTheFileIsReportedInOrder() {
        let text = """
            # exports with mistakes
            /srv/src vsock:3 (rw)
            /srv/data \\
                vsock:4(rw,ro) \\
                build.example.com(ro)
            relative/path *(ro)
            /srv/src vsock:5
            /srv/x vsock:6(fsid=9) vsock:6(bogus)
            /srv/y vsock:7(fsid=9)
            /srv/fine vsock:8(rw)
            """
        #expect(diagnostics(text) == [
            "exports:2:18: space between client 'vsock:3' and '(rw)': exports(5) reads this as 'vsock:3' "
            + "with default options plus everyone ('*') with (rw); write 'vsock:3(rw)' with no space, "
            + "or '*(rw)' if you mean everyone",
            "exports:4:16: 'ro' contradicts 'rw' in the same option list",
            "exports:5:5: host names ('build.example.com') are not supported: vsnfs never resolves names; \(supported)",
            "exports:6:1: export path must be absolute (start with '/'), got 'relative/path'",
            "exports:7:1: '/srv/src' is already exported on line 2",
            "exports:8:24: client 'vsock:6' appears twice in this export (first at column 8)",
            "exports:8:32: unknown option 'bogus'",
            "exports:9:16: fsid=9 is already used by '/srv/x' on line 8",
        ])
    }
}
