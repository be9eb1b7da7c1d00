// libFuzzer target: the exports-file parser (ExportsFile.parse, the one the
// server and `vsnfs exports check` use), then what is built from a file that
// parses: the auth table and its printed form.
//
// Input: the file's text (bytes that are not UTF-8 are decoded as the
// replacement character, as a file read from disk would be).
// Checked beyond "no crash": a refused file names at least one problem,
// each at a line and column inside the text.
import FuzzDriver
import Exports

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExports(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count), as: UTF8.self)
    do {
        let exports = try ExportsFile.parse(text, fileName: "fuzz")
        let table = AuthTable(exports: exports)
        precondition(table.formatted() == formatExportsTable(exports))
    } catch {
        guard case .invalid(let diagnostics) = error else { preconditionFailure("parse said \(error)") }
        precondition(!diagnostics.isEmpty, "a refused file with no diagnostic")
        let lines = text.reduce(1) { $0 + ($1.isNewline ? 1 : 0) }
        for d in diagnostics {
            precondition(d.line >= 1 && d.line <= lines + 1 && d.column >= 1, "diagnostic outside the text: \(d)")
        }
    }
    return 0
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzExports_main")
public func fuzzExportsMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzExports)
}
