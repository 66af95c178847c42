import Foundation
import GRDB
import LeadStore
import Synchronization

/// Scores with whichever model is active in the store, following activations made by any
/// process: each use checks the active version (one indexed read) and reloads on a change.
/// Safe to share across concurrent requests.
public final class ActiveScorer: Sendable {
    private let current = Mutex<LeadScorer?>(nil)
    /// The last model asked for by version that was not the active one (see `scorer(version:in:)`).
    private let previous = Mutex<LeadScorer?>(nil)

    public init() {}

    /// The scorer for the active model, or nil when no model is active.
    public func scorer(in db: Database) throws -> LeadScorer? {
        guard let active = try String.fetchOne(db.cachedStatement(sql: "SELECT version FROM models WHERE is_active = 1")) else {
            return nil
        }
        if let scorer = current.withLock({ $0 }), scorer.model.version == active { return scorer }
        guard let model = try ModelRegistry.active(in: db) else { return nil }
        let scorer = LeadScorer(model: model)
        current.withLock { $0 = scorer }
        return scorer
    }

    /// A scorer for the model `version`: the active one's, shared, or one loaded from the
    /// registry for a lead an earlier model scored. Nil when the store no longer has that model.
    public func scorer(version: String, in db: Database) throws -> LeadScorer? {
        if let active = try scorer(in: db), active.model.version == version { return active }
        // Until a rescore, most leads were scored by the model active before: kept, so each
        // request does not decode its file and resolve its layout again.
        if let previous = previous.withLock({ $0 }), previous.model.version == version { return previous }
        guard let model = try ModelRegistry.model(version: version, in: db) else { return nil }
        let scorer = LeadScorer(model: model)
        previous.withLock { $0 = scorer }
        return scorer
    }

    /// Rescores `ids` inside the caller's write transaction; empty when no model is active.
    public func rescore(ids: [Int64], in db: Database) throws -> [LeadScorer.Scored] {
        guard !ids.isEmpty, let scorer = try scorer(in: db) else { return [] }
        return try scorer.rescore(ids: ids, in: db)
    }
}
