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

    /// The store's file; nil for one in memory, which has no WAL, no folder and no lock files.
    public var filePath: String? {
        let path = writer.path
        return path.isEmpty || path == ":memory:" || path.hasPrefix("file::memory:") ? nil : path
    }

    /// Opens (creating when needed) the store at `path` and migrates it to the current schema.
    ///
    /// - Parameter serving: open for a long-running server, whose writes are many small commits
    ///   on random rows of a large store:
    ///   - pages are read through mmap(2) rather than read(2): the server's random-access writes
    ///     spent most of their time copying pages with read(2) (perf, measured). A command that
    ///     scans the store (a report, a rescore) does not map it, because every mapped page it
    ///     touches counts in its resident size: a 1.1M-lead report peaked at 694 MiB mapped,
    ///     against 192 MiB read;
    ///   - the writer gets a 512 MiB page cache (it grows only as pages are used), so a group
    ///     commit of random leads does not spill dirty pages into the WAL before it commits;
    ///   - the writer leaves checkpoints to a connection of its own (the API's `WALCheckpointer`),
    ///     so it no longer copies the WAL into the database file and fsyncs it inside a request's
    ///     commit (perf: about a fifth of the writer's samples under POST /events). It still
    ///     checkpoints past 512 MiB of WAL, a backstop should that never happen;
    ///   - when the WAL starts over, a file grown past 512 MiB (one huge transaction) is cut
    ///     back to that size, so the disk it holds stays bounded while smaller cycles keep
    ///     reusing its blocks.
    public static func open(path: String, logger: Logger = Logger(label: "leadlens.store"),
                            serving: Bool = false) throws -> LeadStore {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let pool = try openPool(path: path, configuration: configuration(memoryMapped: serving))
        if !SQLiteProcessSettings.applied {
            logger.debug("SQLite was in use before the store opened: its memory statistics stay on")
        }
        let store = LeadStore(writer: pool)
        try store.migrate(logger: logger)
        if serving {
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA cache_size = -524288")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(try walPages(bytes: 512 << 20, db))")
                try db.execute(sql: "PRAGMA journal_size_limit = \(512 << 20)")
            }
        }
        return store
    }

    /// Opens the pool, trying again while another process opening the same new file holds its
    /// lock. Turning a new file to WAL needs that lock while holding a read lock, and SQLite then
    /// answers SQLITE_BUSY at once rather than wait in the busy handler, which could deadlock:
    /// three processes opening one new store together failed one of them now and then.
    static func openPool(path: String, configuration: Configuration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + .seconds(2)
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline {
                usleep(10_000)
            }
        }
    }

    /// The files SQLite and the bulk loader keep beside a store's own: `<store><suffix>`.
    static let companionSuffixes = ["-wal", "-shm", "-journal", loaderLockSuffix]
    static let loaderLockSuffix = "-loader.lock"

    /// Whether `path` is the store at `storePath` or one of the files kept beside it, symbolic
    /// links resolved: what no command may overwrite or take as an input.
    public static func isStoreFile(_ path: String, storePath: String) -> Bool {
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path }
        let (target, store) = (resolved(path), resolved(storePath))
        return target == store || companionSuffixes.contains { target == store + $0 }
    }

    /// A private in-memory store, for tests and one-off tools.
    public static func inMemory() throws -> LeadStore {
        let queue = try DatabaseQueue(configuration: configuration())
        let store = LeadStore(writer: queue)
        try store.migrate(logger: Logger(label: "leadlens.store"))
        return store
    }

    /// Runs the pending migrations. Two processes opening one new store at once (an ingest and
    /// `serve`) both find every migration pending, and the second to run one fails on the
    /// tables the first made ("table leads already exists"). Each migration commits on its
    /// own, so when the failure came with another process's progress, reading what is applied
    /// again and going on is safe.
    public func migrate(logger: Logger) throws {
        let migrator = Schema.migrator
        var attempts = 0
        while true {
            let applied = try writer.read { try migrator.appliedIdentifiers($0) }
            // A newer version's store: this one does not know what it keeps (a table its writers
            // must maintain, a rule its keys follow), so writing into it could break it.
            if let unknown = applied.subtracting(migrator.migrations).sorted().last {
                throw UnknownSchema(migration: unknown)
            }
            let pending = migrator.migrations.filter { !applied.contains($0) }
            guard !pending.isEmpty else { return }
            do {
                try migrator.migrate(writer)
                logger.info("migrated store", metadata: ["store.migrations": "\(pending.joined(separator: ","))"])
                return
            } catch {
                attempts += 1
                let appliedNow = try writer.read { try migrator.appliedIdentifiers($0) }
                guard appliedNow != applied, attempts < 20 else { throw error }
                usleep(10_000)
            }
        }
    }

    /// The store was upgraded by a newer LeadLens: run that version, or stop its writers first.
    public struct UnknownSchema: Error, CustomStringConvertible, Equatable {
        public let migration: String
        public var description: String {
            "the store was upgraded by a newer LeadLens (migration \(migration)); use that version to open it"
        }
    }

    /// How long a writer waits for another process's write lock before its statement fails.
    static let busyLimitMilliseconds = 10_000

    /// Waits for the write lock in steps of 1 ms, up to ``busyLimitMilliseconds``. SQLite's own
    /// timeout backs off to 100 ms between tries, and an ingest commits and begins its next
    /// transaction within microseconds: a server waiting behind it kept missing the gaps and
    /// failed requests after 5 s. Polling every millisecond catches the pause an ingest leaves
    /// between its transactions (`Ingester.yieldToOtherWriters`).
    static func retryWhileBusy(_ tries: Int) -> Bool {
        guard tries < busyLimitMilliseconds else { return false }
        usleep(1_000)
        return true
    }

    static func configuration(memoryMapped: Bool = false) -> Configuration {
        _ = SQLiteProcessSettings.applied
        var config = Configuration()
        config.label = "leadlens"
        // Readers never wait on the writer in WAL mode; writers from other processes (a second
        // ingest, the server) wait for the lock instead of failing at once (see `retryWhileBusy`).
        config.busyMode = .callback(retryWhileBusy)
        config.prepareDatabase { db in
            // NORMAL is durable to the last checkpoint and always consistent in WAL mode, which
            // is what a killed ingest needs; FULL would fsync every batch for no gain in safety.
            // 4 KiB pages (new databases only): a write to one row rewrites its whole page into
            // the WAL and again at checkpoint, and the server's writes land on random rows. On
            // the 1M-lead store, 4 KiB against 16 KiB: POST /events for random leads +50%,
            // POST /intake +13%, reads unchanged, a bulk ingest 9% slower (measured).
            // A larger auto-checkpoint (128 MiB) lets a page rewritten by many small
            // transactions reach the main file once per checkpoint, not once per 1000 WAL pages.
            try db.execute(sql: """
                PRAGMA page_size = 4096;
                PRAGMA synchronous = NORMAL;
                PRAGMA temp_store = MEMORY;
                PRAGMA cache_size = -65536;
                """)
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(try walPages(bytes: 128 << 20, db))")
            if memoryMapped { try db.execute(sql: "PRAGMA mmap_size = 2147418112") }
            db.add(function: LeadFilter.containsIgnoringCase)
            db.add(function: LeadFilter.equalsIgnoringCase)
        }
        return config
    }
}

extension LeadStore {
    /// `bytes` of WAL in pages of this database (older stores have 16 KiB pages).
    static func walPages(bytes: Int, _ db: Database) throws -> Int {
        bytes / max(512, try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096)
    }

    /// Current time in the store's unit: unix milliseconds.
    public static func nowMillis() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}
