import CSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("vsnfs-doctor-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes `text` through a close-on-exec descriptor, so a child another test
/// forks meanwhile does not keep the file open for writing (exec of a script
/// still open for writing fails with ETXTBSY).
func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw SocketError(call: "open \(path)", code: errno) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else { throw SocketError(call: "write \(path)", code: errno) }
    guard fchmod(fd, mode) == 0 else { throw SocketError(call: "chmod \(path)", code: errno) }
}

/// A failed system call in a fixture.
struct SocketError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// A listening socket the test holds open; close() ends it.
final class TestListener {
    private(set) var fd: Int32
    let port: UInt32
    init(fd: Int32, port: UInt32) { self.fd = fd; self.port = port }
    deinit { stop() }

    func stop() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// TCP on 127.0.0.1, a port the kernel picks.
    static func tcp() throws -> TestListener {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { let e = errno; close(fd); throw SocketError(call: "bind/listen", code: e) }
        return TestListener(fd: fd, port: UInt32(UInt16(bigEndian: address.sin_port)))
    }

    /// AF_VSOCK on any local CID, a port the kernel picks; nil if the kernel has no AF_VSOCK.
    static func vsock() throws -> TestListener? {
        let fd = socket(AF_VSOCK, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_vm()
        address.svm_family = sa_family_t(AF_VSOCK)
        address.svm_cid = UInt32.max
        address.svm_port = UInt32.max // VMADDR_PORT_ANY
        var length = socklen_t(MemoryLayout<sockaddr_vm>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { let e = errno; close(fd); throw SocketError(call: "vsock bind/listen", code: e) }
        return TestListener(fd: fd, port: address.svm_port)
    }

    /// A Unix stream socket listening at `path`.
    static func unix(_ path: String) throws -> TestListener {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 && listen(fd, 1) == 0
            }
        }
        guard bound else { let e = errno; close(fd); throw SocketError(call: "bind \(path)", code: e) }
        return TestListener(fd: fd, port: 0)
    }
}

/// Whether the kernel answers a vsock_diag dump, asked over a raw
/// NETLINK_SOCK_DIAG socket (no libnl): the oracle the doctor's verdict is
/// compared with. The kernel loads vsock_diag on demand where it is a module.
func kernelAnswersVsockDiag() throws -> Bool {
    let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), 4) // NETLINK_SOCK_DIAG
    guard fd >= 0 else { throw SocketError(call: "netlink socket", code: errno) }
    defer { close(fd) }
    // nlmsghdr (len 40, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST|NLM_F_DUMP) + vsock_diag_req.
    var message = [UInt8](repeating: 0, count: 40)
    message[0] = 40
    message[4] = 20
    message[6] = 0x01; message[7] = 0x03
    message[16] = UInt8(AF_VSOCK)
    for i in 20..<24 { message[i] = 0xff }
    guard send(fd, message, message.count, 0) == message.count else { throw SocketError(call: "netlink send", code: errno) }
    var reply = [UInt8](repeating: 0, count: 65536)
    let n = recv(fd, &reply, reply.count, 0)
    guard n >= 20 else { throw SocketError(call: "netlink recv", code: errno) }
    let type = UInt16(reply[4]) | UInt16(reply[5]) << 8
    if type == 2 { // NLMSG_ERROR
        let code = reply[16..<20].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return Int32(bitPattern: code) == 0
    }
    return true
}

/// Runs a shell command line; returns its status.
@discardableResult
func shell(_ command: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}
