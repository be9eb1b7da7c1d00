#if canImport(Glibc)
import Glibc
#endif
import Server

/// The files `serve` reads and writes: the exports file and the state directory.
public enum FileChecks {
    /// Loads the exports file exactly as `serve --exports` does.
    public static func exports(file: String?) -> CheckResult {
        guard let file else {
            return CheckResult("exports", .ok, "no --exports FILE given (serve DIR exports DIR to every peer)")
        }
        do {
            let exports = try ExportsSource.file(file).load()
            let paths = exports.map(\.hostPath).joined(separator: ", ")
            return CheckResult("exports", .ok, "\(file): \(exports.count) export(s)" + (paths.isEmpty ? "" : ": \(paths)"))
        } catch {
            let lines = "\(error)".split(separator: "\n").map(String.init)
            return CheckResult("exports", .fail, lines.joined(separator: "; "),
                               fix: "correct \(file) (vsnfs exports check \(file) prints each error as FILE:LINE:COLUMN)")
        }
    }

    /// `serve` creates the state directory (and its parents) if missing, then
    /// writes the handle key and inode index in it: it must be writable.
    public static func stateDirectory(_ given: String?) -> CheckResult {
        let directory: String
        do {
            directory = try given ?? VSNFSServer.defaultStateDirectory()
        } catch {
            return CheckResult("state-dir", .fail, "\(error)", fix: "give --state-dir DIR")
        }
        let fix = "make \(directory) writable by uid \(geteuid()), or give --state-dir DIR on a writable filesystem"
        var st = stat()
        if stat(directory, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else {
                return CheckResult("state-dir", .fail, "\(directory) is not a directory", fix: fix)
            }
            // Creating a file is the test that also holds for root (who
            // ignores mode bits) and for read-only mounts.
            let probe = "\(directory)/.vsnfs-doctor.\(getpid())"
            let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                return CheckResult("state-dir", .fail, "\(directory) is not writable: \(String(cString: strerror(errno)))", fix: fix)
            }
            close(fd)
            unlink(probe)
            return CheckResult("state-dir", .ok, "\(directory) is writable")
        }
        guard errno == ENOENT else {
            return CheckResult("state-dir", .fail, "\(directory): \(String(cString: strerror(errno)))", fix: fix)
        }
        // Missing: the nearest existing ancestor must let serve create it.
        var ancestor = directory
        while true {
            ancestor = ancestor.lastIndex(of: "/").map { $0 == ancestor.startIndex ? "/" : String(ancestor[..<$0]) } ?? "."
            if stat(ancestor, &st) == 0 || ancestor == "/" || ancestor == "." { break }
        }
        guard st.st_mode & S_IFMT == S_IFDIR, access(ancestor, W_OK | X_OK) == 0 else {
            let why = st.st_mode & S_IFMT == S_IFDIR ? String(cString: strerror(errno)) : "not a directory"
            return CheckResult("state-dir", .fail, "\(directory) does not exist and cannot be created: \(ancestor): \(why)", fix: fix)
        }
        return CheckResult("state-dir", .ok, "\(directory) does not exist yet; serve creates it")
    }
}
