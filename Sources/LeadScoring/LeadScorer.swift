import Foundation
import GRDB
import LeadStore
import Synchronization

/// Applies one model to leads: reads their features, standardizes, and computes p = σ(b + X·w)
/// with one dgemv per chunk. Writes score = round(100 p), p, the model version and scored_at
/// back, and records each changed score in the lead's timeline.
public final class LeadScorer: Sendable {
    public let model: ScoringModel
    private let standardizer: Standardizer
    private let weights: [Double]
    /// The detail of each score change this scorer records in a lead's timeline.
    private let timelineDetail: String

    public struct Summary: Sendable, Equatable {
        public var scored = 0
        public var changed = 0

        mutating func add(_ results: [Scored]) {
            scored += results.count
            changed += results.filter { $0.score != $0.previousScore }.count
        }
    }

    public struct Scored: Sendable, Equatable {
        public var leadID: Int64
        public var probability: Double
        public var score: Int
        public var previousScore: Int?
    }

    /// Test hook: runs on the reading thread after each chunk is read, before it is written.
    let afterChunkRead: (@Sendable ([Int64]) -> Void)?

    /// The last resolved layout and the dictionaries it was resolved against. The API rescores
    /// a few leads per request; re-reading both dictionaries each time was 40% of POST /intake.
    private let cachedLayout = Mutex<(key: DictionaryState, layout: FeatureLayout)?>(nil)

    public convenience init(model: ScoringModel) {
        self.init(model: model, afterChunkRead: nil)
    }

    init(model: ScoringModel, afterChunkRead: (@Sendable ([Int64]) -> Void)?) {
        self.model = model
        standardizer = Standardizer(means: model.means, stds: model.stds)
        weights = model.weights
        let detail = try? JSONSerialization.data(withJSONObject: ["model_version": model.version], options: [.sortedKeys])
        timelineDetail = detail.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        self.afterChunkRead = afterChunkRead
    }

    public static func score(probability p: Double) -> Int {
        Int((100 * p).rounded())
    }

    /// The model's features resolved against this store. Columns must come out as the model has
    /// them: the stored spec lists every category, so only a corrupted model file can differ.
    public func layout(in db: Database) throws -> FeatureLayout {
        let key = try DictionaryState.current(in: db)
        if let key, let cached = cachedLayout.withLock({ $0 }), cached.key == key { return cached.layout }
        let layout = try FeatureLayout.resolve(model.features, in: db, training: false)
        guard layout.columnNames == model.columns else {
            let index = zip(layout.columnNames, model.columns).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(layout.columnNames.count, model.columns.count)
            let yielded = index < layout.columnNames.count ? "\"\(layout.columnNames[index])\"" : "nothing"
            let listed = index < model.columns.count ? "\"\(model.columns[index])\"" : "nothing"
            throw SpecError("model \(model.version): its features yield \(yielded) as column \(index + 1), where the model lists \(listed)")
        }
        if let key { cachedLayout.withLock { $0 = (key, layout) } }
        return layout
    }

    /// What a scoring layout is resolved from: the event-type and custom-field dictionaries.
    /// Their rows are only ever added (INSERT OR IGNORE), never renamed or deleted, so the row
    /// count and the largest id change whenever their content does. The path tells stores apart;
    /// in-memory stores have none, so their layouts are not cached (nil).
    struct DictionaryState: Equatable {
        var path: String
        var counts: [Int64]

        static func current(in db: Database) throws -> DictionaryState? {
            guard let path = db.mainFilePath else { return nil }
            let statement = try db.cachedStatement(sql: """
                SELECT (SELECT count(*) FROM event_types), (SELECT coalesce(max(id), 0) FROM event_types),
                       (SELECT count(*) FROM custom_fields), (SELECT coalesce(max(id), 0) FROM custom_fields)
                """)
            let row = try Row.fetchOne(statement) ?? Row()
            return DictionaryState(path: path, counts: (0..<4).map { row[$0] ?? 0 })
        }
    }

    /// Probabilities for feature rows, in row order.
    public func probabilities(_ rows: FeatureRows) -> [Double] {
        var x = rows.values
        standardizer.apply(&x, rows: rows.count)
        return Trainer.predict(consuming: &x, rows: rows.count, width: rows.width, weights: weights, intercept: model.intercept)
    }

    /// Rescores every lead, a chunk per write transaction, so memory stays bounded and other
    /// writers get the lock between chunks.
    public func scoreAll(_ writer: any DatabaseWriter, asOf: Int64 = LeadStore.nowMillis(), chunkSize: Int = 50_000,
                         progress: ((Summary) -> Void)? = nil) throws -> Summary {
        let reader = try writer.read { db in
            FeatureReader(layout: try self.layout(in: db), asOf: asOf)
        }
        if let pool = writer as? DatabasePool {
            return try scorePipelined(pool, reader: reader, chunkSize: chunkSize, progress: progress)
        }
        // A single connection (in-memory stores): read and write each chunk in turn.
        var summary = Summary()
        var after: Int64 = .min
        while true {
            let done: Bool = try writer.write { db in
                let rows = try reader.read(db, after: after, limit: chunkSize)
                guard let last = rows.ids.last else { return true }
                after = last
                summary.add(try write(rows, in: db, asOf: asOf))
                return false
            }
            if done { break }
            progress?(summary)
        }
        return summary
    }

    /// Reads the next chunk on a reader connection while the writer connection writes the
    /// current one: reading and writing each take about half the time of a rescore, and WAL
    /// lets them run at once.
    ///
    /// A chunk read before another process committed (an ingest, the API) may be stale by the
    /// time it is written. The writer connection's `PRAGMA data_version` changes exactly when
    /// another connection has committed, and no one else can commit while this writer holds the
    /// lock; so each write transaction checks it, and a chunk read before a change was seen is
    /// read again inside the write transaction, where it is current.
    private func scorePipelined(_ pool: DatabasePool, reader: FeatureReader, chunkSize: Int,
                                progress: ((Summary) -> Void)?) throws -> Summary {
        // The baseline: any commit by another connection from here on is seen.
        var dataVersion = try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA data_version") }
        let handoff = ChunkHandoff()
        let hook = afterChunkRead
        let producer = Thread {
            var after: Int64 = .min
            do {
                while !handoff.isCancelled {
                    let epoch = handoff.epoch
                    let rows = try pool.read { try reader.read($0, after: after, limit: chunkSize) }
                    guard let last = rows.ids.last else { break }
                    after = last
                    hook?(rows.ids)
                    handoff.put(.rows(rows, epoch: epoch))
                }
                handoff.put(.end)
            } catch {
                handoff.put(.failure(error))
            }
        }
        producer.start()
        defer { handoff.cancel() }

        var summary = Summary()
        while true {
            switch handoff.take() {
            case .end:
                return summary
            case .failure(let error):
                throw error
            case .rows(let rows, let epoch):
                try pool.write { db in
                    let current = try Int.fetchOne(db, sql: "PRAGMA data_version")
                    if current != dataVersion { handoff.bumpEpoch() }
                    dataVersion = current
                    let fresh = epoch == handoff.epoch ? rows : try reader.read(db, ids: rows.ids)
                    summary.add(try write(fresh, in: db, asOf: reader.asOf))
                }
                progress?(summary)
            }
        }
    }

    /// Rescores the given leads inside the caller's transaction (ingestion calls this before it
    /// commits, so new events and the scores they cause land together).
    public func rescore(ids: [Int64], in db: Database, asOf: Int64 = LeadStore.nowMillis()) throws -> [Scored] {
        guard !ids.isEmpty else { return [] }
        var seen = Set<Int64>()
        let ids = ids.filter { seen.insert($0).inserted }  // a lead named twice is scored once
        let reader = FeatureReader(layout: try layout(in: db), asOf: asOf)
        var results: [Scored] = []
        results.reserveCapacity(ids.count)
        // Chunks keep the matrix small when an ingest touches many leads.
        var start = 0
        while start < ids.count {
            let end = min(start + 10_000, ids.count)
            let rows = try reader.read(db, ids: Array(ids[start..<end]))
            results += try write(rows, in: db, asOf: asOf)
            start = end
        }
        return results
    }

    /// `scored_at` is `asOf`, the time the features were read at, so the lead's factors, computed as
    /// of `scored_at`, explain the score stored (a `score --as-of` backtest included); the
    /// timeline dates the change when it was made.
    private func write(_ rows: FeatureRows, in db: Database, asOf: Int64) throws -> [Scored] {
        let now = LeadStore.nowMillis()
        let p = probabilities(rows)
        let update = try RawStatement(db, sql: """
            UPDATE leads SET score = ?, probability = ?, model_version = ?, scored_at = ? WHERE id = ?
            """)
        // Most rescores leave the score as it was: not naming `score` spares the score index.
        let refresh = try RawStatement(db, sql: """
            UPDATE leads SET probability = ?, model_version = ?, scored_at = ? WHERE id = ?
            """)
        let timeline = try RawStatement(db, sql: """
            INSERT INTO lead_timeline (lead_id, at, kind, old_value, new_value, detail)
            VALUES (?, ?, 'score_changed', ?, ?, ?)
            """)
        let detail = timelineDetail
        var results: [Scored] = []
        results.reserveCapacity(rows.count)
        for i in 0..<rows.count {
            let score = Self.score(probability: p[i])
            let previous = rows.storedScores[i]
            if previous == score {
                refresh.bind(1, p[i])
                refresh.bind(2, model.version)
                refresh.bind(3, asOf)
                refresh.bind(4, rows.ids[i])
                try refresh.run()
            } else {
                update.bind(1, Int64(score))
                update.bind(2, p[i])
                update.bind(3, model.version)
                update.bind(4, asOf)
                update.bind(5, rows.ids[i])
                try update.run()
                timeline.bind(1, rows.ids[i])
                timeline.bind(2, now)
                timeline.bind(3, previous.map(String.init))
                timeline.bind(4, String(score))
                timeline.bind(5, detail)
                try timeline.run()
            }
            results.append(Scored(leadID: rows.ids[i], probability: p[i], score: score, previousScore: previous))
        }
        return results
    }

    // MARK: - Explanations

    /// The value a log1p column was computed from: expm1 leaves rounding ("16.999999999999996"
    /// for 17), so it is rounded to 12 significant digits, past anything a lead's field holds.
    static func undoingLog1p(_ transformed: Double) -> Double {
        let value = expm1(transformed)
        guard value != 0, value.isFinite else { return value }
        let scale = pow(10, 11 - floor(log10(abs(value))))
        let rounded = (value * scale).rounded() / scale
        return rounded.isFinite ? rounded : value
    }

    /// Why a lead scores what it does: each column's contribution weight × standardized value,
    /// largest magnitude first. intercept + Σ contributions = logit, and σ(logit) = probability.
    public func explain(leadID: Int64, in db: Database, asOf: Int64 = LeadStore.nowMillis()) throws -> Explanation? {
        let layout = try layout(in: db)
        let rows = try FeatureReader(layout: layout, asOf: asOf).read(db, ids: [leadID])
        guard rows.count == 1 else { return nil }
        var z = rows.values
        standardizer.apply(&z, rows: 1)
        var contributions: [Explanation.Contribution] = []
        var logit = model.intercept
        for (j, column) in layout.columns.enumerated() {
            let raw = rows.values[j]
            let contribution = weights[j] * z[j]
            logit += contribution
            let shown: Double? = raw.isNaN ? nil : (column.transform == .log1p ? Self.undoingLog1p(raw) : raw)
            contributions.append(Explanation.Contribution(
                feature: column.name, value: shown, imputed: raw.isNaN, standardized: z[j],
                weight: weights[j], contribution: contribution))
        }
        contributions.sort { abs($0.contribution) != abs($1.contribution) ? abs($0.contribution) > abs($1.contribution) : $0.feature < $1.feature }
        let probability = sigmoid(logit)
        return Explanation(leadID: leadID, modelVersion: model.version, probability: probability,
                           score: Self.score(probability: probability), logit: logit,
                           intercept: model.intercept, contributions: contributions)
    }
}

public struct Explanation: Codable, Sendable, Equatable {
    public var leadID: Int64
    public var modelVersion: String
    public var probability: Double
    public var score: Int
    public var logit: Double
    public var intercept: Double
    /// Ranked by magnitude, signed: positive pushes the score up.
    public var contributions: [Contribution]

    public struct Contribution: Codable, Sendable, Equatable {
        public var feature: String
        /// The value the feature saw (a count, not its log), nil when missing and imputed.
        public var value: Double?
        public var imputed: Bool
        public var standardized: Double
        public var weight: Double
        public var contribution: Double
    }

    enum CodingKeys: String, CodingKey {
        case probability, score, logit, intercept, contributions
        case leadID = "lead_id"
        case modelVersion = "model_version"
    }

    /// The top `count` contributions by magnitude, the ones worth showing a person.
    public func top(_ count: Int) -> ArraySlice<Contribution> {
        contributions.prefix(count)
    }
}

/// One chunk at a time from the reading thread to the writing one.
private final class ChunkHandoff: @unchecked Sendable {
    enum Item {
        case rows(FeatureRows, epoch: Int)
        case end
        case failure(any Error)
    }

    private let condition = NSCondition()
    private var slot: Item?
    private var cancelled = false
    private var currentEpoch = 0

    var isCancelled: Bool { condition.withLock { cancelled } }
    /// Bumped when another connection's commit is seen; chunks read under an older epoch are re-read.
    var epoch: Int { condition.withLock { currentEpoch } }
    func bumpEpoch() { condition.withLock { currentEpoch += 1 } }

    /// Waits while the previous chunk has not been taken; drops the item once cancelled.
    func put(_ item: Item) {
        condition.lock()
        defer { condition.unlock() }
        while slot != nil && !cancelled { condition.wait() }
        guard !cancelled else { return }
        slot = item
        condition.broadcast()
    }

    func take() -> Item {
        condition.lock()
        defer { condition.unlock() }
        while slot == nil { condition.wait() }
        let item = slot!
        slot = nil
        condition.broadcast()
        return item
    }

    func cancel() {
        condition.withLock {
            cancelled = true
            condition.broadcast()
        }
    }
}
