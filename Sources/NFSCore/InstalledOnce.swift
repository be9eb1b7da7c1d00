import Synchronization

/// A value installed once, as the NFSv4 program starts, and read by every
/// NFSv3 READ and WRITE with one atomic load: no lock, and none of the
/// unspecialized generic calls `AtomicLazyReference.load()` makes (about 800
/// instructions a call in a callgrind profile of NFSv3 WRITEs).
final class InstalledOnce<Value: Sendable>: Sendable {
    private final class Box: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private let stored = Atomic<Unmanaged<Box>?>(nil)
    /// Names the value in the error a second install raises.
    private let what: StaticString

    init(_ what: StaticString) {
        self.what = what
    }

    deinit {
        stored.load(ordering: .acquiring)?.release()
    }

    /// Installs `value`; a second install is a programming error.
    func install(_ value: Value) {
        let box = Unmanaged.passRetained(Box(value))
        let (exchanged, _) = stored.compareExchange(expected: nil, desired: box, ordering: .acquiringAndReleasing)
        if !exchanged {
            box.release()
            preconditionFailure("\(what) installed twice")
        }
    }

    /// The installed value, or nil before `install`.
    var value: Value? {
        stored.load(ordering: .acquiring)?.takeUnretainedValue().value
    }

    /// `body` of the installed value without copying it out (nil before `install`):
    /// for the per-call questions, where a copied existential cost retains.
    func read<Result>(_ body: (Value) -> Result) -> Result? {
        guard let box = stored.load(ordering: .acquiring) else { return nil }
        return box._withUnsafeGuaranteedRef { body($0.value) }
    }
}
