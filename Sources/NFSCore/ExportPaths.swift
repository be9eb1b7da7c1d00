/// Export mount paths as clients name them: MOUNT v3's MNT and NFSv4's
/// pseudo file system resolve paths the same way.
public enum ExportPaths {
    /// `/a//b/./` -> `/a/b`; always starts with `/`.
    public static func normalize(_ path: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for component in components(path) {
            out.append(0x2F)
            out.append(contentsOf: component)
        }
        return out.isEmpty ? [0x2F] : out
    }

    /// The path's components, without empty ones and `.` (`/` has none).
    public static func components(_ path: [UInt8]) -> [[UInt8]] {
        path.split(separator: 0x2F).filter { $0.elementsEqual([0x2E]) == false }.map(Array.init)
    }
}
