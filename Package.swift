// swift-tools-version: 6.1
//
// vsnfs: an NFS server that shares host directories into virtual machines
// over AF_VSOCK. One target per layer; dependencies point downward only:
//
//   XDR, Transport (sockets, kernel peer identity) -> ONCRPC
//   Transport -> Exports -> HostFS (the export list it serves; nothing of RPC)
//   ONCRPC, Exports, HostFS -> NFSCore -> NFS3 -> Mount3 -> Server -> CLIs
//   NFSCore, NFS3 (its errno table), NFS4Wire, NFS4State -> NFS4 -> Server
// NFSCore is what every NFS version shares (the server context, call
// authorization); each protocol version is its own target above it.
//   XDR -> NFS4Wire (NFSv4.1/4.2 wire types and COMPOUND codecs; no server logic)
//   NFS4Wire, Transport -> NFS4State (client records, sessions, stateids; no I/O)
//   GuestMounts, Server -> Share -> vsnfs (GuestMounts -> vsnfs-mount)
// Transport sits beside XDR at the bottom so the RPC layer can hand every
// call the PeerIdentity of its connection. Every target builds in the Swift 6
// language mode (complete concurrency checking).
//
import Foundation
import PackageDescription

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioLocks: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let log: Target.Dependency = .product(name: "Logging", package: "swift-log")
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

// Each target depends on exactly the modules it imports.
let package = Package(
    name: "vsnfs",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "vsnfs", targets: ["vsnfs"]),
        .executable(name: "vsnfs-mount", targets: ["vsnfs-mount"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Layer 1: XDR (RFC 4506) over NIO ByteBuffer.
        .target(name: "XDR", dependencies: [nioCore]),
        // Layer 1, beside XDR: NFSv4.1/4.2 (RFC 8881, RFC 7862) types, COMPOUND decoding, result and
        // fattr4 encoding, callbacks' wire form. Nothing of server logic.
        .target(name: "NFS4Wire", dependencies: ["XDR", nioCore]),
        // NFSv4.1 state (RFC 8881): client records keyed by owner and peer host,
        // sessions with slot tables and reply caches, open stateids and share
        // reservations, leases. Value types without locks or I/O.
        .target(name: "NFS4State", dependencies: ["NFS4Wire", "Transport", nioCore]),
        // Layer 2: ONC RPC v2 (RFC 5531): record marking, messages, auth, dispatch, backchannel calls.
        .target(name: "ONCRPC", dependencies: ["XDR", "Transport", log, nioCore, nioLocks]),
        // Layer 3: listeners (vsock, TCP, Unix, vhost-user-vsock) and kernel- or device-derived peer identities.
        .target(name: "Transport", dependencies: ["CSupport", "VirtioVsock", log, nioCore, nioPosix, nioLocks]),
        // Layer 4: exports file grammar and the (transport, peer) -> access table.
        .target(name: "Exports", dependencies: ["Transport"]),
        // Layer 5: file handles and host filesystem calls, off the event loops.
        .target(name: "HostFS", dependencies: ["Exports", "CSupport", log, nioCore, nioLocks]),
        // Layer 6: the protocols. NFSCore: what every NFS version shares (server
        // context: HostFS and the thread pool; call authorization against the
        // auth table). NFS3: NFSv3 (RFC 1813), its wire types and error mapping.
        // Mount3: MOUNT v3 (RFC 1813 appendix I), which hands out NFSv3 handles.
        // RPC dispatch is by (program, version): each version is its own RPCProgram.
        .target(name: "NFSCore", dependencies: ["ONCRPC", "Transport", "Exports", "HostFS", log, nioPosix, nioLocks]),
        .target(name: "NFS3", dependencies: ["NFSCore", "XDR", "ONCRPC", "Transport", "Exports", "HostFS", nioCore]),
        // NFSv4.1/4.2 (RFC 8881, RFC 7862): COMPOUND, sessions, the pseudo file system, file operations.
        .target(name: "NFS4", dependencies: ["NFSCore", "NFS3", "NFS4Wire", "NFS4State", "HostFS", "Exports", "ONCRPC",
                                             "Transport", "XDR", nioCore, nioPosix, nioLocks, log]),
        .target(name: "Mount3", dependencies: ["NFS3", "NFSCore", "XDR", "ONCRPC", "Transport", "Exports", "HostFS",
                                               nioCore, nioLocks]),
        // Layer 7: the control socket's protocol and client (`vsnfs status`, `vsnfs export ...`).
        .target(name: "Control"),
        // Layer 7: server assembly (config, lifecycle, reload, the control socket's server side).
        .target(name: "Server", dependencies: ["NFSCore", "NFS3", "NFS4", "Mount3", "Transport", "Exports", "HostFS", "ONCRPC",
                                               "XDR", "Control", "CSupport", log, nioCore, nioPosix, nioLocks]),
        // Beside Server: the host checks of `vsnfs doctor` (and the vsock socket list
        // `vsnfs status` can use); libnl-3 and libtirpc are loaded at run time by CSupport.
        .target(name: "HostChecks", dependencies: ["Server", "Transport", "CSupport"]),
        // Layer 3, beside Transport: the vhost-user-vsock device (vhost-user back-end,
        // split virtqueues, virtio-vsock streams) that hands each guest connection on
        // as a socket. No NIO, no RPC.
        .target(name: "VirtioVsock", dependencies: ["CSupport", log, nioLocks]),
        // The mount-request format `vsnfs share` writes and `vsnfs-mount --auto` reads
        // (fw_cfg opt/vsnfs/mount, vsnfs.mount= on the kernel command line). No dependencies.
        .target(name: "GuestMounts"),
        // Above Server, below the CLI: `vsnfs share`'s QEMU command rewriting (pure), its
        // exports and guest mounts, and the launcher (server in-process, QEMU in the foreground).
        .target(name: "Share", dependencies: ["GuestMounts", "Exports", "Server", "Transport", log, nioLocks]),
        // C shims for syscalls Swift's Glibc module does not expose cleanly.
        .target(name: "CSupport"),
        .executableTarget(name: "vsnfs", dependencies: ["Server", "Share", "HostChecks", "Control", "Exports", "Transport",
                                                      "ONCRPC", log, argumentParser]),
        .executableTarget(name: "vsnfs-mount", dependencies: ["CSupport", "GuestMounts", "ONCRPC", "XDR", log,
                                                            argumentParser, nioCore]),
        .testTarget(name: "XDRTests", dependencies: ["XDR", nioCore]),
        .testTarget(name: "NFS4WireTests", dependencies: ["NFS4Wire", "XDR", nioCore]),
        .testTarget(name: "NFS4StateTests", dependencies: ["NFS4State", "NFS4Wire", "Transport", nioCore]),
        .testTarget(name: "ONCRPCTests", dependencies: ["ONCRPC", "XDR", "Transport", log, nioCore, nioLocks,
                                                        .product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(name: "VirtioVsockTests", dependencies: ["VirtioVsock", "CSupport", nioLocks]),
        .testTarget(name: "ExportsTests", dependencies: ["Exports", "Transport"]),
        .testTarget(name: "HostChecksTests", dependencies: ["HostChecks", "Server", "Transport", "CSupport"]),
        .testTarget(name: "ShareTests", dependencies: ["Share", "GuestMounts", "Exports"]),
        .testTarget(name: "HostFSTests", dependencies: ["HostFS", "CSupport", nioCore, nioLocks]),
        // Drives the vsnfs executable (which `swift test` builds with the package) and the layers beneath.
        .testTarget(name: "IntegrationTests", dependencies: ["ONCRPC", "XDR", "Transport", "Exports", "NFSCore", "NFS3", "Mount3", "Control",
                                                             "NFS4Wire", "NFS4", "NFS4State",
                                                             "HostFS", "CSupport", log, nioCore, nioPosix, nioLocks]),
    ],
    swiftLanguageModes: [.v6]
)

// The micro benchmarks (Benchmarks/Codecs, ordo-one/benchmark) are part of the
// package only when VSNFS_BENCHMARKS is set, as `make bench` does: `swift
// build` and `swift test` then never fetch or build the benchmark machinery,
// while `make bench` builds them in one graph with the release vsnfs, sharing
// swift-nio and vsnfs's modules and both cores. By hand:
//   VSNFS_BENCHMARKS=1 swift package --scratch-path .build-bench-rel benchmark
if ProcessInfo.processInfo.environment["VSNFS_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "Codecs",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                nioCore, "XDR", "ONCRPC", "NFS3",
            ],
            path: "Benchmarks/Codecs",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ))
}

// The libFuzzer targets (Fuzz/, one executable per decoder) are part of the
// package only when VSNFS_FUZZ is set, as `make fuzz` does: they are built
// with `-sanitize=fuzzer,address` in their own scratch path, .build-fuzz, and
// never by `swift build` or `swift test`. FuzzDriver declares libFuzzer's
// driver, which each target's `<module>_main` runs.
if ProcessInfo.processInfo.environment["VSNFS_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzRecordMarking", ["ONCRPC", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")]),
        ("FuzzRPCMessage", ["ONCRPC", "XDR", nioCore]),
        ("FuzzProcedures", ["FuzzServer", "Server", "NFSCore", "NFS3", "Mount3", "ONCRPC", "XDR", "Exports", "HostFS", "Transport",
                            log, nioCore, nioLocks]),
        ("FuzzNFS4", ["FuzzServer", "NFS4Wire", "ONCRPC", "XDR", nioCore]),
        ("FuzzFileHandle", ["HostFS", "Exports", "CSupport", log]),
        ("FuzzExports", ["Exports"]),
        ("FuzzCompound", ["NFS4Wire", "XDR", nioCore]),
    ]
    package.targets.append(.target(name: "FuzzDriver", path: "Fuzz/FuzzDriver"))
    // The in-process server the targets that drive a whole server share.
    package.targets.append(.target(name: "FuzzServer", dependencies: ["Server", "Exports", "HostFS", "ONCRPC", "XDR",
                                                                      "Transport", log, nioCore, nioLocks],
                                   path: "Fuzz/FuzzServer"))
    for target in fuzzTargets {
        package.targets.append(.executableTarget(name: target.name, dependencies: ["FuzzDriver"] + target.dependencies,
                                                 path: "Fuzz/\(target.name)"))
    }
}
