import ONCRPC
import Testing

/// A connection's call counts (vsnfs status): exact for the operations clients
/// use, and bounded whatever program, version and procedure numbers a client sends.
@Suite struct OperationCountsTests {
    @Test func countsEachOperationAndStaysBoundedAgainstRandomNumbers() {
        var counts = RPCOperationCounts()
        for _ in 0..<3 { counts.count(program: 100_003, version: 3, procedure: 1) }
        counts.count(program: 100_003, version: 3, procedure: 6)
        counts.count(program: 100_005, version: 3, procedure: 1)
        #expect(counts.counted == [RPCOperation(program: 100_003, version: 3, procedure: 1): 3,
                                   RPCOperation(program: 100_003, version: 3, procedure: 6): 1,
                                   RPCOperation(program: 100_005, version: 3, procedure: 1): 1])
        #expect(counts.others == 0)

        // A hostile client: a new program number on every call, and huge procedure numbers.
        for program in UInt32(1)...10_000 { counts.count(program: program, version: 1, procedure: 0) }
        counts.count(program: 100_003, version: 3, procedure: 1_000_000)
        let programVersions = Set(counts.counted.keys.map { [$0.program, $0.version] })
        #expect(programVersions.count == RPCOperationCounts.maximumProgramVersions)
        #expect(counts.others == 10_000 - (RPCOperationCounts.maximumProgramVersions - 2) + 1)
        #expect(counts.counted[RPCOperation(program: 100_003, version: 3, procedure: 1)] == 3, "known ones keep counting")
    }
}
