#if canImport(Glibc)
import Glibc
#endif
import Exports

/// Where the exports come from: `vsnfs serve DIR`, `--exports FILE`, or a
/// list made by the caller (`vsnfs share`).
public enum ExportsSource: Sendable, Equatable {
    case directory(String)
    case file(String)
    case list([Export])

    /// What `vsnfs export list` says the rules of these exports came from.
    public var origin: ExportOrigin {
        switch self {
        case .directory: return .directory
        case .file: return .file
        case .list: return .share
        }
    }

    public struct ExportDirectoryError: Error, CustomStringConvertible {
        public var origin: String
        public var path: String
        public var reason: String
        public var description: String { "\(origin)export directory \(path): \(reason)" }
    }

    /// Reads the exports and checks that every exported directory exists;
    /// every problem is reported, each on its own line.
    public func load() throws -> [Export] {
        switch self {
        case .directory(let directory):
            let absolute = try Self.absolute(directory)
            try Self.checkDirectory(absolute, origin: "")
            return [Export(serving: absolute)]
        case .file(let file):
            return try Self.checked(ExportsFile.load(path: file), origin: "\(file): ")
        case .list(let exports):
            return try Self.checked(exports, origin: "")
        }
    }

    static func checked(_ exports: [Export], origin: String) throws -> [Export] {
        var problems: [String] = []
        for export in exports {
            do { try Self.checkDirectory(export.hostPath, origin: origin) } catch {
                problems.append("\(error)")
            }
        }
        if !problems.isEmpty { throw ExportsCheckFailed(lines: problems) }
        return exports
    }

    struct ExportsCheckFailed: Error, CustomStringConvertible {
        var lines: [String]
        var description: String { lines.joined(separator: "\n") }
    }

    static func absolute(_ path: String) throws -> String {
        guard let resolved = realpath(path, nil) else {
            throw ExportDirectoryError(origin: "", path: path, reason: String(cString: strerror(errno)))
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func checkDirectory(_ path: String, origin: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw ExportDirectoryError(origin: origin, path: path, reason: String(cString: strerror(errno)))
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw ExportDirectoryError(origin: origin, path: path, reason: "not a directory")
        }
    }
}
