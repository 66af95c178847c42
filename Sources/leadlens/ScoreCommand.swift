import ArgumentParser
import Foundation
import LeadScoring
import LeadStore

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score leads with the active model: score = round(100 × p), stored with p, the model version and the time.",
        discussion: """
            Ingestion already rescores the leads it touches. Rescore everything after activating a new \
            model, or daily, since "days since last activity" grows with time. A changed score is \
            recorded in the lead's timeline.

            Examples:
              leadlens score --all
              leadlens score L0000042 jane@example.com
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var models: ModelOptions

    @Flag(help: "Rescore every lead, in chunks.")
    var all = false

    @Argument(help: ArgumentHelp("Leads to score: id, external id or email.", valueName: "lead"))
    var leads: [String] = []

    @Option(help: "Leads per chunk (one dgemv and one transaction each).")
    var chunkSize = 50_000

    @Option(help: ArgumentHelp("Score as of this date. Default: now.", valueName: "date"))
    var asOf: String?

    func validate() throws {
        if all != leads.isEmpty { throw ValidationError("Give --all or the leads to score.") }
        if chunkSize < 1 || chunkSize > 1_000_000 { throw ValidationError("--chunk-size must be between 1 and 1000000.") }
        _ = try DateArgument.millis(asOf)
    }

    func run() throws {
        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.score")
        let scorer = try models.requireScorer(leadStore)
        let asOfMillis = try DateArgument.millis(asOf)
        let started = Date()
        if all {
            let summary = try scorer.scoreAll(leadStore.writer, asOf: asOfMillis, chunkSize: chunkSize) { progress in
                if Terminal.isInteractive { Terminal.status("  scored \(progress.scored)…") }
            }
            let seconds = Date().timeIntervalSince(started)
            print(String(format: "scored %d leads with %@ in %.2f s (%.0f leads/s); %d scores changed",
                         summary.scored, scorer.model.version, seconds, Double(summary.scored) / max(seconds, 1e-9), summary.changed))
            return
        }
        var missing: [String] = []
        let results: [(String, LeadScorer.Scored)] = try leadStore.writer.write { db in
            var ids: [(String, Int64)] = []
            for key in leads {
                if let id = try LeadLookup.find(key, in: db) { ids.append((key, id)) } else { missing.append(key) }
            }
            let scored = try scorer.rescore(ids: ids.map(\.1), in: db, asOf: asOfMillis)
            return zip(ids.map(\.0), scored).map { ($0, $1) }
        }
        for (key, result) in results {
            let previous = result.previousScore.map(String.init) ?? "unscored"
            print(String(format: "%@ (id %lld): score %d (p = %.4f), was %@", key, result.leadID, result.score, result.probability, previous))
        }
        for key in missing { Terminal.error("no lead \(key)") }
        if !missing.isEmpty { throw ExitCode(1) }
    }
}

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show why a lead scores what it does: each feature's signed contribution to the logit.",
        discussion: """
            Contributions are coefficient × standardized value. With the intercept they sum to the \
            logit, and p = 1 / (1 + e^−logit).

            Examples:
              leadlens explain L0000042
              leadlens explain jane@example.com --top 5 --json
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var models: ModelOptions

    @Argument(help: ArgumentHelp("The lead: id, external id or email.", valueName: "lead"))
    var lead: String

    @Option(help: "Show this many contributions (all with --top 0).")
    var top = 10

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: ArgumentHelp(
        "Explain as of this date. Default: when the active model last scored the lead (its scored_at), so the stored score is the one explained; now for a lead it has not scored.",
        valueName: "date"))
    var asOf: String?

    func run() throws {
        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.explain")
        let scorer = try models.requireScorer(leadStore)
        let requested = try asOf.map { try DateArgument.millis($0) }
        let found = try leadStore.reader.read { db -> (Explanation, stored: LeadRecord?, asOf: Int64)? in
            guard let id = try LeadLookup.find(lead, in: db) else { return nil }
            let stored = try LeadRecord.fetch(id: id, in: db)
            // As the API explains a lead: as of the time its stored score was computed at.
            let scoredByThisModel = stored?.modelVersion == scorer.model.version ? stored?.scoredAt : nil
            let when = requested ?? scoredByThisModel ?? LeadStore.nowMillis()
            guard let explanation = try scorer.explain(leadID: id, in: db, asOf: when) else { return nil }
            return (explanation, stored, when)
        }
        guard var explanation = found?.0 else {
            Terminal.error("no lead \(lead)")
            throw ExitCode(1)
        }
        if top > 0 { explanation.contributions = Array(explanation.top(top)) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(explanation), as: UTF8.self))
            return
        }
        print(String(format: "lead %lld: score %d (p = %.4f) with %@ as of %@", explanation.leadID, explanation.score,
                     explanation.probability, explanation.modelVersion, ISODate.string(found?.asOf ?? 0)))
        // The store (the API, reports) shows the score last written; say so when it is not this one.
        if let stored = found?.stored, let version = stored.modelVersion, version != explanation.modelVersion {
            print("  the stored score is \(stored.score.map(String.init) ?? "none") from \(version); "
                  + "`leadlens score --all` rescores with \(explanation.modelVersion)")
        }
        func line(_ feature: String, _ value: String, _ effect: String) -> String {
            "  " + feature.padding(toLength: max(34, feature.count), withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, 12 - value.count)) + value
                + String(repeating: " ", count: max(0, 10 - effect.count)) + effect
        }
        print(line("feature", "value", "effect"))
        for c in explanation.contributions {
            let value = c.value.map { String(format: "%.4g", $0) } ?? "missing"
            print(line(c.feature, value, String(format: "%+.3f", c.contribution)))
        }
        print(line("(intercept)", "", String(format: "%+.3f", explanation.intercept)))
        print(line("logit", "", String(format: "%+.3f", explanation.logit)))
    }
}

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the store's models, or activate one.",
        discussion: """
            Examples:
              leadlens models
              leadlens models --activate default-v2
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(help: ArgumentHelp("Make this registered model the scoring model.", valueName: "version"))
    var activate: String?

    func run() throws {
        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.models")
        if let activate {
            do {
                try leadStore.writer.write { try ModelRegistry.activate(version: activate, in: $0) }
            } catch let error as SpecError {
                Terminal.error("\(error)")
                throw ExitCode(2)
            }
            print("active: \(activate) (run `leadlens score --all` to rescore now)")
            return
        }
        let entries = try leadStore.reader.read { try ModelRegistry.list(in: $0) }
        if entries.isEmpty { print("no models registered; the shipped default is installed on first scoring") }
        for entry in entries {
            let created = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(entry.createdAt) / 1000))
            let auc = entry.holdoutAUC.map { String(format: "%.4f", $0) } ?? "n/a"
            print("\(entry.isActive ? "*" : " ") \(entry.version)  created \(created)  holdout AUC \(auc)")
        }
    }
}
