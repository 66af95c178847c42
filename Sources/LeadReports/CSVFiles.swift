import Foundation
import GRDB
import LeadStore

/// The report's CSV files. Aggregates come straight from the snapshot's `LeadStats`; leads.csv
/// is streamed a keyset page at a time.
enum CSVFiles {
    static let leadsHeader = [
        "id", "external_id", "first_name", "last_name", "email", "company", "source", "status", "score",
        "probability", "model_version", "assigned_to", "created_at", "last_activity_at",
    ]

    /// Every lead of the period, oldest first. Returns the row count.
    static func writeLeads(to url: URL, period: Reports.Period, reader: any DatabaseReader,
                           isCancelled: () -> Bool = { false }) throws -> Int {
        let csv = try CSVWriter(url: url)
        try csv.writeHeader(leadsHeader)
        try LeadRecord.forEach(period.filter, chunkSize: 2000, reader: reader) { leads in
            if isCancelled() { throw CancellationError() }
            for lead in leads {
                try csv.write([
                    String(lead.id), CSVWriter.text(lead.externalID), CSVWriter.text(lead.firstName),
                    CSVWriter.text(lead.lastName), CSVWriter.text(lead.email), CSVWriter.text(lead.company),
                    CSVWriter.text(lead.source), CSVWriter.text(lead.status), CSVWriter.number(lead.score),
                    CSVWriter.number(lead.probability), CSVWriter.text(lead.modelVersion), CSVWriter.text(lead.assignedTo),
                    CSVWriter.timestamp(lead.createdAt), CSVWriter.timestamp(lead.lastActivityAt),
                ])
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
