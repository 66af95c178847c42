import Foundation
import GRDB
import LeadStore

/// A lead to put straight into a test store, bypassing ingestion (whose own tests cover it).
struct TestLead {
    var externalID: String
    var email: String? = nil
    var phone: String? = nil
    var company: String? = nil
    var source: String? = nil
    var status: String = "new"
    var createdAt: Int64 = 0
    var value: Double? = nil
    /// Custom field label → text; numeric text also fills the parsed number.
    var custom: [String: String] = [:]
    var events: [(type: String, millis: Int64)] = []
}

enum TestStore {
    static let day: Int64 = 86_400_000

    /// An in-memory store holding `leads`. With `eventRows`, events are inserted into the events
    /// table too (windowed counts read it); the activity aggregate is always written.
    static func make(_ leads: [TestLead], eventRows: Bool = true) throws -> LeadStore {
        let store = try LeadStore.inMemory()
        try insert(leads, into: store, eventRows: eventRows)
        return store
    }

    static func insert(_ leads: [TestLead], into store: LeadStore, eventRows: Bool = true) throws {
        try store.writer.write { db in
            var typeIDs = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT name, id FROM event_types").map { ($0[0] as String, $0[1] as Int) })
            var fieldIDs = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT label, id FROM custom_fields").map { ($0[0] as String, $0[1] as Int64) })
            var dedupe = try Int64.fetchOne(db, sql: "SELECT coalesce(max(dedupe_key), 0) FROM events") ?? 0
            // The SQLite C API through RawStatement: GRDB's boxed arguments make a 200K-lead
            // store take a minute in a debug build.
            let insertLead = try RawStatement(db, sql: """
                INSERT INTO leads (external_id, email, phone, phone_digits, company, source, status, value, created_at,
                                   updated_at, last_activity_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let insertCustom = try RawStatement(db, sql: "INSERT INTO lead_custom_values (lead_id, field_id, value, number) VALUES (?, ?, ?, ?)")
            let insertEvent = try RawStatement(db, sql: "INSERT INTO events (id, lead_id, occurred_at, type_id, dedupe_key) VALUES (?4, ?1, ?2, ?3, ?4)")
            let insertActivity = try RawStatement(db, sql: """
                INSERT INTO lead_activity (lead_id, event_count, first_at, last_at, type_counts, type_last_at) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for lead in leads {
                var activity = LeadActivity()
                var typeOfEvent: [Int] = []
                for event in lead.events {
                    let typeID: Int
                    if let known = typeIDs[event.type] { typeID = known } else {
                        try db.execute(sql: "INSERT INTO event_types (name) VALUES (?)", arguments: [event.type])
                        typeID = Int(db.lastInsertedRowID)
                        typeIDs[event.type] = typeID
                    }
                    activity.add(typeID: typeID, at: event.millis)
                    typeOfEvent.append(typeID)
                }
                insertLead.bind(1, lead.externalID)
                insertLead.bind(2, lead.email?.lowercased())
                insertLead.bind(3, lead.phone)
                insertLead.bind(4, lead.phone.map { String($0.filter(\.isNumber)) })
                insertLead.bind(5, lead.company)
                insertLead.bind(6, lead.source)
                insertLead.bind(7, lead.status)
                insertLead.bind(8, lead.value)
                insertLead.bind(9, lead.createdAt)
                insertLead.bind(10, lead.createdAt)
                insertLead.bind(11, lead.events.isEmpty ? nil : activity.lastAt)
                try insertLead.run()
                let id = db.lastInsertedRowID
                for (label, text) in lead.custom.sorted(by: { $0.key < $1.key }) {
                    let fieldID: Int64
                    if let known = fieldIDs[label] { fieldID = known } else {
                        try db.execute(sql: "INSERT INTO custom_fields (key, label) VALUES (?, ?)", arguments: [FieldName.normalize(label), label])
                        fieldID = db.lastInsertedRowID
                        fieldIDs[label] = fieldID
                    }
                    insertCustom.bind(1, id)
                    insertCustom.bind(2, fieldID)
                    insertCustom.bind(3, text)
                    insertCustom.bind(4, Double(text))
                    try insertCustom.run()
                }
                guard !lead.events.isEmpty else { continue }
                if eventRows {
                    for (event, typeID) in zip(lead.events, typeOfEvent) {
                        dedupe += 1
                        insertEvent.bind(1, id)
                        insertEvent.bind(2, event.millis)
                        insertEvent.bind(3, Int64(typeID))
                        insertEvent.bind(4, dedupe)
                        try insertEvent.run()
                    }
                }
                insertActivity.bind(1, id)
                insertActivity.bind(2, activity.eventCount)
                insertActivity.bind(3, activity.firstAt)
                insertActivity.bind(4, activity.lastAt)
                insertActivity.bind(5, blob: Float64Blob.bytes(activity.counts))
                insertActivity.bind(6, blob: Float64Blob.bytes(activity.lastAtByType))
                try insertActivity.run()
            }
        }
    }
}

/// A small deterministic generator for tests.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
