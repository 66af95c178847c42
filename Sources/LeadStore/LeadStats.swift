import Foundation
import GRDB

/// The dashboard numbers for a set of leads: what GET /api/v1/leads/stats serves and what the
/// reports print, computed by one function so the two can never disagree.
public struct LeadStats: Sendable, Equatable {
    public struct SourceRow: Sendable, Equatable {
        public var source: String?
        public var count: Int
        public var converted: Int
        public var conversionRate: Double
        public var averageScore: Double?
        /// Σ p over the source's scored leads.
        public var expectedConversions: Double
    }

    public struct Bucket: Sendable, Equatable {
        public var min: Int
        public var max: Int
        public var count: Int
        public var converted: Int
        public var conversionRate: Double
    }

    public struct Day: Sendable, Equatable {
        /// yyyy-MM-dd, UTC.
        public var date: String
        public var new: Int
    }

    public var total: Int
    public var converted: Int
    public var scored: Int
    public var averageScore: Double?
    public var expectedConversions: Double
    public var byStatus: [String: Int]
    /// Largest first; ties by source name.
    public var bySource: [SourceRow]
    /// Ten buckets: 0–9, 10–19, …, 90–100.
    public var scoreHistogram: [Bucket]
    public var averageScoreByStatus: [String: Double]
    /// One entry per UTC day, oldest first, ending on the day of `now`.
    public var daily: [Day]

    public var conversionRate: Double { total == 0 ? 0 : Double(converted) / Double(total) }

    /// Statuses that count as converted.
    public static let convertedStatuses: Set<String> = ["converted"]
    public static let dailyDays = 30

    /// Computes the stats of the leads `filter` selects. `now` fixes the daily window, which
    /// ends on now's UTC day.
    public static func compute(
        _ filter: LeadFilter, now: Date = Date(), days: Int = dailyDays, in db: Database
    ) throws -> LeadStats {
        let (conditions, arguments) = filter.whereClause()
        // One pass over the matching rows, summed here by (status, source, score bucket). A SQL
        // GROUP BY would sort every row first (15 s on a million leads, measured); this streams
        // them in about 0.5 s. Statuses and sources are few, so each row's text is matched
        // against the ones seen so far by bytes, without making a String.
        let scan = try RawStatement(db, sql: "SELECT status, source, score, probability FROM leads \(try scanHint(filter, in: db)) WHERE \(conditions)")
        try scan.statement.setArguments(arguments)
        defer { scan.reset() }
        var statusNames = Interner()
        var sourceNames = Interner()
        var cells: [Int: Sums] = [:]  // status << 40 | source << 4 | bucket + 1
        while try scan.step() {
            let status = statusNames.id(scan.textBytes(0))
            let source = sourceNames.id(scan.textBytes(1))
            let bucket = scan.isNull(2) ? -1 : min(Int(scan.int64(2)) / 10, 9)
            let key = status << 40 | source << 4 | (bucket + 1)
            cells[key, default: Sums()].add(Sums(
                count: 1, converted: 0, scored: bucket >= 0 ? 1 : 0,
                scoreSum: bucket >= 0 ? Double(scan.int64(2)) : 0, probabilitySum: Sums.fixed(scan.double(3) ?? 0)))
        }
        var stats = LeadStats(
            total: 0, converted: 0, scored: 0, averageScore: nil, expectedConversions: 0, byStatus: [:],
            bySource: [], scoreHistogram: [], averageScoreByStatus: [:], daily: [])
        var all = Sums()
        var sources: [String?: Sums] = [:]
        var statuses: [String: Sums] = [:]
        var buckets = Array(repeating: Sums(), count: 10)
        for (key, var cell) in cells {
            let status = statusNames.names[key >> 40] ?? LeadStatus.defaultStatus
            let source = sourceNames.names[(key >> 4) & (1 << 36 - 1)]
            let bucket = (key & 0xF) - 1
            if convertedStatuses.contains(status) { cell.converted = cell.count }
            all.add(cell)
            sources[source, default: Sums()].add(cell)
            statuses[status, default: Sums()].add(cell)
            if bucket >= 0 { buckets[bucket].add(cell) }
        }
        stats.total = all.count
        stats.converted = all.converted
        stats.scored = all.scored
        stats.averageScore = all.scored > 0 ? all.scoreSum / Double(all.scored) : nil
        stats.expectedConversions = all.expectedConversions
        for (status, sums) in statuses {
            stats.byStatus[status] = sums.count
            if sums.scored > 0 { stats.averageScoreByStatus[status] = sums.scoreSum / Double(sums.scored) }
        }
        stats.bySource = sources.map { source, sums in
            SourceRow(
                source: source, count: sums.count, converted: sums.converted,
                conversionRate: sums.count > 0 ? Double(sums.converted) / Double(sums.count) : 0,
                averageScore: sums.scored > 0 ? sums.scoreSum / Double(sums.scored) : nil,
                expectedConversions: sums.expectedConversions)
        }.sorted { ($0.count, $1.source ?? "") > ($1.count, $0.source ?? "") }
        stats.scoreHistogram = buckets.enumerated().map { index, sums in
            Bucket(min: index * 10, max: index == 9 ? 100 : index * 10 + 9, count: sums.count, converted: sums.converted,
                   conversionRate: sums.count > 0 ? Double(sums.converted) / Double(sums.count) : 0)
        }
        stats.daily = try daily(filter, now: now, days: days, in: db)
        return stats
    }

    static let dayMillis: Int64 = 86_400_000

    /// "NOT INDEXED" when the filter keeps over a quarter of the leads. Without statistics
    /// SQLite reads such a set through an index (created_at for a period, status for the GROUP
    /// BY), one random table page per lead: 8.8 s for 1.14M leads against 3.1 s for a scan
    /// (measured for the report benchmark). Counting first is cheap: the filters' indexes cover it.
    public static func scanHint(_ filter: LeadFilter, in db: Database) throws -> String {
        if filter.search != nil { return "NOT INDEXED" }  // a LIKE '%…%' reads every row anyway
        let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") ?? 0
        if filter.isEmpty || total < 10_000 { return filter.isEmpty ? "NOT INDEXED" : "" }
        return try LeadQuery.count(filter, in: db) * 4 > total ? "NOT INDEXED" : ""
    }

    /// New leads per UTC day for the `days` days ending on now's day, zeros included.
    static func daily(_ filter: LeadFilter, now: Date, days: Int, in db: Database) throws -> [Day] {
        let nowMillis = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        let lastDay = nowMillis >= 0 ? nowMillis / dayMillis : (nowMillis - dayMillis + 1) / dayMillis
        let firstDay = lastDay - Int64(days) + 1
        var windowed = filter
        windowed.createdFrom = max(filter.createdFrom ?? .min, firstDay * dayMillis)
        windowed.createdUntil = min(filter.createdUntil ?? .max, (lastDay + 1) * dayMillis)
        let (conditions, arguments) = windowed.whereClause()
        var counts: [Int64: Int] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT CASE WHEN created_at >= 0 THEN created_at / \(dayMillis) ELSE (created_at + 1) / \(dayMillis) - 1 END, count(*)
            FROM leads WHERE \(conditions) GROUP BY 1
            """, arguments: arguments) {
            counts[row[0]] = row[1]
        }
        return (firstDay...lastDay).map { day in
            Day(date: dayString(day), new: counts[day] ?? 0)
        }
    }

    /// The proleptic Gregorian (UTC) date of a day number since the epoch.
    public static func civilDate(_ day: Int64) -> (year: Int64, month: Int64, day: Int64) {
        // Howard Hinnant's civil_from_days: exact, and no Calendar or formatter per call.
        let z = day + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// yyyy-MM-dd of a day number since the epoch (proleptic Gregorian, UTC).
    public static func dayString(_ day: Int64) -> String {
        let (y, m, d) = civilDate(day)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }
}

/// Counts and sums over a set of leads; the stats are ratios of these.
private struct Sums {
    var count = 0, converted = 0, scored = 0
    var scoreSum = 0.0
    /// Σ p in fixed point (2^-52 units): integer sums do not depend on the order rows arrive
    /// in, so a report and the endpoint agree to the last digit whichever index each scanned.
    var probabilitySum: Int128 = 0

    static let scale = Double(1 << 52)
    static func fixed(_ p: Double) -> Int128 { p.isFinite ? Int128((p * scale).rounded()) : 0 }
    var expectedConversions: Double { Double(probabilitySum) / Self.scale }

    mutating func add(_ other: Sums) {
        count += other.count
        converted += other.converted
        scored += other.scored
        scoreSum += other.scoreSum
        probabilitySum += other.probabilitySum
    }
}

/// Small integer ids for the few distinct texts of a column, matched by bytes.
private struct Interner {
    /// id → text; id 0 is NULL.
    private(set) var names: [String?] = [nil]
    private var bytes: [[UInt8]] = [[]]
    private var overflow: [[UInt8]: Int] = [:]

    mutating func id(_ text: UnsafeBufferPointer<UInt8>?) -> Int {
        guard let text else { return 0 }
        // Linear search first: a handful of statuses or sources is the common case.
        for index in 1..<min(bytes.count, 33) where bytes[index].elementsEqual(text) { return index }
        let key = Array(text)
        if bytes.count > 33, let index = overflow[key] { return index }
        bytes.append(key)
        names.append(String(decoding: key, as: UTF8.self))
        if bytes.count > 33 { overflow[key] = bytes.count - 1 }
        return bytes.count - 1
    }
}
