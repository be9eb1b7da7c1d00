import Testing
@testable import HostChecks

@Suite struct ReportTests {
    @Test func textReportHasOneLinePerCheckAndTheFixAfterAFailure() {
        let text = formatReport([
            CheckResult("vsock", .ok, "AF_VSOCK available"),
            CheckResult("state-dir", .fail, "/x is not writable", fix: "give --state-dir DIR"),
        ])
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("ok    vsock "))
        #expect(lines[1].hasPrefix("FAIL  state-dir "))
        #expect(lines[2].hasSuffix("fix: give --state-dir DIR"))
        #expect(lines[3] == "2 checks: 1 failed, 0 warnings")
    }

    @Test func jsonReportEscapesStringsAndSaysWhetherAnythingFailed() {
        let json = formatReportJSON([CheckResult("exports", .fail, "a \"quoted\"\nline\u{1}", fix: "x")])
        #expect(json.contains("\"ok\": false"))
        #expect(json.contains(#""detail": "a \"quoted\"\nline\u0001""#))
        #expect(json.contains(#""verdict": "fail""#))
        #expect(formatReportJSON([CheckResult("a", .warn, "b")]).contains("\"ok\": true"))
    }
}
