import Foundation
import GRDB

/// Which leads a list, an export, the stats or a report covers. Every condition is bound as a
/// parameter; nothing a client sends is ever spliced into SQL.
public struct LeadFilter: Sendable, Hashable {
    public enum Assignment: Sendable, Hashable {
        case user(String)
        case unassigned
    }

    /// Any of these statuses (empty: all).
    public var statuses: [String] = []
    public var source: String?
    public var tag: String?
    public var assignedTo: Assignment?
    /// A substring of the first or last name, email, phone or company.
    public var search: String?
    /// created_at ≥ this (unix ms).
    public var createdFrom: Int64?
    /// created_at < this (unix ms).
    public var createdUntil: Int64?
    /// Inclusive score bounds, 0–100.
    public var minScore: Int?
    public var maxScore: Int?
    public var scored: Bool?

    public init() {}

    public var isEmpty: Bool { self == LeadFilter() }

    /// The WHERE clause ("1" when there is no condition) and its arguments.
    ///
    /// - Parameter scoreViaSortIndex: write the score bounds as `+score`, which SQLite cannot
    ///   serve from the score index. A page sorted by another column then walks that column's
    ///   index and tests the score in it (created_at's index covers the score) instead of sorting
    ///   every lead in the score range: 12 ms instead of 2 s for "80–100, newest first" on a
    ///   million leads, measured.
    /// - Parameter withScoreBounds: false leaves min/max score out, for a caller that selects
    ///   scores itself.
    public func whereClause(scoreViaSortIndex: Bool = false, withScoreBounds: Bool = true) -> (sql: String, arguments: StatementArguments) {
        let score = scoreViaSortIndex ? "+score" : "score"
        var conditions: [String] = []
        var arguments = StatementArguments()
        if !statuses.isEmpty {
            conditions.append("status IN (\(databaseQuestionMarks(count: statuses.count)))")
            arguments += StatementArguments(statuses)
        }
        if let source {
            let (condition, sourceArguments) = SourceSpellings.condition(matching: source)
            conditions.append(condition)
            arguments += sourceArguments
        }
        if let tag {
            if tag.utf8.allSatisfy({ $0 < 0x80 }) {
                conditions.append("id IN (SELECT lead_id FROM lead_tags WHERE tag = ?)")
                arguments += [tag]
            } else {
                // The column's NOCASE folds ASCII only: "ünicode tag" must find "Ünicode Tag".
                conditions.append("id IN (SELECT lead_id FROM lead_tags WHERE leadlens_equals_ci(tag, ?))")
                arguments += [tag.lowercased()]
            }
        }
        switch assignedTo {
        case .user(let user):
            conditions.append("assigned_to = ?")
            arguments += [user]
        case .unassigned: conditions.append("assigned_to IS NULL")
        case nil: break
        }
        if let search, !search.isEmpty {
            // The full name too, so "ada lovelace" finds Ada Lovelace.
            let columns = ["first_name", "last_name", "(first_name || ' ' || last_name)", "email", "phone", "company"]
            var alternatives: [String]
            if search.utf8.allSatisfy({ $0 < 0x80 }) {
                let pattern = "%" + Self.escapeLike(search) + "%"
                alternatives = columns.map { "\($0) LIKE ? ESCAPE '\\'" }
                arguments += StatementArguments(Array(repeating: pattern, count: columns.count))
            } else {
                // SQLite's LIKE folds ASCII letters only: "ZOË" would not find "Zoë". A term
                // beyond ASCII is matched by Swift's full case folding instead (slower per row,
                // so plain ASCII searches keep LIKE).
                let term = search.lowercased()
                alternatives = columns.map { "leadlens_contains_ci(\($0), ?)" }
                arguments += StatementArguments(Array(repeating: term, count: columns.count))
            }
            if let digits = Self.phoneDigits(ofSearch: search) {
                // A phone typed another way than stored: "5550100" or "(555) 0100" finds "+1 555 0100".
                alternatives.append("phone_digits LIKE ?")
                arguments += ["%" + digits + "%"]
            }
            conditions.append("(" + alternatives.joined(separator: " OR ") + ")")
        }
        if let createdFrom {
            conditions.append("created_at >= ?")
            arguments += [createdFrom]
        }
        if let createdUntil {
            conditions.append("created_at < ?")
            arguments += [createdUntil]
        }
        // A score bound implies a score: NULL never satisfies BETWEEN.
        if let minScore, withScoreBounds {
            conditions.append("\(score) >= ?")
            arguments += [minScore]
        }
        if let maxScore, withScoreBounds {
            conditions.append("\(score) <= ?")
            arguments += [maxScore]
        }
        switch scored {
        case true?: conditions.append("\(score) IS NOT NULL")
        case false?: conditions.append("\(score) IS NULL")
        case nil: break
        }
        return (conditions.isEmpty ? "1" : conditions.joined(separator: " AND "), arguments)
    }

    /// The digits of a search that reads as (part of) a phone number: digits and the signs
    /// people write phones with (spaces and dashes of any kind, as pasted from web pages), at
    /// least three digits. Nil for anything else, so "Acme 2" does not match every phone holding a 2.
    static func phoneDigits(ofSearch search: String) -> String? {
        let isDigit = { (character: Character) in character >= "0" && character <= "9" }
        let digits = search.filter(isDigit)
        guard digits.count >= 3, search.allSatisfy({ character in
            isDigit(character) || character.isWhitespace || "+().,/-\u{2010}\u{2011}\u{2012}\u{2013}\u{2014}\u{2212}".contains(character)
        }) else { return nil }
        return digits
    }

    static func escapeLike(_ text: String) -> String {
        var out = ""
        for character in text {
            if character == "%" || character == "_" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out
    }
}

/// A list's order. Ties are broken by id in the same direction, so the order is total and a
/// keyset cursor (the last row's value and id) names an exact position. Scores tie often (101
/// values), so a score order breaks ties by creation time first: newest first among equal scores
/// when descending, walked straight from the (score, created_at) index. NULL sorts lowest, as
/// SQLite orders it: unscored leads come last when sorting by score descending.
public struct LeadSort: Sendable, Hashable {
    public enum Key: String, CaseIterable, Sendable {
        case score
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case lastActivityAt = "last_activity_at"
        case lastName = "last_name"
        case email

        var isText: Bool { self == .lastName || self == .email }
        var isNullable: Bool { self != .createdAt && self != .updatedAt }
        /// Breaks ties before the id: created_at is never NULL, so a seek on it is plain.
        var tieColumn: String? { self == .score ? "created_at" : nil }
    }

    public var key: Key
    public var descending: Bool

    public init(key: Key = .createdAt, descending: Bool = true) {
        self.key = key
        self.descending = descending
    }

    var orderBy: String {
        let direction = descending ? "DESC" : "ASC"
        let tie = key.tieColumn.map { "\($0) \(direction), " } ?? ""
        return "\(key.rawValue) \(direction), \(tie)id \(direction)"
    }
}

/// A position in a sorted list: the sort value, tie-breaking creation time (score orders only)
/// and id of the last row a page returned.
public struct LeadCursor: Sendable, Hashable {
    public enum Value: Sendable, Hashable {
        case null
        case integer(Int64)
        case text(String)
    }

    public var sort: LeadSort
    public var value: Value
    /// The row's created_at when the sort breaks ties by it (``LeadSort/Key/tieColumn``).
    public var createdAt: Int64?
    public var id: Int64

    public init(sort: LeadSort, value: Value, createdAt: Int64? = nil, id: Int64) {
        self.sort = sort
        self.value = value
        self.createdAt = createdAt
        self.id = id
    }

    /// The position right after `lead` in `sort` order.
    public init(after lead: LeadRecord, sort: LeadSort) {
        let value: Value = switch sort.key {
        case .score: lead.score.map { .integer(Int64($0)) } ?? .null
        case .createdAt: .integer(lead.createdAt)
        case .updatedAt: .integer(lead.updatedAt)
        case .lastActivityAt: lead.lastActivityAt.map { .integer($0) } ?? .null
        case .lastName: lead.lastName.map { .text($0) } ?? .null
        case .email: lead.email.map { .text($0) } ?? .null
        }
        self.init(sort: sort, value: value, createdAt: sort.key.tieColumn == nil ? nil : lead.createdAt, id: lead.id)
    }

    /// An opaque, URL-safe token.
    public var token: String {
        var object: [String: Any] = ["k": sort.key.rawValue, "d": sort.descending ? 1 : 0, "i": id]
        if let createdAt { object["c"] = createdAt }
        switch value {
        case .null: break
        case .integer(let v): object["n"] = v
        case .text(let v): object["s"] = v
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return data.base64URLEncodedString
    }

    /// Decodes a token; nil when it is malformed. Every field must have the type the API wrote:
    /// a tampered token is refused, never read as "no value" (which would end the listing).
    public init?(token: String) {
        // A last name or email may be 64 KiB, and its cursor carries it.
        guard token.utf8.count <= 96 << 10, let data = Data(base64URLEncoded: token),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let keyName = object["k"] as? String, let key = LeadSort.Key(rawValue: keyName),
              let direction = object["d"].flatMap(Self.integer), direction == 0 || direction == 1,
              let id = object["i"].flatMap(Self.integer), id >= 1
        else { return nil }
        sort = LeadSort(key: key, descending: direction == 1)
        self.id = id
        // Absent from score cursors issued before score ties broke by creation time: the page
        // looks it up by the id (see `page(_:sort:after:limit:in:)`).
        if let created = object["c"] {
            guard let millis = Self.integer(created) else { return nil }
            createdAt = key.tieColumn == nil ? nil : millis
        } else {
            createdAt = nil
        }
        switch (object["s"], object["n"]) {
        case (nil, nil):
            value = .null
        case (let text?, nil):
            guard key.isText, let text = text as? String else { return nil }
            value = .text(text)
        case (nil, let number?):
            guard !key.isText, let number = Self.integer(number) else { return nil }
            value = .integer(number)
        default:
            return nil
        }
    }

    /// A JSON integer that fits Int64; nil for anything else (a string, null, 1.5, 1e30, true).
    private static func integer(_ value: Any) -> Int64? {
        guard let number = value as? NSNumber, !JSONNumbers.isBool(value) else { return nil }
        switch String(cString: number.objCType) {
        case "d", "f":
            let double = number.doubleValue
            guard double == double.rounded(), abs(double) < 9.2e18 else { return nil }
            return number.int64Value
        case "Q":  // parsed as unsigned: only above Int64.max
            return number.uint64Value <= UInt64(Int64.max) ? Int64(number.uint64Value) : nil
        default: return number.int64Value
        }
    }
}

/// Reads pages of leads.
public enum LeadQuery {
    /// A score cursor without its creation time whose lead has since been deleted: the
    /// position it named cannot be found again.
    public struct CursorExpired: Error {}

    /// How many leads match.
    public static func count(_ filter: LeadFilter, in db: Database) throws -> Int {
        let (conditions, arguments) = filter.whereClause()
        return try Int.fetchOne(db, sql: "SELECT count(*) FROM leads WHERE \(conditions)", arguments: arguments) ?? 0
    }

    /// One offset page: `limit` leads after skipping `offset`.
    public static func page(_ filter: LeadFilter, sort: LeadSort, offset: Int, limit: Int, in db: Database) throws -> [LeadRecord] {
        if let rows = try newestInScoreRange(filter, sort: sort, after: nil, limit: limit, offset: offset, in: db) {
            return try LeadRecord.fetch(ids: rows.map(\.id), in: db)
        }
        let (conditions, arguments) = filter.whereClause(scoreViaSortIndex: sort.key != .score)
        let ids = try Int64.fetchAll(db.cachedStatement(sql: """
            SELECT id FROM leads WHERE \(conditions) ORDER BY \(sort.orderBy) LIMIT ? OFFSET ?
            """), arguments: arguments + [limit, offset])
        return try LeadRecord.fetch(ids: ids, in: db)
    }

    /// One keyset page: up to `limit` leads after `cursor` (from the start when nil), and the
    /// cursor of the page after it (nil on the last page). Each page seeks through the sort
    /// column's index to its cursor, so a deep page costs what the first does, and leads
    /// inserted meanwhile never shift or repeat rows.
    public static func page(
        _ filter: LeadFilter, sort: LeadSort, after cursor: LeadCursor?, limit: Int, in db: Database
    ) throws -> (leads: [LeadRecord], next: LeadCursor?) {
        if case .integer(let value)? = cursor?.value ?? .integer(0),
           var rows = try newestInScoreRange(filter, sort: sort, after: cursor.map { (value, $0.id) }, limit: limit + 1, offset: 0, in: db) {
            let hasMore = rows.count > limit
            if hasMore { rows.removeLast() }
            let next = hasMore ? rows.last.map { LeadCursor(sort: sort, value: .integer($0.createdAt), id: $0.id) } : nil
            return (try LeadRecord.fetch(ids: rows.map(\.id), in: db), next)
        }
        let (conditions, arguments) = filter.whereClause(scoreViaSortIndex: sort.key != .score)
        let column = sort.key.rawValue
        let direction = sort.descending ? "DESC" : "ASC"
        let comparison = sort.descending ? "<" : ">"
        // The columns after the sort value that order its ties, and the cursor's values for them.
        let tie = sort.key.tieColumn
        let tail = (tie.map { "\($0), " } ?? "") + "id"
        let tailOrder = (tie.map { "\($0) \(direction), " } ?? "") + "id \(direction)"
        var tailValues: StatementArguments = []
        if let cursor {
            if tie == nil {
                tailValues = [cursor.id]
            } else {
                // created_at never changes, so a cursor without it is resolved from its lead.
                guard let createdAt = try cursor.createdAt ?? Int64.fetchOne(
                    db, sql: "SELECT created_at FROM leads WHERE id = ?", arguments: [cursor.id]) else {
                    throw CursorExpired()
                }
                tailValues = [createdAt, cursor.id]
            }
        }
        let tailPlaceholders = tie == nil ? "?" : "?, ?"

        // NULL sorts lowest. Descending: the non-null values, then the NULLs; ascending: the
        // reverse. Each part is its own index range, read only as far as the page needs.
        enum Part { case values, nulls }
        var parts: [(Part, seek: (sql: String, arguments: StatementArguments)?)] = []
        let nullsFirst = !sort.descending && sort.key.isNullable
        switch cursor?.value {
        case nil:
            parts = nullsFirst ? [(.nulls, nil), (.values, nil)] : [(.values, nil), (.nulls, nil)]
        case .null?:
            let seek: (sql: String, arguments: StatementArguments) = ("(\(tail)) \(comparison) (\(tailPlaceholders))", tailValues)
            parts = nullsFirst ? [(.nulls, seek), (.values, nil)] : [(.nulls, seek)]
        case .integer(let value)?:
            let seek: (sql: String, arguments: StatementArguments) = (
                "(\(column), \(tail)) \(comparison) (?, \(tailPlaceholders))", [value] + tailValues)
            parts = nullsFirst ? [(.values, seek)] : [(.values, seek), (.nulls, nil)]
        case .text(let value)?:
            let seek: (sql: String, arguments: StatementArguments) = (
                "(\(column), \(tail)) \(comparison) (?, \(tailPlaceholders))", [value] + tailValues)
            parts = nullsFirst ? [(.values, seek)] : [(.values, seek), (.nulls, nil)]
        }
        if !sort.key.isNullable { parts.removeAll { $0.0 == .nulls } }

        var rows: [(id: Int64, value: DatabaseValue, createdAt: Int64?)] = []
        for (part, seek) in parts where rows.count <= limit {
            // created_at only when it orders ties: other sorts stay index-only reads.
            var sql = "SELECT id, \(column)\(tie == nil ? "" : ", created_at") FROM leads WHERE \(conditions)"
            var partArguments = arguments
            switch part {
            case .values:
                if sort.key.isNullable { sql += " AND \(column) IS NOT NULL" }
                if let seek { sql += " AND \(seek.sql)"; partArguments += seek.arguments }
                sql += " ORDER BY \(column) \(direction), \(tailOrder)"
            case .nulls:
                sql += " AND \(column) IS NULL"
                if let seek { sql += " AND \(seek.sql)"; partArguments += seek.arguments }
                sql += " ORDER BY \(tailOrder)"
            }
            sql += " LIMIT ?"
            partArguments += [limit + 1 - rows.count]
            for row in try Row.fetchAll(db.cachedStatement(sql: sql), arguments: partArguments) {
                rows.append((row[0], row[1], tie == nil ? nil : row[2]))
            }
        }
        let hasMore = rows.count > limit
        if hasMore { rows.removeLast(rows.count - limit) }
        var next: LeadCursor?
        if hasMore, let last = rows.last {
            let value: LeadCursor.Value = switch last.value.storage {
            case .null: .null
            case .int64(let v): .integer(v)
            case .double(let v): .integer(Int64(v))
            case .string(let v): .text(v)
            case .blob: .null
            }
            next = LeadCursor(sort: sort, value: value, createdAt: last.createdAt, id: last.id)
        }
        return (try LeadRecord.fetch(ids: rows.map(\.id), in: db), next)
    }

    /// "Leads scoring 80–100, newest first", and any creation-time order with score bounds: one
    /// stream per score value from the (score, created_at) index, each already in order, merged
    /// here a row at a time. Every stream seeks once and is read only as far as the page needs,
    /// so a page costs (scores in range) seeks plus its rows however rare high scores are among
    /// the newest leads, and a deep keyset page costs the same. (Walking created_at and testing
    /// scores read 54,000 index entries for the first page on a million leads; sorting the
    /// whole range read 59,000; an SQL UNION ALL of the streams took 2 ms to merge 100 rows.)
    /// Nil when the query is not of that shape.
    static func newestInScoreRange(
        _ filter: LeadFilter, sort: LeadSort, after seek: (createdAt: Int64, id: Int64)?, limit: Int, offset: Int,
        in db: Database
    ) throws -> [(id: Int64, createdAt: Int64)]? {
        guard sort.key == .createdAt, filter.minScore != nil || filter.maxScore != nil else { return nil }
        let low = max(filter.minScore ?? 0, 0)
        let high = min(filter.maxScore ?? 100, 100)
        guard low <= high else { return [] }
        let (conditions, arguments) = filter.whereClause(withScoreBounds: false)
        let direction = sort.descending ? "DESC" : "ASC"
        let comparison = sort.descending ? "<" : ">"

        // The score is a literal (an integer 0...100, never client text), so each stream is a
        // statement of its own that stays prepared, and all of them can be open at once.
        var streams: [RawStatement] = []
        defer { for stream in streams { stream.reset() } }
        var heads: [(createdAt: Int64, id: Int64)?] = []
        for score in low...high {
            var sql = "SELECT id, created_at FROM leads WHERE \(conditions) AND score = \(score)"
            var streamArguments = arguments
            if let seek {
                sql += " AND (created_at, id) \(comparison) (?, ?)"
                streamArguments += [seek.createdAt, seek.id]
            }
            sql += " ORDER BY created_at \(direction), id \(direction)"
            let stream = try RawStatement(db, sql: sql)
            try stream.bind(streamArguments)
            streams.append(stream)
            heads.append(try stream.step() ? (stream.int64(1), stream.int64(0)) : nil)
        }
        func precedes(_ a: (createdAt: Int64, id: Int64), _ b: (createdAt: Int64, id: Int64)) -> Bool {
            sort.descending ? (a.createdAt, a.id) > (b.createdAt, b.id) : (a.createdAt, a.id) < (b.createdAt, b.id)
        }
        var rows: [(id: Int64, createdAt: Int64)] = []
        rows.reserveCapacity(limit)
        var skipped = 0
        while rows.count < limit {
            var best: Int?
            for index in heads.indices {
                guard let head = heads[index] else { continue }
                if let current = best, let bestHead = heads[current], !precedes(head, bestHead) { continue }
                best = index
            }
            guard let best, let head = heads[best] else { break }
            if skipped < offset { skipped += 1 } else { rows.append((head.id, head.createdAt)) }
            let stream = streams[best]
            heads[best] = try stream.step() ? (stream.int64(1), stream.int64(0)) : nil
        }
        return rows
    }
}

extension LeadFilter {
    /// `leadlens_contains_ci(text, loweredTerm)`: whether `text`, lowercased with Unicode rules,
    /// contains the already lowercased term. Registered on every connection of a store.
    static let containsIgnoringCase = DatabaseFunction("leadlens_contains_ci", argumentCount: 2, pure: true) { values in
        guard let text = String.fromDatabaseValue(values[0]), let term = String.fromDatabaseValue(values[1]) else { return false }
        // Most values are ASCII, and an ASCII value cannot hold a term that stays non-ASCII
        // once lowercased: answered without allocating a lowercased copy.
        if text.utf8.allSatisfy({ $0 < 0x80 }), term.utf8.contains(where: { $0 >= 0x80 }) { return false }
        return text.lowercased().contains(term)
    }

    /// `leadlens_equals_ci(text, loweredTerm)`: whether `text`, lowercased with Unicode rules,
    /// is the already lowercased term.
    static let equalsIgnoringCase = DatabaseFunction("leadlens_equals_ci", argumentCount: 2, pure: true) { values in
        guard let text = String.fromDatabaseValue(values[0]), let term = String.fromDatabaseValue(values[1]) else { return false }
        return text.lowercased() == term
    }
}
