import Foundation
import GRDB
import LeadStore

/// The models a store knows and which one is active. Model files live in models/; the store keeps
/// a copy of each registered model's JSON so the server and incremental scoring need nothing else.
public enum ModelRegistry {
    public struct Entry: Sendable, Equatable {
        public var version: String
        public var name: String
        public var createdAt: Int64
        public var holdoutAUC: Double?
        public var isActive: Bool
        public var activatedAt: Int64?

        public init(version: String, name: String, createdAt: Int64, holdoutAUC: Double?, isActive: Bool, activatedAt: Int64?) {
            self.version = version
            self.name = name
            self.createdAt = createdAt
            self.holdoutAUC = holdoutAUC
            self.isActive = isActive
            self.activatedAt = activatedAt
        }
    }

    /// Refuses to replace a model whose holdout AUC is more than this above the newcomer's.
    public static let aucTolerance = 0.005

    /// "<name>-v<N>" with N one above every version of that name in `directory` and the store.
    public static func nextVersion(name: String, directory: URL, in db: Database) throws -> String {
        var highest = 0
        let prefix = "\(name)-v"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for file in files where file.hasPrefix(prefix) && file.hasSuffix(".json") {
            if let n = Int(file.dropFirst(prefix.count).dropLast(5)), n < 1_000_000_000 { highest = max(highest, n) }
        }
        for version in try String.fetchAll(db, sql: "SELECT version FROM models WHERE name = ?", arguments: [name]) {
            if version.hasPrefix(prefix), let n = Int(version.dropFirst(prefix.count)), n < 1_000_000_000 { highest = max(highest, n) }
        }
        return "\(prefix)\(highest + 1)"
    }

    /// Adds a model to the store, inactive. A version is never reused: registering one the store
    /// already has is an error, so a model is never silently replaced by another.
    public static func register(_ model: ScoringModel, in db: Database) throws {
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM models WHERE version = ?", arguments: [model.version]) != nil {
            throw SpecError("the store already has a model \(model.version)")
        }
        // A model whose features do not yield its columns (a hand-edited file) would fail every
        // request that scores; refuse it before it can become the active model.
        _ = try LeadScorer(model: model).layout(in: db)
        let body = String(decoding: try model.encoded(), as: UTF8.self)
        try db.execute(sql: """
            INSERT INTO models (version, name, created_at, holdout_auc, body) VALUES (?, ?, ?, ?, ?)
            """, arguments: [model.version, model.name, Int64(model.createdAt.timeIntervalSince1970 * 1000),
                             model.metricsOn == "holdout" ? model.metrics.auc : nil, body])
    }

    public static func activate(version: String, in db: Database) throws {
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM models WHERE version = ?", arguments: [version]) != nil else {
            throw SpecError("no model \(version) in this store")
        }
        try db.execute(sql: "UPDATE models SET is_active = 0 WHERE is_active = 1 AND version <> ?", arguments: [version])
        try db.execute(sql: "UPDATE models SET is_active = 1, activated_at = ? WHERE version = ?",
                       arguments: [LeadStore.nowMillis(), version])
    }

    public static func active(in db: Database) throws -> ScoringModel? {
        guard let body = try String.fetchOne(db, sql: "SELECT body FROM models WHERE is_active = 1") else { return nil }
        return try ScoringModel.decode(Data(body.utf8))
    }

    public static func model(version: String, in db: Database) throws -> ScoringModel? {
        guard let body = try String.fetchOne(db, sql: "SELECT body FROM models WHERE version = ?", arguments: [version]) else {
            return nil
        }
        return try ScoringModel.decode(Data(body.utf8))
    }

    public static func list(in db: Database) throws -> [Entry] {
        try Row.fetchAll(db, sql: """
            SELECT version, name, created_at, holdout_auc, is_active, activated_at FROM models ORDER BY created_at, version
            """).map {
            Entry(version: $0[0], name: $0[1], createdAt: $0[2], holdoutAUC: $0[3], isActive: $0[4], activatedAt: $0[5])
        }
    }

    /// Why a new model may or may not replace the active one.
    public enum Decision: Equatable, Sendable {
        case activate
        case keep(reason: String)
    }

    /// Whether `candidate` may replace `active`. The two AUCs must come from the same leads:
    /// `activeAUC` is the active model's AUC on the candidate's holdout (see ``holdoutAUC``).
    /// `candidateAUC`, when given, replaces the candidate's own holdout AUC: the two measured on
    /// a part of its holdout (see `TrainingRun`).
    public static func decide(candidate: ScoringModel, active: ScoringModel?, activeAUC: Double?, candidateAUC: Double? = nil,
                              force: Bool) -> Decision {
        guard !force, let active else { return .activate }
        guard candidate.metricsOn == "holdout" else {
            return .keep(reason: "trained without a holdout (--holdout 0), so there is nothing to compare with \(active.version) on; --force activates it anyway")
        }
        guard let new = candidateAUC ?? candidate.metrics.auc else {
            return .keep(reason: "its holdout leads are all won or all lost, so no AUC compares it with \(active.version); --force activates it anyway")
        }
        guard let current = activeAUC else { return .activate }
        if new < current - aucTolerance {
            return .keep(reason: String(format: "holdout AUC %.4f is more than %.3f below %@'s %.4f on the same leads",
                                        new, aucTolerance, active.version, current))
        }
        return .activate
    }

    /// `model`'s AUC on the given leads and labels, its features computed at `asOf`; nil when it
    /// cannot score them (a spec this store no longer resolves) or they hold one class only.
    public static func holdoutAUC(of model: ScoringModel, leadIDs: [Int64], labels: [Double], asOf: Int64,
                                  in db: Database) -> Double? {
        let scorer = LeadScorer(model: model)
        guard let layout = try? scorer.layout(in: db),
              let rows = try? FeatureReader(layout: layout, asOf: asOf).read(db, ids: leadIDs),
              rows.ids == leadIDs else { return nil }
        return Metrics.auc(scores: scorer.probabilities(rows), labels: labels)
    }

    /// The active model; when the store has none yet, registers and activates the shipped
    /// default at `defaultURL` (if it exists) so a fresh store scores out of the box.
    public static func activeOrDefault(_ writer: any DatabaseWriter, defaultURL: URL?) throws -> ScoringModel? {
        if let model = try writer.read({ try active(in: $0) }) { return model }
        guard let defaultURL, FileManager.default.fileExists(atPath: defaultURL.path) else { return nil }
        let model = try ScoringModel.load(from: defaultURL)
        return try writer.write { db in
            if let model = try active(in: db) { return model }  // another process got there first
            if try self.model(version: model.version, in: db) == nil { try register(model, in: db) }
            try activate(version: model.version, in: db)
            return try active(in: db)
        }
    }
}
