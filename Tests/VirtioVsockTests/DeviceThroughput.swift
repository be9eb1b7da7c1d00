import CSupport
import Glibc
import Testing
@testable import VirtioVsock

/// How fast the device alone moves host bytes into guest receive buffers
/// (socket pair -> device -> 4 KiB rx buffers, as Linux posts them), without
/// a guest kernel. A measurement, not a timed test: it runs only with
/// VSNFS_DEVICE_THROUGHPUT=1 and prints MB/s.
@Suite struct DeviceThroughput {
    @Test(.enabled(if: getenv("VSNFS_DEVICE_THROUGHPUT") != nil))
    func hostToGuest() throws {
        let d = try DeviceUnderTest()
        let guest = try GuestVsock(path: d.path, cid: 3, queueSize: 256)
        try guest.start(rxBuffers: 100)
        guest.send(guest.packet(op: .request, bufAlloc: 1 << 31))
        #expect(eventually { d.accepted.all.count == 1 })
        let conn = d.accepted.all[0]
        let total = 256 * 1024 * 1024
        let fd = conn.fd
        var writer = pthread_t()
        let rc = pthread_create(&writer, nil, { raw in
            let fd = Int32(Int(bitPattern: raw))
            let chunk = [UInt8](repeating: 7, count: 1 << 20)
            for _ in 0..<256 {
                var off = 0
                while off < chunk.count {
                    let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress! + off, chunk.count - off) }
                    if n <= 0 { return nil }
                    off += n
                }
            }
            return nil
        }, UnsafeMutableRawPointer(bitPattern: Int(fd)))
        #expect(rc == 0)
        var received = 0
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while received < total {
            guard let packet = guest.receive(within: 10) else { break }
            received += packet.payload.count
        }
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        pthread_join(writer, nil)
        close(fd)
        let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        print("device host-to-guest: \(received / (1 << 20)) MiB in \(seconds) s = \(Double(received) / seconds / 1e6) MB/s")
        #expect(received >= total)
    }
}
