import Foundation
import GRDB

/// One lead as the API, exports and reports show it: its columns, tags and custom fields.
/// Times are unix milliseconds.
public struct LeadRecord: Sendable, Equatable {
    public var id: Int64
    public var externalID: String?
    public var email: String?
    public var phone: String?
    public var firstName: String?
    public var lastName: String?
    public var company: String?
    public var source: String?
    public var status: String
    public var assignedTo: String?
    public var notes: String?
    public var value: Double?
    public var createdAt: Int64
    public var updatedAt: Int64
    public var lastActivityAt: Int64?
    public var score: Int?
    public var probability: Double?
    public var modelVersion: String?
    public var scoredAt: Int64?
    public var tags: [String] = []
    /// Label (the header as first seen) → value.
    public var customFields: [String: String] = [:]

    static let columns = """
        id, external_id, email, phone, first_name, last_name, company, source, status, assigned_to, notes,
        value, created_at, updated_at, last_activity_at, score, probability, model_version, scored_at
        """

    init(row: Row) {
        id = row[0]
        externalID = row[1]
        email = row[2]
        phone = row[3]
        firstName = row[4]
        lastName = row[5]
        company = row[6]
        source = row[7]
        status = row[8]
        assignedTo = row[9]
        notes = row[10]
        value = row[11]
        createdAt = row[12]
        updatedAt = row[13]
        lastActivityAt = row[14]
        score = row[15]
        probability = row[16]
        modelVersion = row[17]
        scoredAt = row[18]
    }

    public static func fetch(id: Int64, in db: Database) throws -> LeadRecord? {
        try fetch(ids: [id], in: db).first
    }

    /// The leads with these ids, in the order given; ids with no lead are left out.
    public static func fetch(ids: [Int64], in db: Database) throws -> [LeadRecord] {
        guard !ids.isEmpty else { return [] }
        var byID: [Int64: LeadRecord] = [:]
        byID.reserveCapacity(ids.count)
        // Chunked so the parameter count stays far below SQLite's limit.
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
            let marks = databaseQuestionMarks(count: chunk.count)
            let arguments = StatementArguments(chunk)
            for row in try Row.fetchAll(db, sql: "SELECT \(columns) FROM leads WHERE id IN (\(marks))", arguments: arguments) {
                let record = LeadRecord(row: row)
                byID[record.id] = record
            }
            for row in try Row.fetchAll(db, sql: """
                SELECT lead_id, tag FROM lead_tags WHERE lead_id IN (\(marks)) ORDER BY lead_id, tag
                """, arguments: arguments) {
                byID[row[0]]?.tags.append(row[1])
            }
            for row in try Row.fetchAll(db, sql: """
                SELECT v.lead_id, f.label, v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id
                WHERE v.lead_id IN (\(marks))
                """, arguments: arguments) {
                byID[row[0]]?.customFields[row[1]] = row[2]
            }
        }
        return ids.compactMap { byID[$0] }
    }

    /// Every matching lead in sort order, a bounded chunk at a time (keyset pages, so memory
    /// stays flat on any store size). For exports and report CSVs.
    public static func forEach(
        _ filter: LeadFilter, sort: LeadSort = LeadSort(key: .createdAt, descending: false), chunkSize: Int = 1000,
        reader: any DatabaseReader, _ body: ([LeadRecord]) throws -> Void
    ) throws {
        var cursor: LeadCursor?
        repeat {
            let page = try reader.read { db in
                try LeadQuery.page(filter, sort: sort, after: cursor, limit: chunkSize, in: db)
            }
            if !page.leads.isEmpty { try body(page.leads) }
            cursor = page.next
        } while cursor != nil
    }
}
