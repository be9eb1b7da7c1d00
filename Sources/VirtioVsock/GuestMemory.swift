import CSupport
import Glibc

/// Why the device refused something the front-end or the guest gave it.
public enum VirtioVsockError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMessage(String)
    case badMemoryTable(String)
    case mapFailed(errno: Int32)
    case addressNotMapped(address: UInt64, length: UInt64)
    case badRing(String)
    case badDescriptor(String)
    case system(call: String, errno: Int32)

    public var description: String {
        switch self {
        case .badMessage(let why): return "bad vhost-user message: \(why)"
        case .badMemoryTable(let why): return "bad memory table: \(why)"
        case .mapFailed(let e): return "mmap of a guest memory region failed: \(String(cString: strerror(e)))"
        case .addressNotMapped(let a, let l):
            return "guest address 0x\(String(a, radix: 16)) length \(l) is not inside one memory region"
        case .badRing(let why): return "bad virtqueue: \(why)"
        case .badDescriptor(let why): return "bad descriptor: \(why)"
        case .system(let call, let e): return "\(call): \(String(cString: strerror(e)))"
        }
    }
}

/// The guest's memory as the front-end passed it in SET_MEM_TABLE: each
/// region's file mapped shared into this process. Every access to guest memory
/// goes through `guest(_:length:)` or `user(_:length:)`, which give a pointer
/// only when the whole range lies inside one region, so nothing a guest writes
/// into a descriptor can make the device touch other host memory.
///
/// Not Sendable: owned by one device's event-loop thread.
public final class GuestMemory {
    struct Mapping {
        let region: VhostUserMemoryRegion
        /// The start of the whole mmap (file offset 0) and its length, for munmap.
        let mapBase: UnsafeMutableRawPointer
        let mapLength: Int
        /// mapBase + mmapOffset: where guest address `region.guestPhysicalAddress` lives.
        var regionBase: UnsafeMutableRawPointer { mapBase + Int(region.mmapOffset) }
    }

    /// vhost-user's baseline limit on regions in one SET_MEM_TABLE.
    public static let maximumRegions = 8

    private var mappings: [Mapping] = []

    public var regions: [VhostUserMemoryRegion] { mappings.map(\.region) }

    /// Maps `regions`, region i from `fds[i]`. Takes no ownership of the fds
    /// (the caller closes them; the mappings outlive them). Validates sizes,
    /// overflow, overlap, and that each region lies inside its file (an mmap
    /// past the end of a file would fault on access instead of failing here).
    public init(regions: [VhostUserMemoryRegion], fds: [Int32]) throws {
        guard !regions.isEmpty, regions.count <= Self.maximumRegions else {
            throw VirtioVsockError.badMemoryTable("\(regions.count) regions (1 to \(Self.maximumRegions) allowed)")
        }
        guard fds.count == regions.count else {
            throw VirtioVsockError.badMemoryTable("\(regions.count) regions but \(fds.count) file descriptors")
        }
        for (i, r) in regions.enumerated() {
            guard r.size > 0 else { throw VirtioVsockError.badMemoryTable("region \(i) is empty") }
            let (gEnd, o1) = r.guestPhysicalAddress.addingReportingOverflow(r.size)
            let (_, o2) = r.userAddress.addingReportingOverflow(r.size)
            let (fileEnd, o3) = r.mmapOffset.addingReportingOverflow(r.size)
            guard !o1, !o2, !o3, fileEnd <= UInt64(Int.max) else {
                throw VirtioVsockError.badMemoryTable("region \(i) wraps the address space")
            }
            for other in regions[..<i] {
                let oEnd = other.guestPhysicalAddress + other.size
                if r.guestPhysicalAddress < oEnd && other.guestPhysicalAddress < gEnd {
                    throw VirtioVsockError.badMemoryTable("region \(i) overlaps another in guest addresses")
                }
            }
            var st = stat()
            guard fstat(fds[i], &st) == 0 else { throw VirtioVsockError.system(call: "fstat", errno: errno) }
            guard st.st_mode & S_IFMT == S_IFREG || st.st_mode & S_IFMT == 0, UInt64(st.st_size) >= fileEnd else {
                throw VirtioVsockError.badMemoryTable(
                    "region \(i) ends at file offset \(fileEnd), past the end of its file (\(st.st_size) bytes)")
            }
        }
        do {
            for (i, r) in regions.enumerated() {
                let length = Int(r.mmapOffset + r.size)
                guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0),
                      base != MAP_FAILED else {
                    throw VirtioVsockError.mapFailed(errno: errno)
                }
                mappings.append(Mapping(region: r, mapBase: base, mapLength: length))
            }
        } catch {
            unmapAll()
            throw error
        }
    }

    deinit { unmapAll() }

    private func unmapAll() {
        for m in mappings { munmap(m.mapBase, m.mapLength) }
        mappings.removeAll()
    }

    /// A host pointer to guest physical range [address, address + length), or
    /// nil unless the whole range is inside one region. Overflow-safe.
    public func guest(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        translate(address, length: length, inFrontEndSpace: false)
    }

    /// The same for an address in the front-end's own address space (ring
    /// addresses in SET_VRING_ADDR).
    public func user(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        translate(address, length: length, inFrontEndSpace: true)
    }

    /// The one bounds check: [address, address + length) inside one region, in guest
    /// physical or front-end addresses. Overflow-safe (no address + length).
    @inline(__always)
    private func translate(_ address: UInt64, length: UInt64, inFrontEndSpace: Bool) -> UnsafeMutableRawPointer? {
        for m in mappings {
            let r = m.region
            let first = inFrontEndSpace ? r.userAddress : r.guestPhysicalAddress
            guard address >= first else { continue }
            let offset = address - first
            guard offset < r.size, length <= r.size - offset else { continue }
            return m.regionBase + Int(offset)
        }
        return nil
    }
}
