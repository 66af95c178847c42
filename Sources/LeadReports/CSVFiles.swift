import Foundation
import GRDB
import GRDBSQLite
import LeadStore

/// The report's CSV files. Aggregates come straight from the snapshot's `LeadStats`; leads.csv
/// is streamed a keyset page at a time.
enum CSVFiles {
    static let leadsHeader = [
        "id", "external_id", "first_name", "last_name", "email", "company", "source", "status", "score",
        "probability", "model_version", "assigned_to", "created_at", "last_activity_at", "updated_at",
    ]

    /// Every lead of the period, in id (arrival) order. Returns the row count.
    ///
    /// Not `LeadRecord.forEach`: its keyset pages in created_at order visit the table in random
    /// order (a 1.14M-lead store took 86 s). One statement in rowid order reads it sequentially,
    /// through a cursor, so memory stays flat; and the report needs no tags or custom fields.
    static func writeLeads(to url: URL, period: Reports.Period, reader: any DatabaseReader,
                           isCancelled: () -> Bool = { false }) throws -> Int {
        let csv = try CSVWriter(url: url)
        try csv.writeHeader(leadsHeader)
        try reader.read { db in
            let filter = period.filter
            let (conditions, arguments) = filter.whereClause()
            let statement = try db.makeStatement(sql: """
                SELECT id, external_id, first_name, last_name, email, company, source, status, score,
                       probability, model_version, assigned_to, created_at, last_activity_at, updated_at
                FROM leads \(try LeadStats.scanHint(filter, in: db)) WHERE \(conditions) ORDER BY id
                """)
            try statement.setArguments(arguments)
            // The C API on the hot path: column bytes go straight into the CSV buffer, with no
            // String or boxed value per field (GRDB rows cost several seconds per million leads).
            let handle = statement.sqliteStatement
            func text(_ column: Int32) -> UnsafeBufferPointer<UInt8>? {
                guard sqlite3_column_type(handle, column) != SQLITE_NULL, let bytes = sqlite3_column_text(handle, column) else { return nil }
                return UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column)))
            }
            func integer(_ column: Int32) -> Int64? {
                sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, column)
            }
            func real(_ column: Int32) -> Double? {
                sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : sqlite3_column_double(handle, column)
            }
            while true {
                let code = sqlite3_step(handle)
                if code == SQLITE_DONE { break }
                guard code == SQLITE_ROW else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                }
                if csv.rows % 10_000 == 0, isCancelled() { throw CancellationError() }
                csv.field(integer(0))
                for column: Int32 in 1...7 { csv.field(utf8: text(column), guardFormula: true) }
                csv.field(integer(8))
                csv.field(real(9))
                csv.field(utf8: text(10), guardFormula: true)
                csv.field(utf8: text(11), guardFormula: true)
                csv.field(timestamp: integer(12))
                csv.field(timestamp: integer(13))
                // Ingested back, it keeps an edited row from undoing a change made since.
                csv.field(timestamp: integer(14))
                try csv.endRow()
            }
        }
        try csv.close()
        return csv.rows
    }

    static func writeBySource(to url: URL, stats: LeadStats) throws -> Int {
        let csv = try CSVWriter(url: url)
        try csv.writeHeader(["source", "leads", "converted", "conversion_rate", "average_score", "expected_conversions"])
        for row in stats.bySource {
            try csv.write([
                CSVWriter.text(row.source), String(row.count), String(row.converted), CSVWriter.number(row.conversionRate),
                CSVWriter.number(row.averageScore), CSVWriter.number(row.expectedConversions),
            ])
        }
        try csv.close()
        return csv.rows
    }

    static func writeByStatus(to url: URL, stats: LeadStats) throws -> Int {
        let csv = try CSVWriter(url: url)
        try csv.writeHeader(["status", "leads", "share", "average_score"])
        for status in Reports.pipelineOrder(stats.byStatus.keys) {
            let count = stats.byStatus[status] ?? 0
            try csv.write([
                CSVWriter.text(status), String(count),
                CSVWriter.number(stats.total > 0 ? Double(count) / Double(stats.total) : 0),
                CSVWriter.number(stats.averageScoreByStatus[status]),
            ])
        }
        try csv.close()
        return csv.rows
    }

    static func writeScoreBuckets(to url: URL, stats: LeadStats) throws -> Int {
        let csv = try CSVWriter(url: url)
        try csv.writeHeader(["min_score", "max_score", "leads", "converted", "conversion_rate"])
        for bucket in stats.scoreHistogram {
            try csv.write([
                String(bucket.min), String(bucket.max), String(bucket.count), String(bucket.converted),
                CSVWriter.number(bucket.conversionRate),
            ])
        }
        try csv.close()
        return csv.rows
    }

    static func writeDaily(to url: URL, stats: LeadStats) throws -> Int {
        let csv = try CSVWriter(url: url)
        try csv.writeHeader(["date", "new_leads"])
        for day in stats.daily { try csv.write([day.date, String(day.new)]) }
        try csv.close()
        return csv.rows
    }
}

extension Reports {
    /// The usual pipeline stages first, then any other status alphabetically.
    static let pipelineStages = ["new", "contacted", "qualified", "converted", "lost", "disqualified", "closed"]

    static func pipelineOrder(_ statuses: some Sequence<String>) -> [String] {
        statuses.sorted { a, b in
            let (ia, ib) = (pipelineStages.firstIndex(of: a) ?? .max, pipelineStages.firstIndex(of: b) ?? .max)
            return ia != ib ? ia < ib : a < b
        }
    }
}
