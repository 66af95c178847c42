import Foundation
import Hummingbird
import LeadIngest
import LeadStore
import NIOCore

/// GET /leads/stats.
struct StatsJSON: Encodable, Sendable {
    let stats: LeadStats

    init(_ stats: LeadStats) { self.stats = stats }

    enum CodingKeys: String, CodingKey {
        case total, converted, conversionRate = "conversion_rate", scored, avgScore = "avg_score"
        case expectedConversions = "expected_conversions", byStatus = "by_status", bySource = "by_source"
        case scoreHistogram = "score_histogram", avgScoreByStatus = "avg_score_by_status", daily
    }

    struct Source: Encodable {
        let row: LeadStats.SourceRow
        enum CodingKeys: String, CodingKey {
            case source, count, converted, conversionRate = "conversion_rate", avgScore = "avg_score"
            case expectedConversions = "expected_conversions"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(row.source, forKey: .source)
            try c.encode(row.count, forKey: .count)
            try c.encode(row.converted, forKey: .converted)
            try c.encode(row.conversionRate, forKey: .conversionRate)
            try c.encode(row.averageScore, forKey: .avgScore)
            try c.encode(row.expectedConversions, forKey: .expectedConversions)
        }
    }

    struct Bucket: Encodable {
        let bucket: LeadStats.Bucket
        enum CodingKeys: String, CodingKey { case min, max, count, converted, conversionRate = "conversion_rate" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(bucket.min, forKey: .min)
            try c.encode(bucket.max, forKey: .max)
            try c.encode(bucket.count, forKey: .count)
            try c.encode(bucket.converted, forKey: .converted)
            try c.encode(bucket.conversionRate, forKey: .conversionRate)
        }
    }

    struct Day: Encodable {
        let date: String
        let new: Int
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stats.total, forKey: .total)
        try c.encode(stats.converted, forKey: .converted)
        try c.encode(stats.conversionRate, forKey: .conversionRate)
        try c.encode(stats.scored, forKey: .scored)
        try c.encode(stats.averageScore, forKey: .avgScore)
        try c.encode(stats.expectedConversions, forKey: .expectedConversions)
        try c.encode(stats.byStatus, forKey: .byStatus)
        try c.encode(stats.bySource.map(Source.init), forKey: .bySource)
        try c.encode(stats.scoreHistogram.map(Bucket.init), forKey: .scoreHistogram)
        try c.encode(stats.averageScoreByStatus, forKey: .avgScoreByStatus)
        try c.encode(stats.daily.map { Day(date: $0.date, new: $0.new) }, forKey: .daily)
    }
}

/// One timeline entry: an ingested event, or a recorded change.
struct TimelineJSON: Encodable, Sendable {
    let entry: LeadMutations.TimelineEntry

    init(_ entry: LeadMutations.TimelineEntry) { self.entry = entry }

    enum CodingKeys: String, CodingKey {
        case kind, at, type, value, properties, oldValue = "old_value", newValue = "new_value", detail
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(entry.kind, forKey: .kind)
        try c.encode(APIDate.string(entry.at), forKey: .at)
        try c.encode(entry.type, forKey: .type)
        try c.encode(entry.value, forKey: .value)
        try c.encode(entry.properties.flatMap(RawJSON.init), forKey: .properties)
        try c.encode(entry.oldValue, forKey: .oldValue)
        try c.encode(entry.newValue, forKey: .newValue)
        try c.encode(entry.detail.flatMap(RawJSON.init), forKey: .detail)
    }
}

/// JSON text stored as received, re-encoded as a value rather than a string.
struct RawJSON: Encodable {
    let value: JSONValue

    init?(_ text: String) {
        guard let value = try? JSONParser.parse(text) else { return nil }
        self.value = value
    }

    func encode(to encoder: any Encoder) throws {
        try Self.encode(value, to: encoder)
    }

    private static func encode(_ value: JSONValue, to encoder: any Encoder) throws {
        switch value {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .number(let n):
            var c = encoder.singleValueContainer()
            try c.encode(n)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let elements):
            var c = encoder.unkeyedContainer()
            for element in elements { try c.encode(RawJSONElement(value: element)) }
        case .object(let object):
            var c = encoder.container(keyedBy: AnyKey.self)
            for member in object.members { try c.encode(RawJSONElement(value: member.value), forKey: AnyKey(member.key)) }
        }
    }

    struct RawJSONElement: Encodable {
        let value: JSONValue
        func encode(to encoder: any Encoder) throws { try RawJSON.encode(value, to: encoder) }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
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
struct RejectJSON: Encodable, Sendable {
    let line: Int?
    let index: Int?
    let field: String?
    let reason: String

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let line { try c.encode(line, forKey: .line) }
        if let index { try c.encode(index, forKey: .index) }
        try c.encode(field, forKey: .field)
        try c.encode(reason, forKey: .reason)
    }

    enum CodingKeys: String, CodingKey { case line, index, field, reason }
}

struct ImportJSON: Encodable, Sendable {
    let leadsCreated: Int
    let leadsUpdated: Int
    let leadsUnchanged: Int
    let rejected: Int
    let rejects: [RejectJSON]

    init(_ result: Ingest.RequestResult) {
        leadsCreated = result.counts.leadsCreated
        leadsUpdated = result.counts.leadsUpdated
        leadsUnchanged = result.counts.leadsUnchanged
        rejected = result.counts.rejected
        rejects = result.rejects.map { RejectJSON(line: $0.index, index: nil, field: $0.field, reason: $0.reason) }
    }

    enum CodingKeys: String, CodingKey {
        case leadsCreated = "leads_created", leadsUpdated = "leads_updated", leadsUnchanged = "leads_unchanged"
        case rejected, rejects
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

    static func write(_ lead: LeadRecord, to buffer: inout ByteBuffer) {
        let custom: String? = lead.customFields.isEmpty ? nil : (try? JSONSerialization.data(
            withJSONObject: lead.customFields, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        let fields: [String?] = [
            String(lead.id), lead.externalID, lead.firstName, lead.lastName, lead.email, lead.phone, lead.company,
            lead.source, lead.status, lead.assignedTo, lead.value.map { String($0) }, lead.notes,
            lead.tags.isEmpty ? nil : lead.tags.joined(separator: ";"), custom, lead.score.map(String.init),
            lead.probability.map { String($0) }, lead.modelVersion, lead.scoredAt.map(APIDate.string),
            APIDate.string(lead.createdAt), APIDate.string(lead.updatedAt), lead.lastActivityAt.map(APIDate.string),
        ]
        for (index, field) in fields.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            if let field { buffer.writeString(quoted(field)) }
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
