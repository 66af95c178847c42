import GRDB
import LeadStore
import Synchronization

extension Ingest {
    /// Properties → their `event_property_sets` row, shared by the many short writes of a
    /// long-lived process (the server gives each request a writer of its own), so events sent in
    /// different requests share rows as an ingest run's do.
    ///
    /// Add only what a committed transaction stored: the ids a rolled-back one handed out go to
    /// other properties later. A committed entry stays right for good: ids are never handed out
    /// twice (AUTOINCREMENT), and a row whose last event was deleted is made again under its id
    /// when next named (see `PropertySets.commit`).
    public final class PropertySetCache: Sendable {
        private let entries = Mutex<[String: Int64]>([:])

        public init() {}

        func id(for json: String) -> Int64? {
            entries.withLock { $0[json] }
        }

        /// Past ``BatchWriter/PropertySets/cacheLimit`` entries the cache starts over.
        public func add(_ committed: [String: Int64]) {
            guard !committed.isEmpty else { return }
            entries.withLock { entries in
                if entries.count + committed.count > BatchWriter.PropertySets.cacheLimit { entries.removeAll(keepingCapacity: true) }
                entries.merge(committed) { _, new in new }
            }
        }

        public var count: Int { entries.withLock { $0.count } }
    }
}

extension BatchWriter {
    /// One write's use of `event_property_sets`, the dictionary of event properties (migration
    /// v16): gives each event's properties a row id before the event is inserted, then, once the
    /// inserts show which events were new rather than duplicates, stores the rows this write
    /// created and adds the new references to the rows it reused.
    ///
    /// Ids for new rows are handed out past the table's AUTOINCREMENT sequence and only inserted
    /// when an inserted event names them, so a batch of duplicates leaves no row behind.
    struct PropertySets {
        let writer: BatchWriter
        private var nextID: Int64?
        /// The rows this write names: their properties (to write a new row, or to recreate a
        /// cached one that went away since), their hash once computed, and whether this write
        /// creates the row.
        private var rows: [Int64: (json: String, hash: Int64?, isNew: Bool)] = [:]
        /// Rows this write creates, by properties.
        private var createdByJSON: [String: Int64] = [:]
        /// New references per row, from the events actually inserted.
        private var references: [Int64: Int64] = [:]

        /// Properties longer than this are not cached across writes: long ones are rarely
        /// repeated, and the cache would hold their text.
        static let cachedLength = 1024
        /// Past this many entries the cache is dropped and refills, keeping memory flat.
        static let cacheLimit = 50_000

        init(writer: BatchWriter) {
            self.writer = writer
        }

        mutating func id(for json: String, db: Database) throws -> Int64 {
            // The run's cache first: it answers almost every event with one lookup. Properties
            // this write creates are never in it yet (they join it at `commit`).
            if let id = writer.propertySetIDs[json] ?? writer.sharedPropertySets?.id(for: json) {
                if rows[id] == nil { rows[id] = (json, nil, false) }
                return id
            }
            if let id = createdByJSON[json] { return id }
            // A row another process stored, or one this cache dropped: found by content, since a
            // row per process and per dropped cache had stored one object thousands of times.
            let hash = PropertySetHash.of(json)
            let stored = try RawStatement(db, sql: "SELECT id FROM event_property_sets WHERE hash = ? AND properties = ? LIMIT 1")
            stored.bind(1, hash)
            stored.bind(2, json)
            let found = try stored.step() ? stored.int64(0) : nil
            stored.reset()
            if let found {
                rows[found] = (json, hash, false)
                // A committed row (a rollback drops this cache): safe to share.
                if json.utf8.count <= Self.cachedLength { writer.propertySetIDs[json] = found }
                return found
            }
            let id = try nextID ?? (Int64.fetchOne(db, sql: """
                SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'event_property_sets'), 0),
                           coalesce((SELECT max(id) FROM event_property_sets), 0)) + 1
                """) ?? 1)
            nextID = id + 1
            rows[id] = (json, hash, true)
            createdByJSON[json] = id
            return id
        }

        /// An inserted event names row `id`.
        mutating func reference(_ id: Int64) {
            references[id, default: 0] += 1
        }

        /// Writes the rows and reference counts; call once, after the write's event inserts.
        func commit(_ db: Database) throws {
            guard !references.isEmpty else { return }
            let insert = try RawStatement(db, sql: "INSERT INTO event_property_sets (id, refs, properties, hash) VALUES (?, ?, ?, ?)")
            let addReferences = try RawStatement(db, sql: "UPDATE event_property_sets SET refs = refs + ?2 WHERE id = ?1")
            if writer.propertySetIDs.count + createdByJSON.count > Self.cacheLimit { writer.propertySetIDs.removeAll(keepingCapacity: true) }
            for (id, count) in references.sorted(by: { $0.key < $1.key }) {
                guard let (json, hash, isNew) = rows[id] else { continue }  // every reference names a row of this write
                if isNew {
                    try insertRow(insert, id: id, refs: count, json: json, hash: hash)
                    if json.utf8.count <= Self.cachedLength { writer.propertySetIDs[json] = id }
                    continue
                }
                addReferences.bind(1, id)
                addReferences.bind(2, count)
                try addReferences.run()
                if db.changesCount == 0 {
                    // Its last event was deleted on this connection since the row was cached
                    // (another connection's writes drop the cache): the id is still this
                    // properties' alone, AUTOINCREMENT never handing it out again.
                    try insertRow(insert, id: id, refs: count, json: json, hash: hash)
                }
            }
        }

        private func insertRow(_ insert: RawStatement, id: Int64, refs: Int64, json: String, hash: Int64?) throws {
            insert.bind(1, id)
            insert.bind(2, refs)
            insert.bind(3, json)
            insert.bind(4, hash ?? PropertySetHash.of(json))
            try insert.run()
        }
    }
}
