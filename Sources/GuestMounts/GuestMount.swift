/// The mount requests `vsnfs share` hands a guest and `vsnfs-mount --auto`
/// reads back: the one place the format is written and read.
///
/// A request list is one word with no blanks, so it survives the kernel
/// command line (`vsnfs.mount=LIST`) as well as QEMU's fw_cfg
/// (`opt/vsnfs/mount`):
///
///     LIST    = REQUEST *(";" REQUEST)
///     REQUEST = CID ":" EXPORT ":" MOUNTPOINT [":" OPTIONS]
///
/// CID is the server's vsock context ID (2, the host); EXPORT the path the
/// server exports; MOUNTPOINT the absolute path in the guest; OPTIONS the
/// comma-separated `-o` options of vsnfs-mount (ro, vers=3, ...). In paths
/// and options every byte other than letters, digits and `/._-+@~` (and `=`,
/// `,` between options) is written `%XX`, so a space is `%20` and a colon `%3A`.
///
///     2:/srv/src:/src:ro;2:/home/me/my%20files:/mnt/files
public struct GuestMount: Equatable, Sendable, CustomStringConvertible {
    public var cid: UInt32
    public var exportPath: String
    public var mountPoint: String
    public var options: [String]

    public init(cid: UInt32 = 2, exportPath: String, mountPoint: String, options: [String] = []) {
        self.cid = cid
        self.exportPath = exportPath
        self.mountPoint = mountPoint
        self.options = options
    }

    /// The kernel command-line parameter and the fw_cfg file that carry requests.
    public static let kernelParameter = "vsnfs.mount"
    public static let fwCfgName = "opt/vsnfs/mount"
    public static let fwCfgPath = "/sys/firmware/qemu_fw_cfg/by_name/opt/vsnfs/mount/raw"

    /// One request in the list format.
    public var description: String {
        var text = "\(cid):\(Self.encode(exportPath, keep: "")):\(Self.encode(mountPoint, keep: ""))"
        if !options.isEmpty { text += ":" + options.map { Self.encode($0, keep: "=") }.joined(separator: ",") }
        return text
    }

    /// Requests joined into one list.
    public static func list(_ mounts: [GuestMount]) -> String {
        mounts.map(\.description).joined(separator: ";")
    }

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var request: String
        public var reason: String
        public var description: String { "bad mount request '\(request)': \(reason) (expected CID:EXPORT:MOUNTPOINT[:OPTIONS])" }
    }

    /// Parses a list; every request is parsed on its own, so one bad request
    /// does not hide the others. Newlines separate requests too.
    public static func parseList(_ text: String) -> [Result<GuestMount, ParseError>] {
        text.split(whereSeparator: { $0 == ";" || $0 == "\n" || $0 == "\r" || $0 == "\0" || $0 == " " || $0 == "\t" })
            .map { parse(String($0)) }
    }

    /// Parses one request.
    public static func parse(_ text: String) -> Result<GuestMount, ParseError> {
        func fail(_ reason: String) -> Result<GuestMount, ParseError> { .failure(ParseError(request: text, reason: reason)) }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 3 || fields.count == 4 else { return fail("\(fields.count) fields") }
        guard let cid = UInt32(fields[0]), cid != UInt32.max else { return fail("'\(fields[0])' is not a vsock CID") }
        guard let export = decode(fields[1]), export.hasPrefix("/") else { return fail("the export must be an absolute path") }
        guard let point = decode(fields[2]), point.hasPrefix("/") else { return fail("the mount point must be an absolute path") }
        var options: [String] = []
        if fields.count == 4 {
            for option in fields[3].split(separator: ",") {
                guard let o = decode(String(option)) else { return fail("bad %-escape in option '\(option)'") }
                options.append(o)
            }
        }
        return .success(GuestMount(cid: cid, exportPath: export, mountPoint: point, options: options))
    }

    /// The values of every `vsnfs.mount=` parameter of a kernel command line
    /// (the kernel's own quoting, `vsnfs.mount="..."`, is undone).
    public static func kernelCommandLineValues(_ cmdline: String) -> [String] {
        let prefix = kernelParameter + "="
        return cmdline.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\0" })
            .filter { $0.hasPrefix(prefix) }
            .map { word in
                var value = word.dropFirst(prefix.count)
                if value.hasPrefix("\"") { value = value.dropFirst() }
                if value.hasSuffix("\"") { value = value.dropLast() }
                return String(value)
            }
    }

    /// Where a request came from, for messages.
    public enum Origin: String, Equatable, Sendable {
        case fwCfg = "fw_cfg opt/vsnfs/mount"
        case kernelCommandLine = "the kernel command line"
    }

    /// The requests of the fw_cfg file (nil: not there) and the kernel
    /// command line, fw_cfg first; a mount point named again is dropped
    /// (vsnfs share puts the same list in both). Bad requests come back
    /// as messages, each naming where it came from.
    public static func requests(fwCfg: String?, kernelCommandLine: String)
        -> (mounts: [(mount: GuestMount, origin: Origin)], errors: [String]) {
        var lists: [(String, Origin)] = fwCfg.map { [($0, .fwCfg)] } ?? []
        lists += kernelCommandLineValues(kernelCommandLine).map { ($0, .kernelCommandLine) }
        var mounts: [(mount: GuestMount, origin: Origin)] = [], errors: [String] = []
        for (text, origin) in lists {
            for result in parseList(text) {
                switch result {
                case .success(let m):
                    if !mounts.contains(where: { $0.mount.mountPoint == m.mountPoint }) { mounts.append((m, origin)) }
                case .failure(let e):
                    errors.append("\(e) in \(origin.rawValue)")
                }
            }
        }
        return (mounts, errors)
    }

    static func encode(_ text: String, keep extra: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if byte < 0x80 && (c.isLetter || c.isNumber || "/._-+@~".contains(c) || extra.contains(c)) {
                out.append(c)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    static func decode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else {
                    return nil
                }
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
