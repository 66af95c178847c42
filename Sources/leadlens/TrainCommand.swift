import ArgumentParser
import Foundation
import GRDB
import LeadScoring
import LeadStore

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a lead-scoring model: L2-regularized logistic regression, as scikit-learn's LogisticRegression(C).",
        discussion: """
            Leads whose status is won (default: converted) are positives, lost (default: lost, closed, \
            disqualified) negatives; the rest are scored but not trained on. A deterministic hash of the \
            lead id holds out --holdout of them for the model's metrics (AUC, log-loss, Brier, \
            calibration, lift). The model is written to <out>/<name>-v<N>.json and registered in the \
            store; --activate makes it the scoring model unless its holdout AUC is more than 0.005 \
            below the active model's (--force skips that check).

            Examples:
              leadlens train --activate
              leadlens train --spec models/features.json --C 0.5 --holdout 0.25
              leadlens train --numeric Employees,value --categorical source,Industry --name quick
              leadlens train --label-field Converted --no-penalty
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var models: ModelOptions

    @Option(help: ArgumentHelp("Feature spec (JSON). Default: <models>/features.json.", valueName: "file"))
    var spec: String?

    @Option(help: ArgumentHelp("Build the spec from these numeric lead or custom fields instead.", valueName: "fields"))
    var numeric: String?

    @Option(help: ArgumentHelp("…and these categorical fields (top 10 values plus other).", valueName: "fields"))
    var categorical: String?

    @Option(help: "Model name; files are <name>-v<N>.json. Default: the spec's name.")
    var name: String?

    @Option(name: .customLong("C"), help: "Inverse regularization strength, as scikit-learn's C. (default: 1.0)")
    var c: Double?

    @Flag(help: "No penalty: plain maximum likelihood (the smallest such fit when features are collinear).")
    var noPenalty = false

    @Option(help: "Fraction of labeled leads held out for metrics; 0 trains on all of them.")
    var holdout = 0.2

    @Option(help: ArgumentHelp("Where the model file is written. Default: the models folder.", valueName: "dir"))
    var out: String?

    @Flag(help: "Make the new model the scoring model (subject to the AUC check).")
    var activate = false

    @Flag(help: "With --activate: activate even if its holdout AUC is worse than the active model's.")
    var force = false

    @Option(help: ArgumentHelp("Statuses that count as won, comma-separated.", valueName: "statuses"))
    var won: String?

    @Option(help: ArgumentHelp("Statuses that count as lost, comma-separated.", valueName: "statuses"))
    var lost: String?

    @Option(help: ArgumentHelp("Take the label from this field (1/0, true/false, yes/no) instead of the status.", valueName: "field"))
    var labelField: String?

    @Option(help: "Refuse to train on fewer labeled leads than this.")
    var minLabeled = 50

    @Option(help: ArgumentHelp("Compute time-relative features as of this date. Default: now.", valueName: "date"))
    var asOf: String?

    @Option(help: ArgumentHelp("Also write the standardized training matrix here (X.f64, y.f64, meta.json), for comparing with other tools.", valueName: "dir"))
    var exportMatrix: String?

    func validate() throws {
        if let c, !(c > 0) || !c.isFinite { throw ValidationError("--C must be a positive number.") }
        if c != nil && noPenalty { throw ValidationError("Give --C or --no-penalty, not both.") }
        if holdout < 0 || holdout >= 1 { throw ValidationError("--holdout must be in [0, 1).") }
        if minLabeled < 2 { throw ValidationError("--min-labeled must be at least 2.") }
        if force && !activate { throw ValidationError("--force only applies with --activate.") }
        if spec != nil && (numeric != nil || categorical != nil) {
            throw ValidationError("Give --spec or --numeric/--categorical, not both.")
        }
        _ = try DateArgument.millis(asOf)
    }

    func run() throws {
        var featureSpec: FeatureSpec
        if numeric != nil || categorical != nil {
            featureSpec = .shortcut(numeric: Self.list(numeric), categorical: Self.list(categorical))
        } else {
            let url = spec.map { URL(fileURLWithPath: $0) } ?? models.directoryURL.appendingPathComponent("features.json")
            do {
                featureSpec = try FeatureSpec.load(from: url)
            } catch {
                Terminal.error("\(error)")
                throw ExitCode(2)
            }
        }
        if let name { featureSpec.name = name }
        if let won { featureSpec.labels.won = Self.list(won) }
        if let lost { featureSpec.labels.lost = Self.list(lost) }
        if let labelField { featureSpec.labels.field = labelField }
        do { try featureSpec.validateShape() } catch {
            Terminal.error("\(error)")
            throw ExitCode(2)
        }

        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.train")
        var options = Trainer.Options(asOf: try DateArgument.millis(asOf))
        options.c = noPenalty ? nil : c ?? 1
        options.holdout = holdout
        options.minimumLabeled = minLabeled

        let outURL = out.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? models.directoryURL
        let outcome: TrainingRun.Outcome
        do {
            outcome = try TrainingRun.run(
                spec: featureSpec, store: leadStore, options: options, activate: activate, force: force,
                directory: outURL,
                prepared: { data, readSeconds in
                    Terminal.status(String(format: "read %d training and %d holdout leads × %d features in %.2f s",
                                           data.train.rows, data.holdout.rows, data.width, readSeconds))
                    if let exportMatrix { try export(data, to: exportMatrix) }
                },
                iteration: { iteration in
                    Terminal.status(String(format: "  iteration %2d  loss %.10f  |gradient| %.3e  step %.3g",
                                           iteration.number, iteration.loss, iteration.gradientNorm, iteration.stepSize))
                })
        } catch let error as SpecError {
            Terminal.error("\(error)")
            throw ExitCode(2)
        } catch let error as Trainer.Failure {
            Terminal.error("refused to train: \(error). Nothing was written.")
            throw ExitCode(1)
        } catch let error as LogisticRegression.FitError {
            Terminal.error("refused to train: \(error). Nothing was written.")
            throw ExitCode(1)
        }
        let model = outcome.model
        let fileURL: URL? = outcome.fileURL
        let decision = outcome.decision
        let solveSeconds = model.training.solveSeconds
        let version = model.version

        let m = model.metrics
        print("model \(version) → \(fileURL?.path ?? "")")
        print(String(format: "  trained on %d leads (%.1f%% won) in %d iterations (%@), solve %.2f s",
                     model.training.rows, 100 * model.training.positiveRate, model.iterations,
                     model.converged ? "converged" : "NOT converged", solveSeconds))
        print(String(format: "  %@ (%d leads): AUC %@  log-loss %.4f  Brier %.4f  top-decile lift %.2f",
                     model.metricsOn, m.rows, m.auc.map { String(format: "%.4f", $0) } ?? "n/a",
                     m.logLoss, m.brier, m.lift.first?.lift ?? 0))
        switch decision {
        case .activate: print("  active: leads will be scored with \(version) (run `leadlens score --all` to rescore now)")
        case .keep(let reason):
            print("  not activated: \(reason)")
            if activate { throw ExitCode(1) }
        }
    }

    static func list(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Raw little-endian float64 files numpy reads with `np.fromfile`.
    private func export(_ data: Trainer.Dataset, to directory: String) throws {
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try data.train.x.withUnsafeBytes { try Data($0).write(to: url.appendingPathComponent("X.f64")) }
        try data.train.y.withUnsafeBytes { try Data($0).write(to: url.appendingPathComponent("y.f64")) }
        let meta: [String: Any] = ["rows": data.train.rows, "cols": data.width, "columns": data.layout.columnNames]
        try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted]).write(to: url.appendingPathComponent("meta.json"))
    }
}
