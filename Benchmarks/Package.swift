// swift-tools-version: 6.1
//
// Micro benchmarks of vsnfs's hot encode/decode paths, with allocation
// counts (ordo-one/benchmark). A separate package so the main build and
// `swift test` never build the benchmark machinery. Run from the top:
//   make bench                         (all of it; bench/micro.sh runs this part)
//   cd Benchmarks && swift package --scratch-path ../.build-bench-rel benchmark
// (the scratch path of the release build in bench/run.sh: shared modules are built once)
import Foundation
import PackageDescription

// The root package's identity is its directory's name (a path dependency).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let package = Package(
    name: "vsnfs-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "Codecs",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "VSNFSCodecs", package: root),
            ],
            path: "Benchmarks/Codecs",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
