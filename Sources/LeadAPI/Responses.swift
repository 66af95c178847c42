import Foundation
import Hummingbird
import LeadScoring
import LeadStore

/// `{"data": …}`: single records and stats.
struct DataResponse<Payload: Encodable & Sendable>: ResponseEncodable, Sendable {
    let data: Payload
}

/// `{"data": […], "meta": {…}, "links": {…}}`: every list.
struct ListResponse<Item: Encodable & Sendable>: ResponseEncodable, Sendable {
    let data: [Item]
    let meta: ListMeta
    let links: ListLinks
}

/// Offset and keyset pagination, in one shape: with `cursor=` the page numbers are null.
struct ListMeta: Encodable, Sendable {
    var currentPage: Int?
    var lastPage: Int?
    var perPage: Int
    var total: Int
    var from: Int?
    var to: Int?
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case currentPage = "current_page", lastPage = "last_page", perPage = "per_page", total, from, to
        case nextCursor = "next_cursor"
    }

    // Every key is always present, null when it has no value.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(currentPage, forKey: .currentPage)
        try c.encode(lastPage, forKey: .lastPage)
        try c.encode(perPage, forKey: .perPage)
        try c.encode(total, forKey: .total)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encode(nextCursor, forKey: .nextCursor)
    }
}

struct ListLinks: Encodable, Sendable {
    var first: String?
    var last: String?
    var prev: String?
    var next: String?
    var current: String

    enum CodingKeys: String, CodingKey { case first, last, prev, next, current = "self" }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(first, forKey: .first)
        try c.encode(last, forKey: .last)
        try c.encode(prev, forKey: .prev)
        try c.encode(next, forKey: .next)
        try c.encode(current, forKey: .current)
    }
}

extension ListMeta {
    /// Page arithmetic for offset pagination: `from`/`to` are 1-based positions of the page's
    /// first and last item, null on an empty page.
    static func offset(page: Int, perPage: Int, total: Int, count: Int, nextCursor: String?) -> ListMeta {
        let lastPage = max(1, (total + perPage - 1) / perPage)
        let from = count > 0 ? (page - 1) * perPage + 1 : nil
        let to = count > 0 ? (page - 1) * perPage + count : nil
        return ListMeta(currentPage: page, lastPage: lastPage, perPage: perPage, total: total,
                        from: from, to: to, nextCursor: nextCursor)
    }
}

extension ListLinks {
    /// Links for a list at `path`, keeping the request's other query parameters.
    static func offset(path: String, query: [(String, String)], page: Int, lastPage: Int) -> ListLinks {
        func url(_ page: Int) -> String { Self.url(path: path, query: query, setting: [("page", String(page))]) }
        return ListLinks(first: url(1), last: url(lastPage), prev: page > 1 ? url(page - 1) : nil,
                         next: page < lastPage ? url(page + 1) : nil, current: url(page))
    }

    static func url(path: String, query: [(String, String)], setting replacements: [(String, String)], removing: Set<String> = []) -> String {
        let replaced = Set(replacements.map(\.0)).union(removing)
        let items = query.filter { !replaced.contains($0.0) } + replacements
        guard !items.isEmpty else { return path }
        var components = URLComponents()
        components.queryItems = items.map { URLQueryItem(name: $0.0, value: $0.1) }
        // URLComponents leaves "+" alone, which form decoding reads as a space.
        let query = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        return path + "?" + query
    }
}

/// The lead object: flat, every key present, times as ISO 8601 UTC.
struct LeadJSON: Encodable, Sendable {
    let lead: LeadRecord
    var factors: [FactorJSON]?
    var matchedOn: [String]?

    enum CodingKeys: String, CodingKey {
        case id, externalID = "external_id", firstName = "first_name", lastName = "last_name", email, phone
        case company, source, status, assignedTo = "assigned_to", value, notes, tags
        case customFields = "custom_fields", score, probability, modelVersion = "model_version"
        case scoredAt = "scored_at", createdAt = "created_at", updatedAt = "updated_at"
        case lastActivityAt = "last_activity_at", factors, matchedOn = "matched_on"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(lead.id, forKey: .id)
        try c.encode(lead.externalID, forKey: .externalID)
        try c.encode(lead.firstName, forKey: .firstName)
        try c.encode(lead.lastName, forKey: .lastName)
        try c.encode(lead.email, forKey: .email)
        try c.encode(lead.phone, forKey: .phone)
        try c.encode(lead.company, forKey: .company)
        try c.encode(lead.source, forKey: .source)
        try c.encode(lead.status, forKey: .status)
        try c.encode(lead.assignedTo, forKey: .assignedTo)
        try c.encode(lead.value, forKey: .value)
        try c.encode(lead.notes, forKey: .notes)
        try c.encode(lead.tags, forKey: .tags)
        try c.encode(lead.customFields, forKey: .customFields)
        try c.encode(lead.score, forKey: .score)
        try c.encode(lead.probability, forKey: .probability)
        try c.encode(lead.modelVersion, forKey: .modelVersion)
        try c.encode(lead.scoredAt.map(APIDate.string), forKey: .scoredAt)
        try c.encode(APIDate.string(lead.createdAt), forKey: .createdAt)
        try c.encode(APIDate.string(lead.updatedAt), forKey: .updatedAt)
        try c.encode(lead.lastActivityAt.map(APIDate.string), forKey: .lastActivityAt)
        if let factors { try c.encode(factors, forKey: .factors) }
        if let matchedOn { try c.encode(matchedOn, forKey: .matchedOn) }
    }
}

/// One signed contribution to a lead's score: weight × standardized value, in logit units.
struct FactorJSON: Encodable, Sendable {
    let feature: String
    let value: Double?
    let weight: Double
    let contribution: Double

    init(_ contribution: Explanation.Contribution) {
        feature = contribution.feature
        value = contribution.value
        weight = contribution.weight
        self.contribution = contribution.contribution
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(feature, forKey: .feature)
        try c.encode(value, forKey: .value)
        try c.encode(weight, forKey: .weight)
        try c.encode(contribution, forKey: .contribution)
    }

    enum CodingKeys: String, CodingKey { case feature, value, weight, contribution }
}

/// Times on the wire: ISO 8601 in UTC, whole seconds ("2026-11-21T10:00:00Z").
enum APIDate {
    static func string(_ millis: Int64) -> String {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let day = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - day * 86_400
        func pad(_ v: Int64) -> String { v < 10 ? "0\(v)" : String(v) }
        return "\(LeadStats.dayString(day))T\(pad(secondOfDay / 3600)):\(pad(secondOfDay / 60 % 60)):\(pad(secondOfDay % 60))Z"
    }

    /// A date ("2026-11-21", midnight UTC) or a date-time with a zone, as unix ms, and whether
    /// it was a bare date.
    static func parse(_ text: String) -> (millis: Int64, isDate: Bool)? {
        let text = text.trimmingCharacters(in: .whitespaces)
        if text.count == 10, let date = dateOnly.date(from: text) {
            return (Int64(date.timeIntervalSince1970 * 1000), true)
        }
        for formatter in dateTimes {
            if let date = formatter.date(from: text) { return (Int64((date.timeIntervalSince1970 * 1000).rounded()), false) }
        }
        return nil
    }

    nonisolated(unsafe) static let dateOnly: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withFullDate]
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()

    nonisolated(unsafe) static let dateTimes: [ISO8601DateFormatter] = {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return [plain, fractional]
    }()
}
