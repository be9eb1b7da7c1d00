#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Transport

/// One problem in an exports file, at a 1-based line and column.
public struct ExportsDiagnostic: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `FILE:LINE:COLUMN: message`
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Why an exports file could not be used.
public enum ExportsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file could not be read (`reason` is the system's error text).
    case unreadable(file: String, reason: String)
    /// The file was read and has errors: all of them, in line/column order.
    case invalid([ExportsDiagnostic])

    /// The diagnostics of `.invalid` (empty for `.unreadable`).
    public var diagnostics: [ExportsDiagnostic] {
        if case .invalid(let diagnostics) = self { return diagnostics }
        return []
    }

    /// One line per problem, ready to print on stderr.
    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): cannot read exports file: \(reason)"
        case .invalid(let diagnostics): return diagnostics.map(\.description).joined(separator: "\n")
        }
    }
}

/// The exports file: `PATH [-DEFAULTOPTS] CLIENT(OPTS) CLIENT(OPTS) ...`, one
/// export per line. The grammar is documented in docs/exports.md.
public enum ExportsFile {
    /// Parses exports-file text. Pure: no file system access. `fileName` only
    /// names the source in diagnostics.
    ///
    /// Throws `.invalid` with every error found in the text.
    public static func parse(_ text: String, fileName: String) throws(ExportsError) -> [Export] {
        var parser = ExportsParser(fileName: fileName)
        parser.parse(text)
        if !parser.diagnostics.isEmpty { throw .invalid(parser.sortedDiagnostics) }
        return parser.exports
    }

    /// Reads and parses the exports file at `path` (diagnostics name it `path`).
    public static func load(path: String) throws(ExportsError) -> [Export] {
        let text = try readText(path)
        return try parse(text, fileName: path)
    }

    /// Largest exports file accepted; anything bigger is surely a mistake.
    static let maximumFileSize = 16 << 20

    static func readText(_ path: String) throws(ExportsError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .unreadable(file: path, reason: String(cString: strerror(code)))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maximumFileSize {
                throw .unreadable(file: path, reason: "larger than \(maximumFileSize >> 20) MiB")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Lexing

/// A 1-based position in the source text.
struct SourcePosition: Hashable {
    var line: Int
    var column: Int
}

/// A character of a logical line, with where it came from.
struct SourceCharacter {
    var character: Character
    var position: SourcePosition
}

/// A whitespace-separated word of a logical line; double quotes group and are removed.
struct Token {
    /// Content, without the quote characters.
    var characters: [SourceCharacter]
    /// Where the word starts (its first character or its opening quote).
    var start: SourcePosition

    var text: String { String(characters.map(\.character)) }
    var first: Character? { characters.first?.character }
}

extension ArraySlice where Element == SourceCharacter {
    var text: String { String(map(\.character)) }
}

private func isBlank(_ c: Character) -> Bool {
    c == " " || c == "\t" || c == "\r" || c == "\u{0B}" || c == "\u{0C}"
}

private func isLineBreak(_ c: Character) -> Bool {
    c == "\n" || c == "\r\n"
}

private func isDigits<S: StringProtocol>(_ s: S) -> Bool {
    !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber }
}

// MARK: - Options as written in one list

/// The options of one `(...)` or `-...` list, before defaults are applied.
struct OptionList {
    var readOnly: Bool?
    var rootSquash: Bool?
    var allSquash: Bool?
    var anonUID: UInt32?
    var anonGID: UInt32?
    var sync: Bool?
    var subtreeCheck: Bool?
    var noWCC: Bool?
    var fsid: (value: UInt32, position: SourcePosition)?
    /// `map_uid=` ranges in the order written; nil when the list names none.
    var uidRanges: [IDRange]?
    /// `map_gid=` ranges in the order written; nil when the list names none.
    var gidRanges: [IDRange]?

    var mentionsSquash: Bool { rootSquash != nil || allSquash != nil }

    /// Built-in defaults, then `lineDefaults`, then `client`. A client list
    /// that names any squash option replaces the line's squash setting as a
    /// whole (so `-all_squash ... vsock:3(no_root_squash)` gives vsock:3
    /// no_root_squash, as it reads). Likewise a client list naming any
    /// `map_uid` (or `map_gid`) replaces the line's uid (gid) ranges.
    static func resolve(lineDefaults: OptionList, client: OptionList) -> ExportOptions {
        var options = ExportOptions.defaults
        for list in [lineDefaults, client] {
            if let v = list.readOnly { options.readOnly = v }
            if let v = list.anonUID { options.anonUID = v }
            if let v = list.anonGID { options.anonGID = v }
            if let v = list.sync { options.sync = v }
            if let v = list.subtreeCheck { options.subtreeCheck = v }
            if let v = list.noWCC { options.noWCC = v }
            if let v = list.uidRanges { options.uidMap = IDMap(validRanges: v) }
            if let v = list.gidRanges { options.gidMap = IDMap(validRanges: v) }
        }
        let squashSource = client.mentionsSquash ? client : lineDefaults
        let rootSquash = squashSource.rootSquash ?? true
        let allSquash = squashSource.allSquash ?? false
        options.squash = allSquash ? .allSquash : (rootSquash ? .rootSquash : .noRootSquash)
        return options
    }
}

/// Every option name the parser accepts, for "did you mean" hints.
private let knownOptionNames = [
    "rw", "ro", "root_squash", "no_root_squash", "all_squash", "no_all_squash", "anonuid", "anongid",
    "sync", "async", "subtree_check", "no_subtree_check", "fsid", "nowcc", "secure", "insecure", "map_uid", "map_gid",
]

/// The known option within edit distance 2 of `name` (case-insensitively), if exactly one is closest.
private func closestKnownOption(to name: String) -> String? {
    let typed = Array(name.lowercased())
    guard typed.count >= 2 else { return nil }
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        // Both are non-empty here.
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1,
                                 previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
    let scored = knownOptionNames.map { (name: $0, distance: distance(typed, Array($0))) }
    guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= 2,
          scored.filter({ $0.distance == best.distance }).count == 1 else { return nil }
    return best.name
}

/// knfsd options vsnfs does not implement: named as such rather than "unknown".
private let unsupportedKnfsdOptions: Set<String> = [
    "crossmnt", "nohide", "hide", "mountpoint", "mp", "sec", "wdelay", "no_wdelay",
    "acl", "no_acl", "refer", "replicas", "pnfs", "no_pnfs", "security_label",
    "insecure_locks", "secure_locks", "no_auth_nlm", "auth_nlm", "root_dir",
    "xprtsec", "fsloc", "nordirplus",
]

// MARK: - Parser

/// Holds the state of one parse; never shared.
struct ExportsParser {
    let fileName: String
    private(set) var diagnostics: [ExportsDiagnostic] = []
    private(set) var exports: [Export] = []
    /// Host path -> line that exported it.
    private var exportedPaths: [String: Int] = [:]
    /// fsid -> (host path, line) that claimed it.
    private var claimedFSIDs: [UInt32: (path: String, line: Int)] = [:]

    init(fileName: String) {
        self.fileName = fileName
    }

    var sortedDiagnostics: [ExportsDiagnostic] {
        diagnostics.enumerated().sorted {
            ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
        }.map(\.element)
    }

    private mutating func error(_ position: SourcePosition, _ message: String) {
        diagnostics.append(ExportsDiagnostic(file: fileName, line: position.line,
                                             column: position.column, message: message))
    }

    mutating func parse(_ text: String) {
        for line in Self.logicalLines(text) {
            if let tokens = tokenize(line), !tokens.isEmpty {
                parseExportLine(tokens)
            }
        }
    }

    /// Splits text into logical lines: backslash-newline joins physical lines
    /// (before comments are recognised, as in nfs-utils).
    static func logicalLines(_ text: String) -> [[SourceCharacter]] {
        let characters = Array(text)
        var lines: [[SourceCharacter]] = []
        var current: [SourceCharacter] = []
        var line = 1, column = 1, index = 0
        while index < characters.count {
            let c = characters[index]
            if c == "\\", index + 1 < characters.count, isLineBreak(characters[index + 1]) {
                line += 1; column = 1; index += 2
                continue
            }
            if isLineBreak(c) {
                lines.append(current); current = []
                line += 1; column = 1; index += 1
                continue
            }
            current.append(SourceCharacter(character: c, position: SourcePosition(line: line, column: column)))
            column += 1; index += 1
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    /// Words of a logical line. `#` at the start of a word (outside quotes)
    /// begins a comment. Returns nil after reporting an unterminated quote.
    private mutating func tokenize(_ line: [SourceCharacter]) -> [Token]? {
        var tokens: [Token] = []
        var index = 0
        while index < line.count {
            let c = line[index].character
            if isBlank(c) { index += 1; continue }
            if c == "#" { break }
            var token = Token(characters: [], start: line[index].position)
            var openQuote: SourcePosition?
            while index < line.count {
                let sc = line[index]
                if sc.character == "\"" {
                    openQuote = openQuote == nil ? sc.position : nil
                    index += 1
                    continue
                }
                if openQuote == nil && isBlank(sc.character) { break }
                token.characters.append(sc)
                index += 1
            }
            if let openQuote {
                error(openQuote, "unterminated '\"': the quoted text runs to the end of the line")
                return nil
            }
            tokens.append(token)
        }
        return tokens
    }

    private mutating func parseExportLine(_ tokens: [Token]) {
        let pathToken = tokens[0]
        let errorsBefore = diagnostics.count
        let hostPath = parsePath(pathToken)

        var rest = tokens.dropFirst()
        var lineDefaults = OptionList()
        if let next = rest.first, next.first == "-" {
            rest = rest.dropFirst()
            let body = next.characters.dropFirst()
            if body.isEmpty {
                error(next.start, "'-' must be followed by default options, e.g. -rw,no_subtree_check")
            } else if let list = parseOptions(body, after: next.characters[0].position) {
                lineDefaults = list
            }
        }

        var rules: [ClientRule] = []
        var fsids: [(value: UInt32, position: SourcePosition)] = []
        if let fsid = lineDefaults.fsid { fsids.append(fsid) }
        var seenClients: [ClientSpec: SourcePosition] = [:]
        var previous: Token?
        var previousWasBareClient = false

        for token in rest {
            defer { previous = token }
            let wasBare = previousWasBareClient
            previousWasBareClient = false
            guard let firstCharacter = token.characters.first else {
                error(token.start, "empty client name")
                continue
            }
            if firstCharacter.character == "-" {
                error(token.start, "default options ('\(token.text)') must come directly after the path")
                continue
            }
            if firstCharacter.character == "(" {
                let options = token.text
                if wasBare, let previous {
                    error(firstCharacter.position,
                          "space between client '\(previous.text)' and '\(options)': exports(5) reads this as "
                          + "'\(previous.text)' with default options plus everyone ('*') with \(options); "
                          + "write '\(previous.text)\(options)' with no space, or '*\(options)' if you mean everyone")
                } else {
                    error(firstCharacter.position,
                          "options '\(options)' have no client: exports(5) reads this as everyone ('*'); "
                          + "write '*\(options)' if you mean everyone, or put the client directly before '('")
                }
                continue
            }

            // Split CLIENT(OPTS).
            let characters = token.characters[...]
            var specPart = characters
            var optionPart: ArraySlice<SourceCharacter>?
            var wellFormed = true
            if let open = characters.firstIndex(where: { $0.character == "(" }) {
                specPart = characters[..<open]
                if let close = characters[open...].firstIndex(where: { $0.character == ")" }) {
                    optionPart = characters[(open + 1)..<close]
                    if close != characters.endIndex - 1 {
                        let trailing = characters[(close + 1)...]
                        error(trailing.first!.position,
                              "unexpected '\(trailing.text)' after ')'; separate clients with spaces")
                        wellFormed = false
                    }
                } else {
                    error(characters[open].position,
                          "missing ')' to close the options of '\(specPart.text)' "
                          + "(options are separated by commas, with no spaces)")
                    wellFormed = false
                }
            } else {
                previousWasBareClient = true
            }

            let spec = parseClient(specPart)
            var options = OptionList()
            if let optionPart {
                if let parsed = parseOptions(optionPart, after: characters[optionPart.startIndex - 1].position) {
                    options = parsed
                } else {
                    wellFormed = false
                }
            }
            guard let spec else { continue }
            if let first = seenClients[spec] {
                let whereFirst = first.line == token.start.line
                    ? "column \(first.column)" : "line \(first.line), column \(first.column)"
                error(token.start, "client '\(spec)' appears twice in this export (first at \(whereFirst))")
                continue
            }
            seenClients[spec] = token.start
            if let fsid = options.fsid { fsids.append(fsid) }
            if wellFormed {
                rules.append(ClientRule(client: spec,
                                        options: OptionList.resolve(lineDefaults: lineDefaults, client: options)))
            }
        }

        // One fsid per export.
        var fsid: (value: UInt32, position: SourcePosition)?
        for candidate in fsids {
            if let chosen = fsid {
                if chosen.value != candidate.value {
                    error(candidate.position, "fsid=\(candidate.value) conflicts with fsid=\(chosen.value) "
                          + "earlier in this export; an export has one fsid")
                }
            } else {
                fsid = candidate
            }
        }

        if rest.isEmpty, let hostPath {
            error(pathToken.start, "export '\(hostPath)' lists no clients; "
                  + "add one or more, e.g. 'vsock:3(rw)' or '*(ro)'")
        }

        guard let hostPath else { return }
        let line = pathToken.start.line
        if let earlier = exportedPaths[hostPath] {
            error(pathToken.start, "'\(hostPath)' is already exported on line \(earlier)")
        } else {
            exportedPaths[hostPath] = line
        }
        if let fsid {
            if let owner = claimedFSIDs[fsid.value] {
                error(fsid.position, "fsid=\(fsid.value) is already used by '\(owner.path)' on line \(owner.line)")
            } else {
                claimedFSIDs[fsid.value] = (hostPath, line)
            }
        }
        if diagnostics.count == errorsBefore {
            exports.append(Export(hostPath: hostPath, mountPath: hostPath, fsid: fsid?.value, clients: rules))
        }
    }

    // MARK: Paths

    /// An absolute path, with `\ooo` octal escapes decoded, repeated and
    /// trailing slashes removed. `.` and `..` components are refused.
    private mutating func parsePath(_ token: Token) -> String? {
        guard let first = token.first else {
            error(token.start, "empty export path")
            return nil
        }
        guard first == "/" else {
            let text = token.text
            var message = "export path must be absolute (start with '/'), got '\(text)'"
            if text.contains("(") || text.hasPrefix("vsock:") || text == "*" || text == "unix" {
                message += "; the line must start with the directory to export"
            }
            error(token.start, message)
            return nil
        }
        var bytes: [UInt8] = []
        let characters = token.characters
        var index = 0
        while index < characters.count {
            let c = characters[index].character
            if c == "\\", index + 3 < characters.count,
               let value = Self.octalByte(characters[(index + 1)..<(index + 4)].map(\.character)) {
                bytes.append(value)
                index += 4
                continue
            }
            bytes.append(contentsOf: Array(String(c).utf8))
            index += 1
        }
        if bytes.contains(0) {
            error(token.start, "export path contains a NUL byte")
            return nil
        }
        let raw = String(decoding: bytes, as: UTF8.self)
        let components = raw.split(separator: "/", omittingEmptySubsequences: true)
        if components.contains(where: { $0 == "." || $0 == ".." }) {
            error(token.start, "export path '\(raw)' must not contain '.' or '..' components")
            return nil
        }
        return "/" + components.joined(separator: "/")
    }

    private static func octalByte(_ digits: [Character]) -> UInt8? {
        guard digits.count == 3 else { return nil }
        var value = 0
        for d in digits {
            guard let v = d.wholeNumberValue, d.isASCII, v < 8 else { return nil }
            value = value * 8 + v
        }
        return value <= 255 ? UInt8(value) : nil
    }

    // MARK: Client specs

    private mutating func parseClient(_ characters: ArraySlice<SourceCharacter>) -> ClientSpec? {
        guard let start = characters.first?.position else { return nil }
        let text = characters.text
        let supported = "use vsock:CID, vsock:LOW-HIGH, vsock:*, an IP address, ADDRESS/PREFIX, unix, or *"

        if text == "*" { return .anyone }
        if text == "unix" { return .unix }
        if text.hasPrefix("vsock:") {
            return parseVsock(characters.dropFirst(6), whole: characters)
        }
        if text.hasPrefix("@") {
            error(start, "netgroups ('\(text)') are not supported; \(supported)")
            return nil
        }
        if let slash = characters.firstIndex(where: { $0.character == "/" }) {
            return parseNetwork(address: characters[..<slash], slash: characters[slash].position,
                                prefix: characters[(slash + 1)...], whole: text)
        }
        if let address = IPAddress(text) {
            return .address(address.unmapped)
        }
        if text.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" }) {
            error(start, "wildcard host names ('\(text)') are not supported: vsnfs never resolves names; \(supported)")
            return nil
        }
        if text.allSatisfy({ $0 == "." || ($0.isASCII && $0.isNumber) }) {
            error(start, "'\(text)' is not a valid IPv4 address")
            return nil
        }
        if text.contains(":"), text.allSatisfy({ $0 == ":" || $0 == "." || $0.isHexDigit }) {
            error(start, "'\(text)' is not a valid IPv6 address")
            return nil
        }
        if text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) {
            error(start, "host names ('\(text)') are not supported: vsnfs never resolves names; \(supported)")
            return nil
        }
        error(start, "unrecognised client '\(text)'; \(supported)")
        return nil
    }

    private mutating func parseVsock(_ rest: ArraySlice<SourceCharacter>,
                                     whole: ArraySlice<SourceCharacter>) -> ClientSpec? {
        let start = whole.first!.position
        guard let restStart = rest.first?.position else {
            error(start, "'vsock:' needs a CID: vsock:CID, vsock:LOW-HIGH or vsock:*")
            return nil
        }
        if rest.text == "*" { return .vsockAny }
        if let dash = rest.firstIndex(where: { $0.character == "-" }) {
            let lowPart = rest[..<dash], highPart = rest[(dash + 1)...]
            let low = parseCID(lowPart, at: restStart, inRange: true)
            let high = parseCID(highPart, at: highPart.first?.position ?? rest[dash].position, inRange: true)
            guard let low, let high else { return nil }
            if low > high {
                error(restStart, "vsock range \(low)-\(high) is empty: LOW must not exceed HIGH")
                return nil
            }
            return .vsockRange(low, high)
        }
        guard let cid = parseCID(rest, at: restStart, inRange: false) else { return nil }
        return .vsockCID(cid)
    }

    private mutating func parseCID(_ characters: ArraySlice<SourceCharacter>, at position: SourcePosition,
                                   inRange: Bool) -> UInt32? {
        let text = characters.text
        guard isDigits(text), let value = UInt32(text) else {
            if text.isEmpty {
                error(position, "vsock range needs two CIDs, LOW-HIGH, e.g. vsock:3-10")
            } else {
                error(position, "'\(text)' is not a vsock CID (a number from 0 to 4294967294"
                      + (inRange ? ")" : "), a range LOW-HIGH, or *"))
            }
            return nil
        }
        if value == UInt32.max {
            error(position, "CID 4294967295 is VMADDR_CID_ANY, not a peer; use vsock:* for any guest")
            return nil
        }
        return value
    }

    /// `slash`: where the '/' is (a continued line may put the prefix on the next line).
    private mutating func parseNetwork(address addressPart: ArraySlice<SourceCharacter>, slash: SourcePosition,
                                       prefix prefixPart: ArraySlice<SourceCharacter>,
                                       whole: String) -> ClientSpec? {
        guard let start = addressPart.first?.position else {
            error(slash, "'\(whole)' is not a network: expected ADDRESS/PREFIX like 10.0.0.0/8 or fd00::/8")
            return nil
        }
        guard let address = IPAddress(addressPart.text) else {
            error(start, "'\(addressPart.text)' in '\(whole)' is not an IP address: "
                  + "a network is ADDRESS/PREFIX like 10.0.0.0/8 or fd00::/8 (host names are not supported)")
            return nil
        }
        let prefixText = prefixPart.text
        let family = address.bitWidth == 32 ? "IPv4" : "IPv6"
        guard isDigits(prefixText), prefixText.count <= 3, let prefix = Int(prefixText),
              prefix <= address.bitWidth else {
            let position = prefixPart.first?.position
                ?? SourcePosition(line: slash.line, column: slash.column + 1)
            error(position, "'\(prefixText)' is not a prefix length for \(family) (0-\(address.bitWidth))")
            return nil
        }
        return ClientSpec.normalizedNetwork(address, prefix: prefix)
    }

    // MARK: Options

    /// Parses `a,b=c,...` (the text inside `(...)` or after `-`). `opening`
    /// is the position of the `(` or `-`, used for empty items at the start.
    /// Returns nil after reporting errors.
    private mutating func parseOptions(_ characters: ArraySlice<SourceCharacter>,
                                       after opening: SourcePosition) -> OptionList? {
        var list = OptionList()
        if characters.isEmpty { return list }
        let errorsBefore = diagnostics.count

        // Split on commas, remembering where each item starts.
        var items: [(text: ArraySlice<SourceCharacter>, position: SourcePosition)] = []
        var itemStart = characters.startIndex
        var previousComma = opening
        for index in characters.indices where characters[index].character == "," {
            items.append((characters[itemStart..<index], characters[itemStart..<index].first?.position
                          ?? characters[index].position))
            previousComma = characters[index].position
            itemStart = index + 1
        }
        let tail = characters[itemStart...]
        items.append((tail, tail.first?.position
                      ?? SourcePosition(line: previousComma.line, column: previousComma.column + 1)))

        var firstSetting: [String: (value: String, item: String, position: SourcePosition)] = [:]
        func record(_ dimension: String, _ value: String, _ item: String,
                    _ position: SourcePosition) -> String? {
            if let prior = firstSetting[dimension] {
                if prior.value != value {
                    return "'\(item)' contradicts '\(prior.item)' in the same option list"
                }
                return nil
            }
            firstSetting[dimension] = (value, item, position)
            return nil
        }

        for (itemCharacters, position) in items {
            let item = itemCharacters.text
            if item.isEmpty {
                error(position, "empty option (stray ',')")
                continue
            }
            let name: String, value: String?, valuePosition: SourcePosition
            if let equals = itemCharacters.firstIndex(where: { $0.character == "=" }) {
                name = itemCharacters[..<equals].text
                value = itemCharacters[(equals + 1)...].text
                valuePosition = itemCharacters[(equals + 1)...].first?.position ?? itemCharacters[equals].position
            } else {
                name = item
                value = nil
                valuePosition = position
            }

            let flag: (dimension: String, setting: String, apply: (inout OptionList) -> Void)?
            switch name {
            case "rw": flag = ("access", "rw", { $0.readOnly = false })
            case "ro": flag = ("access", "ro", { $0.readOnly = true })
            case "root_squash": flag = ("root_squash", "on", { $0.rootSquash = true })
            case "no_root_squash": flag = ("root_squash", "off", { $0.rootSquash = false })
            case "all_squash": flag = ("all_squash", "on", { $0.allSquash = true })
            case "no_all_squash": flag = ("all_squash", "off", { $0.allSquash = false })
            case "sync": flag = ("sync", "sync", { $0.sync = true })
            case "async": flag = ("sync", "async", { $0.sync = false })
            case "subtree_check": flag = ("subtree_check", "on", { $0.subtreeCheck = true })
            case "no_subtree_check": flag = ("subtree_check", "off", { $0.subtreeCheck = false })
            case "nowcc": flag = ("nowcc", "on", { $0.noWCC = true })
            case "secure": flag = ("secure", "on", { _ in })
            case "insecure": flag = ("secure", "off", { _ in })
            default: flag = nil
            }
            if let flag {
                if value != nil {
                    error(position, "option '\(name)' takes no value")
                } else if let message = record(flag.dimension, flag.setting, item, position) {
                    error(position, message)
                } else {
                    flag.apply(&list)
                }
                continue
            }

            switch name {
            case "anonuid", "anongid", "fsid":
                guard let value else {
                    error(position, "option '\(name)' needs a value: \(name)=N")
                    continue
                }
                let number: UInt32?
                if name == "fsid" && value == "root" {
                    number = 0
                } else if isDigits(value), let parsed = UInt32(value) {
                    number = parsed
                } else {
                    number = nil
                }
                guard let number else {
                    error(valuePosition, "\(name) needs a number from 0 to 4294967295"
                          + (name == "fsid" ? " or 'root'" : "") + ", got '\(value)'")
                    continue
                }
                if let message = record(name, String(number), item, position) {
                    error(position, message)
                    continue
                }
                switch name {
                case "anonuid": list.anonUID = number
                case "anongid": list.anonGID = number
                default: list.fsid = (number, position)
                }
            case "map_uid", "map_gid":
                guard let range = parseIDRange(name, value, at: position, valueAt: valuePosition) else { continue }
                var ranges = (name == "map_uid" ? list.uidRanges : list.gidRanges) ?? []
                if let (earlier, _) = IDMap.firstOverlap(in: ranges + [range]) {
                    let side = earlier.guest <= range.lastGuest && range.guest <= earlier.lastGuest ? "guest" : "host"
                    error(position, "\(name)=\(range) overlaps \(name)=\(earlier) (they share \(side) ids); "
                          + "each guest id and each host id may be in one range only")
                    continue
                }
                ranges.append(range)
                if name == "map_uid" { list.uidRanges = ranges } else { list.gidRanges = ranges }
            default:
                if unsupportedKnfsdOptions.contains(name) {
                    error(position, "option '\(name)' is not supported by vsnfs")
                } else {
                    var message = "unknown option '\(name)'"
                    if let suggestion = closestKnownOption(to: name) { message += "; did you mean '\(suggestion)'?" }
                    error(position, message)
                }
            }
        }

        if let noRoot = firstSetting["root_squash"], noRoot.value == "off",
           let all = firstSetting["all_squash"], all.value == "on" {
            let later = (noRoot.position.line, noRoot.position.column) > (all.position.line, all.position.column)
                ? noRoot : all
            let earlier = later.item == noRoot.item ? all : noRoot
            error(later.position, "'\(later.item)' contradicts '\(earlier.item)' in the same option list "
                  + "(all_squash squashes root as well)")
        }
        return diagnostics.count == errorsBefore ? list : nil
    }

    /// `GUEST:HOST:COUNT` (or `GUEST:HOST`, a count of 1): the value of `map_uid`/`map_gid`.
    private mutating func parseIDRange(_ name: String, _ value: String?, at position: SourcePosition,
                                       valueAt valuePosition: SourcePosition) -> IDRange? {
        let form = "\(name)=GUEST:HOST:COUNT, e.g. \(name)=1000:501:1"
        guard let value, !value.isEmpty else {
            error(position, "option '\(name)' needs a value: \(form)")
            return nil
        }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { isDigits($0) ? UInt32($0) : nil }
        guard parts.count == 2 || parts.count == 3, numbers.count == parts.count else {
            error(valuePosition, "'\(value)' is not an id range: write \(form) (ids and count from 0 to 4294967295)")
            return nil
        }
        let guest = numbers[0], host = numbers[1], count = numbers.count == 3 ? numbers[2] : 1
        guard count >= 1 else {
            error(valuePosition, "\(name)=\(value) maps no ids: COUNT must be at least 1")
            return nil
        }
        guard UInt64(guest) + UInt64(count) <= 1 << 32, UInt64(host) + UInt64(count) <= 1 << 32 else {
            error(valuePosition, "\(name)=\(value) runs past id 4294967295: lower COUNT")
            return nil
        }
        return IDRange(guest: guest, host: host, count: count)
    }
}

extension ClientSpec {
    /// `address/prefix` with host bits cleared; an IPv4-mapped IPv6 network
    /// (`::ffff:a.b.c.d/96+`) becomes IPv4; a full-length prefix is an exact address.
    static func normalizedNetwork(_ address: IPAddress, prefix: Int) -> ClientSpec {
        var network = address.masked(prefix: prefix)
        var prefix = prefix
        if case .v6(let hi, let lo) = network, hi == 0, lo >> 32 == 0xffff, prefix >= 96 {
            network = .v4(UInt32(truncatingIfNeeded: lo))
            prefix -= 96
        }
        if prefix == network.bitWidth { return .address(network) }
        return .network(network, prefix: prefix)
    }
}

extension IPAddress {
    /// This address with every bit after the first `prefix` cleared.
    func masked(prefix: Int) -> IPAddress {
        func mask64(_ bits: Int) -> UInt64 {
            bits <= 0 ? 0 : (bits >= 64 ? ~0 : ~(UInt64.max >> UInt64(bits)))
        }
        switch self {
        case .v4(let a):
            let mask: UInt32 = prefix <= 0 ? 0 : (prefix >= 32 ? ~0 : ~(UInt32.max >> UInt32(prefix)))
            return .v4(a & mask)
        case .v6(let hi, let lo):
            return .v6(hi & mask64(prefix), lo & mask64(prefix - 64))
        }
    }
}

// MARK: - One entry from the command line

extension ExportsFile {
    /// One export as `vsnfs export add` gives it: the exports-file line
    /// `PATH -OPTIONS CLIENT...`, checked by the same parser, so a bad option
    /// or client gets the message `vsnfs exports check` prints for it.
    /// `clients` are `CLIENT` or `CLIENT(OPTS)` words; `options` are the
    /// line's default options. Diagnostics name `source`, line 1.
    public static func parseEntry(path: String, clients: [String], options: String?,
                                  source: String) throws(ExportsError) -> Export {
        for client in clients where client.isEmpty || client.contains(where: { isBlank($0) || isLineBreak($0) || $0 == "#" || $0 == "\"" }) {
            throw .invalid([ExportsDiagnostic(file: source, line: 1, column: 1,
                                              message: "client '\(client)' must be one word, e.g. vsock:3 or 'vsock:3(rw)'")])
        }
        if let options, options.isEmpty || options.contains(where: { isBlank($0) || isLineBreak($0) || $0 == "#" || $0 == "\"" }) {
            throw .invalid([ExportsDiagnostic(file: source, line: 1, column: 1,
                                              message: "options '\(options)' must be one word, e.g. rw,no_root_squash")])
        }
        var line = quotedPath(path)
        if let options { line += " -" + options }
        for client in clients { line += " " + client }
        let exports = try parse(line, fileName: source)
        guard exports.count == 1 else {
            throw .invalid([ExportsDiagnostic(file: source, line: 1, column: 1, message: "expected one export")])
        }
        return exports[0]
    }
}
