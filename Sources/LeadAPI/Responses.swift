import Foundation
import Hummingbird
import LeadScoring
import LeadStore

/// `{"data": …}`: single records and stats.
struct DataResponse<Payload: Encodable & Sendable>: ResponseEncodable, Sendable {
    let data: Payload
}

/// A list short enough to send whole (keys, models, reports, a lead's duplicates), in the
/// envelope every list has: one page holding everything.
struct WholeList<Item: Encodable & Sendable>: ResponseEncodable, Sendable {
    let data: [Item]
    let meta: ListMeta
    let links: ListLinks

    init(_ data: [Item], path: String, latest: String? = nil) {
        self.data = data
        meta = .whole(count: data.count)
        links = .whole(path: path, latest: latest)
    }
}

/// Offset and keyset pagination, in one shape: with `cursor=` the page numbers are null.
struct ListMeta: JSONWritable, Encodable, Sendable {
    var currentPage: Int?
    var lastPage: Int?
    var perPage: Int
    var total: Int
    var from: Int?
    var to: Int?
    var nextCursor: String?

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("current_page"); json.value(currentPage)
        json.key("last_page"); json.value(lastPage)
        json.key("per_page"); json.value(perPage)
        json.key("total"); json.value(total)
        json.key("from"); json.value(from)
        json.key("to"); json.value(to)
        json.key("next_cursor"); json.value(nextCursor)
        json.endObject()
    }

    private enum CodingKeys: String, CodingKey {
        case currentPage = "current_page", lastPage = "last_page", perPage = "per_page", total, from, to
        case nextCursor = "next_cursor"
    }

    /// Nulls written out, as on the paginated lists: a client reads every key on every list.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(currentPage, forKey: .currentPage)
        try container.encode(lastPage, forKey: .lastPage)
        try container.encode(perPage, forKey: .perPage)
        try container.encode(total, forKey: .total)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

struct ListLinks: JSONWritable, Encodable, Sendable {
    var first: String?
    var last: String?
    var prev: String?
    var next: String?
    var current: String
    /// The newest report's index, on the reports list only.
    var latest: String?

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("first"); json.value(first)
        json.key("last"); json.value(last)
        json.key("prev"); json.value(prev)
        json.key("next"); json.value(next)
        json.key("self"); json.value(current)
        if let latest { json.key("latest"); json.value(latest) }
        json.endObject()
    }

    private enum CodingKeys: String, CodingKey { case first, last, prev, next, current = "self", latest }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(first, forKey: .first)
        try container.encode(last, forKey: .last)
        try container.encode(prev, forKey: .prev)
        try container.encode(next, forKey: .next)
        try container.encode(current, forKey: .current)
        try container.encodeIfPresent(latest, forKey: .latest)
    }

    /// The links of a keyset page: `next` carries the cursor of the page after it; a keyset
    /// list has no last or previous page.
    static func keyset(path: String, query: [(String, String)], nextCursor: String?) -> ListLinks {
        ListLinks(
            first: url(path: path, query: query, setting: [], removing: ["cursor", "page"]),
            last: nil, prev: nil,
            next: nextCursor.map { url(path: path, query: query, setting: [("cursor", $0)], removing: ["page"]) },
            current: url(path: path, query: query, setting: []))
    }

    /// The links of a list sent whole: first, last and self are the list itself.
    static func whole(path: String, latest: String? = nil) -> ListLinks {
        ListLinks(first: path, last: path, prev: nil, next: nil, current: path, latest: latest)
    }
}

extension ListMeta {
    /// One page holding the whole list.
    static func whole(count: Int) -> ListMeta {
        ListMeta(currentPage: 1, lastPage: 1, perPage: count, total: count,
                 from: count > 0 ? 1 : nil, to: count > 0 ? count : nil, nextCursor: nil)
    }

    /// A keyset page: no page numbers.
    static func keyset(perPage: Int, total: Int, nextCursor: String?) -> ListMeta {
        ListMeta(currentPage: nil, lastPage: nil, perPage: perPage, total: total, from: nil, to: nil, nextCursor: nextCursor)
    }

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

/// The lead object: flat, every key present, times as ISO 8601 UTC. Written with JSONWriter:
/// lists of 100 leads are the hot path.
struct LeadJSON: JSONWritable, Sendable {
    let lead: LeadRecord
    var factors: [FactorJSON]?
    var matchedOn: [String]?
    /// Only the id and `updated_at`: the answer to a write by a key without the read scope. A
    /// form's or a pipeline's key must not read leads by writing to them (a no-op tag on each id).
    var withheld = false

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("id"); json.value(lead.id)
        if withheld {
            json.key("updated_at"); json.date(lead.updatedAt)
            json.endObject()
            return
        }
        json.key("external_id"); json.value(lead.externalID)
        json.key("first_name"); json.value(lead.firstName)
        json.key("last_name"); json.value(lead.lastName)
        json.key("email"); json.value(lead.email)
        json.key("phone"); json.value(lead.phone)
        json.key("company"); json.value(lead.company)
        json.key("source"); json.value(lead.source)
        json.key("status"); json.value(lead.status)
        json.key("assigned_to"); json.value(lead.assignedTo)
        json.key("value"); json.value(lead.value)
        json.key("notes"); json.value(lead.notes)
        json.key("tags")
        json.beginArray()
        for tag in lead.tags { json.value(tag) }
        json.endArray()
        json.key("custom_fields")
        json.beginObject()
        for (label, value) in lead.customFields.sorted(by: { $0.key < $1.key }) {
            json.key(label)
            json.value(value)
        }
        json.endObject()
        json.key("score"); json.value(lead.score)
        json.key("probability"); json.value(lead.probability)
        json.key("model_version"); json.value(lead.modelVersion)
        json.key("scored_at"); json.date(lead.scoredAt)
        json.key("created_at"); json.date(lead.createdAt)
        json.key("updated_at"); json.date(lead.updatedAt)
        json.key("last_activity_at"); json.date(lead.lastActivityAt)
        if let factors {
            json.key("factors")
            json.beginArray()
            for factor in factors {
                json.beginObject()
                json.key("feature"); json.value(factor.feature)
                json.key("value"); json.value(factor.value)
                json.key("weight"); json.value(factor.weight)
                json.key("contribution"); json.value(factor.contribution)
                json.endObject()
            }
            json.endArray()
        }
        if let matchedOn {
            json.key("matched_on")
            json.beginArray()
            for match in matchedOn { json.value(match) }
            json.endArray()
        }
        json.endObject()
    }
}

/// `{"data": item}`.
struct WrittenData<Item: JSONWritable & Sendable>: ResponseGenerator, Sendable {
    let data: Item

    func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONWriter.response(bytes)
    }

    /// The encoded body, also what the stats cache keeps.
    var bytes: ByteBuffer {
        var json = JSONWriter(capacity: 2048)
        json.beginObject()
        json.key("data")
        data.write(to: &json)
        json.endObject()
        return json.buffer
    }
}

typealias LeadResponse = WrittenData<LeadJSON>

/// `{"data": [item, …]}`, with `meta` and `links` for a paginated list.
struct ListResponse<Item: JSONWritable & Sendable>: ResponseGenerator, Sendable {
    let data: [Item]
    var meta: ListMeta?
    var links: ListLinks?

    func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONWriter.response(bytes)
    }

    /// The encoded body, also what the list-page cache keeps.
    var bytes: ByteBuffer {
        var json = JSONWriter(capacity: 1024 + data.count * 900)
        json.beginObject()
        json.key("data")
        json.beginArray()
        for item in data { item.write(to: &json) }
        json.endArray()
        if let meta {
            json.key("meta")
            meta.write(to: &json)
        }
        if let links {
            json.key("links")
            links.write(to: &json)
        }
        json.endObject()
        return json.buffer
    }
}

/// One signed contribution to a lead's score: weight × standardized value, in logit units.
struct FactorJSON: Sendable {
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
}
