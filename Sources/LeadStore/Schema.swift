import Foundation
import GRDB

/// The store's migrations. They only ever append: a shipped migration is never edited, so a
/// database written by any earlier version upgrades in place at start-up.
public enum Schema {
    public static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-leads", migrate: createLeads)
        migrator.registerMigration("v2-events", migrate: createEvents)
        migrator.registerMigration("v3-scoring", migrate: createScoring)
        migrator.registerMigration("v4-api", migrate: createAPI)
        migrator.registerMigration("v5-covering-created-at", migrate: coverCreatedAt)
        migrator.registerMigration("v6-dedupe-per-lead", migrate: dedupePerLead)
        migrator.registerMigration("v7-deferred-indexes", migrate: createDeferredIndexes)
        migrator.registerMigration("v8-one-score-index", migrate: oneScoreIndex)
        migrator.registerMigration("v9-lead-ids-never-reused", migrate: neverReuseLeadIDs)
        migrator.registerMigration("v10-traits-time", migrate: traitsTime)
        // Immediate foreign-key checks: GRDB's default defers them to one pass over the whole
        // store after the migration, 5 s of the 6.6 s each of these took on 1M leads / 10M events.
        migrator.registerMigration("v11-anonymous-ids", foreignKeyChecks: .immediate, migrate: anonymousIDs)
        migrator.registerMigration("v12-unaddressable-emails", foreignKeyChecks: .immediate, migrate: moveUnaddressableEmails)
        migrator.registerMigration("v13-source-spellings", foreignKeyChecks: .immediate, migrate: SourceSpellings.migrate)
        migrator.registerMigration("v14-store-facts", foreignKeyChecks: .immediate, migrate: storeFacts)
        // "v15-other-emails" is taken: a commit that was reverted (7ae71a8) shipped it to no one,
        // but a store a development build opened may hold it.
        migrator.registerMigration("v16-events-by-lead", foreignKeyChecks: .immediate, migrate: eventsByLead)
        migrator.registerMigration("v17-composed-emails", foreignKeyChecks: .immediate, migrate: composeEmails)
        migrator.registerMigration("v18-job-owners", foreignKeyChecks: .immediate, migrate: jobOwners)
        migrator.registerMigration("v19-merged-identities", foreignKeyChecks: .immediate, migrate: mergedIdentities)
        migrator.registerMigration("v20-property-set-hashes", foreignKeyChecks: .immediate, migrate: propertySetHashes)
        migrator.registerMigration("v21-unassigned-owners", foreignKeyChecks: .immediate, migrate: unassignedOwners)
        migrator.registerMigration("v22-custom-amounts", foreignKeyChecks: .immediate, migrate: customAmounts)
        return migrator
    }

    /// Identifiers of every migration, oldest first.
    public static var migrationIdentifiers: [String] { migrator.migrations }

    // Timestamps are INTEGER unix milliseconds throughout: range filters and ordering compare
    // integers, and nothing is parsed on read.
    static func createLeads(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE leads (
                id               INTEGER PRIMARY KEY,
                external_id      TEXT,
                email            TEXT,     -- trimmed, lowercased: the form identity matching uses
                phone            TEXT,     -- as given
                phone_digits     TEXT,     -- digits only, for matching
                anonymous_id     TEXT,
                first_name       TEXT,
                last_name        TEXT,
                company          TEXT,
                source           TEXT,
                status           TEXT NOT NULL DEFAULT 'new',
                assigned_to      TEXT,
                notes            TEXT,
                value            REAL,
                created_at       INTEGER NOT NULL,
                updated_at       INTEGER NOT NULL,
                last_activity_at INTEGER,
                score            INTEGER CHECK (score BETWEEN 0 AND 100),
                probability      REAL,
                model_version    TEXT,
                scored_at        INTEGER
            );
            CREATE UNIQUE INDEX leads_external_id ON leads(external_id) WHERE external_id IS NOT NULL;
            CREATE INDEX leads_email ON leads(email) WHERE email IS NOT NULL;
            CREATE INDEX leads_phone_digits ON leads(phone_digits) WHERE phone_digits IS NOT NULL;
            CREATE INDEX leads_anonymous_id ON leads(anonymous_id) WHERE anonymous_id IS NOT NULL;
            CREATE INDEX leads_status ON leads(status, created_at);
            CREATE INDEX leads_source ON leads(source, created_at);
            CREATE INDEX leads_created_at ON leads(created_at);
            -- "Leads scoring 80–100, newest first" walks this index in order.
            CREATE INDEX leads_score ON leads(score, created_at);

            -- Custom fields: every key that is not a known field. The label keeps the header as
            -- first seen; the key is its normalized form.
            CREATE TABLE custom_fields (
                id    INTEGER PRIMARY KEY,
                key   TEXT NOT NULL UNIQUE,
                label TEXT NOT NULL
            );
            -- number holds the value parsed once at ingest when it is numeric, so scoring reads a
            -- REAL and never parses text; value keeps the text as given ("02134" stays a string).
            CREATE TABLE lead_custom_values (
                lead_id  INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
                field_id INTEGER NOT NULL REFERENCES custom_fields(id),
                value    TEXT NOT NULL,
                number   REAL,
                PRIMARY KEY (lead_id, field_id)
            ) WITHOUT ROWID;
            CREATE INDEX lead_custom_values_field ON lead_custom_values(field_id);

            CREATE TABLE lead_tags (
                lead_id INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
                tag     TEXT NOT NULL COLLATE NOCASE,
                PRIMARY KEY (lead_id, tag)
            ) WITHOUT ROWID;
            CREATE INDEX lead_tags_tag ON lead_tags(tag);
            """)
    }

    static func createEvents(_ db: Database) throws {
        try db.execute(sql: """
            -- Event names are dictionary-encoded: the hot table stores a small integer.
            CREATE TABLE event_types (
                id   INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE
            );
            -- The hot table holds narrow typed columns only. Rows append in arrival order (the rowid
            -- only grows), so inserting never rewrites pages in the middle of the table whatever
            -- order the input comes in. The dedupe key (63 bits of SHA-256 of the messageId, or of
            -- the message content when there is none) is checked by its unique index:
            -- INSERT OR IGNORE skips a duplicate in the same statement that would insert it.
            CREATE TABLE events (
                id          INTEGER PRIMARY KEY,
                lead_id     INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
                occurred_at INTEGER NOT NULL,
                type_id     INTEGER NOT NULL REFERENCES event_types(id),
                value       REAL,
                dedupe_key  INTEGER NOT NULL
            );
            CREATE UNIQUE INDEX events_dedupe_key ON events(dedupe_key);
            CREATE INDEX events_lead_time ON events(lead_id, occurred_at);
            -- Free-form properties stay out of the hot table, as the raw JSON received, keyed by
            -- the event's rowid so they too only ever append.
            CREATE TABLE event_properties (
                event_id   INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
                message_id TEXT,
                properties TEXT NOT NULL
            );
            -- Per-lead activity aggregate, maintained in the same transaction as the events it
            -- counts. type_counts and type_last_at are little-endian Float64 arrays indexed by
            -- event_types.id - 1, so a scoring pass copies them straight into a feature matrix.
            CREATE TABLE lead_activity (
                lead_id      INTEGER PRIMARY KEY REFERENCES leads(id) ON DELETE CASCADE,
                event_count  INTEGER NOT NULL,
                first_at     INTEGER NOT NULL,
                last_at      INTEGER NOT NULL,
                type_counts  BLOB NOT NULL,
                type_last_at BLOB NOT NULL
            );
            """)
    }

    static func createScoring(_ db: Database) throws {
        try db.execute(sql: """
            -- Every trained model that was registered with the store, its full JSON body included,
            -- so the server and incremental scoring load the active model from the store alone.
            -- At most one is active.
            CREATE TABLE models (
                version      TEXT PRIMARY KEY,      -- "<name>-v<N>"
                name         TEXT NOT NULL,
                created_at   INTEGER NOT NULL,
                holdout_auc  REAL,
                body         TEXT NOT NULL,
                is_active    INTEGER NOT NULL DEFAULT 0,
                activated_at INTEGER
            );
            CREATE UNIQUE INDEX models_active ON models(is_active) WHERE is_active = 1;

            -- A lead's history that is not an ingested event: score changes, status changes,
            -- merges. The API merges it with the events into one timeline.
            CREATE TABLE lead_timeline (
                id        INTEGER PRIMARY KEY,
                lead_id   INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
                at        INTEGER NOT NULL,
                kind      TEXT NOT NULL,         -- score_changed | status_changed | merged
                old_value TEXT,
                new_value TEXT,
                detail    TEXT                   -- JSON: the model version of a score change, ...
            );
            CREATE INDEX lead_timeline_lead ON lead_timeline(lead_id, at);
            """)
    }

    static func createAPI(_ db: Database) throws {
        try db.execute(sql: """
            -- API keys are stored only as the SHA-256 of the key; the prefix is the key's first
            -- characters, kept so `keys list` can tell keys apart without revealing them.
            CREATE TABLE api_keys (
                id             INTEGER PRIMARY KEY,
                name           TEXT NOT NULL,
                prefix         TEXT NOT NULL,
                key_hash       BLOB NOT NULL UNIQUE,
                scopes         TEXT NOT NULL,         -- comma-separated: read,write,admin
                rate_limit     INTEGER,               -- requests per window; NULL: unlimited
                rate_window    INTEGER NOT NULL,      -- seconds
                created_at     INTEGER NOT NULL,
                revoked_at     INTEGER
            );

            -- Background jobs (training, rescoring, reports) started through the API.
            CREATE TABLE jobs (
                id          INTEGER PRIMARY KEY,
                kind        TEXT NOT NULL,
                state       TEXT NOT NULL,            -- queued | running | succeeded | failed
                progress    REAL NOT NULL DEFAULT 0,
                created_at  INTEGER NOT NULL,
                started_at  INTEGER,
                finished_at INTEGER,
                parameters  TEXT,
                result      TEXT,
                error       TEXT
            );

            -- Sorting: each sortable column gets an index whose implicit last column is the rowid,
            -- so "ORDER BY col, id" walks it in order and keyset pages seek straight to
            -- their cursor. The score index loses its created_at column for the same reason.
            DROP INDEX leads_score;
            CREATE INDEX leads_score ON leads(score);
            CREATE INDEX leads_updated_at ON leads(updated_at);
            CREATE INDEX leads_last_activity_at ON leads(last_activity_at);
            CREATE INDEX leads_last_name ON leads(last_name);
            DROP INDEX leads_email;
            CREATE INDEX leads_email ON leads(email);
            CREATE INDEX leads_assigned_to ON leads(assigned_to);
            """)
    }

    /// Lists sorted by creation time with score bounds. A page sorted by created_at with other
    /// filters tests the score inside the created_at index (no table row read until one
    /// matches); "leads scoring 80–100, newest first" merges one (score, created_at) stream per
    /// score value (see LeadQuery). Without these SQLite sorted every lead in the score range
    /// (2 s on a million leads, measured).
    static func coverCreatedAt(_ db: Database) throws {
        try db.execute(sql: """
            DROP INDEX leads_created_at;
            CREATE INDEX leads_created_at ON leads(created_at, score);
            CREATE INDEX leads_score_created ON leads(score, created_at);
            """)
    }

    /// Event dedupe keys are unique per lead rather than store-wide. A store-wide index on a
    /// hash puts every insert on a random page of a B-tree holding every event ever received: a
    /// batch of 500 events rewrote about 500 of its pages into the WAL, which made POST /events
    /// I/O-bound even for a handful of active leads (5.6K events/s measured; 16K/s after). Keyed
    /// by lead first, a lead's keys sit together, next to the pages its new events touch anyway.
    /// A re-sent message resolves to the lead it resolved to before, so it is still skipped; the
    /// exception is a message whose identity keys have since moved to another lead, which that
    /// lead now receives as new. Merging two leads drops the events both received (see merge).
    static func dedupePerLead(_ db: Database) throws {
        try db.execute(sql: """
            DROP INDEX events_dedupe_key;
            CREATE UNIQUE INDEX events_lead_dedupe ON events(lead_id, dedupe_key);
            """)
    }

    /// Score orders break ties by created_at, so `(score, created_at)` serves them as well as
    /// the score bounds, and `(score)` goes. Every changed score moved an entry in both: on
    /// POST /events for random leads they were a quarter of the pages written to the WAL,
    /// `(score)` alone 13% (measured from the WAL's frames). A bulk load killed before v8 may
    /// have left it deferred, hence IF EXISTS and its row removed.
    static func oneScoreIndex(_ db: Database) throws {
        try db.execute(sql: """
            DROP INDEX IF EXISTS leads_score;
            DELETE FROM deferred_indexes WHERE name = 'leads_score';
            """)
    }

    /// Lead ids are never handed out twice. SQLite gives a new row the largest rowid plus one,
    /// so deleting or merging away the newest lead let the next one take its id, and a client
    /// still holding it (a CRM link, a sales rep's bookmark) then read or changed another lead.
    /// AUTOINCREMENT needs a new table: the rows are copied with their ids, and the table's
    /// indexes are built again as they stood (one a killed bulk load deferred stays deferred).
    /// SQLite kept no record of ids freed before the upgrade, so one above the largest left may
    /// still be given out once; from then on no id is reused.
    static func neverReuseLeadIDs(_ db: Database) throws {
        let indexes = try String.fetchAll(db, sql: """
            SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads' AND sql IS NOT NULL ORDER BY name
            """)
        let columns = """
            id, external_id, email, phone, phone_digits, anonymous_id, first_name, last_name, company, source,
            status, assigned_to, notes, value, created_at, updated_at, last_activity_at, score, probability,
            model_version, scored_at
            """
        try db.execute(sql: """
            CREATE TABLE leads_v9 (
                id               INTEGER PRIMARY KEY AUTOINCREMENT,
                external_id      TEXT,
                email            TEXT,
                phone            TEXT,
                phone_digits     TEXT,
                anonymous_id     TEXT,
                first_name       TEXT,
                last_name        TEXT,
                company          TEXT,
                source           TEXT,
                status           TEXT NOT NULL DEFAULT 'new',
                assigned_to      TEXT,
                notes            TEXT,
                value            REAL,
                created_at       INTEGER NOT NULL,
                updated_at       INTEGER NOT NULL,
                last_activity_at INTEGER,
                score            INTEGER CHECK (score BETWEEN 0 AND 100),
                probability      REAL,
                model_version    TEXT,
                scored_at        INTEGER
            );
            INSERT INTO leads_v9 (\(columns)) SELECT \(columns) FROM leads ORDER BY id;
            DROP TABLE leads;
            ALTER TABLE leads_v9 RENAME TO leads;
            """)
        for sql in indexes { try db.execute(sql: sql) }
    }

    /// When the newest identify (group, alias) applied to a lead was sent. Pipelines replay and
    /// backfill out of order: a message no newer than it only fills blanks, so replaying last month's
    /// identify no longer puts back the title a newer one replaced. NULL: no dated message yet
    /// (a CSV row or a form carries no time of its own). Adding a column rewrites no row.
    static func traitsTime(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE leads ADD COLUMN traits_at INTEGER")
    }

    /// A person browses from several devices, each with its own Segment anonymousId, so a lead
    /// holds any number of them: a column kept the first, and the visitor lead of a second
    /// device was never linked to its user. Each anonymous id belongs to one lead. Where two
    /// leads held the same one, the lead with an external id keeps it, then the older lead.
    /// Dropping the column rewrites the leads table once.
    static func anonymousIDs(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE lead_anonymous_ids (
                anonymous_id TEXT NOT NULL PRIMARY KEY,
                lead_id      INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE
            ) WITHOUT ROWID;
            CREATE INDEX lead_anonymous_ids_lead ON lead_anonymous_ids(lead_id);
            INSERT OR IGNORE INTO lead_anonymous_ids (anonymous_id, lead_id)
                SELECT anonymous_id, id FROM leads WHERE anonymous_id IS NOT NULL
                ORDER BY external_id IS NULL, id;
            DROP INDEX leads_anonymous_id;
            ALTER TABLE leads DROP COLUMN anonymous_id;
            """)
    }

    /// Emails that are not addresses (``EmailAddress/isPlausible(_:)``) identify no one since
    /// this version: ingest keeps such a value as a custom field under its header. Those stored
    /// before move the same way, under "Email", so `n/a` leads stop listing each other as
    /// duplicates and look as new ones do. A lead with no other identity (external id, phone,
    /// anonymous id) keeps its value: it is the only handle it has.
    static func moveUnaddressableEmails(_ db: Database) throws {
        // SQLite narrows a million emails to the few of another shape (a superset of the ones
        // isPlausible refuses, but for Unicode spaces), which Swift then checks one by one:
        // reading them all into Swift took 7.8 s on the benchmark store.
        var unaddressable: [(id: Int64, email: String)] = []
        let emails = try Row.fetchCursor(db, sql: """
            SELECT id, email FROM leads
            WHERE email IS NOT NULL AND (email NOT GLOB '?*@?*.?*' OR email GLOB '*@*@*' OR email GLOB '*..*'
                                         OR email GLOB '*.' OR email GLOB '*@.*' OR email GLOB ?)
            """, arguments: ["*[][<>(),;:\" \\\t\n\r\u{0B}\u{0C}]*"])
        while let row = try emails.next() {
            let email: String = row[1]
            if !EmailAddress.isPlausible(email) { unaddressable.append((row[0], email)) }
        }
        for lead in unaddressable {
            // `<a@x.io>` and `mailto:a@x.io` were stored as given: they keep the address inside,
            // which is what ingest now matches them by.
            if let inside = EmailAddress.normalized(lead.email) {
                try db.execute(sql: "UPDATE leads SET email = ? WHERE id = ?", arguments: [inside, lead.id])
                continue
            }
            guard let row = try Row.fetchOne(db, sql: """
                SELECT external_id, phone_digits, EXISTS (SELECT 1 FROM lead_anonymous_ids WHERE lead_id = leads.id)
                FROM leads WHERE id = ?
                """, arguments: [lead.id]) else { continue }
            let phoneDigits: String? = row[1]
            let hasOtherIdentity = row[0] as String? != nil || row[2] as Bool
                || phoneDigits.flatMap(LeadMutations.identityPhoneDigits) != nil
            guard hasOtherIdentity else { continue }
            // A value the lead already keeps under Email gains this one beside it.
            let held = try LeadMutations.customValue(lead.id, label: "Email", in: db)
            try LeadMutations.setCustomField(lead.id, label: "Email", value: held.map { "\($0); \(lead.email)" } ?? lead.email, in: db)
            try db.execute(sql: "UPDATE leads SET email = NULL WHERE id = ?", arguments: [lead.id])
        }
    }

    /// The server running a job: its pid, and a token of its own, since a restarted server can
    /// have the same pid (a container's PID 1). A job runs on its server's thread pool; when that
    /// server stops or dies, the job's row would otherwise say "running" forever. Jobs recorded
    /// before this have no owner, and GET /jobs/{id} takes them for a stopped server's.
    static func jobOwners(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE jobs ADD COLUMN owner_pid INTEGER;
            ALTER TABLE jobs ADD COLUMN owner_token TEXT;
            """)
    }

    /// The external ids, emails and phone digits of leads merged away, kept for the lead they
    /// merged into (see ``LeadMutations/merge(primary:duplicate:now:newerTraitsWin:in:)``): the
    /// duplicate's data sent again then finds that lead instead of making the duplicate anew.
    /// `kind` is the leads column the value matched in. Merges before this version kept none.
    static func mergedIdentities(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE lead_merged_identities (
                kind    TEXT NOT NULL,
                value   TEXT NOT NULL,
                lead_id INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
                PRIMARY KEY (kind, value)
            ) WITHOUT ROWID;
            CREATE INDEX lead_merged_identities_lead ON lead_merged_identities(lead_id);
            """)
    }

    /// Each `event_property_sets` row gets the hash of its properties, indexed, so a writer whose
    /// cache misses (another process, a dropped cache) finds the row by content rather than
    /// storing the same object again. A hash, not an index on the text: the text index would
    /// hold every object a second time, and unique-properties workloads would write it all twice.
    /// Rows stored twice before this version stay (their events name both); writers reuse one.
    static func propertySetHashes(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE event_property_sets ADD COLUMN hash INTEGER")
        // In pages, not one cursor: SQLite leaves undefined what a scan sees of rows changed under it.
        let update = try db.makeStatement(sql: "UPDATE event_property_sets SET hash = ? WHERE id = ?")
        var after: Int64 = 0
        while true {
            let page = try Row.fetchAll(db, sql: "SELECT id, properties FROM event_property_sets WHERE id > ? ORDER BY id LIMIT 10000",
                                        arguments: [after])
            guard let last = page.last else { break }
            for row in page { try update.execute(arguments: [PropertySetHash.of(row[1] as String), row[0] as Int64]) }
            after = last[0]
        }
        try db.execute(sql: "CREATE INDEX event_property_sets_hash ON event_property_sets(hash)")
    }

    /// Custom values read as numbers the way the value field is since v22
    /// (`NumberText.parseAmount`): "$1,200.50", "€900" and "1 500" were stored with no number, so
    /// a model reading the field as numeric saw them as missing. Only values with a digit that
    /// have no number yet can change: SQLite narrows the scan to those, Swift parses them.
    static func customAmounts(_ db: Database) throws {
        var parsed: [(lead: Int64, field: Int64, number: Double)] = []
        let rows = try Row.fetchCursor(db, sql: """
            SELECT lead_id, field_id, value FROM lead_custom_values WHERE number IS NULL AND value GLOB '*[0-9]*'
            """)
        while let row = try rows.next() {
            if let number = NumberText.parseAmount(row[2]) { parsed.append((row[0], row[1], number)) }
        }
        let update = try db.makeStatement(sql: "UPDATE lead_custom_values SET number = ? WHERE lead_id = ? AND field_id = ?")
        for entry in parsed { try update.execute(arguments: [entry.number, entry.lead, entry.field]) }
    }

    /// "Unassigned" is no owner since v21 (`Assignee.meansNone`): the list filter by that name
    /// finds leads without one, so a lead a CRM export gave that owner could be found by no
    /// filter. Such leads have none now.
    static func unassignedOwners(_ db: Database) throws {
        try db.execute(sql: "UPDATE leads SET assigned_to = NULL WHERE lower(trim(assigned_to, ' ' || char(9))) = 'unassigned'")
    }

    /// Emails are matched in Unicode's composed form (NFC) since v17 (see
    /// `EmailAddress.normalized`): a stored address with an accent as a letter plus a combining
    /// mark is rewritten composed, so ingest and the API, which look up the composed form, find
    /// it again. Where another lead already holds the composed address, both are left as they
    /// were: the duplicates endpoint is where a person decides.
    static func composeEmails(_ db: Database) throws {
        // Only addresses with a byte outside printable ASCII can change: SQLite narrows the
        // scan to those, Swift composes them.
        let rows = try Row.fetchAll(db, sql: "SELECT id, email FROM leads WHERE email GLOB '*[^ -~]*'")
        for row in rows {
            let email: String = row[1]
            let composed = email.precomposedStringWithCanonicalMapping
            // String's == holds canonically equivalent text equal; SQLite compares bytes.
            guard !composed.utf8.elementsEqual(email.utf8) else { continue }
            try db.execute(sql: """
                UPDATE leads SET email = ?1 WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM leads WHERE email = ?1)
                """, arguments: [composed, row[0] as Int64])
        }
    }

    /// Facts about the store's history that writers consult. `raw_content_keys`: whether events
    /// may be stored under content keys hashed from their properties' raw bytes, as versions
    /// before v14 hashed them; without such events a writer skips looking them up.
    static func storeFacts(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE store_facts (
                name  TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO store_facts (name, value) VALUES ('raw_content_keys', EXISTS (SELECT 1 FROM events));
            """)
    }

    /// Whether `storeFacts` recorded `name` as true.
    public static func fact(_ name: String, in db: Database) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT value FROM store_facts WHERE name = ?"), arguments: [name]) ?? false
    }

    /// The events table clustered by lead, and event properties dictionary-encoded.
    ///
    /// `events` becomes a `WITHOUT ROWID` table keyed by `(lead_id, dedupe_key)`: that key was
    /// already a unique index, and `(lead_id, occurred_at)` a second one, so each event went
    /// into three B-trees; now into one, where a lead's events sit together for the timeline,
    /// the windowed counts and a merge. `id` stays as the arrival order, from the counter
    /// `store_facts.next_event_id`; nothing looks an event up by it.
    ///
    /// Properties were one `event_properties` row per event, with its messageId: 40% of the
    /// store. Events repeat their properties (a campaign id, a page's path), so they now share
    /// `event_property_sets` rows, which `events.properties_id` names and `refs` counts:
    /// writers add what they insert, and the trigger gives back what any delete takes (a
    /// lead's deletion and its cascade, a merge's duplicates), dropping a row nobody names, so
    /// a deleted lead's properties leave the store with it. No foreign key: dropping a row
    /// would make SQLite look for a child among every event. AUTOINCREMENT, so an id a writer
    /// caches never comes to name other properties. The messageId is no longer kept: nothing
    /// read it, and its hash is the dedupe key. `{}` was stored for an event with a messageId
    /// and no properties; such events now name no row.
    static func eventsByLead(_ db: Database) throws {
        // Debian's SQLite zeroes every freed page (secure_delete): dropping the old tables of a
        // 10M-event store wrote 1.3 GB of zeros through the cache, 11 s and 1.1 GB of memory.
        // FAST zeroes deleted content only where that costs no extra write: the freed pages keep
        // what the new tables now hold, and the messageIds, until later writes reuse them.
        let secureDelete = try Int.fetchOne(db, sql: "PRAGMA secure_delete") ?? 0
        try db.execute(sql: "PRAGMA secure_delete = FAST")
        defer { try? db.execute(sql: "PRAGMA secure_delete = \(secureDelete)") }
        try db.execute(sql: """
            CREATE TABLE event_property_sets (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                refs       INTEGER NOT NULL,
                properties TEXT NOT NULL
            );
            -- Counted through a unique index rather than GROUP BY, whose sort of every event's
            -- properties took 23 s and 1.1 GB on a 10M-event store, against 5 s and 72 MB.
            CREATE UNIQUE INDEX event_property_sets_text ON event_property_sets(properties);
            INSERT INTO event_property_sets (refs, properties)
                SELECT 1, p.properties FROM event_properties p JOIN events e ON e.id = p.event_id
                WHERE p.properties != '{}' ORDER BY p.event_id
                ON CONFLICT (properties) DO UPDATE SET refs = refs + 1;
            -- Read from the old table, where id is the rowid; the new one has no index on it.
            INSERT INTO store_facts (name, value) VALUES ('next_event_id', coalesce((SELECT max(id) FROM events), 0) + 1);
            CREATE TABLE events_v16 (
                lead_id       INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
                dedupe_key    INTEGER NOT NULL,
                occurred_at   INTEGER NOT NULL,
                type_id       INTEGER NOT NULL REFERENCES event_types(id),
                value         REAL,
                properties_id INTEGER,
                id            INTEGER NOT NULL,
                PRIMARY KEY (lead_id, dedupe_key)
            ) WITHOUT ROWID;
            INSERT INTO events_v16 (lead_id, dedupe_key, occurred_at, type_id, value, properties_id, id)
                SELECT e.lead_id, e.dedupe_key, e.occurred_at, e.type_id, e.value, s.id, e.id
                FROM events e
                LEFT JOIN event_properties p ON p.event_id = e.id
                LEFT JOIN event_property_sets s ON s.properties = p.properties
                ORDER BY e.lead_id, e.dedupe_key;
            DROP INDEX event_property_sets_text;
            DROP TABLE event_properties;
            DROP TABLE events;
            ALTER TABLE events_v16 RENAME TO events;
            CREATE TRIGGER events_release_properties AFTER DELETE ON events
            WHEN old.properties_id IS NOT NULL
            BEGIN
                UPDATE event_property_sets SET refs = refs - 1 WHERE id = old.properties_id;
                DELETE FROM event_property_sets WHERE id = old.properties_id AND refs <= 0;
            END;
            """)
    }

    /// Indexes a bulk load dropped and has yet to build, with the SQL that created them (see
    /// ``DeferredIndexes``). A migration that changes one of ``DeferredIndexes/names`` must
    /// use IF EXISTS, since after an interrupted bulk load the index may be absent, and one that
    /// drops such an index for good must also delete its row here.
    static func createDeferredIndexes(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE deferred_indexes (
                name TEXT PRIMARY KEY,
                sql  TEXT NOT NULL
            );
            """)
    }
}
