// swift-tools-version: 6.1
//
// vsnfs: an NFS server that shares host directories into virtual machines
// over AF_VSOCK. One target per layer; dependencies point downward only:
//
//   XDR, Transport (sockets, kernel peer identity) -> ONCRPC -> Exports -> HostFS
//   -> NFSProtocols -> Server -> CLIs
// Transport sits beside XDR at the bottom so the RPC layer can hand every
// call the PeerIdentity of its connection.
//
import Foundation
import PackageDescription

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]
let log: Target.Dependency = .product(name: "Logging", package: "swift-log")

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
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
    ],
    targets: [
        // Layer 1: XDR (RFC 4506) over NIO ByteBuffer.
        .target(name: "XDR", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // Layer 2: ONC RPC v2 (RFC 5531): record marking, messages, auth, dispatch, backchannel calls.
        .target(name: "ONCRPC", dependencies: ["XDR", "Transport", log] + nio),
        // Layer 3: listeners (vsock, TCP, Unix) and kernel-derived peer identities.
        .target(name: "Transport", dependencies: ["CSupport", log] + nio),
        // Layer 4: exports file grammar and the (transport, peer) -> access table.
        .target(name: "Exports", dependencies: ["Transport"]),
        // Layer 5: file handles and host filesystem calls, off the event loops.
        .target(name: "HostFS", dependencies: ["Exports", "CSupport", log,
                                               .product(name: "Collections", package: "swift-collections"),
                                               .product(name: "Atomics", package: "swift-atomics")] + nio),
        // Layer 6: MOUNT v3, NFSv3, NFS_LOCALIO (declined).
        .target(name: "NFSProtocols", dependencies: ["XDR", "ONCRPC", "Transport", "Exports", "HostFS", log] + nio),
        // Layer 7: server assembly (config, lifecycle, reload).
        .target(name: "Server", dependencies: ["NFSProtocols", "Transport", "Exports", "HostFS", "ONCRPC", "CSupport", log] + nio),
        // C shims for syscalls Swift's Glibc module does not expose cleanly.
        .target(name: "CSupport"),
        .executableTarget(name: "vsnfs", dependencies: [
            "Server", "Exports", "Transport", "ONCRPC", log,
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "vsnfs-mount", dependencies: [
            "CSupport", "ONCRPC", "XDR", log,
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ] + nio),
        .testTarget(name: "XDRTests", dependencies: ["XDR"] + nio),
        .testTarget(name: "ONCRPCTests", dependencies: ["ONCRPC", "XDR"] + nio
                        + [.product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(name: "ExportsTests", dependencies: ["Exports", "Transport"]),
        .testTarget(name: "HostFSTests", dependencies: ["HostFS", "Exports"] + nio),
        .testTarget(name: "IntegrationTests", dependencies: ["Server", "ONCRPC", "XDR", "Transport", "Exports", "NFSProtocols",
                                                             "HostFS", "CSupport", log] + nio),
    ],
    swiftLanguageModes: [.v5]
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
                .product(name: "NIOCore", package: "swift-nio"),
                "XDR", "ONCRPC", "NFSProtocols",
            ],
            path: "Benchmarks/Codecs",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ))
}

// The libFuzzer targets (Fuzz/, one executable per decoder) are part of the
// package only when VSNFS_FUZZ is set, as `make fuzz` does: they are built
// with `-sanitize=fuzzer,address` in their own scratch path, .build-fuzz, and
// never by `swift build` or `swift test`. FuzzDriver declares libFuzzer's
// driver, which each target's `<module>_main` runs. The targets are Swift 6
// code whatever the package's language mode.
if ProcessInfo.processInfo.environment["VSNFS_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzRecordMarking", ["ONCRPC", .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "NIOEmbedded", package: "swift-nio")]),
        ("FuzzRPCMessage", ["ONCRPC", "XDR", .product(name: "NIOCore", package: "swift-nio")]),
        ("FuzzProcedures", ["Server", "NFSProtocols", "ONCRPC", "XDR", "Exports", "HostFS", "Transport", log] + nio),
        ("FuzzFileHandle", ["HostFS", "Exports", "CSupport", log]),
        ("FuzzExports", ["Exports"]),
    ]
    package.targets.append(.target(name: "FuzzDriver", path: "Fuzz/FuzzDriver"))
    for target in fuzzTargets {
        package.targets.append(.executableTarget(name: target.name, dependencies: ["FuzzDriver"] + target.dependencies,
                                                 path: "Fuzz/\(target.name)",
                                                 swiftSettings: [.swiftLanguageMode(.v6)]))
    }
}
