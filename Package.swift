// swift-tools-version:6.0
import PackageDescription

// Data flows one way: ingest → store → score → serve/report. Each library target depends only on
// the ones upstream of it; `leadlens` is a thin CLI over them.
let package = Package(
    name: "LeadLens",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "leadlens", targets: ["leadlens"]),
        .library(name: "LeadStore", targets: ["LeadStore"]),
        .library(name: "LeadIngest", targets: ["LeadIngest"]),
        .library(name: "LeadScoring", targets: ["LeadScoring"]),
        .library(name: "LeadAPI", targets: ["LeadAPI"]),
        .library(name: "LeadReports", targets: ["LeadReports"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // Already in the graph through Hummingbird; named here so the report scheduler is a Service.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Already in the graph through Hummingbird; named here for the HTTP/1.0 connection handler,
        // which works on NIO's HTTP parts before Hummingbird converts them.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
    ],
    targets: [
        // Reference BLAS (libblas-dev) or OpenBLAS (libopenblas0): both install libblas.so.3 through
        // Debian alternatives, so the same binary runs on either.
        .systemLibrary(name: "CBLAS", providers: [.apt(["libblas-dev"])]),
        // zlib (zlib1g-dev) decodes gzip inputs: Segment's bucket exports and gzip request bodies.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // sqlite3_config, which is variadic and so out of Swift's reach, for process-wide settings.
        .systemLibrary(name: "CSQLiteConfig", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "LeadStore",
            dependencies: [
                "CSQLiteConfig",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "LeadIngest",
            dependencies: [
                "LeadStore", "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "LeadScoring",
            dependencies: ["CBLAS", "LeadStore"]
        ),
        .target(
            name: "LeadAPI",
            dependencies: [
                "LeadStore", "LeadIngest", "LeadScoring", "LeadReports",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The OpenAPI document GET /openapi.json serves; OpenAPITests keeps it in step with the routes.
            resources: [.copy("openapi.json")]
        ),
        .target(
            name: "LeadReports",
            dependencies: [
                "LeadStore", "LeadScoring",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Mustache templates, read at run time so a report's look changes without Swift.
            resources: [.copy("Templates")]
        ),
        .executableTarget(
            name: "leadlens",
            dependencies: [
                "LeadStore", "LeadIngest", "LeadScoring", "LeadAPI", "LeadReports",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "LeadStoreTests", dependencies: ["LeadStore"]),
        .testTarget(
            name: "LeadIngestTests",
            dependencies: ["LeadIngest", "LeadStore", "CZlib", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "LeadScoringTests",
            dependencies: ["LeadScoring", "LeadStore", "LeadIngest", .product(name: "GRDB", package: "GRDB.swift")],
            // Reference results from scikit-learn and statsmodels, with the script that made them.
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "LeadAPITests",
            dependencies: [
                "LeadAPI", "LeadStore", "LeadScoring", "LeadIngest",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "LeadReportsTests",
            dependencies: ["LeadReports", "LeadStore", "LeadScoring", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "LeadLensCLITests",
            dependencies: [
                "leadlens", "LeadStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ]
)
