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

    /// The row `statement` stands on, its columns in ``columns`` order.
    init(_ statement: RawStatement) {
        id = statement.int64(0)
        externalID = statement.text(1)
        email = statement.text(2)
        phone = statement.text(3)
        firstName = statement.text(4)
        lastName = statement.text(5)
        company = statement.text(6)
        source = statement.text(7)
        status = statement.text(8) ?? LeadStatus.defaultStatus
        assignedTo = statement.text(9)
        notes = statement.text(10)
        value = statement.double(11)
        createdAt = statement.int64(12)
        updatedAt = statement.int64(13)
        lastActivityAt = statement.isNull(14) ? nil : statement.int64(14)
        score = statement.isNull(15) ? nil : Int(statement.int64(15))
        probability = statement.double(16)
        modelVersion = statement.text(17)
        scoredAt = statement.isNull(18) ? nil : statement.int64(18)
    }

    public static func fetch(id: Int64, in db: Database) throws -> LeadRecord? {
        try fetch(ids: [id], in: db).first
    }

    /// The leads with these ids, in the order given; ids with no lead are left out.
    /// The id-list lengths ``fetch(ids:in:)`` prepares statements for: one lead, the API's
    /// default and largest pages, and the export's chunk.
    static let idListLengths = [1, 25, 100, 500]

    public static func fetch(ids: [Int64], in db: Database) throws -> [LeadRecord] {
        guard !ids.isEmpty else { return [] }
        var byID: [Int64: LeadRecord] = [:]
        byID.reserveCapacity(ids.count)
        // Chunked so the parameter count stays far below SQLite's limit.
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
            // The id list is padded (repeating its last id, which IN ignores) to one of a few
            // lengths, so the statements stay prepared: parsing them was a fifth of a list request.
            let padded = Self.idListLengths.first { $0 >= chunk.count } ?? chunk.count
            let marks = databaseQuestionMarks(count: padded)
            let arguments = chunk + repeatElement(chunk[chunk.count - 1], count: padded - chunk.count)
            // Rows are read in place through the C API: copying each into a GRDB Row and
            // decoding it took a quarter of a list request.
            func each(_ sql: String, _ body: (RawStatement) -> Void) throws {
                let statement = try RawStatement(db, sql: sql)
                defer { statement.reset() }
                for (index, id) in arguments.enumerated() { statement.bind(Int32(index + 1), id) }
                while try statement.step() { body(statement) }
            }
            try each("SELECT \(columns) FROM leads WHERE id IN (\(marks))") { row in
                let record = LeadRecord(row)
                byID[record.id] = record
            }
            try each("SELECT lead_id, tag FROM lead_tags WHERE lead_id IN (\(marks)) ORDER BY lead_id, tag") { row in
                if let tag = row.text(1) { byID[row.int64(0)]?.tags.append(tag) }
            }
            try each("""
                SELECT v.lead_id, f.label, v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id
                WHERE v.lead_id IN (\(marks))
                """) { row in
                if let label = row.text(1), let value = row.text(2) { byID[row.int64(0)]?.customFields[label] = value }
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
