import Foundation
import GRDB
@testable import LeadStore
import Testing

@Suite("Store")
struct StoreTests {
    private func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-\(UUID().uuidString)/store.sqlite").path
    }

    /// A database file at `path` migrated up to `migration` only, then `setup`, then closed:
    /// what an older version of LeadLens left behind.
    private func leaveDatabase(at path: String, upTo migration: String, _ setup: (Database) throws -> Void = { _ in }) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let old = try DatabasePool(path: path)
        try Schema.migrator.migrate(old, upTo: migration)
        try old.write(setup)
        try old.close()
    }

    @Test("processes opening one new store at once all open it: none fails on the tables another's migration made")
    func concurrentFirstOpens() throws {
        for _ in 0..<6 {
            let path = temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            // Separate pools are separate connections, locking as separate processes do.
            let failures = NSLock()
            nonisolated(unsafe) var errors: [String] = []
            DispatchQueue.concurrentPerform(iterations: 3) { _ in
                do {
                    _ = try LeadStore.open(path: path)
                } catch {
                    failures.withLock { errors.append("\(error)") }
                }
            }
            #expect(errors == [])
            let store = try LeadStore.open(path: path)
            #expect(try store.reader.read { try Schema.migrator.appliedIdentifiers($0) } == Set(Schema.migrationIdentifiers))
        }
    }

    @Test func migratesAnEmptyDatabaseToWALWithEveryMigration() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try LeadStore.open(path: path)
        try store.reader.read { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            #expect(try Schema.migrator.appliedIdentifiers(db) == Set(Schema.migrationIdentifiers))
            for table in ["leads", "custom_fields", "lead_custom_values", "lead_tags", "event_types", "events", "event_property_sets", "lead_activity"] {
                #expect(try db.tableExists(table), "missing table \(table)")
            }
            let indexes = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads'")
            for index in ["leads_status", "leads_source", "leads_created_at", "leads_score_created", "leads_email", "leads_external_id", "leads_phone_digits"] {
                #expect(indexes.contains(index), "missing index \(index)")
            }
        }
    }

    @Test("Each earlier schema version upgrades in place, keeping its data")
    func upgradesFromEveryPreviousVersion() throws {
        let identifiers = Schema.migrationIdentifiers
        for previous in identifiers.dropLast() {
            let path = temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            // setup: a database left at an older version, with a lead in it
            try leaveDatabase(at: path, upTo: previous) { db in
                try db.execute(sql: "INSERT INTO leads (external_id, email, created_at, updated_at) VALUES ('L1', 'a@x.io', 1, 1)")
            }
            // act
            let store = try LeadStore.open(path: path)
            // check
            let (completed, email) = try store.reader.read { db in
                (try Schema.migrator.hasCompletedMigrations(db),
                 try String.fetchOne(db, sql: "SELECT email FROM leads WHERE external_id = 'L1'"))
            }
            #expect(completed, "upgrading from \(previous)")
            #expect(email == "a@x.io")
        }
    }

    @Test("v8 drops the score-only index, also when a killed bulk load had left it to build")
    func scoreIndexGoes() throws {
        for deferred in [false, true] {
            let path = temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            try leaveDatabase(at: path, upTo: "v7-deferred-indexes") { db in
                guard deferred else { return }
                try db.execute(sql: """
                    INSERT INTO deferred_indexes SELECT name, sql FROM sqlite_master WHERE name IN ('leads_score', 'leads_status');
                    DROP INDEX leads_score; DROP INDEX leads_status;
                    """)
            }
            let store = try LeadStore.open(path: path)
            let (indexes, pending) = try store.reader.read { db in
                (try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads'"),
                 try String.fetchAll(db, sql: "SELECT name FROM deferred_indexes ORDER BY name"))
            }
            #expect(!indexes.contains("leads_score") && indexes.contains("leads_score_created"))
            #expect(pending == (deferred ? ["leads_status"] : []), "only the indexes a load still has to build stay recorded")
            #expect(try store.restoreDeferredIndexes())
            #expect(try store.reader.read { db in try db.indexes(on: "leads").contains { $0.name == "leads_status" } })
        }
    }

    @Test("v9: the ids of deleted leads are never handed out again; rows, children and indexes survive the rebuild")
    func leadIDsAreNeverReused() throws {
        for deferred in [false, true] {
            let path = temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            var before: [String: String] = [:]
            try leaveDatabase(at: path, upTo: "v8-one-score-index") { db in
                for i in 1...3 {
                    try db.execute(sql: "INSERT INTO leads (external_id, score, created_at, updated_at) VALUES (?, ?, ?, ?)",
                                   arguments: ["L\(i)", 10 * i, i, i])
                }
                try db.execute(sql: "INSERT INTO lead_tags (lead_id, tag) VALUES (2, 'vip')")
                if deferred {
                    try db.execute(sql: """
                        INSERT INTO deferred_indexes SELECT name, sql FROM sqlite_master WHERE name = 'leads_status';
                        DROP INDEX leads_status;
                        """)
                }
                before = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: """
                    SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads' AND sql IS NOT NULL
                    """).map { ($0[0] as String, $0[1] as String) })
            }
            // Opening migrates on past v9: v11 drops the anonymous-id index with its column.
            before["leads_anonymous_id"] = nil
            let store = try LeadStore.open(path: path)
            try store.writer.write { db in
                let after = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: """
                    SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads' AND sql IS NOT NULL
                    """).map { ($0[0] as String, $0[1] as String) })
                #expect(after == before, "the rebuilt table's indexes differ")
                #expect(try Row.fetchAll(db, sql: "SELECT id, external_id, score FROM leads ORDER BY id").map { [$0[0] as Int64, $0[2] as Int64] }
                        == [[1, 10], [2, 20], [3, 30]])
                #expect(try String.fetchAll(db, sql: "SELECT tag FROM lead_tags WHERE lead_id = 2") == ["vip"])
                // Before v9 the next lead took the newest lead's id once it was deleted.
                try db.execute(sql: "DELETE FROM leads WHERE id = 3")
                try db.execute(sql: "INSERT INTO leads (external_id, created_at, updated_at) VALUES ('L4', 4, 4)")
                #expect(db.lastInsertedRowID == 4, "a deleted lead's id was handed out again")
                #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            }
            #expect(try store.reader.read(DeferredIndexes.arePending) == deferred)
        }
    }

    @Test("v11: anonymous ids move to their own table; a shared one stays with the identified lead")
    func anonymousIDsMoveToTheirTable() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try leaveDatabase(at: path, upTo: "v10-traits-time") { db in
            try db.execute(sql: """
                INSERT INTO leads (id, external_id, anonymous_id, created_at, updated_at) VALUES
                    (1, NULL, 'shared', 1, 1), (2, 'u2', 'shared', 2, 2), (3, NULL, 'solo', 3, 3), (4, 'u4', NULL, 4, 4);
                """)
        }
        let store = try LeadStore.open(path: path)
        try store.reader.read { (db: Database) throws in
            #expect(try Row.fetchAll(db, sql: "SELECT anonymous_id, lead_id FROM lead_anonymous_ids ORDER BY 1")
                .map { "\($0[0] as String)=\($0[1] as Int64)" } == ["shared=2", "solo=3"])
            #expect(try !db.columns(in: "leads").contains { $0.name == "anonymous_id" })
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") == 4)
        }
        // Deleting a lead takes its anonymous ids with it.
        try store.writer.write { (db: Database) throws in
            #expect(try LeadMutations.delete(3, in: db))
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM lead_anonymous_ids WHERE lead_id = 3") == 0)
        }
    }

    @Test("v12: emails that are not addresses move to a custom field, unless they are a lead's only identity")
    func unaddressableEmailsMove() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try leaveDatabase(at: path, upTo: "v11-anonymous-ids") { db in
            try db.execute(sql: """
                INSERT INTO leads (id, email, phone, phone_digits, external_id, created_at, updated_at) VALUES
                    (1, 'n/a', '555 123 4567', '5551234567', NULL, 1, 1), (2, 'none', NULL, NULL, 'X2', 2, 2),
                    (3, 'n/a', NULL, NULL, NULL, 3, 3), (4, 'ann@x.io', '555 987 6543', '5559876543', NULL, 4, 4),
                    (5, 'a@b@x.io', NULL, NULL, 'X5', 5, 5), (6, '<L6@x.io>', NULL, NULL, 'X6', 6, 6),
                    (7, 'a@x..io', NULL, NULL, 'X7', 7, 7), (8, 'bob+tag@mail.x.io', NULL, NULL, 'X8', 8, 8),
                    (9, 'mailto:m9@x.io', NULL, NULL, NULL, 9, 9), (10, 'n/a', '000-000-0000', '0000000000', NULL, 10, 10);
                INSERT INTO custom_fields (key, label) VALUES ('email', 'E-mail');
                INSERT INTO lead_custom_values (lead_id, field_id, value) VALUES (7, last_insert_rowid(), 'kept@x');
                """)
        }
        let store = try LeadStore.open(path: path)
        try store.reader.read { (db: Database) throws in
            #expect(try Row.fetchAll(db, sql: "SELECT id, email FROM leads ORDER BY id").map { "\($0[0] as Int64)=\($0[1] as String? ?? "-")" }
                    == ["1=-", "2=-", "3=n/a", "4=ann@x.io", "5=-", "6=l6@x.io", "7=-", "8=bob+tag@mail.x.io", "9=m9@x.io", "10=n/a"],
                    "decorated addresses keep the address inside; a placeholder phone is no identity")
            #expect(try Row.fetchAll(db, sql: """
                SELECT v.lead_id, f.label, v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id ORDER BY v.lead_id
                """).map { "\($0[0] as Int64) \($0[1] as String)=\($0[2] as String)" }
                    == ["1 E-mail=n/a", "2 E-mail=none", "5 E-mail=a@b@x.io", "7 E-mail=kept@x; a@x..io"])
        }
    }

    @Test("v17: stored emails are composed (NFC), unless another lead holds the composed address")
    func storedEmailsAreComposed() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let composed = "caf\u{E9}@x.io", decomposed = "cafe\u{301}@x.io"
        let otherDecomposed = "zo\u{EB}@x.io".decomposedStringWithCanonicalMapping
        try leaveDatabase(at: path, upTo: "v16-events-by-lead") { db in
            // Lead 1 alone has its address, decomposed; leads 2 and 3 hold one address both ways.
            try db.execute(sql: """
                INSERT INTO leads (id, email, created_at, updated_at) VALUES (1, ?, 1, 1), (2, ?, 2, 2), (3, ?, 3, 3), (4, 'ann@x.io', 4, 4)
                """, arguments: [otherDecomposed, composed, decomposed])
        }
        let store = try LeadStore.open(path: path)
        try store.reader.read { (db: Database) throws in
            let stored = try Row.fetchAll(db, sql: "SELECT email FROM leads ORDER BY id").map { Array(($0[0] as String).utf8) }
            #expect(stored == [Array("zo\u{EB}@x.io".utf8), Array(composed.utf8), Array(decomposed.utf8), Array("ann@x.io".utf8)])
        }
        // Found again by the form every lookup now uses.
        #expect(try store.reader.read { db in try LeadLookup.find("ZOE\u{308}@x.io", in: db) } == 1)
    }

    @Test("v13: each source takes the spelling most of its leads have; the filter then matches any case")
    func sourceSpellingsFold() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try leaveDatabase(at: path, upTo: "v12-unaddressable-emails") { db in
            try db.execute(sql: """
                INSERT INTO leads (source, created_at, updated_at) VALUES
                    ('Google', 1, 1), ('google', 2, 2), ('google', 3, 3), ('LinkedIn', 4, 4), ('linkedin', 5, 5),
                    ('Événement', 6, 6), ('événement', 7, 7), ('événement', 8, 8), (NULL, 9, 9), ('webinar', 10, 10);
                """)
            // The same word with its accent as a separate code point (NFD): bytes SQLite tells apart.
            try db.execute(sql: "INSERT INTO leads (source, created_at, updated_at) VALUES (?, 11, 11)",
                           arguments: ["événement".decomposedStringWithCanonicalMapping])
        }
        let store = try LeadStore.open(path: path)
        try store.writer.write { db in
            let sources = try Data.fetchAll(db, sql: "SELECT CAST(coalesce(source, '-') AS BLOB) FROM leads ORDER BY id").map { [UInt8]($0) }
            let nfc = Array("événement".utf8)
            #expect(sources == ["google", "google", "google", "LinkedIn", "LinkedIn", "événement", "événement", "événement", "-", "webinar", "événement"].map { Array($0.utf8) },
                    "most leads' spelling wins, byte for byte; a tie goes to the first in byte order")
            #expect(sources.last == nfc)
            #expect(try SourceSpellings.canonical("ÉVÉNEMENT".decomposedStringWithCanonicalMapping, in: db).utf8.elementsEqual(nfc))
            // A new spelling of a known source is stored as the known one; a new source as given.
            #expect(try SourceSpellings.canonical("GOOGLE", in: db) == "google")
            #expect(try SourceSpellings.canonical("Podcast", in: db) == "Podcast")
            #expect(try SourceSpellings.canonical("podcast", in: db) == "Podcast")
            // An edit through the API's mutations stores the known spelling too.
            var changes = LeadMutations.Changes()
            changes.columns[.source] = .some("WEBINAR")
            try LeadMutations.update(9, changes, in: db)
            #expect(try String.fetchOne(db, sql: "SELECT source FROM leads WHERE id = 9") == "webinar")
            for term in ["GOOGLE", "linkedin", "ÉVÉNEMENT"] {
                var filter = LeadFilter()
                filter.source = term
                let (conditions, arguments) = filter.whereClause()
                let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM leads WHERE \(conditions)", arguments: arguments)
                #expect(count == (term == "linkedin" ? 2 : term == "ÉVÉNEMENT" ? 4 : 3), "\(term)")
            }
            var unknown = LeadFilter()
            unknown.source = "nowhere"
            let (conditions, arguments) = unknown.whereClause()
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM leads WHERE \(conditions)", arguments: arguments) == 0)
        }
    }

    @Test("a store a newer version upgraded is refused, not written into blind")
    func newerSchemaIsRefused() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try LeadStore.open(path: path)
        try store.writer.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')") }
        #expect(throws: LeadStore.UnknownSchema(migration: "v99-from-the-future")) { try LeadStore.open(path: path) }
    }

    @Test("v14 records whether events may hold raw-bytes content keys: only a store that had events")
    func rawContentKeysFact() throws {
        for hadEvents in [false, true] {
            let path = temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            try leaveDatabase(at: path, upTo: "v13-source-spellings") { db in
                guard hadEvents else { return }
                try db.execute(sql: """
                    INSERT INTO leads (id, created_at, updated_at) VALUES (1, 1, 1);
                    INSERT INTO event_types (id, name) VALUES (1, 'A');
                    INSERT INTO events (lead_id, occurred_at, type_id, dedupe_key) VALUES (1, 1, 1, 42);
                    """)
            }
            let store = try LeadStore.open(path: path)
            #expect(try store.reader.read { try Schema.fact("raw_content_keys", in: $0) } == hadEvents)
        }
        #expect(try LeadStore.inMemory().reader.read { try Schema.fact("raw_content_keys", in: $0) } == false)
    }

    @Test("v16 clusters events by lead and moves their properties into shared rows; ids and properties survive")
    func eventsByLeadMigration() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try leaveDatabase(at: path, upTo: "v14-store-facts") { db in
            try db.execute(sql: """
                INSERT INTO leads (id, created_at, updated_at) VALUES (1, 1, 1), (2, 1, 1);
                INSERT INTO event_types (id, name) VALUES (1, 'A');
                INSERT INTO events (id, lead_id, occurred_at, type_id, value, dedupe_key) VALUES
                    (5, 2, 10, 1, NULL, 42), (6, 1, 20, 1, 9.5, 43), (7, 1, 30, 1, NULL, 44), (8, 1, 40, 1, NULL, 45);
                INSERT INTO event_properties (event_id, message_id, properties) VALUES
                    (5, 'm-5', '{"plan":"pro"}'), (6, NULL, '{"plan":"pro"}'), (7, 'm-7', '{}'), (8, NULL, '{"x":1}');
                """)
        }
        let store = try LeadStore.open(path: path)
        try store.reader.read { (db: Database) throws in
            #expect(!(try db.tableExists("event_properties")))
            #expect(try String.fetchAll(db, sql: """
                SELECT id || ' ' || lead_id || ' ' || occurred_at || ' ' || coalesce(value, '-') || ' ' || dedupe_key
                FROM events ORDER BY id
                """) == ["5 2 10 - 42", "6 1 20 9.5 43", "7 1 30 - 44", "8 1 40 - 45"])
            #expect(try String.fetchAll(db, sql: "SELECT refs || ' ' || properties FROM event_property_sets ORDER BY id")
                    == [#"2 {"plan":"pro"}"#, #"1 {"x":1}"#], "shared text is one row; {} is none")
            #expect(try Int64.fetchOne(db, sql: "SELECT value FROM store_facts WHERE name = 'next_event_id'") == 9)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
        }
        // The migration relaxed secure_delete on the writer's connection only while it ran.
        let connectionDefault = try DatabaseQueue().read { try Int.fetchOne($0, sql: "PRAGMA secure_delete") }
        #expect(try store.writer.write { try Int.fetchOne($0, sql: "PRAGMA secure_delete") } == connectionDefault)
        let timeline = try store.reader.read { try LeadMutations.timeline(1, offset: 0, limit: 10, in: $0) }
        #expect(timeline.entries.map(\.properties) == [#"{"x":1}"#, nil, #"{"plan":"pro"}"#])
        #expect(try store.writer.write { try LeadMutations.delete(1, in: $0) })
        try store.reader.read { (db: Database) throws in
            #expect(try String.fetchAll(db, sql: "SELECT refs || ' ' || properties FROM event_property_sets") == [#"1 {"plan":"pro"}"#],
                    "a deleted lead's references are given back, and rows only it named go")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events") == 1)
        }
    }

    @Test("v20 gives each stored properties row the hash writers look it up by")
    func propertySetHashesMigration() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try leaveDatabase(at: path, upTo: "v19-merged-identities") { db in
            try db.execute(sql: #"INSERT INTO event_property_sets (refs, properties) VALUES (1, '{"plan":"pro"}'), (2, '{"x":1}')"#)
        }
        let store = try LeadStore.open(path: path)
        let rows = try store.reader.read { try Row.fetchAll($0, sql: "SELECT properties, hash FROM event_property_sets ORDER BY id") }
        #expect(rows.map { $0[1] as Int64? } == [PropertySetHash.of(#"{"plan":"pro"}"#), PropertySetHash.of(#"{"x":1}"#)])
    }

    @Test("v21 takes the owner \"Unassigned\", the list filter's name for none, from the leads a CRM export gave it")
    func unassignedOwnersMigration() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try leaveDatabase(at: path, upTo: "v20-property-set-hashes") { db in
            for owner in ["Unassigned", " UNASSIGNED ", "rep-7", "unassigned team"] {
                try db.execute(sql: "INSERT INTO leads (assigned_to, created_at, updated_at) VALUES (?, 1, 1)", arguments: [owner])
            }
        }
        let store = try LeadStore.open(path: path)
        let owners = try store.reader.read { try String?.fetchAll($0, sql: "SELECT assigned_to FROM leads ORDER BY id") }
        #expect(owners == [nil, nil, "rep-7", "unassigned team"])
    }

    @Test("v22 gives custom values written as amounts (\"$1,200.50\", \"€900\", \"1 500\") the number the value field reads")
    func customAmountsMigration() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let values = ["$1,200.50", "€900", "1 500", "n/a", "12,5", "ACME-7", "42"]
        try leaveDatabase(at: path, upTo: "v21-unassigned-owners") { db in
            try db.execute(sql: "INSERT INTO custom_fields (id, key, label) VALUES (1, 'budget', 'Budget')")
            for (i, value) in values.enumerated() {
                try db.execute(sql: "INSERT INTO leads (id, created_at, updated_at) VALUES (?, 1, 1)", arguments: [i + 1])
                // As v21 stored them: a number only where NumberText.parse read one.
                try db.execute(sql: "INSERT INTO lead_custom_values (lead_id, field_id, value, number) VALUES (?, 1, ?, ?)",
                               arguments: [i + 1, value, NumberText.parse(value)])
            }
        }
        let store = try LeadStore.open(path: path)
        let numbers = try store.reader.read { try Double?.fetchAll($0, sql: "SELECT number FROM lead_custom_values ORDER BY lead_id") }
        #expect(numbers == [1200.5, 900, 1500, nil, nil, nil, 42])
    }

    @Test("the background checkpointer copies committed WAL frames into the database file while the writer goes on")
    func backgroundCheckpointerCopiesTheWAL() throws {
        #expect(BackgroundCheckpointer(store: try LeadStore.inMemory()) == nil)
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try LeadStore.open(path: path)
        let fileSize = { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        try store.writer.write { db in
            for i in 0..<2000 {
                try db.execute(sql: "INSERT INTO leads (notes, created_at, updated_at) VALUES (?, 1, 1)",
                               arguments: [String(repeating: "x", count: 1000) + "\(i)"])
            }
        }
        // The writer's own auto-checkpoint waits for 128 MiB of WAL: the rows are only there.
        let before = fileSize()
        #expect(before < 1 << 20)
        let checkpointer = try #require(BackgroundCheckpointer(store: store, interval: .milliseconds(10)))
        let deadline = Date().addingTimeInterval(10)
        while fileSize() < before + 2_000_000 && Date() < deadline { usleep(10_000) }
        checkpointer.stop()
        checkpointer.stop()  // a second stop returns at once
        #expect(fileSize() >= before + 2_000_000, "the WAL was not copied")
        #expect(try store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") } == 2000)
    }

    @Test("stats: each of thousands of sources keeps its own row, and a lead before 1970 counts on its own day")
    func statsManySourcesAndEarlyDays() throws {
        let store = try LeadStore.inMemory()
        let day: Int64 = 86_400_000
        try store.writer.write { db in
            for i in 0..<5000 {
                try db.execute(sql: "INSERT INTO leads (source, created_at, updated_at) VALUES (?, ?, ?)", arguments: ["s\(i)", day + 1, 1])
            }
            try db.execute(sql: "INSERT INTO leads (source, created_at, updated_at) VALUES ('(other)', ?, 1)", arguments: [-day / 2])
        }
        let now = Date(timeIntervalSince1970: 1.5 * 86_400)  // 1970-01-02T12:00Z
        let stats = try store.reader.read { try LeadStats.compute(LeadFilter(), now: now, days: 3, in: $0) }
        #expect(stats.bySource.count == 5001 && stats.bySource.allSatisfy { $0.count == 1 })
        #expect(stats.bySource.contains { $0.source == "(other)" } && stats.bySource.contains { $0.source == "s4999" })
        #expect(stats.daily.map(\.date) == ["1969-12-31", "1970-01-01", "1970-01-02"])
        #expect(stats.daily.map(\.new) == [1, 0, 5000])
    }

    @Test func scoreIsConstrainedTo0Through100() throws {
        let store = try LeadStore.inMemory()
        #expect(throws: DatabaseError.self) {
            try store.writer.write { db in
                try db.execute(sql: "INSERT INTO leads (score, created_at, updated_at) VALUES (101, 1, 1)")
            }
        }
    }
}

@Suite("Activity aggregate")
struct ActivityTests {
    @Test func addMergeAndBlobRoundTrip() {
        var a = LeadActivity()
        a.add(typeID: 2, at: 500)
        a.add(typeID: 2, at: 100)
        var b = LeadActivity()
        b.add(typeID: 4, at: 900)
        a.merge(b)
        #expect(a.eventCount == 3 && a.firstAt == 100 && a.lastAt == 900)
        #expect(a.counts == [0, 2, 0, 1])
        #expect(a.lastAtByType == [0, 500, 0, 900])
        #expect(Float64Blob.decode(Data(Float64Blob.bytes(a.counts))) == a.counts)
    }

    @Test("a blob written before a new event type existed reads 0 for it")
    func shorterBlobsReadAsZero() {
        let short = Float64Blob.bytes([1, 2])
        short.withUnsafeBytes { bytes in
            #expect(Float64Blob.element(bytes, 0) == 1 && Float64Blob.element(bytes, 1) == 2)
            #expect(Float64Blob.element(bytes, 2) == 0 && Float64Blob.element(bytes, 7) == 0)
        }
    }
}

@Suite("Event dedupe")
struct EventDedupeTests {
    /// Two leads each given `keys` as events of type 1 at times 10, 20, …
    private func twoLeads(_ first: [Int64], _ second: [Int64]) throws -> LeadStore {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            try db.execute(sql: "INSERT INTO event_types (id, name) VALUES (1, 'Viewed'), (2, 'Clicked')")
            for (lead, keys) in [(1, first), (2, second)] {
                try db.execute(sql: "INSERT INTO leads (id, email, created_at, updated_at) VALUES (?, ?, 0, 0)",
                               arguments: [lead, "p\(lead)@x.io"])
                for (index, key) in keys.enumerated() {
                    try db.execute(sql: """
                        INSERT OR IGNORE INTO events (id, lead_id, occurred_at, type_id, dedupe_key) VALUES (?, ?, ?, ?, ?)
                        """, arguments: [100 * lead + index, lead, 10 * (index + 1) * lead, 1 + index % 2, key])
                }
            }
            for (lead, activity) in try LeadActivity.recompute(db) {
                try db.execute(sql: """
                    INSERT INTO lead_activity (lead_id, event_count, first_at, last_at, type_counts, type_last_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [lead, activity.eventCount, activity.firstAt, activity.lastAt,
                                     Data(Float64Blob.bytes(activity.counts)), Data(Float64Blob.bytes(activity.lastAtByType))])
            }
        }
        return store
    }

    @Test("a dedupe key is unique within its lead, not across leads")
    func uniquePerLead() throws {
        let store = try twoLeads([7, 7, 8], [7])
        try store.reader.read { (db: Database) throws in
            #expect(try Int.fetchAll(db, sql: "SELECT lead_id FROM events ORDER BY lead_id, dedupe_key") == [1, 1, 2])
        }
    }

    @Test("a merge keeps an event both leads received once, and the aggregate equals a recomputation")
    func mergeDropsSharedEvents() throws {
        for (first, second, kept) in [([1, 2, 3], [3, 4] as [Int64], 4), ([1, 2], [5, 6], 4), ([], [9], 1)] as [([Int64], [Int64], Int)] {
            let store = try twoLeads(first, second)
            try store.writer.write { db in try LeadMutations.merge(primary: 1, duplicate: 2, in: db) }
            try store.reader.read { (db: Database) throws in
                #expect(try Int64.fetchAll(db, sql: "SELECT dedupe_key FROM events WHERE lead_id = 1 ORDER BY dedupe_key")
                        == Array(Set(first + second)).sorted())
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events") == kept)
                #expect(try LeadActivity.fetchAll(db).mapValues(\.normalized) == LeadActivity.recompute(db).mapValues(\.normalized))
            }
        }
    }
}

@Suite("Merging leads")
struct MergeTests {
    /// A person with two addresses: the kept lead matches on its own, the other stays readable,
    /// and merging a third lead with the same other address adds it once.
    @Test("a merge keeps the duplicate's other email and phone as custom fields")
    func otherEmailAndPhoneAreKept() throws {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            for (email, phone) in [("main@x.io", "555 0100"), ("other@x.io", "555 0199"), ("other@x.io", "(555) 0100"), ("third@x.io", nil)] as [(String, String?)] {
                try db.execute(sql: "INSERT INTO leads (email, phone, created_at, updated_at) VALUES (?, ?, 0, 0)", arguments: [email, phone])
            }
            // Both leads already carry other addresses from earlier merges.
            try LeadMutations.setCustomField(1, label: "Other email", value: "x@a.io", in: db)
            try LeadMutations.setCustomField(2, label: "Other email", value: "y@a.io; main@x.io", in: db)
            for duplicate in [2, 3, 4] as [Int64] { try LeadMutations.merge(primary: 1, duplicate: duplicate, in: db) }
            #expect(try Row.fetchOne(db, sql: "SELECT email, phone FROM leads WHERE id = 1").map { [$0[0] as String, $0[1] as String] }
                    == ["main@x.io", "555 0100"])
            let custom = try Row.fetchAll(db, sql: """
                SELECT f.label, v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id WHERE v.lead_id = 1 ORDER BY f.label
                """).map { "\($0[0] as String)=\($0[1] as String)" }
            #expect(custom == ["Other email=other@x.io; third@x.io; x@a.io; y@a.io", "Other phone=555 0199"])
            // Phone text without digits is compared as written: two such texts are two entries.
            try db.execute(sql: "INSERT INTO leads (phone, created_at, updated_at) VALUES ('ask reception', 0, 0), ('n/a', 0, 0)")
            let reception = db.lastInsertedRowID - 1
            try LeadMutations.merge(primary: reception, duplicate: reception + 1, in: db)
            #expect(try LeadMutations.customValue(reception, label: "Other phone", in: db) == "n/a")
            // A later lead with one of those addresses and the merged lead list each other.
            try db.execute(sql: "INSERT INTO leads (email, created_at, updated_at) VALUES ('third@x.io', 0, 0), ('fourth@x.io', 0, 0)")
            let later = db.lastInsertedRowID - 1
            #expect(try LeadMutations.duplicates(of: later, in: db).map(\.id) == [1])
            #expect(try LeadMutations.duplicates(of: 1, in: db).map(\.id) == [later])
        }
    }
}

extension MergeTests {
    @Test("a same-device pair follows a merge of one of them into a third lead")
    func sameDevicePairFollowsAMerge() throws {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            for email in ["a@x.io", "b@x.io", "c@x.io"] {
                try db.execute(sql: "INSERT INTO leads (email, created_at, updated_at) VALUES (?, 0, 0)", arguments: [email])
            }
            try LeadMutations.recordSameDevice(1, 2, at: 0, in: db)
            #expect(try LeadMutations.duplicates(of: 1, in: db).map(\.id) == [2])
            try LeadMutations.merge(primary: 3, duplicate: 2, in: db)
            #expect(try LeadMutations.duplicates(of: 1, in: db).map(\.id) == [3])
            #expect(try LeadMutations.duplicates(of: 3, in: db).map(\.id) == [1])
        }
    }
}

@Suite("Lead lookup")
struct LeadLookupTests {
    @Test("external id first, then LeadLens id; #N always the id; emails case-insensitive")
    func lookupOrder() throws {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            for (external, email) in [("X0", "a@x.io"), ("1", "b@x.io"), ("L2", nil)] as [(String, String?)] {
                try db.execute(sql: "INSERT INTO leads (external_id, email, created_at, updated_at) VALUES (?, ?, 0, 0)",
                               arguments: [external, email])
            }
        }
        try store.reader.read { (db: Database) throws in
            #expect(try LeadLookup.find("1", in: db) == 2)     // external id "1", not lead 1
            #expect(try LeadLookup.find("#1", in: db) == 1)
            #expect(try LeadLookup.find("3", in: db) == 3)     // no such external id: the id
            #expect(try LeadLookup.find(" B@X.io ", in: db) == 2)
            #expect(try LeadLookup.find("L2", in: db) == 3)
            #expect(try LeadLookup.find("nobody", in: db) == nil)
            #expect(try LeadLookup.find("#99", in: db) == nil)
        }
    }
}

@Suite("Lead cursors")
struct LeadCursorTests {
    @Test("tokens round-trip; a score cursor carries the creation time its ties are ordered by")
    func roundTrip() throws {
        let cursors = [
            LeadCursor(sort: LeadSort(key: .score, descending: true), value: .integer(87), createdAt: 1_790_000_000_123, id: 42),
            LeadCursor(sort: LeadSort(key: .score, descending: false), value: .null, createdAt: -5, id: 7),
            LeadCursor(sort: LeadSort(key: .lastName, descending: false), value: .text("O'Brien ü"), id: 9),
            LeadCursor(sort: LeadSort(key: .createdAt, descending: true), value: .integer(1_790_000_000_000), id: 1),
        ]
        for cursor in cursors {
            #expect(LeadCursor(token: cursor.token) == cursor)
            #expect(!cursor.token.contains("+") && !cursor.token.contains("/") && !cursor.token.contains("="))
        }
    }

    @Test("a score cursor without a creation time (issued before v8) resumes from its lead, or expires with it")
    func legacyScoreCursor() throws {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            // Equal scores with creation times against id order, so the tie order matters.
            for (i, createdAt) in [50, 10, 40, 20, 30, 60].enumerated() {
                try db.execute(sql: "INSERT INTO leads (external_id, score, created_at, updated_at) VALUES (?, ?, ?, 0)",
                               arguments: ["L\(i)", i == 5 ? 90 : 70, createdAt])
            }
        }
        let sort = LeadSort(key: .score, descending: true)
        let (first, _) = try store.reader.read { db in try LeadQuery.page(LeadFilter(), sort: sort, after: nil, limit: 3, in: db) }
        let last = try #require(first.last)
        let full = LeadCursor(after: last, sort: sort)
        let legacy = try #require(LeadCursor(token: LeadCursor(sort: sort, value: full.value, id: full.id).token))
        #expect(legacy.createdAt == nil && full.createdAt != nil)
        let (viaFull, viaLegacy) = try store.reader.read { db in
            (try LeadQuery.page(LeadFilter(), sort: sort, after: full, limit: 10, in: db).leads.map(\.id),
             try LeadQuery.page(LeadFilter(), sort: sort, after: legacy, limit: 10, in: db).leads.map(\.id))
        }
        #expect(first.map(\.id) + viaFull == [6, 1, 3, 5, 4, 2], "score desc, then newest first")
        #expect(viaLegacy == viaFull)
        try store.writer.write { db in try db.execute(sql: "DELETE FROM leads WHERE id = ?", arguments: [last.id]) }
        #expect(throws: LeadQuery.CursorExpired.self) {
            try store.reader.read { db in try LeadQuery.page(LeadFilter(), sort: sort, after: legacy, limit: 10, in: db) }
        }
        let byName = LeadCursor(sort: LeadSort(key: .email, descending: true), value: .text("a@x.io"), createdAt: 5, id: 3)
        let decoded = try #require(LeadCursor(token: byName.token))
        #expect(decoded.createdAt == nil, "only score cursors carry a creation time")
    }

    @Test("a tampered token is refused, not read as a cursor with no value")
    func tamperedTokens() throws {
        func token(_ object: [String: Any]) throws -> String {
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let good: [String: Any] = ["k": "score", "d": 1, "i": 152, "n": 99, "c": 1_790_000_000_000]
        #expect(LeadCursor(token: try token(good))?.value == .integer(99))
        let tampered: [[String: Any]] = [
            good.merging(["n": "abc"]) { $1 }, good.merging(["n": NSNull()]) { $1 }, good.merging(["n": 1.5]) { $1 },
            good.merging(["i": -1]) { $1 }, good.merging(["i": 1e30]) { $1 }, good.merging(["i": "152"]) { $1 },
            good.merging(["d": 2]) { $1 }, good.merging(["c": "x"]) { $1 }, good.merging(["n": true]) { $1 },
            good.merging(["s": "text"]) { $1 },  // a text value on a numeric sort, beside its number
            ["k": "last_name", "d": 0, "i": 3, "s": 7],
        ]
        for object in tampered {
            #expect(LeadCursor(token: try token(object)) == nil, "\(object)")
        }
    }
}

@Suite("Lead updates keep an identity")
struct IdentityKeepingTests {
    private func lead(_ columns: [String: String?], in db: Database) throws -> Int64 {
        try db.execute(sql: "INSERT INTO leads (status, created_at, updated_at) VALUES ('new', 0, 0)")
        let id = db.lastInsertedRowID
        for (column, value) in columns {
            if column == "anonymous_id" {
                try db.execute(sql: "INSERT INTO lead_anonymous_ids (anonymous_id, lead_id) VALUES (?, ?)", arguments: [value, id])
            } else {
                try db.execute(sql: "UPDATE leads SET \(column) = ? WHERE id = ?", arguments: [value, id])
            }
        }
        return id
    }

    private func clearing(_ fields: [LeadField]) -> LeadMutations.Changes {
        var changes = LeadMutations.Changes()
        for field in fields { changes.columns[field] = .some(nil) }
        return changes
    }

    @Test("clearing the last external id, email or phone is refused; an anonymous id or another identity keeps the lead")
    func lastIdentityCannotBeCleared() throws {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            let emailOnly = try lead(["email": "a@x.io"], in: db)
            #expect(throws: LeadMutations.Failure.noIdentity(fields: ["email"])) { try LeadMutations.update(emailOnly, clearing([.email]), in: db) }
            // A placeholder phone matches nobody: it is no identity to keep.
            let placeholder = try lead(["email": "b@x.io", "phone": "000-000-0000"], in: db)
            #expect(throws: LeadMutations.Failure.noIdentity(fields: ["email"])) { try LeadMutations.update(placeholder, clearing([.email]), in: db) }
            let withPhone = try lead(["email": "c@x.io", "phone": "+1 555 0100"], in: db)
            #expect(try LeadMutations.update(withPhone, clearing([.email]), in: db))
            let anonymous = try lead(["anonymous_id": "anon-1", "email": "d@x.io"], in: db)
            #expect(try LeadMutations.update(anonymous, clearing([.email]), in: db))
            // Clearing what a lead made from an anonymous id never had is no loss either.
            let anonymousOnly = try lead(["anonymous_id": "anon-2"], in: db)
            #expect(try LeadMutations.update(anonymousOnly, clearing([.email]), in: db))
        }
    }
}
