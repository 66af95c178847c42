import GRDB

/// Bulk loads into an empty store build the sorting and filtering indexes once, at the end,
/// instead of maintaining them row by row: SQLite builds an index from a sort of the table,
/// which is far cheaper than inserting every row into a B-tree of its own. On the ingest
/// benchmark (1M track events, 141K new leads) those indexes cost about a third of the
/// writer's time, and building them afterwards about 1.2 s (measured).
///
/// Deferred indexes are recorded, with the exact SQL that created them, in `deferred_indexes`
/// inside the same transaction that drops them, so a load killed half-way leaves a store that
/// is consistent (indexes only ever speed queries up) and knows what to rebuild. Identity and
/// uniqueness indexes are never deferred: ingest looks leads up and dedupes events through them.
public enum DeferredIndexes {
    /// Indexes that only serve list filters, sorting, the timeline and tag or custom-field
    /// lookups; nothing a write path reads.
    public static let names = [
        "leads_status", "leads_source", "leads_created_at", "leads_score", "leads_score_created",
        "leads_updated_at", "leads_last_activity_at", "leads_last_name", "leads_assigned_to",
        "lead_timeline_lead", "lead_tags_tag", "lead_custom_values_field",
    ]

    /// Whether a previous bulk load left indexes to build.
    public static func arePending(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM deferred_indexes)") ?? false
    }

    /// Drops the deferrable indexes when the store holds no lead and no event yet, or keeps
    /// them dropped when an interrupted bulk load left them pending. Returns whether the
    /// indexes are now deferred; call ``restore(_:)`` when the load ends.
    public static func deferIfEmpty(_ db: Database) throws -> Bool {
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

    /// Builds every pending index with the SQL it was created with. Idempotent.
    public static func restore(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT name, sql FROM deferred_indexes ORDER BY name") {
            let name: String = row["name"]
            let exists = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?)",
                                           arguments: [name]) ?? false
            if !exists { try db.execute(sql: row["sql"]) }
        }
        try db.execute(sql: "DELETE FROM deferred_indexes")
    }
}

extension LeadStore {
    /// Starts a bulk load (see ``DeferredIndexes``): returns whether the query indexes are
    /// deferred, in which case call ``restoreDeferredIndexes()`` when the load ends.
    public func deferIndexesIfEmpty() throws -> Bool {
        try writer.write { try DeferredIndexes.deferIfEmpty($0) }
    }

    /// Builds whatever indexes a bulk load deferred; nothing when none are pending.
    public func restoreDeferredIndexes() throws {
        guard try writer.read({ try DeferredIndexes.arePending($0) }) else { return }
        try writer.write { try DeferredIndexes.restore($0) }
    }
}
