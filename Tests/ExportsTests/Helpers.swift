#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Exports

/// The formatted diagnostics for `text` parsed as a file named "exports";
/// empty if it parses.
func diagnostics(_ text: String) -> [String] {
    do {
        _ = try ExportsFile.parse(text, fileName: "exports")
        return []
    } catch {
        return error.diagnostics.map(\.description)
    }
}

struct TestFileError: Error {
    let path: String
    let errno: Int32
}

func writeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { throw TestFileError(path: path, errno: errno) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw TestFileError(path: path, errno: errno) }
}

func removeFile(_ path: String) {
    unlink(path)
}
