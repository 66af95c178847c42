import Foundation
import GRDB
@testable import LeadStore
import Testing

@Suite("Deferred indexes")
struct DeferredIndexesTests {
    /// Every index of the store by name, with the SQL that created it.
    private func indexes(_ store: LeadStore) throws -> [String: String] {
        try store.reader.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: """
                SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
                """).map { ($0["name"] as String, $0["sql"] as String) })
        }
    }

    @Test("An empty store drops exactly the query indexes and builds them back as they were")
    func defersAndRestoresOnAnEmptyStore() throws {
        let store = try LeadStore.inMemory()
        let before = try indexes(store)
        #expect(Set(DeferredIndexes.names).isSubset(of: before.keys), "a deferrable index is missing from the schema")

        let load = try #require(try store.beginBulkLoad())

        let during = try indexes(store)
        #expect(Set(during.keys) == Set(before.keys).subtracting(DeferredIndexes.names))
        // Lookups and uniqueness stay: ingest resolves leads through them (events dedupe on
        // their table's own key).
        for kept in ["leads_external_id", "leads_email", "leads_phone_digits", "lead_anonymous_ids_lead"] {
            #expect(during[kept] != nil, "\(kept) was dropped")
        }
        #expect(try store.reader.read(DeferredIndexes.arePending))

        try load.finish()
        #expect(try indexes(store) == before)
        #expect(try !store.reader.read(DeferredIndexes.arePending))
    }

    @Test func aStoreHoldingLeadsKeepsItsIndexes() throws {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            try db.execute(sql: "INSERT INTO leads (external_id, created_at, updated_at) VALUES ('L1', 1, 1)")
        }
        let before = try indexes(store)
        #expect(try store.beginBulkLoad() == nil)
        #expect(try indexes(store) == before)
    }

    @Test("A load interrupted with indexes deferred goes on deferring them, even with leads stored")
    func anInterruptedLoadStaysDeferred() throws {
        let store = try LeadStore.inMemory()
        let before = try indexes(store)
        #expect(try store.beginBulkLoad() != nil)  // then dropped unfinished, as a kill would
        // The interrupted load committed a lead before it stopped.
        try store.writer.write { db in
            try db.execute(sql: "INSERT INTO leads (external_id, score, created_at, updated_at) VALUES ('L1', 90, 1, 1)")
        }
        let resumed = try #require(try store.beginBulkLoad())
        #expect(try indexes(store)["leads_score_created"] == nil)

        try resumed.finish()
        #expect(try indexes(store) == before)
        // The rebuilt index holds the rows written while it was gone.
        let viaIndex = try store.reader.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM leads INDEXED BY leads_score_created WHERE score >= 80")
        }
        #expect(viaIndex == 1)
    }

    @Test("Restoring skips an index something else built meanwhile, and runs twice harmlessly")
    func restoreIsIdempotent() throws {
        let store = try LeadStore.inMemory()
        let before = try indexes(store)
        #expect(try store.beginBulkLoad() != nil)
        try store.writer.write { db in try db.execute(sql: before["leads_status"]!) }

        #expect(try store.restoreDeferredIndexes())
        #expect(try store.restoreDeferredIndexes())
        #expect(try indexes(store) == before)
    }

    @Test("While a load holds the loader lock no one else builds its indexes or starts another; once it dies, anyone does")
    func theLoaderLockKeepsOthersOut() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-bulk-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("store.sqlite").path
        let loader = try LeadStore.open(path: path)
        let before = try indexes(loader)
        // Another process's view of the same file: flock(2) locks conflict between open files.
        let other = try LeadStore.open(path: path)

        var load = try loader.beginBulkLoad()
        #expect(load != nil)
        #expect(try other.beginBulkLoad() == nil, "a second loader started while the first runs")
        #expect(try !other.restoreDeferredIndexes(), "indexes were built in the middle of a running load")
        #expect(try indexes(other)["leads_score_created"] == nil)

        load = nil  // the loader dies without building them: the kernel releases its lock
        #expect(try other.restoreDeferredIndexes())
        #expect(try indexes(other) == before)
    }
}
