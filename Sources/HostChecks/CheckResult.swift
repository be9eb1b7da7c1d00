/// One line of `vsnfs doctor`: what was checked, the verdict, what was seen,
/// and on a warning or failure what to do about it.
public struct CheckResult: Hashable, Sendable {
    public enum Verdict: String, Hashable, Sendable {
        case ok, warn, fail
        /// As printed: `ok`, `warn`, `FAIL`.
        public var label: String { self == .fail ? "FAIL" : rawValue }
    }

    public var name: String
    public var verdict: Verdict
    public var detail: String
    public var fix: String?

    public init(_ name: String, _ verdict: Verdict, _ detail: String, fix: String? = nil) {
        self.name = name
        self.verdict = verdict
        self.detail = detail
        self.fix = fix
    }
}

/// The report as text, one line per check (`ok`, `warn` or `FAIL`, the
/// check's name, what was seen) and the fix on the next line.
public func formatReport(_ results: [CheckResult]) -> String {
    let width = results.map(\.name.count).max() ?? 0
    var text = ""
    for result in results {
        let label = result.verdict.label.padding(to: 5)
        text += "\(label) \(result.name.padding(to: width))  \(result.detail)\n"
        if let fix = result.fix, result.verdict != .ok {
            text += "      \(String(repeating: " ", count: width))  fix: \(fix)\n"
        }
    }
    let failed = results.filter { $0.verdict == .fail }.count
    let warned = results.filter { $0.verdict == .warn }.count
    text += "\(results.count) checks: \(failed) failed, \(warned) warnings\n"
    return text
}

/// The report as one JSON object: `{"ok": BOOL, "checks": [{"name", "verdict", "detail", "fix"}]}`
/// (`fix` only where there is one; `ok` is false when a check failed).
public func formatReportJSON(_ results: [CheckResult]) -> String {
    let checks = results.map { r in
        var fields = ["\"name\": \(jsonString(r.name))", "\"verdict\": \(jsonString(r.verdict.rawValue))",
                      "\"detail\": \(jsonString(r.detail))"]
        if let fix = r.fix { fields.append("\"fix\": \(jsonString(fix))") }
        return "    {" + fields.joined(separator: ", ") + "}"
    }
    let ok = !results.contains { $0.verdict == .fail }
    return "{\n  \"ok\": \(ok),\n  \"checks\": [\n" + checks.joined(separator: ",\n") + "\n  ]\n}\n"
}

/// A JSON string literal (RFC 8259: quote, backslash and control characters escaped).
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension String {
    func padding(to width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

/// The text of a NUL-terminated C buffer.
func text(ofCString buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
