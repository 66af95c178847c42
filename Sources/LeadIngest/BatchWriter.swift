import GRDB
import LeadStore

extension Ingest {
    /// What an ingest did. Re-ingesting the same input leaves every count but `unchanged` and
    /// `duplicateEvents` at zero.
    public struct Counts: Sendable, Equatable {
        public var leadsCreated = 0
        public var leadsUpdated = 0
        public var leadsUnchanged = 0
        /// Leads merged into another: a visitor into its user, an email-only lead into the id
        /// it turned out to be (one the same file created counts here and not as created).
        public var leadsMerged = 0
        public var eventsAdded = 0
        public var duplicateEvents = 0
        public var rejected = 0
        /// Rows of LeadLens's own export older than their lead's last change: they only filled
        /// the lead's blanks (see `LeadPatch.exportedUpdatedAt`), so an edit in them was not applied.
        public var staleExportRows = 0

        public init() {}

        public static func += (lhs: inout Counts, rhs: Counts) {
            lhs.leadsCreated += rhs.leadsCreated
            lhs.leadsUpdated += rhs.leadsUpdated
            lhs.leadsUnchanged += rhs.leadsUnchanged
            lhs.leadsMerged += rhs.leadsMerged
            lhs.eventsAdded += rhs.eventsAdded
            lhs.duplicateEvents += rhs.duplicateEvents
            lhs.rejected += rhs.rejected
            lhs.staleExportRows += rhs.staleExportRows
        }
    }
}

/// Writes batches of records inside the caller's transaction: resolves each record to a lead
/// (creating it when new), applies lead fields, inserts events with their dedupe key, and folds
/// the new events into the per-lead activity aggregate before the batch commits.
///
/// Identity caches live for one ingest run; they hold only keys the rows hold, and are dropped
/// whenever a batch rolls back or another connection writes.
final class BatchWriter {
    private var byExternalID: [String: Int64] = [:]
    private var byEmail: [String: Int64] = [:]
    private var byPhone: [String: Int64] = [:]
    private var byAnonymousID: [String: Int64] = [:]
    /// Identities of merged-away leads → the lead they merged into (`lead_merged_identities`).
    private var byMergedIdentity: [MergedIdentity: Int64] = [:]
    /// Anonymous ids another lead keeps, mapped to the lead that was refused them, so that
    /// lead's later events with both ids skip the lookup.
    private var settledElsewhere: [String: Int64] = [:]
    /// Each cached lead's external id as stored (`.some(nil)`: known to have none). Kept per
    /// lead, not per cache entry, so setting a lead's external id updates every key that
    /// reaches it at once.
    private var externalIDs: [Int64: String?] = [:]
    private var typeIDs: [String: Int] = [:]
    /// Properties JSON → its `event_property_sets` row (see `PropertySets`).
    var propertySetIDs: [String: Int64] = [:]
    /// Rows earlier writers committed, consulted after `propertySetIDs` (see `PropertySetCache`).
    let sharedPropertySets: Ingest.PropertySetCache?
    private var customFieldIDs: [String: Int64] = [:]
    /// A source as received → the store's spelling of it (see `SourceSpellings`). Keyed by the
    /// text as received, so a hit costs no folding.
    private var sourceSpellings: [String: String] = [:]
    /// Leads known to have a source, so a utm source on their events needs no row read.
    private var leadsWithSource: Set<Int64> = []
    /// Leads created or updated in the current file, so each counts once however often it recurs.
    private var createdLeads: Set<Int64> = []
    private var updatedLeads: Set<Int64> = []
    private var unchangedLeads: Set<Int64> = []
    /// Leads created, changed, or given new events in the open transaction: the ones whose
    /// score may have moved. Cleared when a transaction starts.
    var touchedInTransaction: Set<Int64> = []
    /// What the last `write` did with each record, in record order.
    private(set) var outcomes: [RecordOutcome] = []
    /// Anonymous leads the record being applied merged into an identified one: duplicate → primary.
    private var mergedByRecord: [Int64: Int64] = [:]
    /// Leads an earlier write of this file counted as created and this one merged away.
    private var createdThenMerged = 0

    struct RecordOutcome {
        var leadID: Int64
        /// The record created its lead.
        var created = false
        /// The record changed an existing lead's fields, custom values or tags.
        var changed = false
        /// The record carries an event.
        var hasEvent = false
        /// The record's event was new to its lead (false without an event, or for a duplicate).
        var eventAdded = false
        /// Leads applying the record merged into another (a visitor into its user).
        var merged = 0
        /// The record is a row of an export older than its lead that held a value it did not apply.
        var stale = false
    }

    /// Bounds the identity caches: past this many entries they are dropped and refilled from the
    /// indexes, which keeps memory flat on inputs with millions of distinct leads.
    static let cacheLimit = 200_000

    /// The time this write stamps on what it creates and changes, read from `clock` at the
    /// start of each write: a writer lives as long as a `--watch` or a stdin pipeline, days, and
    /// a time fixed when it was made dated every lead since to that moment.
    private(set) var now: Int64
    private let clock: @Sendable () -> Int64

    init(clock: @escaping @Sendable () -> Int64 = { LeadStore.nowMillis() }, sharedPropertySets: Ingest.PropertySetCache? = nil) {
        self.clock = clock
        self.now = clock()
        self.sharedPropertySets = sharedPropertySets
    }

    /// A lead's status or owner as this write found it and as it leaves it.
    private struct Move {
        var from: String?
        var to: String?
    }

    /// Status and owner changes of the current write, netted per lead: rows that move a lead
    /// and back (re-ingesting a file that holds both) leave no timeline entry, so ingesting a
    /// file again adds nothing there either.
    private var moves: [MoveKey: Move] = [:]

    private struct MoveKey: Hashable {
        let leadID: Int64
        let field: LeadField
    }

    private func noteMove(_ leadID: Int64, _ field: LeadField, from old: String?, to new: String) {
        moves[MoveKey(leadID: leadID, field: field), default: Move(from: old, to: nil)].to = new
    }

    /// Writes the write's net status and owner changes to the timeline.
    private func recordMoves(_ db: Database) throws {
        guard !moves.isEmpty else { return }
        for (key, move) in moves.sorted(by: { ($0.key.leadID, $0.key.field.rawValue) < ($1.key.leadID, $1.key.field.rawValue) })
        where move.from != move.to {
            try LeadMutations.recordTimeline(key.leadID, kind: key.field == .status ? "status_changed" : "assigned",
                                             old: move.from, new: move.to, at: now, in: db)
        }
        moves.removeAll()
    }

    /// Starts the counts of a new input: a lead created by the previous file and updated by
    /// this one counts as updated here.
    func beginFile() {
        createdLeads.removeAll()
        updatedLeads.removeAll()
        unchangedLeads.removeAll()
    }

    /// Call after a rollback: cached ids may name leads that no longer exist.
    func discardCaches() {
        dropLeadCaches(keepingCapacity: false)
        mergedByRecord.removeAll()
        createdThenMerged = 0
        typeIDs.removeAll()
        propertySetIDs.removeAll()
        customFieldIDs.removeAll()
        sourceSpellings.removeAll()
        liveInTransaction.removeAll()
        createdWithoutActivity.removeAll()
    }

    /// Everything cached per lead; also what the size bound drops.
    private func dropLeadCaches(keepingCapacity: Bool) {
        byExternalID.removeAll(keepingCapacity: keepingCapacity)
        byEmail.removeAll(keepingCapacity: keepingCapacity)
        byPhone.removeAll(keepingCapacity: keepingCapacity)
        byAnonymousID.removeAll(keepingCapacity: keepingCapacity)
        byMergedIdentity.removeAll(keepingCapacity: keepingCapacity)
        storeKeepsMergedIdentities = nil
        settledElsewhere.removeAll(keepingCapacity: keepingCapacity)
        externalIDs.removeAll(keepingCapacity: keepingCapacity)
        leadsWithSource.removeAll(keepingCapacity: keepingCapacity)
    }

    /// The store's `PRAGMA data_version` when the caches were last known good. Another
    /// connection's commit (the API deleting or merging a lead) changes it.
    private var dataVersion: Int?

    /// Leads seen to exist in the current transaction: checked once per transaction, not per row.
    private var liveInTransaction: Set<Int64> = []

    /// Leads the current transaction created that have no activity row yet, so folding in
    /// their first events needs no lookup. A merge into one may bring it a row: it leaves.
    private var createdWithoutActivity: Set<Int64> = []

    /// Starts a transaction's use of the caches: drops them when another connection has
    /// written since this writer's last transaction.
    func revalidateCaches(_ db: Database) throws {
        liveInTransaction.removeAll(keepingCapacity: true)
        createdWithoutActivity.removeAll(keepingCapacity: true)
        storeKeepsMergedIdentities = nil
        let version = try Int.fetchOne(db, sql: "PRAGMA data_version")
        if version != dataVersion { discardCaches() }
        dataVersion = version
    }

    func write(_ records: [Ingest.Record], in db: Database) throws -> Ingest.Counts {
        if byExternalID.count + byEmail.count + byPhone.count + byAnonymousID.count + byMergedIdentity.count
            + settledElsewhere.count > Self.cacheLimit {
            dropLeadCaches(keepingCapacity: true)
        }
        now = clock()
        outcomes.removeAll(keepingCapacity: true)
        mergedByRecord.removeAll()
        moves.removeAll()
        var batch = Batch(db: db, writer: self, records: records)
        for index in records.indices {
            try batch.apply(index)
        }
        try batch.insertPendingEvents()
        try batch.flushActivity()
        try recordMoves(db)
        var counts = Self.counts(of: outcomes, created: &createdLeads, updated: &updatedLeads, unchanged: &unchangedLeads)
        // A file's totals count the leads it leaves: one created, then merged into its user, is not one.
        counts.leadsCreated -= createdThenMerged
        createdThenMerged = 0
        return counts
    }

    /// Counts what `outcomes` say was done. A lead counts once however often it recurs, as
    /// created, else updated, else unchanged: `created`, `updated` and `unchanged` carry the leads
    /// already counted, so one count can span a file's writes (summed: a lead counted unchanged
    /// by an earlier write and updated by a later one moves over) or cover one request's share.
    static func counts(of outcomes: some Collection<RecordOutcome>,
                       created: inout Set<Int64>, updated: inout Set<Int64>, unchanged: inout Set<Int64>) -> Ingest.Counts {
        var counts = Ingest.Counts()
        // Created leads first: a visitor merged into a lead a later record of the same write
        // created reaches its outcome as a change to that lead, which is new, not updated.
        for outcome in outcomes where outcome.created {
            counts.leadsCreated += 1
            created.insert(outcome.leadID)
        }
        for outcome in outcomes {
            let lead = outcome.leadID
            counts.leadsMerged += outcome.merged
            if outcome.stale { counts.staleExportRows += 1 }
            if outcome.changed && !outcome.created {
                if !created.contains(lead), updated.insert(lead).inserted {
                    counts.leadsUpdated += 1
                    if unchanged.remove(lead) != nil { counts.leadsUnchanged -= 1 }
                }
            } else if !outcome.created && !outcome.hasEvent && !created.contains(lead) && !updated.contains(lead) {
                if unchanged.insert(lead).inserted { counts.leadsUnchanged += 1 }
            }
            if outcome.hasEvent {
                if outcome.eventAdded { counts.eventsAdded += 1 } else { counts.duplicateEvents += 1 }
            }
        }
        return counts
    }

    /// One batch's running state. Leads are resolved record by record, in order; the batch's
    /// events are then inserted many rows per statement, which keeps SQLite's cursors open
    /// across rows instead of re-opening the table and its indexes for every event.
    private struct Batch {
        let db: Database
        let writer: BatchWriter
        /// Read in place by index: copying a record (a dozen reference-counted fields) once per
        /// pass cost about 5% of the writer (perf).
        let records: [Ingest.Record]
        var activity: [Int64: LeadActivity] = [:]
        /// Each pending event's lead and record; a record's index is also its place in `outcomes`.
        var pendingEvents: [(leadID: Int64, record: Int)] = []

        /// Rows per multi-row INSERT: 100 × 7 parameters stays far below SQLite's limit.
        static let rowsPerStatement = 100

        init(db: Database, writer: BatchWriter, records: [Ingest.Record]) {
            self.db = db
            self.writer = writer
            self.records = records
        }

        mutating func apply(_ index: Int) throws {
            let patch = records[index].lead
            let leadID: Int64
            var created = false, changed = false, stale = false
            if let match = try writer.findLive(patch.identity, db: db) {
                leadID = match.id
                let updated = try writer.update(leadID, with: patch, matchedBy: match.key, throughMerge: match.throughMerge, db: db)
                (changed, stale) = (updated.changed, updated.withheldStaleValues)
            } else {
                leadID = try writer.create(patch, firstSeen: records[index].event?.occurredAt ?? patch.sentAt, db: db)
                created = true
            }
            let merged = writer.mergedByRecord.count
            if !writer.mergedByRecord.isEmpty {
                // At once, before a later record can create a lead that reuses a merged id.
                redirectPendingEvents(writer.mergedByRecord)
                writer.mergedByRecord.removeAll()
            }
            let hasEvent = records[index].event != nil
            if hasEvent { pendingEvents.append((leadID, index)) }
            writer.outcomes.append(RecordOutcome(leadID: leadID, created: created, changed: changed, hasEvent: hasEvent, merged: merged,
                                                 stale: stale))
        }

        /// Events this batch resolved to a lead that a later record merged away go to the lead
        /// it merged into.
        mutating func redirectPendingEvents(_ merged: [Int64: Int64]) {
            for index in pendingEvents.indices {
                if let primary = merged[pendingEvents[index].leadID] { pendingEvents[index].leadID = primary }
            }
            for index in writer.outcomes.indices {
                guard let primary = merged[writer.outcomes[index].leadID] else { continue }
                // The lead that record created is gone into one that already existed: counted
                // as a change to it, not as a new lead.
                writer.outcomes[index].leadID = primary
                if writer.outcomes[index].created {
                    writer.outcomes[index].created = false
                    writer.outcomes[index].changed = true
                }
            }
        }

        /// Inserts the pending events; duplicates (the same lead and dedupe key, in the store or
        /// earlier in the batch) are skipped by INSERT OR IGNORE.
        ///
        /// Each row is given its id (arrival order) here, from the store's counter, rather than
        /// read back through RETURNING, which SQLite serves by buffering every returned row: on
        /// the ingest benchmark that cost more than the inserts it reported on. A statement that
        /// inserted all its rows (the usual case) used every id it was given; after one that
        /// skipped duplicates, a row is new when its key holds the id it was given. Skipped ids
        /// are never used.
        mutating func insertPendingEvents() throws {
            try dropEventsStoredUnderLegacyKeys()
            var propertySets = PropertySets(writer: writer)
            // Read inside this write's transaction: no other connection can insert meanwhile.
            guard var nextID = try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM store_facts WHERE name = 'next_event_id'"))
            else {
                // Every store has it since v16. Guessing would hand out ids stored events hold,
                // and duplicates of them would count as new.
                throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "store_facts has no next_event_id")
            }
            var typeIDs: [Int] = []
            typeIDs.reserveCapacity(Self.rowsPerStatement)
            var setIDs: [Int64?] = []
            setIDs.reserveCapacity(Self.rowsPerStatement)
            var start = 0
            while start < pendingEvents.count {
                let end = min(start + Self.rowsPerStatement, pendingEvents.count)
                let rows = end - start
                let insert = try RawStatement(db, sql: rows == Self.rowsPerStatement ? Self.insertEventsFullSQL : Self.insertEventsSQL(rows: rows))
                let firstID = nextID
                typeIDs.removeAll(keepingCapacity: true)
                setIDs.removeAll(keepingCapacity: true)
                var parameter: Int32 = 1
                for index in start..<end {
                    let (leadID, record) = pendingEvents[index]
                    let event = records[record].event.unsafelyUnwrapped
                    let typeID = try writer.typeID(for: event.typeName, db: db)
                    typeIDs.append(typeID)
                    let setID = try event.properties.map { try propertySets.id(for: $0, db: db) }
                    setIDs.append(setID)
                    insert.bind(parameter, firstID + Int64(index - start))
                    insert.bind(parameter + 1, leadID)
                    insert.bind(parameter + 2, event.occurredAt)
                    insert.bind(parameter + 3, Int64(typeID))
                    insert.bind(parameter + 4, event.value)
                    insert.bind(parameter + 5, event.dedupeKey)
                    insert.bind(parameter + 6, setID)
                    parameter += 7
                }
                try insert.run()
                nextID += Int64(rows)
                let insertedRows = db.changesCount
                if insertedRows == 0 {  // all duplicates (a re-ingest): no id was used
                    nextID = firstID
                    start = end
                    continue
                }
                // Some rows were duplicates: a row is this statement's when it holds the id given it.
                let storedID = insertedRows < rows
                    ? try RawStatement(db, sql: "SELECT id FROM events WHERE lead_id = ? AND dedupe_key = ?") : nil
                for index in start..<end {
                    let (leadID, record) = pendingEvents[index]
                    let event = records[record].event.unsafelyUnwrapped
                    if let storedID {
                        storedID.bind(1, leadID)
                        storedID.bind(2, event.dedupeKey)
                        let found = try storedID.step()
                        let isOurs = found && storedID.int64(0) == firstID + Int64(index - start)
                        storedID.reset()
                        if !isOurs { continue }
                    }
                    writer.outcomes[record].eventAdded = true
                    activity[leadID, default: LeadActivity()].add(typeID: typeIDs[index - start], at: event.occurredAt)
                    if let setID = setIDs[index - start] { propertySets.reference(setID) }
                }
                start = end
            }
            if !pendingEvents.isEmpty {
                try db.cachedStatement(sql: "UPDATE store_facts SET value = ? WHERE name = 'next_event_id'").execute(arguments: [nextID])
            }
            pendingEvents.removeAll(keepingCapacity: true)
            try propertySets.commit(db)
        }

        /// Skips, as duplicates, pending events stored before content keys were canonical.
        private mutating func dropEventsStoredUnderLegacyKeys() throws {
            guard pendingEvents.contains(where: { records[$0.record].event?.legacyDedupeKey != nil }),
                  try writer.storeMayHoldRawContentKeys(db) else { return }
            let stored = try RawStatement(db, sql: "SELECT 1 FROM events WHERE lead_id = ? AND dedupe_key = ?")
            var kept: [(leadID: Int64, record: Int)] = []
            kept.reserveCapacity(pendingEvents.count)
            for pending in pendingEvents {
                if let legacyKey = records[pending.record].event?.legacyDedupeKey {
                    stored.bind(1, pending.leadID)
                    stored.bind(2, legacyKey)
                    let found = try stored.step()
                    stored.reset()
                    if found { continue }
                }
                kept.append(pending)
            }
            pendingEvents = kept
        }

        static let insertEventsFullSQL = insertEventsSQL(rows: rowsPerStatement)

        static func insertEventsSQL(rows: Int) -> String {
            "INSERT OR IGNORE INTO events (id, lead_id, occurred_at, type_id, value, dedupe_key, properties_id) VALUES "
                + repeatElement("(?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
        }

        /// Folds this batch's new events into each lead's stored aggregate.
        func flushActivity() throws {
            guard !activity.isEmpty else { return }
            let select = try RawStatement(db, sql: """
                SELECT event_count, first_at, last_at, type_counts, type_last_at FROM lead_activity WHERE lead_id = ?
                """)
            // An existing row is updated rather than replaced: with its blobs the same size, SQLite
            // overwrites the cell in place instead of deleting and re-inserting it.
            let update = try RawStatement(db, sql: """
                UPDATE lead_activity SET event_count = ?2, first_at = ?3, last_at = ?4, type_counts = ?5, type_last_at = ?6
                WHERE lead_id = ?1
                """)
            let insert = try RawStatement(db, sql: """
                INSERT INTO lead_activity (lead_id, event_count, first_at, last_at, type_counts, type_last_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """)
            let touchLead = try RawStatement(db, sql: """
                UPDATE leads SET last_activity_at = max(coalesce(last_activity_at, 0), ?) WHERE id = ?
                """)
            for (leadID, delta) in activity {
                writer.touchedInTransaction.insert(leadID)
                var total = delta
                let exists: Bool
                if writer.createdWithoutActivity.remove(leadID) != nil {
                    exists = false
                } else {
                    select.bind(1, leadID)
                    exists = try select.step()
                }
                if exists {
                    var stored = LeadActivity(
                        eventCount: select.int64(0), firstAt: select.int64(1), lastAt: select.int64(2),
                        counts: Float64Blob.decode(select.blob(3)), lastAtByType: Float64Blob.decode(select.blob(4)))
                    stored.merge(delta)
                    total = stored
                }
                select.reset()
                let upsert = exists ? update : insert
                upsert.bind(1, leadID)
                upsert.bind(2, total.eventCount)
                upsert.bind(3, total.firstAt)
                upsert.bind(4, total.lastAt)
                upsert.bind(5, blob: Float64Blob.bytes(total.counts))
                upsert.bind(6, blob: Float64Blob.bytes(total.lastAtByType))
                try upsert.run()
                touchLead.bind(1, total.lastAt)
                touchLead.bind(2, leadID)
                try touchLead.run()
            }
        }
    }

    // MARK: - Identity

    /// The existing lead a record belongs to: by external id, then email, then phone, then
    /// anonymous id, then by the external id, email or phone of a lead merged into it. An email,
    /// phone or anonymous-id match whose lead has a different external id is another person,
    /// not a match.
    func find(_ identity: Ingest.Identity, db: Database) throws -> Match? {
        if let externalID = identity.externalID {
            if let id = byExternalID[externalID] { return Match(id: id, key: .externalID) }
            let statement = try RawStatement(db, sql: "SELECT id FROM leads WHERE external_id = ?")
            statement.bind(1, externalID)
            defer { statement.reset() }
            if try statement.step() {
                let id = statement.int64(0)
                byExternalID[externalID] = id
                return Match(id: id, key: .externalID)
            }
            // An external id is the strongest key: a merged-away lead's comes before any email.
            if let found = try findMerged(identity, by: [.externalID], db: db) { return found }
        }
        let secondary: [(String?, IdentityKey, ReferenceWritableKeyPath<BatchWriter, [String: Int64]>)] = [
            (identity.email, .email, \.byEmail),
            (identity.phoneDigits, .phoneDigits, \.byPhone),
            (identity.anonymousID, .anonymousID, \.byAnonymousID),
        ]
        for (key, kind, cache) in secondary {
            guard let key else { continue }
            if let id = self[keyPath: cache][key], let known = externalIDs[id], compatible(known, identity.externalID) {
                return Match(id: id, key: kind)
            }
            let statement = try RawStatement(db, sql: kind == .anonymousID ? """
                SELECT leads.id, leads.external_id FROM lead_anonymous_ids JOIN leads ON leads.id = lead_anonymous_ids.lead_id
                WHERE anonymous_id = ?1 AND (?2 IS NULL OR external_id IS NULL OR external_id = ?2)
                """ : """
                SELECT id, external_id FROM leads
                WHERE \(kind.rawValue) = ?1 AND (?2 IS NULL OR external_id IS NULL OR external_id = ?2)
                ORDER BY id LIMIT 1
                """)
            statement.bind(1, key)
            statement.bind(2, identity.externalID)
            defer { statement.reset() }
            if try statement.step() {
                let id = statement.int64(0)
                self[keyPath: cache][key] = id
                externalIDs[id] = .some(statement.text(1))
                return Match(id: id, key: kind)
            }
        }
        return try findMerged(identity, by: [.email, .phoneDigits], db: db)
    }

    private struct MergedIdentity: Hashable {
        let kind: IdentityKey
        let value: String
    }

    /// Whether the store keeps any identity of a merged-away lead, read once per transaction:
    /// a store nobody merged in (a bulk load creating 141K leads) then pays no lookup per new lead.
    private var storeKeepsMergedIdentities: Bool?

    private func keepsMergedIdentities(_ db: Database) throws -> Bool {
        if let known = storeKeepsMergedIdentities { return known }
        let any = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM lead_merged_identities)") ?? false
        storeKeepsMergedIdentities = any
        return any
    }

    /// The lead that a merged-away lead's external id, email or phone (`kinds`, in order) names
    /// now, once the leads' own columns matched nothing: a re-sent message of the duplicate
    /// updates the lead it merged into rather than making it anew.
    private func findMerged(_ identity: Ingest.Identity, by kinds: [IdentityKey], db: Database) throws -> Match? {
        guard try keepsMergedIdentities(db) else { return nil }
        for kind in kinds {
            let value = switch kind {
            case .externalID: identity.externalID
            case .email: identity.email
            case .phoneDigits: identity.phoneDigits
            case .anonymousID: String?.none
            }
            guard let value else { continue }
            // A merged external id is the match itself; the others must not name another person.
            let incomingExternalID = kind == .externalID ? nil : identity.externalID
            let key = MergedIdentity(kind: kind, value: value)
            if let id = byMergedIdentity[key], let known = externalIDs[id], compatible(known, incomingExternalID) {
                return Match(id: id, key: kind, throughMerge: true)
            }
            let statement = try RawStatement(db, sql: """
                SELECT leads.id, leads.external_id FROM lead_merged_identities merged JOIN leads ON leads.id = merged.lead_id
                WHERE merged.kind = ?1 AND merged.value = ?2 AND (?3 IS NULL OR leads.external_id IS NULL OR leads.external_id = ?3)
                """)
            statement.bind(1, kind.rawValue)
            statement.bind(2, value)
            statement.bind(3, incomingExternalID)
            defer { statement.reset() }
            if try statement.step() {
                let id = statement.int64(0)
                byMergedIdentity[key] = id
                externalIDs[id] = .some(statement.text(1))
                return Match(id: id, key: kind, throughMerge: true)
            }
        }
        return nil
    }

    /// ``find(_:db:)``, made sure the lead still exists: a cached id whose row is gone (deleted
    /// through this same connection, which `data_version` does not report) drops the caches
    /// and is looked up again.
    func findLive(_ identity: Ingest.Identity, db: Database) throws -> Match? {
        guard let found = try find(identity, db: db) else { return nil }
        if liveInTransaction.contains(found.id) { return found }
        let exists = try RawStatement(db, sql: "SELECT 1 FROM leads WHERE id = ?")
        exists.bind(1, found.id)
        defer { exists.reset() }
        if try exists.step() {
            liveInTransaction.insert(found.id)
            return found
        }
        // Only the lead caches: this write's merge bookkeeping must survive a stale hit.
        dropLeadCaches(keepingCapacity: true)
        return try find(identity, db: db)
    }

    /// The lead a record's identity names, and how it was found.
    struct Match {
        let id: Int64
        let key: IdentityKey
        /// Found through an identity a merged-away lead held (`lead_merged_identities`): the
        /// record is that duplicate's data, which the merge already folded into this lead.
        var throughMerge = false
    }

    /// The leads columns that hold each key; anonymous ids have a table of their own, since a
    /// lead has one per device.
    enum IdentityKey: String {
        case externalID = "external_id"
        case email
        case phoneDigits = "phone_digits"
        case anonymousID
    }

    private func compatible(_ stored: String?, _ incoming: String?) -> Bool {
        stored == nil || incoming == nil || stored == incoming
    }

    /// Caches the identity keys a lead row holds, and only those.
    private func remember(_ id: Int64, stored identity: Ingest.Identity) {
        if let key = identity.externalID { byExternalID[key] = id }
        externalIDs[id] = .some(identity.externalID)
        if let key = identity.email { byEmail[key] = id }
        if let key = identity.phoneDigits { byPhone[key] = id }
        if let key = identity.anonymousID { byAnonymousID[key] = id }
    }

    // MARK: - Leads

    static let leadColumns: [(LeadField, String)] = [
        (.email, "email"), (.phone, "phone"), (.firstName, "first_name"), (.lastName, "last_name"),
        (.company, "company"), (.source, "source"), (.status, "status"), (.assignedTo, "assigned_to"),
        (.notes, "notes"),
    ]

    func create(_ patch: Ingest.LeadPatch, firstSeen: Int64?, db: Database) throws -> Int64 {
        let source = try (patch.fields[.source] ?? patch.sourceFallback).map { try canonicalSource($0, db: db) }
        let insert = try RawStatement(db, sql: """
            INSERT INTO leads (external_id, email, phone, phone_digits, first_name, last_name,
                               company, source, status, assigned_to, notes, value, created_at, updated_at, traits_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let fields = patch.fields
        insert.bind(1, patch.identity.externalID)
        insert.bind(2, patch.identity.email)
        insert.bind(3, fields[.phone])
        insert.bind(4, patch.identity.phoneDigits)
        insert.bind(5, fields[.firstName])
        insert.bind(6, fields[.lastName])
        insert.bind(7, fields[.company])
        insert.bind(8, source)
        insert.bind(9, fields[.status] ?? LeadStatus.defaultStatus)
        insert.bind(10, fields[.assignedTo])
        insert.bind(11, Self.appending(patch.appendedNotes, to: fields[.notes]))
        insert.bind(12, patch.value)
        insert.bind(13, patch.createdAt ?? patch.createdAtIfNew ?? firstSeen ?? now)
        insert.bind(14, now)
        insert.bind(15, patch.carriesTraits ? patch.sentAt : nil)
        try insert.run()
        let id = db.lastInsertedRowID
        var stored = patch.identity
        // An anonymous id that already names another person's lead stays theirs.
        if let anonymousID = stored.anonymousID, try !insertAnonymousID(anonymousID, leadID: id, db: db) {
            stored.anonymousID = nil
        }
        remember(id, stored: stored)
        liveInTransaction.insert(id)
        createdWithoutActivity.insert(id)
        touchedInTransaction.insert(id)
        if source != nil { leadsWithSource.insert(id) }
        try applyCustomValues(patch.custom, leadID: id, db: db)
        try applyTags(patch.tags, leadID: id, db: db)
        return id
    }

    /// Applies a patch to an existing lead. Non-blank values overwrite (latest wins) and blanks
    /// never do; email and phone are such values, while the external id and anonymous id are only
    /// ever added, never replaced. A record found through a merged-away lead's identity
    /// (`throughMerge`) only fills blanks, as does a row of an export older than the lead.
    func update(_ leadID: Int64, with patch: Ingest.LeadPatch, matchedBy: IdentityKey, throughMerge: Bool = false,
                db: Database) throws -> UpdateOutcome {
        var patch = patch
        if let source = patch.fields[.source] { patch.fields[.source] = try canonicalSource(source, db: db) }
        let identity = patch.identity
        // Most events carry nothing but the id they matched by: skip reading the row for them.
        let setsFields = !patch.fields.isEmpty || patch.value != nil || patch.createdAt != nil || !patch.appendedNotes.isEmpty
            || (identity.externalID != nil && matchedBy != .externalID)
            || (identity.email != nil && matchedBy != .email)
            || (identity.phoneDigits != nil && matchedBy != .phoneDigits)
            || patch.sentAt != nil  // a dated message: whether it is older than the lead's fields decides
            || patch.exportedUpdatedAt != nil  // an export's row: likewise, by the lead's updated_at
        // A device this record names first: a visitor lead it merges has its traits in place
        // before this record's own apply, in the order their times say.
        var linkedAnonymousID = false
        if let anonymousID = identity.anonymousID, matchedBy != .anonymousID {
            linkedAnonymousID = try link(anonymousID: anonymousID, to: leadID, db: db)
        }
        let setsSource = patch.sourceFallback != nil && !leadsWithSource.contains(leadID)
        var rowChanged = false
        /// An email this record gives a lead that has an external id.
        var linkedEmail: String?
        /// Emails and phones this record replaced, or brought older than the lead's own.
        var otherContacts: [(kind: LeadMutations.OtherContact, value: String, current: String)] = []
        /// The record is an identify (group, alias) no newer than the newest applied to the lead.
        var isOlder = false
        /// The record is a row of an export older than the lead's last change.
        var staleExportRow = false
        /// That row held a value it did not apply (one the lead has otherwise since): what the
        /// count reports. Re-running an applied export is stale but withholds nothing.
        var staleRowWithheld = false
        if setsSource && !setsFields, let fallback = patch.sourceFallback {
            // An event whose only news is its utm source (a tenth of track events): one UPDATE,
            // no row read.
            let setSource = try RawStatement(db, sql: "UPDATE leads SET source = ?1, updated_at = ?2 WHERE id = ?3 AND source IS NULL")
            setSource.bind(1, try canonicalSource(fallback, db: db))
            setSource.bind(2, now)
            setSource.bind(3, leadID)
            try setSource.run()
            rowChanged = setSource.changes > 0
            leadsWithSource.insert(leadID)
        } else if setsFields || setsSource {
            let select = try db.cachedStatement(sql: """
                SELECT external_id, email, phone, phone_digits, first_name, last_name, company,
                       source, status, assigned_to, notes, value, created_at, traits_at, updated_at
                FROM leads WHERE id = ?
                """)
            guard let row = try Row.fetchOne(select, arguments: [leadID]) else { return UpdateOutcome(changed: false) }
            var assignments: [String] = []
            var arguments: [(any DatabaseValueConvertible)?] = []
            func set(_ column: String, _ value: (any DatabaseValueConvertible)?) {
                assignments.append("\(column) = ?")
                arguments.append(value)
            }
            // A message no newer than the newest one applied to the lead only fills blanks: a
            // replay, or another message of the same instant, never flips what was applied.
            let appliedAt: Int64? = row["traits_at"]
            isOlder = patch.sentAt.map { sent in appliedAt.map { sent <= $0 } ?? false } ?? false
            // So does an undated record (a CSV row, a form) of a merged-away lead: the merge chose
            // the primary's values, and a re-run of the same file must change nothing. A dated
            // message applies by its time, as any other: a newer identify still moves the lead.
            if throughMerge && patch.sentAt == nil { isOlder = true }
            // So does a row of an export written before the lead's last change: it holds what the
            // lead held then, and re-ingesting an old report would undo a status set since. The
            // export writes whole seconds, the store milliseconds.
            if let exported = patch.exportedUpdatedAt, let updated = row["updated_at"] as Int64?, updated / 1000 * 1000 > exported {
                isOlder = true
                staleExportRow = true
            }
            let storedExternalID: String? = row["external_id"]
            var stored = Ingest.Identity(
                externalID: storedExternalID ?? identity.externalID,
                email: row["email"], phoneDigits: row["phone_digits"])
            if storedExternalID == nil, let externalID = identity.externalID { set("external_id", externalID) }
            for (field, column) in Self.leadColumns {
                guard let value = patch.fields[field], row[column] as String? != value else { continue }
                let kind: LeadMutations.OtherContact? = field == .email ? .email : field == .phone ? .phone : nil
                // The address or phone of a lead merged into this one is not this lead's anew:
                // the merge kept it as another of its own, and re-sending the duplicate's data
                // must not replace the one the lead holds.
                if row[column] as String? != nil, let merged = field == .email ? identity.email : field == .phone ? identity.phoneDigits : nil,
                   try keepsMergedIdentities(db),
                   try LeadMutations.keepsMergedIdentity(field == .email ? .email : .phoneDigits, merged, lead: leadID, in: db) {
                    continue
                }
                // A stale export row's status or owner is the spreadsheet's edit when the store has
                // not moved that field since the export (the timeline records every move): a
                // three-way merge, taking theirs only where ours stood still.
                var editedInSpreadsheet = false
                if staleExportRow && (field == .status || field == .assignedTo) {
                    editedInSpreadsheet = try !movedSince(patch.exportedUpdatedAt, leadID: leadID,
                                                          kind: field == .status ? "status_changed" : "assigned", db: db)
                }
                if isOlder, !editedInSpreadsheet, let held = row[column] as String? {
                    if staleExportRow { staleRowWithheld = true }
                    // An older email or phone the lead has another of is kept beside it.
                    if let kind { otherContacts.append((kind, value, current: held)) }
                    continue
                }
                if let kind, let replaced = row[column] as String? { otherContacts.append((kind, replaced, current: value)) }
                set(column, value)
                // The timeline shows who moved a lead, whether by the API or an import.
                if field == .status || field == .assignedTo {
                    noteMove(leadID, field, from: row[column], to: value)
                }
                if field == .email {
                    // Only an email the lead had none of links the leads it alone made: one
                    // replacing another (two addresses for one id in a file) would merge and
                    // re-create such a lead on every run.
                    if stored.externalID != nil && stored.email == nil { linkedEmail = identity.email }
                    if let old = stored.email { byEmail[old] = nil }
                    stored.email = identity.email
                }
                if field == .phone {
                    if let old = stored.phoneDigits { byPhone[old] = nil }
                    set("phone_digits", identity.phoneDigits)
                    stored.phoneDigits = identity.phoneDigits
                }
            }
            if patch.fields[.source] == nil, row["source"] as String? == nil, let fallback = patch.sourceFallback {
                set("source", try canonicalSource(fallback, db: db))
            }
            if patch.fields[.source] != nil || patch.sourceFallback != nil { leadsWithSource.insert(leadID) }
            if !patch.appendedNotes.isEmpty {
                // Rightmost assignment wins in SQLite, so this overrides a replaced note above.
                let base = patch.fields[.notes] ?? (row["notes"] as String?)
                let notes = Self.appending(patch.appendedNotes, to: base)
                if notes != row["notes"] as String? { set("notes", notes) }
            }
            if let value = patch.value, row["value"] as Double? != value {
                if !(isOlder && (row["value"] as Double?) != nil) {
                    set("value", value)
                } else if staleExportRow {
                    staleRowWithheld = true
                }
            }
            if let createdAt = patch.createdAt, row["created_at"] as Int64? != createdAt, !isOlder { set("created_at", createdAt) }
            // The newest message applied moves on; alone it is bookkeeping, not a change to the lead.
            let movesAppliedAt = patch.sentAt != nil && !isOlder && patch.carriesTraits
            if !assignments.isEmpty {
                set("updated_at", now)
                if movesAppliedAt { set("traits_at", patch.sentAt) }
                arguments.append(leadID)
                // Few column combinations recur, so the statement cache keeps this prepared.
                try db.cachedStatement(sql: "UPDATE leads SET \(assignments.joined(separator: ", ")) WHERE id = ?")
                    .execute(arguments: StatementArguments(arguments))
                rowChanged = true
            } else if movesAppliedAt, let sentAt = patch.sentAt {
                try db.cachedStatement(sql: "UPDATE leads SET traits_at = ? WHERE id = ?").execute(arguments: [sentAt, leadID])
            }
            remember(leadID, stored: stored)
        }
        if let linkedEmail { try mergeUnidentifiedLeads(holdingEmail: linkedEmail, into: leadID, db: db) }
        var customChanged = try applyCustomValues(patch.custom, leadID: leadID, fillOnly: isOlder, db: db)
        for other in otherContacts {
            if try LeadMutations.keepOthers(other.kind, [other.value], current: other.current, lead: leadID, in: db) { customChanged = true }
        }
        // A stale export row's tags are what the lead had then: one removed since stays removed.
        let tagsChanged = staleExportRow ? false : try applyTags(patch.tags, leadID: leadID, db: db)
        if staleExportRow && !staleRowWithheld && !patch.tags.isEmpty {
            // NOCASE, as the tags' own column compares them.
            let held = try Int.fetchOne(db, sql: "SELECT count(*) FROM lead_tags WHERE lead_id = ? AND tag IN (\(databaseQuestionMarks(count: patch.tags.count)))",
                                        arguments: StatementArguments([leadID] + patch.tags)) ?? 0
            if held < Set(patch.tags.map { $0.lowercased() }).count { staleRowWithheld = true }
        }
        if (customChanged || tagsChanged || linkedAnonymousID) && !rowChanged {
            try db.cachedStatement(sql: "UPDATE leads SET updated_at = ? WHERE id = ?").execute(arguments: [now, leadID])
        }
        let changed = rowChanged || customChanged || tagsChanged || linkedAnonymousID
        if changed { touchedInTransaction.insert(leadID) }
        return UpdateOutcome(changed: changed, withheldStaleValues: staleRowWithheld)
    }

    struct UpdateOutcome {
        /// The lead's fields, custom values or tags changed.
        var changed: Bool
        /// The record was a row of an export older than the lead and held a value it did not apply.
        var withheldStaleValues = false
    }

    /// Whether the lead's timeline records a move of `kind` after the export's second `exported`.
    private func movedSince(_ exported: Int64?, leadID: Int64, kind: String, db: Database) throws -> Bool {
        guard let exported else { return true }
        return try Bool.fetchOne(db, sql: "SELECT 1 FROM lead_timeline WHERE lead_id = ? AND kind = ? AND at >= ? LIMIT 1",
                                 arguments: [leadID, kind, exported / 1000 * 1000 + 1000]) ?? false
    }

    /// Gives `leadID` an anonymous id (an identify or alias naming a device). Returns whether the
    /// lead gained it. The visitor lead that id alone made (no external id of its own) is the
    /// same person before they signed in: it merges into `leadID`, its events, tags, fields and
    /// other devices' ids with it, as the merge endpoint does. Only one nobody has worked yet
    /// (status new, no owner), as with emails (``mergeUnidentifiedLeads(holdingEmail:into:db:)``):
    /// a merge keeps the user's status. An id another identified lead holds stays theirs (two
    /// people signed in on one browser).
    private func link(anonymousID: String, to leadID: Int64, db: Database) throws -> Bool {
        // Once signed in, every event carries both ids: most calls end here.
        if byAnonymousID[anonymousID] == leadID { return false }
        if settledElsewhere[anonymousID] == leadID { return false }
        let owner = try RawStatement(db, sql: """
            SELECT leads.id, leads.external_id IS NULL, status = ? AND assigned_to IS NULL
            FROM lead_anonymous_ids JOIN leads ON leads.id = lead_anonymous_ids.lead_id
            WHERE anonymous_id = ?
            """)
        owner.bind(1, LeadStatus.defaultStatus)
        owner.bind(2, anonymousID)
        let found: (id: Int64, isVisitor: Bool, isUntouched: Bool)? =
            try owner.step() ? (owner.int64(0), owner.int64(1) != 0, owner.int64(2) != 0) : nil
        owner.reset()
        guard let found else {
            _ = try insertAnonymousID(anonymousID, leadID: leadID, db: db)
            byAnonymousID[anonymousID] = leadID
            return true
        }
        if found.id == leadID {
            byAnonymousID[anonymousID] = leadID
            return false
        }
        guard found.isVisitor, found.isUntouched else {
            // A worked visitor stays apart, but the pair is recorded for the duplicates endpoint.
            if found.isVisitor { try LeadMutations.recordSameDevice(leadID, found.id, at: now, in: db) }
            settledElsewhere[anonymousID] = leadID
            return false
        }
        try merge(found.id, into: leadID, db: db)
        byAnonymousID[anonymousID] = leadID
        return true
    }

    /// Returns false when the id already belongs to a lead.
    private func insertAnonymousID(_ anonymousID: String, leadID: Int64, db: Database) throws -> Bool {
        let insert = try RawStatement(db, sql: "INSERT OR IGNORE INTO lead_anonymous_ids (anonymous_id, lead_id) VALUES (?, ?)")
        insert.bind(1, anonymousID)
        insert.bind(2, leadID)
        try insert.run()
        return insert.changes > 0
    }

    /// Once a row gives a lead with an external id an email, the leads that email alone made
    /// (no external id of their own) are that same person: had the row come first, it would
    /// have matched them. Only ones nobody has worked yet (status new, no owner) merge: a merge
    /// keeps the user's status and id, and sales may hold the other lead's; such pairs are left
    /// to GET /leads/{id}/duplicates. Left apart, two leads held the email, a re-sent message
    /// could resolve to the other one, and re-ingesting a file added its events again (event
    /// dedupe is per lead).
    private func mergeUnidentifiedLeads(holdingEmail email: String, into primary: Int64, db: Database) throws {
        let unidentified = try Int64.fetchAll(db, sql: """
            SELECT id FROM leads
            WHERE email = ? AND external_id IS NULL AND id <> ? AND status = ? AND assigned_to IS NULL ORDER BY id
            """, arguments: [email, primary, LeadStatus.defaultStatus])
        for duplicate in unidentified { try merge(duplicate, into: primary, db: db) }
    }

    private func merge(_ duplicate: Int64, into primary: Int64, db: Database) throws {
        try LeadMutations.merge(primary: primary, duplicate: duplicate, now: now, newerTraitsWin: true, in: db)
        mergedByRecord[duplicate] = primary
        // The merge may have kept the duplicate's identities for the primary.
        storeKeepsMergedIdentities = nil
        if createdLeads.remove(duplicate) != nil { createdThenMerged += 1 }
        liveInTransaction.remove(duplicate)
        createdWithoutActivity.remove(duplicate)
        createdWithoutActivity.remove(primary)
        touchedInTransaction.remove(duplicate)
        // Cached keys that still name a merged lead heal themselves: findLive finds it gone
        // (its id is never reused, v9) and looks the key up again.
        touchedInTransaction.insert(primary)
    }

    /// `notes` with each of `added` on lines of its own, unless whole lines already say it (a
    /// re-sent form adds nothing; a shorter note that a longer line happens to contain does).
    /// Lines compare whatever their breaks: a textarea sends CRLF.
    static func appending(_ added: [String], to notes: String?) -> String? {
        func lines(_ text: String) -> String {
            "\n" + text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") + "\n"
        }
        var result = notes
        var held = notes.map(lines) ?? "\n"
        for note in added {
            let noteLines = lines(note)
            guard !held.contains(noteLines) else { continue }
            result = result.map { $0 + "\n" + note } ?? note
            held += noteLines.dropFirst()  // the lines of result, kept as it grows
        }
        return result
    }

    @discardableResult
    /// `fillOnly`: set only the fields the lead has no value for (an older message's).
    private func applyCustomValues(_ values: [Ingest.CustomValue], leadID: Int64, fillOnly: Bool = false, db: Database) throws -> Bool {
        guard !values.isEmpty else { return false }
        let upsert = try RawStatement(db, sql: fillOnly ? """
            INSERT OR IGNORE INTO lead_custom_values (lead_id, field_id, value, number) VALUES (?, ?, ?, ?)
            """ : """
            INSERT INTO lead_custom_values (lead_id, field_id, value, number) VALUES (?, ?, ?, ?)
            ON CONFLICT (lead_id, field_id) DO UPDATE SET value = excluded.value, number = excluded.number
            WHERE value IS NOT excluded.value
            """)
        var changed = false
        for custom in values {
            upsert.bind(1, leadID)
            upsert.bind(2, try customFieldID(label: custom.label, db: db))
            upsert.bind(3, custom.value)
            upsert.bind(4, NumberText.parseAmount(custom.value))
            try upsert.run()
            if upsert.changes > 0 { changed = true }
        }
        return changed
    }

    @discardableResult
    private func applyTags(_ tags: [String], leadID: Int64, db: Database) throws -> Bool {
        guard !tags.isEmpty else { return false }
        let insert = try RawStatement(db, sql: "INSERT OR IGNORE INTO lead_tags (lead_id, tag) VALUES (?, ?)")
        var changed = false
        for tag in tags {
            insert.bind(1, leadID)
            insert.bind(2, tag)
            try insert.run()
            if insert.changes > 0 { changed = true }
        }
        return changed
    }

    // MARK: - Dictionaries

    func typeID(for name: String, db: Database) throws -> Int {
        if let id = typeIDs[name] { return id }
        let id = try Self.dictionaryID(
            select: "SELECT id FROM event_types WHERE name = ?", insert: "INSERT INTO event_types (name) VALUES (?)",
            key: name, arguments: [name], db: db)
        typeIDs[name] = Int(id)
        return Int(id)
    }

    private var rawContentKeys: Bool?

    /// Whether the store held events before content keys were canonical (migration v14).
    func storeMayHoldRawContentKeys(_ db: Database) throws -> Bool {
        if let rawContentKeys { return rawContentKeys }
        let fact = try Schema.fact("raw_content_keys", in: db)
        rawContentKeys = fact
        return fact
    }

    /// The store's spelling of a source, cached for the run like the other dictionaries.
    private func canonicalSource(_ source: String, db: Database) throws -> String {
        if let spelling = sourceSpellings[source] { return spelling }
        let spelling = try SourceSpellings.canonical(source, in: db)
        sourceSpellings[source] = spelling
        return spelling
    }

    private func customFieldID(label: String, db: Database) throws -> Int64 {
        let key = FieldName.normalize(label)
        if let id = customFieldIDs[key] { return id }
        let id = try Self.dictionaryID(
            select: "SELECT id FROM custom_fields WHERE key = ?", insert: "INSERT INTO custom_fields (key, label) VALUES (?, ?)",
            key: key, arguments: [key, label], db: db)
        customFieldIDs[key] = id
        return id
    }

    /// A dictionary row's id, added when new. Looked up first: API requests start with empty
    /// caches and almost always find the row, and the statements stay prepared across requests.
    private static func dictionaryID(select: String, insert: String, key: String, arguments: StatementArguments,
                                     db: Database) throws -> Int64 {
        if let id = try Int64.fetchOne(db.cachedStatement(sql: select), arguments: [key]) { return id }
        try db.cachedStatement(sql: insert).execute(arguments: arguments)
        return db.lastInsertedRowID
    }
}
