/// The sizes of I/O that NFSv3 and NFSv4 answer on the event loop, when HostFS
/// can do it without blocking (`readWithoutBlocking`, `writeWithoutBlocking`):
/// one place for both protocol versions.
public enum EventLoopLimits {
    /// READs up to this size whose data is in the page cache are answered on
    /// the event loop; larger ones go to the thread pool, where several copy at once.
    public static let maximumRead: UInt32 = 64 * 1024
    /// WRITEs up to this size to memory-backed files are done on the event loop (a
    /// bounded copy, like an inline READ); larger ones go to the thread pool.
    public static let maximumWrite: UInt32 = 64 * 1024
    /// An NFSv4 COMPOUND larger than this (a WRITE past `maximumWrite`, with room
    /// for its other operations) goes to the thread pool whole: none of it could
    /// finish on the event loop, and SEQUENCE's digest of it is work the pool does
    /// beside the event loop.
    public static let maximumCompound: Int = Int(maximumWrite) + 4096
}
