import Foundation
import Hummingbird
import LeadIngest
import LeadReports
import LeadStore
import NIOCore

/// GET /leads/stats.
struct StatsJSON: JSONWritable, Sendable {
    let stats: LeadStats

    init(_ stats: LeadStats) { self.stats = stats }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("total"); json.value(stats.total)
        json.key("converted"); json.value(stats.converted)
        json.key("conversion_rate"); json.value(stats.conversionRate)
        json.key("scored"); json.value(stats.scored)
        json.key("avg_score"); json.value(stats.averageScore)
        json.key("expected_conversions"); json.value(stats.expectedConversions)
        json.key("by_status")
        json.beginObject()
        for (status, count) in stats.byStatus.sorted(by: { $0.key < $1.key }) {
            json.key(status); json.value(count)
        }
        json.endObject()
        json.key("by_source")
        json.beginArray()
        for row in stats.bySource {
            json.beginObject()
            json.key("source"); json.value(row.source)
            json.key("count"); json.value(row.count)
            json.key("converted"); json.value(row.converted)
            json.key("conversion_rate"); json.value(row.conversionRate)
            json.key("avg_score"); json.value(row.averageScore)
            json.key("expected_conversions"); json.value(row.expectedConversions)
            json.endObject()
        }
        json.endArray()
        json.key("score_histogram")
        json.beginArray()
        for bucket in stats.scoreHistogram {
            json.beginObject()
            json.key("min"); json.value(bucket.min)
            json.key("max"); json.value(bucket.max)
            json.key("count"); json.value(bucket.count)
            json.key("converted"); json.value(bucket.converted)
            json.key("conversion_rate"); json.value(bucket.conversionRate)
            json.endObject()
        }
        json.endArray()
        json.key("avg_score_by_status")
        json.beginObject()
        for (status, average) in stats.averageScoreByStatus.sorted(by: { $0.key < $1.key }) {
            json.key(status); json.value(average)
        }
        json.endObject()
        json.key("daily")
        json.beginArray()
        for day in stats.daily {
            json.beginObject()
            json.key("date"); json.value(day.date)
            json.key("new"); json.value(day.new)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }
}

/// One timeline entry: an ingested event, or a recorded change.
struct TimelineJSON: JSONWritable, Sendable {
    let entry: LeadMutations.TimelineEntry

    init(_ entry: LeadMutations.TimelineEntry) { self.entry = entry }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("kind"); json.value(entry.kind)
        json.key("at"); json.date(entry.at)
        json.key("type"); json.value(entry.type)
        json.key("value"); json.value(entry.value)
        json.key("properties"); json.rawJSON(entry.properties)
        json.key("old_value"); json.value(entry.oldValue)
        json.key("new_value"); json.value(entry.newValue)
        json.key("detail"); json.rawJSON(entry.detail)
        json.endObject()
    }
}

/// POST /leads/bulk: one result per item, by index.
struct BulkItem: Encodable, Sendable {
    var index: Int
    var leadID: Int64?
    var email: String?
    var status: String?
    var errors: [String: [String]]?

    init(index: Int, leadID: Int64, email: String?, status: String) {
        self.index = index
        self.leadID = leadID
        self.email = email
        self.status = status
    }

    init(index: Int, errors: [String: [String]]) {
        self.index = index
        self.errors = errors
    }

    enum CodingKeys: String, CodingKey { case index, leadID = "lead_id", email, status, errors }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        if let errors {
            try c.encode(errors, forKey: .errors)
        } else {
            try c.encode(leadID, forKey: .leadID)
            try c.encode(email, forKey: .email)
            try c.encode(status, forKey: .status)
        }
    }
}

struct BulkResponse: ResponseEncodable, Sendable {
    struct Meta: Encodable, Sendable {
        let created: Int
        let duplicates: Int
        let failed: Int
    }

    let data: [BulkItem]
    let meta: Meta
}

/// POST /leads/import and the events endpoint: what was written, and what was rejected.
struct RejectJSON: JSONWritable, Sendable {
    /// The CSV line (import) or the batch index (events): whichever the input has.
    enum Position: Sendable { case line(Int), index(Int) }

    let position: Position
    let field: String?
    let reason: String

    func write(to json: inout JSONWriter) {
        json.beginObject()
        switch position {
        case .line(let line): json.key("line"); json.value(line)
        case .index(let index): json.key("index"); json.value(index)
        }
        json.key("field"); json.value(field)
        json.key("reason"); json.value(reason)
        json.endObject()
    }
}

extension JSONWriter {
    mutating func rejects(_ rejects: [RejectJSON]) {
        beginArray()
        for reject in rejects { reject.write(to: &self) }
        endArray()
    }
}

struct ImportJSON: JSONWritable, Sendable {
    let result: Ingest.RequestResult

    init(_ result: Ingest.RequestResult) { self.result = result }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("leads_created"); json.value(result.counts.leadsCreated)
        json.key("leads_updated"); json.value(result.counts.leadsUpdated)
        json.key("leads_unchanged"); json.value(result.counts.leadsUnchanged)
        json.key("leads_merged"); json.value(result.counts.leadsMerged)
        json.key("stale_rows"); json.value(result.counts.staleExportRows)
        json.key("rejected"); json.value(result.counts.rejected)
        json.key("rejects")
        json.rejects(result.rejects.map { RejectJSON(position: .line($0.index), field: $0.field, reason: $0.reason) })
        json.endObject()
    }
}

/// The export's CSV (RFC 4180): the lead object's keys as the header.
enum LeadCSV {
    static let columns = [
        "id", "external_id", "first_name", "last_name", "email", "phone", "company", "source", "status",
        "assigned_to", "value", "notes", "tags", "custom_fields", "score", "probability", "model_version",
        "scored_at", "created_at", "updated_at", "last_activity_at",
    ]
    static let header = columns.joined(separator: ",") + "\r\n"
    /// Positions in `columns` of text a client supplies.
    static let clientText: Set<Int> = Set(
        ["external_id", "first_name", "last_name", "email", "phone", "company", "source", "status", "assigned_to", "notes", "tags"]
            .map { columns.firstIndex(of: $0)! })

    static func write(_ lead: LeadRecord, to buffer: inout ByteBuffer) {
        // "{}" as in the JSON, so every cell of the column parses as a JSON object.
        let custom: String? = lead.customFields.isEmpty ? "{}" : (try? JSONSerialization.data(
            withJSONObject: lead.customFields, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        let fields: [String?] = [
            String(lead.id), lead.externalID, lead.firstName, lead.lastName, lead.email, lead.phone, lead.company,
            lead.source, lead.status, lead.assignedTo, lead.value.map { String($0) }, lead.notes,
            lead.tags.isEmpty ? nil : lead.tags.joined(separator: ";"), custom, lead.score.map(String.init),
            lead.probability.map { String($0) }, lead.modelVersion, lead.scoredAt.map(ISODate.string),
            ISODate.string(lead.createdAt), ISODate.string(lead.updatedAt), lead.lastActivityAt.map(ISODate.string),
        ]
        for (index, field) in fields.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            // Text any client can send is guarded against CSV injection; the columns the
            // server writes (ids, numbers, dates, the model version) need no guard.
            if let field { buffer.writeString(quoted(clientText.contains(index) ? Reports.spreadsheetSafe(field) : field)) }
        }
        buffer.writeStaticString("\r\n")
    }

    static func quoted(_ field: String) -> String {
        guard field.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }) else {
            return field
        }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
