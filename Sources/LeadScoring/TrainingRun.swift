import Foundation
import GRDB
import LeadStore

/// Train → register → maybe activate: the whole of `leadlens train` and POST /models/train.
public enum TrainingRun {
    public struct Outcome: Sendable {
        public var model: ScoringModel
        public var fileURL: URL
        public var decision: ModelRegistry.Decision
    }

    /// Reads the training data, fits, writes `<directory>/<name>-v<N>.json`, registers the
    /// model, and activates it when asked and allowed (see `ModelRegistry.decide`).
    ///
    /// - Parameters:
    ///   - prepared: called once the data is read, before fitting (progress, matrix export).
    /// - Throws: `SpecError` for a spec the store cannot satisfy, `Trainer.Failure` or
    ///   `LogisticRegression.FitError` when training is refused; nothing is written then.
    public static func run(
        spec: FeatureSpec, store: LeadStore, options: Trainer.Options, activate: Bool, force: Bool,
        directory: URL,
        prepared: (Trainer.Dataset, _ readSeconds: Double) throws -> Void = { _, _ in },
        iteration: ((LogisticRegression.Iteration) -> Void)? = nil
    ) throws -> Outcome {
        let readStarted = Date()
        let data = try Trainer.prepare(spec, from: store.reader, options: options)
        let readSeconds = Date().timeIntervalSince(readStarted)
        try prepared(data, readSeconds)
        var model = try Trainer.fit(data, name: spec.name, version: "\(spec.name)-v0", options: options,
                                    readSeconds: readSeconds, progress: iteration)

        // The two models are compared on the leads neither trained on. The split is one hash
        // against a threshold, so of the new holdout those are the leads the active model's own,
        // smaller or equal, fraction also held out; an active model trained with less (or no)
        // holdout would otherwise be scored on leads it learned from, and look better than it is.
        // Both are scored before taking the write lock: that read can take seconds, and other
        // writers would wait on it.
        typealias Comparison = (candidate: Double?, active: Double?)
        func compare(with active: ScoringModel, in db: Database) -> Comparison {
            let shared = data.holdoutIDs.indices.filter { Trainer.isHoldout(data.holdoutIDs[$0], fraction: active.training.holdoutFraction) }
            let ids = shared.map { data.holdoutIDs[$0] }, labels = shared.map { data.holdout.y[$0] }
            let activeAUC = ModelRegistry.holdoutAUC(of: active, leadIDs: ids, labels: labels, asOf: options.asOf, in: db)
            guard shared.count < data.holdoutIDs.count else { return (nil, activeAUC) }  // the whole holdout: its own metrics
            return (ModelRegistry.holdoutAUC(of: model, leadIDs: ids, labels: labels, asOf: options.asOf, in: db), activeAUC)
        }
        let evaluated: (version: String, comparison: Comparison)? = try store.reader.read { db in
            guard activate, let active = try ModelRegistry.active(in: db) else { return nil }
            return (active.version, compare(with: active, in: db))
        }

        // Version, file and registration in one write transaction: two runs never take the same
        // version, and a file that cannot be written leaves nothing registered.
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var fileURL: URL?
        let decision: ModelRegistry.Decision
        do {
            decision = try store.writer.write { db in
                model.version = try ModelRegistry.nextVersion(name: spec.name, directory: directory, in: db)
                fileURL = directory.appendingPathComponent("\(model.version).json")
                try ModelRegistry.register(model, in: db)
                try model.encoded().write(to: fileURL!, options: .atomic)
                guard activate else { return .keep(reason: "not asked to (--activate)") }
                let active = try ModelRegistry.active(in: db)
                let comparison = active.map { active in
                    if let evaluated, evaluated.version == active.version { return evaluated.comparison }
                    return compare(with: active, in: db)  // another model was activated since
                }
                let decision = ModelRegistry.decide(candidate: model, active: active, activeAUC: comparison?.active,
                                                    candidateAUC: comparison?.candidate, force: force)
                if decision == .activate { try ModelRegistry.activate(version: model.version, in: db) }
                return decision
            }
        } catch {
            // Rolled back: the file must not outlive its registration.
            if let fileURL { try? FileManager.default.removeItem(at: fileURL) }
            throw error
        }
        return Outcome(model: model, fileURL: fileURL!, decision: decision)
    }
}
