import Foundation
import GRDB
import Logging

/// The SQLite store: one file, WAL mode, many readers and one writer (GRDB's `DatabasePool`).
/// Opening it runs every pending migration before anything else touches it.
public struct LeadStore: Sendable {
    public static let defaultPath = "data/leadlens.sqlite"

    public let writer: any DatabaseWriter
    public var reader: any DatabaseReader { writer }

    public init(writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// Opens (creating when needed) the store at `path` and migrates it to the current schema.
    ///
    /// - Parameter memoryMapped: read pages through mmap(2) rather than read(2). The server's
    ///   random-access writes spent most of their time copying pages with read(2) (perf,
    ///   measured), so it maps the file; a command that scans the store (a report, a rescore)
    ///   does not, because every mapped page it touches counts in its resident size: a
    ///   1.1M-lead report peaked at 694 MiB mapped, against 192 MiB read.
    public static func open(path: String, logger: Logger = Logger(label: "leadlens.store"),
                            memoryMapped: Bool = false) throws -> LeadStore {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let pool = try DatabasePool(path: path, configuration: configuration(memoryMapped: memoryMapped))
        let store = LeadStore(writer: pool)
        try store.migrate(logger: logger)
        return store
    }

    /// A private in-memory store, for tests and one-off tools.
    public static func inMemory() throws -> LeadStore {
        let queue = try DatabaseQueue(configuration: configuration())
        let store = LeadStore(writer: queue)
        try store.migrate(logger: Logger(label: "leadlens.store"))
        return store
    }

    public func migrate(logger: Logger) throws {
        let migrator = Schema.migrator
        let applied = try writer.read { try migrator.appliedIdentifiers($0) }
        let pending = migrator.migrations.filter { !applied.contains($0) }
        guard !pending.isEmpty else { return }
        try migrator.migrate(writer)
        logger.info("migrated store", metadata: ["store.migrations": "\(pending.joined(separator: ","))"])
    }

    static func configuration(memoryMapped: Bool = false) -> Configuration {
        var config = Configuration()
        config.label = "leadlens"
        // Readers never wait on the writer in WAL mode; writers from other processes (a second
        // ingest, the server) wait up to 5 s for the lock instead of failing at once.
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            // NORMAL is durable to the last checkpoint and always consistent in WAL mode, which
            // is what a killed ingest needs; FULL would fsync every batch for no gain in safety.
            // 16 KiB pages: a third fewer B-tree pages to split and rewrite on the ingest path
            // (measured ~12% faster ingest than 4 KiB). Only takes effect on a new database.
            // A larger auto-checkpoint lets a page rewritten by many small transactions reach the
            // main file once per checkpoint instead of once per 1000 WAL pages.
            try db.execute(sql: """
                PRAGMA page_size = 16384;
                PRAGMA synchronous = NORMAL;
                PRAGMA temp_store = MEMORY;
                PRAGMA cache_size = -65536;
                PRAGMA wal_autocheckpoint = 8192;
                """)
            if memoryMapped { try db.execute(sql: "PRAGMA mmap_size = 2147418112") }
        }
        return config
    }
}

extension LeadStore {
    /// Current time in the store's unit: unix milliseconds.
    public static func nowMillis() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}
