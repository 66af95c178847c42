import Foundation
import GRDB
import LeadScoring
import LeadStore

extension Reports {
    /// Everything a report shows, read in one transaction so its parts agree with each other.
    public struct Snapshot: Sendable {
        public var period: Period
        public var generatedAt: Date
        /// The period's numbers: exactly what the stats endpoint serves for the same filter.
        public var stats: LeadStats
        /// Every lead in the store, whatever its creation date.
        public var storeTotal: Int
        /// The period's open leads with the highest scores, best first.
        public var topLeads: [TopLead]
        /// The active model, whose health the report shows; nil when the store has none.
        public var model: ScoringModel?
        /// The models behind the period's stored scores, with their lead counts, most first: the
        /// scores shown are these, which differ from the active model's until a rescore.
        public var scoredBy: [(version: String, leads: Int)] = []

        public var isEmpty: Bool { stats.total == 0 }
    }

    public struct TopLead: Sendable {
        public var lead: LeadRecord
        /// The largest contributions to its score, by magnitude; empty when the model that scored
        /// it can no longer explain it (its spec no longer resolves on this store).
        public var factors: [Explanation.Contribution]
    }

    public static let topLeadCount = 50
    public static let factorsPerLead = 3

    /// Reads a report's data for `period`. The daily series covers every UTC day the period
    /// touches, so its days add up to the period's total.
    public static func snapshot(period: Period, generatedAt: Date, in db: Database) throws -> Snapshot {
        let lastInstant = Date(timeIntervalSince1970: TimeInterval(max(period.until, period.from + 1) - 1) / 1000)
        let stats = try LeadStats.compute(period.filter, now: lastInstant, days: period.dayCount, in: db)
        let storeTotal = try LeadQuery.count(LeadFilter(), in: db)
        let model = try ModelRegistry.active(in: db)
        let topLeads = stats.total == 0 ? [] : try topOpenLeads(period: period, in: db)
        let scoredBy = try Row.fetchAll(db, sql: """
            SELECT model_version, count(*) FROM leads
            WHERE created_at >= ? AND created_at < ? AND model_version IS NOT NULL
            GROUP BY model_version ORDER BY count(*) DESC, model_version
            """, arguments: [period.from, period.until]).map { (version: $0[0] as String, leads: $0[1] as Int) }
        return Snapshot(period: period, generatedAt: generatedAt, stats: stats, storeTotal: storeTotal,
                        topLeads: topLeads, model: model, scoredBy: scoredBy)
    }

    /// The period's scored open leads, highest score first (then highest probability), each with
    /// the factors of the model that scored it, computed as of when it was scored so they explain
    /// the score shown.
    static func topOpenLeads(period: Period, in db: Database) throws -> [TopLead] {
        // Walks the score index from the top (the period's bounds are kept off the created_at
        // index with unary +), so it stops after 50 matches instead of sorting the period.
        let closed = Array(closedStatuses).sorted()
        let ids = try Int64.fetchAll(db, sql: """
            SELECT id FROM leads
            WHERE +created_at >= ? AND +created_at < ? AND score IS NOT NULL
              AND status NOT IN (\(databaseQuestionMarks(count: closed.count)))
            ORDER BY score DESC, probability DESC, id
            LIMIT ?
            """, arguments: [period.from, period.until] + StatementArguments(closed) + [topLeadCount])
        var scorers: [String: LeadScorer?] = [:]
        return try LeadRecord.fetch(ids: ids, in: db).map { lead in
            var factors: [Explanation.Contribution] = []
            if let version = lead.modelVersion {
                if scorers[version] == nil {
                    scorers[version] = try ModelRegistry.model(version: version, in: db).map(LeadScorer.init(model:))
                }
                if let scorer = scorers[version] ?? nil,
                   let explanation = try? scorer.explain(leadID: lead.id, in: db, asOf: lead.scoredAt ?? LeadStore.nowMillis()) {
                    factors = Array(explanation.top(factorsPerLead))
                }
            }
            return TopLead(lead: lead, factors: factors)
        }
    }
}

extension Reports.Period {
    /// Every lead: from the oldest creation time to now (or past the newest, if a clock put one
    /// in the future). An empty store gets the last day.
    public static func allTime(in db: Database, now: Date = Date()) throws -> Reports.Period {
        let nowMillis = Reports.millis(now)
        let row = try Row.fetchOne(db, sql: "SELECT min(created_at), max(created_at) FROM leads")
        let oldest: Int64? = row?[0], newest: Int64? = row?[1]
        return Reports.Period(from: oldest ?? nowMillis - Reports.dayMillis, until: max(nowMillis, (newest ?? 0) + 1), name: "all time")
    }
}
