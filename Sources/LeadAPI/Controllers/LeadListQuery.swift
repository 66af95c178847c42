import Foundation
import Hummingbird
import LeadIngest
import LeadStore

/// The filters, sort and page a list, an export or the stats were asked for. Every problem is
/// collected, so one 422 names every bad parameter.
struct LeadListQuery {
    var filter = LeadFilter()
    var sort = LeadSort()
    var page = 1
    var perPage = APILimits.defaultPerPage
    var cursor: LeadCursor?
    /// `cursor` as sent (trimmed, nil when empty): a lead list's reads it as ``cursor``, lists
    /// of one lead's rows as their own.
    var cursorToken: String?
    /// The query string as received, for building links.
    var items: [(String, String)] = []

    static let sortKeys = LeadSort.Key.allCases.map(\.rawValue)

    /// What the parameters are read for; each takes its own names, and any other is a 422, so a
    /// misspelt filter (`min_scor=80`) is never answered with every lead.
    enum Use {
        /// GET /leads: filters, sort and page.
        case list
        /// GET /leads/stats: filters. A list's sort and page are accepted and ignored, so a
        /// dashboard can send the stats the query string of the list it shows.
        case stats
        /// GET /leads/export: filters and sort; a page is refused (it streams every row).
        case export
        /// A lead's own lists (timeline, duplicates): page and cursor only.
        case sublist
    }

    static let filterNames: Set<String> = [
        "status", "source", "tag", "assigned_to", "search", "created_after", "created_before", "min_score", "max_score", "scored",
    ]
    static let sortNames: Set<String> = ["sort", "direction", "order"]
    static let pageNames: Set<String> = ["page", "per_page", "cursor"]
    static let namedUnknownLimit = 20

    static func names(for use: Use) -> Set<String> {
        switch use {
        case .list, .stats, .export: filterNames.union(sortNames).union(pageNames)
        case .sublist: pageNames
        }
    }

    /// `use` says which parameters are taken (``Use``). A lead's own lists read `cursor` as
    /// their own (``LeadSublistCursor``); the export refuses a page rather than answering it
    /// with all the rows.
    init(_ request: Request, use: Use = .list) throws {
        // Decoded here rather than by `uri.queryParameters`, which keeps "+" as a plus: clients
        // that encode a space as "+" (forms, URLSearchParams, urlencode) would filter by "a+b".
        items = FormEncoding.fields(request.uri.query ?? "")
        var errors: [String: [String]] = [:]
        func fail(_ field: String, _ message: String) { errors[field, default: []].append(message) }
        let accepted = Self.names(for: use)
        var first: [String: String] = [:]
        for (key, value) in items {
            // `_=1700000000` is how jQuery and others bust caches: never a filter.
            guard accepted.contains(key) || key.hasPrefix("_") else {
                // The first few are named; thousands would make the 422 larger than the request.
                if errors[key] == nil && errors.count < Self.namedUnknownLimit {
                    let documented = accepted.subtracting(["order"]).sorted()  // `order`: an alias of direction
                    fail(key, "is not a parameter here; the parameters are \(documented.joined(separator: ", "))")
                }
                continue
            }
            // A blank value is no value (a form's empty input): it neither filters nor conflicts.
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let earlier = first[key] else { first[key] = value; continue }
            // Statuses are a list: status=new&status=lost is status=new,lost. Any other
            // parameter sent twice must say the same both times, unless this use ignores it.
            if key == "status" {
                first[key] = earlier + "," + value
            } else if earlier.trimmingCharacters(in: .whitespaces) != trimmed, errors[key] == nil,
                      !(use == .stats && (Self.pageNames.contains(key) || Self.sortNames.contains(key))) {
                fail(key, "is given twice with different values")
            }
        }
        if let direction = first["direction"], let order = first["order"],
           direction.trimmingCharacters(in: .whitespaces).lowercased() != order.trimmingCharacters(in: .whitespaces).lowercased(),
           use != .stats {
            fail("direction", "and order (its alias) say different things; send one")
        }
        let paged = use != .export
        let leadCursor = use != .sublist
        func text(_ name: String) -> String? {
            guard let value = first[name] else { return nil }
            // SQLite ends a bound string at a NUL: "a%00b" would filter by "a".
            if value.utf8.contains(0) {
                fail(name, "must not contain a NUL character")
                return nil
            }
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty ? nil : trimmed
        }
        func integer(_ name: String, in range: ClosedRange<Int>) -> Int? {
            guard let raw = text(name) else { return nil }
            guard let value = Int(raw), range.contains(value) else {
                fail(name, "must be an integer from \(range.lowerBound) to \(range.upperBound)")
                return nil
            }
            return value
        }

        if let statuses = text("status") {
            filter.statuses = statuses.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                .filter { !$0.isEmpty }
        }
        filter.source = text("source")
        filter.tag = text("tag")
        if let assigned = text("assigned_to") {
            filter.assignedTo = Assignee.meansNone(assigned) ? .unassigned : .user(assigned)
        }
        filter.search = text("search")
        if let search = filter.search, search.count > 200 { fail("search", "must be at most 200 characters") }
        /// A date-time whose offset sign came as an unencoded "+", which reads as a space:
        /// "2026-01-01T10:00:00 02:00" is "2026-01-01T10:00:00+02:00".
        func dateTime(_ name: String) -> String? {
            guard let value = text(name) else { return nil }
            guard let t = value.firstIndex(where: { $0 == "T" || $0 == "t" }), let space = value.lastIndex(of: " "), space > t
            else { return value }
            return value.replacingCharacters(in: space...space, with: "+")
        }
        if let after = dateTime("created_after") {
            if let millis = Timestamp.parseISO8601(after) { filter.createdFrom = millis } else {
                fail("created_after", "must be a date (YYYY-MM-DD) or an ISO 8601 date-time")
            }
        }
        if let before = dateTime("created_before") {
            // A bare date includes that whole day; a date-time is exact.
            if let millis = Timestamp.parseEnd(before) {
                filter.createdUntil = millis
            } else {
                fail("created_before", "must be a date (YYYY-MM-DD) or an ISO 8601 date-time")
            }
        }
        filter.minScore = integer("min_score", in: 0...100)
        filter.maxScore = integer("max_score", in: 0...100)
        if let min = filter.minScore, let max = filter.maxScore, min > max {
            fail("min_score", "must not be above max_score")
        }
        if let scored = text("scored") {
            switch scored.lowercased() {
            case "true", "1", "yes": filter.scored = true
            case "false", "0", "no": filter.scored = false
            default: fail("scored", "must be true or false")
            }
        }
        if let sortName = text("sort") {
            if let key = LeadSort.Key(rawValue: sortName) { sort.key = key } else {
                fail("sort", "must be one of \(Self.sortKeys.joined(separator: ", "))")
            }
        }
        if let direction = text("direction") ?? text("order") {
            switch direction.lowercased() {
            case "asc": sort.descending = false
            case "desc": sort.descending = true
            default: fail("direction", "must be asc or desc")
            }
        }
        if use == .stats {
            // Taken for the list's sake, and left unread: the stats cover every matching lead.
        } else if paged {
            page = integer("page", in: 1...1_000_000) ?? 1
            perPage = integer("per_page", in: 1...APILimits.maxPerPage) ?? APILimits.defaultPerPage
            cursorToken = text("cursor")
        } else {
            for name in ["page", "per_page", "cursor"] where text(name) != nil {
                fail(name, "is not taken here: the export streams every matching row in the sort asked for; narrow it with the filters")
            }
        }
        if leadCursor, let token = cursorToken {
            if let cursor = LeadCursor(token: token) {
                if cursor.sort != sort {
                    fail("cursor", "was made for another sort; send the same sort and direction")
                } else {
                    self.cursor = cursor
                }
            } else {
                fail("cursor", "is not a cursor this API issued")
            }
        }
        if !errors.isEmpty {
            throw APIError(.validationFailed, "invalid query parameters: \(errors.keys.sorted().joined(separator: ", "))",
                           errors: errors)
        }
    }
}
