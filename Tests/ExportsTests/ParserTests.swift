import Exports
import Testing
import Transport

/// Parses `text` as a file named "exports", failing the test on errors.
func parseOK(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [Export] {
    do {
        return try ExportsFile.parse(text, fileName: "exports")
    } catch {
        Issue.record("unexpected errors:\n\(error)", sourceLocation: sourceLocation)
        return []
    }
}

@Suite struct ParserTests {
    @Test func designExample() {
        let exports = parseOK("/srv/src vsock:3(rw,no_root_squash) vsock:*(ro)\n")
        #expect(exports == [
            Export(hostPath: "/srv/src", mountPath: "/srv/src", fsid: nil, clients: [
                ClientRule(client: .vsockCID(3), options: ExportOptions(readOnly: false, squash: .noRootSquash)),
                ClientRule(client: .vsockAny, options: ExportOptions(readOnly: true, squash: .rootSquash)),
            ]),
        ])
        #expect(exports.first?.mountPath == exports.first?.hostPath)
    }

    @Test func defaultsAreKnfsds() {
        let exports = parseOK("/srv vsock:3 vsock:4()")
        let expected = ExportOptions(readOnly: true, squash: .rootSquash, anonUID: 65534, anonGID: 65534,
                                     sync: true, subtreeCheck: false, noWCC: false)
        #expect(exports.first?.clients.map(\.options) == [expected, expected])
        #expect(ExportOptions.defaults == expected)
    }

    @Test func everyOption() {
        let exports = parseOK(
            "/a vsock:1(rw,all_squash,anonuid=1000,anongid=100,async,subtree_check,nowcc,secure,fsid=7)\n"
            + "/b vsock:1(ro,no_root_squash,no_all_squash,sync,no_subtree_check,insecure,fsid=root)\n"
            + "/c vsock:1(root_squash,anonuid=0,anongid=4294967295,fsid=4294967295)\n")
        #expect(exports.count == 3)
        #expect(exports[0].fsid == 7)
        #expect(exports[0].clients[0].options == ExportOptions(
            readOnly: false, squash: .allSquash, anonUID: 1000, anonGID: 100,
            sync: false, subtreeCheck: true, noWCC: true))
        #expect(exports[1].fsid == 0)
        #expect(exports[1].clients[0].options == ExportOptions(readOnly: true, squash: .noRootSquash))
        #expect(exports[2].fsid == UInt32.max)
        #expect(exports[2].clients[0].options == ExportOptions(squash: .rootSquash, anonUID: 0, anonGID: UInt32.max))
    }

    @Test func lineDefaultsApplyToEveryClientAndClientsOverride() {
        let exports = parseOK("/data -rw,async,anonuid=1000 vsock:3 vsock:4(ro) 10.0.0.0/8(sync,anonuid=7)")
        let rules = exports.first?.clients ?? []
        #expect(rules.map(\.client) == [.vsockCID(3), .vsockCID(4), .network(.v4(0x0A00_0000), prefix: 8)])
        #expect(rules.map(\.options.readOnly) == [false, true, false])
        #expect(rules.map(\.options.sync) == [false, false, true])
        #expect(rules.map(\.options.anonUID) == [1000, 1000, 7])
    }

    @Test func aClientsSquashOptionsReplaceTheLinesSquashSetting() {
        let exports = parseOK("/a -all_squash,anonuid=1000 vsock:3(no_root_squash) vsock:4 vsock:5(no_all_squash)\n"
                              + "/b -no_root_squash vsock:3(all_squash) vsock:4 vsock:5(rw)")
        #expect(exports[0].clients.map(\.options.squash) == [.noRootSquash, .allSquash, .rootSquash])
        #expect(exports[0].clients.map(\.options.anonUID) == [1000, 1000, 1000])
        #expect(exports[1].clients.map(\.options.squash) == [.allSquash, .noRootSquash, .noRootSquash])
    }

    @Test func clientSpecs() {
        let exports = parseOK("/x vsock:1 vsock:2-9 vsock:* 192.168.1.10 10.0.0.0/8 fd00::/8 ::1 unix * "
                              + "vsock:0 vsock:4294967294 vsock:7-7 0.0.0.0/0")
        #expect(exports.first?.clients.map(\.client) == [
            .vsockCID(1), .vsockRange(2, 9), .vsockAny,
            .address(IPAddress("192.168.1.10")!), .network(IPAddress("10.0.0.0")!, prefix: 8),
            .network(IPAddress("fd00::")!, prefix: 8), .address(IPAddress("::1")!), .unix, .anyone,
            .vsockCID(0), .vsockCID(4294967294), .vsockRange(7, 7), .network(.v4(0), prefix: 0),
        ])
        #expect(exports.first?.clients.map(\.client.description) == [
            "vsock:1", "vsock:2-9", "vsock:*", "192.168.1.10", "10.0.0.0/8", "fd00::/8", "::1", "unix", "*",
            "vsock:0", "vsock:4294967294", "vsock:7-7", "0.0.0.0/0",
        ])
    }

    @Test func networksAreNormalized() {
        let exports = parseOK("/x 10.1.2.3/8 192.168.1.10/32 fd00::1:2/112 ::ffff:10.0.0.1 ::ffff:172.16.0.0/108 2001:db8::1/128")
        #expect(exports.first?.clients.map(\.client) == [
            .network(IPAddress("10.0.0.0")!, prefix: 8),   // host bits cleared
            .address(IPAddress("192.168.1.10")!),          // full-length prefix is an address
            .network(IPAddress("fd00::1:0")!, prefix: 112),
            .address(IPAddress("10.0.0.1")!),              // IPv4-mapped becomes IPv4
            .network(IPAddress("172.16.0.0")!, prefix: 12),
            .address(IPAddress("2001:db8::1")!),
        ])
    }

    @Test func commentsAndBlankLines() {
        let text = """
            # exports for the CI guests

               \t
            /srv/src vsock:3(rw)   # the build guest
              # an indented comment
            /srv/a#b vsock:4 #a comment starts at the start of a word
            """
        let exports = parseOK(text)
        #expect(exports.map(\.hostPath) == ["/srv/src", "/srv/a#b"])
        #expect(exports.map { $0.clients.count } == [1, 1])
        #expect(exports.first?.clients.first?.options.readOnly == false)
    }

    @Test func commentCharacterInsideAClientWordIsAnError() {
        // "vsock:5#x" is one word: '#' starts a comment only at the start of a word.
        #expect(diagnostics("/srv vsock:5#x") == [
            "exports:1:12: '5#x' is not a vsock CID (a number from 0 to 4294967294), a range LOW-HIGH, or *",
        ])
    }

    @Test func continuationLines() {
        let text = "/srv/src \\\n    vsock:3(rw) \\\n    vsock:4(ro)\n/srv/b vsock:5\n"
        let exports = parseOK(text)
        #expect(exports.map(\.hostPath) == ["/srv/src", "/srv/b"])
        #expect(exports.first?.clients.map(\.client) == [.vsockCID(3), .vsockCID(4)])
        #expect(exports.first?.clients.map(\.options.readOnly) == [false, true])
    }

    @Test func continuationJoinsWithoutAddingSpace() {
        // As in nfs-utils, backslash-newline is removed: the halves join.
        let exports = parseOK("/srv vsock:3(rw,no_\\\nroot_squash)")
        #expect(exports.first?.clients.first?.options.squash == .noRootSquash)
    }

    @Test func quotedPaths() {
        let exports = parseOK("\"/srv/my files\" vsock:3(rw)\n/srv/other\\040dir vsock:3\n\"/srv/a \"b vsock:3")
        #expect(exports.map(\.hostPath) == ["/srv/my files", "/srv/other dir", "/srv/a b"])
        #expect(exports.map(\.mountPath) == ["/srv/my files", "/srv/other dir", "/srv/a b"])
    }

    @Test func pathsAreNormalized() {
        let exports = parseOK("/srv//src/ vsock:3\n/ vsock:3\n///tmp vsock:3")
        #expect(exports.map(\.hostPath) == ["/srv/src", "/", "/tmp"])
    }

    @Test func crlfLineEndings() {
        let exports = parseOK("/a vsock:3(rw)\r\n/b \\\r\n vsock:4\r\n")
        #expect(exports.map(\.hostPath) == ["/a", "/b"])
        #expect(exports.map { $0.clients.map(\.client) } == [[.vsockCID(3)], [.vsockCID(4)]])
    }

    @Test func emptyAndCommentOnlyFiles() {
        #expect(parseOK("").isEmpty)
        #expect(parseOK("# nothing\n\n   \n").isEmpty)
    }

    @Test func serveDirectory() {
        let export = Export(serving: "/home/me/project/")
        #expect(export.hostPath == "/home/me/project")
        #expect(export.mountPath == "/")
        #expect(export.fsid == nil)
        #expect(export.clients == [ClientRule(client: .anyone,
                                              options: ExportOptions(readOnly: false, squash: .rootSquash))])
        #expect(Export(serving: "/").hostPath == "/")
    }

    @Test func loadReadsAFileAndNamesItInErrors() throws {
        let path = "/tmp/vsnfs-exports-test-\(UInt32.random(in: 0...UInt32.max))"
        try writeFile(path, "/srv vsock:3(rw)\n/srv vsock:4\n")
        defer { removeFile(path) }
        #expect(throws: ExportsError.invalid([
            ExportsDiagnostic(file: path, line: 2, column: 1, message: "'/srv' is already exported on line 1"),
        ])) {
            try ExportsFile.load(path: path)
        }
        try writeFile(path, "/srv vsock:3(rw)\n")
        #expect(try ExportsFile.load(path: path).map(\.hostPath) == ["/srv"])
    }

    @Test func loadReportsAnUnreadableFile() {
        let path = "/nonexistent/vsnfs/exports"
        do {
            _ = try ExportsFile.load(path: path)
            Issue.record("expected an error")
        } catch {
            #expect(error == .unreadable(file: path, reason: "No such file or directory"))
            #expect(error.description == "/nonexistent/vsnfs/exports: cannot read exports file: No such file or directory")
        }
    }
}

/// The examples in docs/exports.md, kept here so the documentation stays true.
@Suite struct DocumentationExampleTests {
    @Test func examplesParse() {
        let exports = parseOK("""
            /srv/src  vsock:3(rw,no_root_squash) vsock:*(ro)
            # CI guests get their workspace; the controller manages it.
            /srv/ci -rw,async \\
                    vsock:100-199 \\
                    vsock:42(no_root_squash)
            "/srv/data sets"  -ro,all_squash,anonuid=1000,anongid=1000,fsid=7  vsock:* 10.0.0.0/8 unix
            /var/cache/build  vsock:*(rw) 192.168.122.0/24(rw) 192.168.122.1(ro)
            """)
        #expect(exports.map(\.hostPath) == ["/srv/src", "/srv/ci", "/srv/data sets", "/var/cache/build"])
        let table = AuthTable(exports: exports)
        let ci = table.access(for: .vsock(cid: 150, port: 1), mountPath: "/srv/ci")
        #expect(ci?.readWrite == true && ci?.sync == false && ci?.squash == .rootSquash)
        #expect(table.access(for: .vsock(cid: 42, port: 1), mountPath: "/srv/ci")?.squash == .noRootSquash)
        #expect(table.access(for: .vsock(cid: 41, port: 1), mountPath: "/srv/ci") == nil)
        #expect(exports[2].fsid == 7)
        #expect(table.access(for: .inet(IPAddress("192.168.122.1")!, port: 1), mountPath: "/var/cache/build")?.readOnly == true)
        #expect(table.access(for: .inet(IPAddress("192.168.122.9")!, port: 1), mountPath: "/var/cache/build")?.readOnly == false)
        #expect(formatExportsTable([exports[0]]) == """
            /srv/src (mounted as /srv/src)
              vsock:3        rw,no_root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check
              vsock:*        ro,root_squash,anonuid=65534,anongid=65534,sync,no_subtree_check

            """)
    }

    @Test func errorExample() {
        let text = """
            /srv/src vsock:3 (rw)
            /srv/data vsock:4(rw,ro) build.example.com(ro)
            srv/tmp *(ro)
            /srv/src vsock:5(anonuid=nobody)
            """
        do {
            _ = try ExportsFile.parse(text, fileName: "/etc/vsnfs/exports")
            Issue.record("expected errors")
        } catch {
            #expect(error.description == """
                /etc/vsnfs/exports:1:18: space between client 'vsock:3' and '(rw)': exports(5) reads this as 'vsock:3' with default options plus everyone ('*') with (rw); write 'vsock:3(rw)' with no space, or '*(rw)' if you mean everyone
                /etc/vsnfs/exports:2:22: 'ro' contradicts 'rw' in the same option list
                /etc/vsnfs/exports:2:26: host names ('build.example.com') are not supported: vsnfs never resolves names; use vsock:CID, vsock:LOW-HIGH, vsock:*, an IP address, ADDRESS/PREFIX, unix, or *
                /etc/vsnfs/exports:3:1: export path must be absolute (start with '/'), got 'srv/tmp'
                /etc/vsnfs/exports:4:1: '/srv/src' is already exported on line 1
                /etc/vsnfs/exports:4:26: anonuid needs a number from 0 to 4294967295, got 'nobody'
                """)
        }
    }
}
