import Dispatch
import Glibc
import NIOConcurrencyHelpers
import Testing
@testable import HostFS

/// The inotify watch behind a host lease (what recalls a read delegation,
/// RFC 8881 §10.4.1, when a host process changes the file's metadata or name).
@Suite(.serialized) struct LeaseWatchTests {
    @Test("LeaseWatches: leases of one inode share its watch; only the last one's release removes it")
    func sharedWatchBookkeeping() {
        var w = LeaseWatches()
        w.add(10, to: 1)
        w.add(11, to: 1)
        w.add(12, to: 2)
        #expect(w.count == 2)
        #expect(Set(w.leases(1)) == [10, 11])
        var last = w.remove(10, from: 1)
        #expect(!last)
        #expect(w.leases(1) == [11])
        last = w.remove(10, from: 1)
        #expect(!last, "a second release of one lease")
        last = w.remove(11, from: 1)
        #expect(last)
        #expect(w.leases(1).isEmpty && w.count == 1)
        // IN_IGNORED: the kernel dropped watch 2; its leases must not remove it again.
        let gone = w.gone(2)
        #expect(gone == [12])
        last = w.remove(12, from: 2)
        #expect(!last)
        #expect(w.count == 0)
    }

    /// Calls of one lease's break handler, and a wait for the next.
    final class Calls: Sendable {
        let count = NIOLockedValueBox(0)
        let signal = DispatchSemaphore(value: 0)
        var handler: HostLease.BreakHandler {
            { [self] in
                count.withLockedValue { $0 += 1 }
                signal.signal()
            }
        }
        func next(within seconds: Double = 5) -> Bool { signal.wait(timeout: .now() + seconds) == .success }
    }

    @Test("RFC 8881 10.4.1: a host chmod calls both leases' handlers of one file; after one is released the other still hears; after both, no watch is left", .enabled(if: geteuid() == 0))
    func chmodCallsHandlers() throws {
        let box = Sandbox()
        box.hostFile("f", "x")
        let fs = try box.fs(kernelIfRoot)
        let h = try fs.lookup(try fs.rootHandle(exportID: 1), n("f"), as: root).handle
        let a = Calls(), b = Calls()
        let before = HostLease.watchCount
        let la = try HostLease.take(h, in: fs, onBreak: a.handler)
        let lb = try HostLease.take(h, in: fs, onBreak: b.handler)
        #expect(HostLease.watchCount == before + 1)
        #expect(!la.isBreaking)
        #expect(chmod(box.exportPath + "/f", 0o600) == 0)
        #expect(a.next() && b.next())
        #expect(la.isBreaking && lb.isBreaking)
        la.release()
        #expect(HostLease.watchCount == before + 1)
        #expect(rename(box.exportPath + "/f", box.exportPath + "/g") == 0)
        #expect(b.next())
        lb.release()
        #expect(HostLease.watchCount == before)
        #expect(a.count.withLockedValue { $0 } == 1)
    }
}
