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

        // The active model is scored on the new model's holdout before taking the write lock:
        // that read can take seconds, and other writers would wait on it.
        func activeAUC(_ active: ScoringModel, in db: Database) -> Double? {
            ModelRegistry.holdoutAUC(of: active, leadIDs: data.holdoutIDs, labels: data.holdout.y, asOf: options.asOf, in: db)
        }
        let evaluated: (version: String, auc: Double?)? = try store.reader.read { db in
            guard activate, let active = try ModelRegistry.active(in: db) else { return nil }
            return (active.version, activeAUC(active, in: db))
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
                // Another model was activated since it was evaluated: evaluate that one.
                let auc = active.flatMap { $0.version == evaluated?.version ? evaluated?.auc : activeAUC($0, in: db) }
                let decision = ModelRegistry.decide(candidate: model, active: active, activeAUC: auc, force: force)
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
