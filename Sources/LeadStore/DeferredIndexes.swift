import Foundation
import GRDB

/// Bulk loads into an empty store build the sorting and filtering indexes once, at the end,
/// instead of maintaining them row by row: SQLite builds an index from a sort of the table,
/// which is far cheaper than inserting every row into a B-tree of its own. On the ingest
/// benchmark (1M track events, 141K new leads) those indexes cost about a third of the
/// writer's time, and building them afterwards 1.3–1.6 s (measured).
///
/// Deferred indexes are recorded, with the exact SQL that created them, in `deferred_indexes`
/// inside the same transaction that drops them, so a load killed half-way leaves a store that
/// is consistent (indexes only ever speed queries up) and knows what to rebuild. Identity and
/// uniqueness indexes are never deferred: ingest looks leads up through them.
public enum DeferredIndexes {
    /// Indexes that serve list filters, sorting and tag or custom-field lookups. No write relies
    /// on one for correctness. `lead_timeline_lead` is not among them: merging a lead moves its
    /// timeline by lead id, and ingest merges an anonymous visitor's lead into its user as the
    /// load runs, so without it every such merge would scan the whole timeline.
    public static let names = [
        "leads_status", "leads_source", "leads_created_at", "leads_score_created",
        "leads_updated_at", "leads_last_activity_at", "leads_last_name", "leads_assigned_to",
        "lead_tags_tag", "lead_custom_values_field",
    ]

    /// Whether a bulk load left indexes to build.
    public static func arePending(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM deferred_indexes)") ?? false
    }

    /// Drops the deferrable indexes when the store holds no lead and no event yet, or keeps
    /// them dropped when an interrupted bulk load left them pending. Returns whether the
    /// indexes are now deferred.
    static func deferIfEmpty(_ db: Database) throws -> Bool {
        if try arePending(db) { return true }
        let isEmpty = try Bool.fetchOne(db, sql: """
            SELECT NOT EXISTS (SELECT 1 FROM leads) AND NOT EXISTS (SELECT 1 FROM events)
            """) ?? false
        guard isEmpty else { return false }
        let existing = try Row.fetchAll(db, sql: """
            SELECT name, sql FROM sqlite_master
            WHERE type = 'index' AND sql IS NOT NULL AND name IN (\(databaseQuestionMarks(count: names.count)))
            """, arguments: StatementArguments(names))
        for row in existing {
            let name: String = row["name"]
            try db.execute(sql: "INSERT INTO deferred_indexes (name, sql) VALUES (?, ?)", arguments: [name, row["sql"] as String])
            try db.execute(sql: "DROP INDEX \(name.quotedDatabaseIdentifier)")
        }
        return !existing.isEmpty
    }

    /// Builds every pending index with the SQL it was created with, one transaction per index
    /// so no other writer waits for more than one build. Idempotent, and safe to interrupt.
    static func restore(_ writer: any DatabaseWriter) throws {
        let pending = try writer.read { db in try String.fetchAll(db, sql: "SELECT name FROM deferred_indexes ORDER BY name") }
        for name in pending {
            try writer.write { db in
                guard let sql = try String.fetchOne(db, sql: "SELECT sql FROM deferred_indexes WHERE name = ?", arguments: [name])
                else { return }  // another process built it meanwhile
                let exists = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?)",
                                               arguments: [name]) ?? false
                if !exists { try db.execute(sql: sql) }
                try db.execute(sql: "DELETE FROM deferred_indexes WHERE name = ?", arguments: [name])
            }
        }
    }
}

/// A bulk load in progress: its indexes are deferred, and this process holds the store's
/// loader lock, so no other process builds them in the middle of the load. The lock is an
/// flock(2) on a file beside the store, which the kernel releases when the process dies,
/// `kill -9` included: pending indexes without a live loader are a killed load's.
public final class BulkLoad {
    private let store: LeadStore
    private let lock: ExclusiveFileLock

    fileprivate init(store: LeadStore, lock: ExclusiveFileLock) {
        self.store = store
        self.lock = lock
    }

    /// Builds the deferred indexes and releases the lock.
    public func finish() throws {
        defer { lock.release() }
        try DeferredIndexes.restore(store.writer)
    }
}

extension LeadStore {
    /// Starts a bulk load when the store holds no lead and no event (or a killed load left its
    /// indexes pending), unless another process is loading. Nil means an ordinary ingest.
    public func beginBulkLoad() throws -> BulkLoad? {
        guard let lock = try LoaderLock.acquire(for: self) else { return nil }  // another process is loading
        guard try writer.write({ try DeferredIndexes.deferIfEmpty($0) }) else {
            lock.release()
            return nil
        }
        return BulkLoad(store: self, lock: lock)
    }

    /// Builds whatever indexes a killed bulk load left, unless a load is still running (it
    /// builds them itself when it ends). Returns whether none are left pending.
    @discardableResult
    public func restoreDeferredIndexes() throws -> Bool {
        guard try writer.read({ try DeferredIndexes.arePending($0) }) else { return true }
        guard let lock = try LoaderLock.acquire(for: self) else { return false }
        defer { lock.release() }
        try DeferredIndexes.restore(writer)
        return true
    }
}

/// The store's loader lock, an ``ExclusiveFileLock`` on `<store>-loader.lock`. A store without
/// a file (in memory, one process) needs no lock: it always acquires.
private enum LoaderLock {
    /// Nil when another process holds it.
    static func acquire(for store: LeadStore) throws -> ExclusiveFileLock? {
        guard let path = store.filePath else { return ExclusiveFileLock.none }
        return try ExclusiveFileLock.acquire(path: path + LeadStore.loaderLockSuffix)
    }
}

/// An exclusive, non-blocking flock(2) on a file, created if need be. The kernel releases it
/// when the holder's process dies, `kill -9` included, so a held lock always means a live holder.
public final class ExclusiveFileLock {
    private var descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// A lock that guards nothing, for what only one process can reach.
    static var none: ExclusiveFileLock { ExclusiveFileLock(descriptor: -1) }

    /// Nil when another open file description holds the lock.
    public static func acquire(path: String) throws -> ExclusiveFileLock? {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        return ExclusiveFileLock(descriptor: descriptor)
    }

    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)  // closing the last descriptor releases the flock
        descriptor = -1
    }

    deinit { release() }
}
