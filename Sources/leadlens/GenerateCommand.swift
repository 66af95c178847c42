import ArgumentParser
import Foundation
import LeadIngest

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a realistic synthetic dataset: leads.csv, events.ndjson and ground_truth.json.",
        discussion: """
            Outcomes are drawn from a known logistic ground truth, written to ground_truth.json with \
            each lead's true probability. The output is identical for the same --seed and --as-of.

            Example:
              leadlens generate --leads 10000 --seed 7 --out data/demo
            """
    )

    @Option(help: "Number of leads.")
    var leads: Int

    @Option(help: "Random seed.")
    var seed: UInt64 = 42

    @Option(help: ArgumentHelp("The dataset's 'now': YYYY-MM-DD, or 'today'. Default: 2026-11-01, fixed so a seed always gives the same data.", valueName: "date"))
    var asOf: String?

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir"))
    var out: String

    func validate() throws {
        if leads < 1 || leads > 50_000_000 { throw ValidationError("--leads must be between 1 and 50000000.") }
        if let asOf, asOf != "today", Timestamp.parseISO8601(asOf) == nil {
            throw ValidationError("--as-of must be YYYY-MM-DD or 'today'.")
        }
    }

    func run() throws {
        var options = Synthetic.Options(leads: leads, seed: seed)
        if let asOf {
            if asOf == "today" {
                let day = floor(Date().timeIntervalSince1970 / 86_400) * 86_400
                options.asOf = Date(timeIntervalSince1970: day)
            } else if let millis = Timestamp.parseISO8601(asOf) {
                options.asOf = Date(timeIntervalSince1970: Double(millis) / 1000)
            }
        }
        let started = Date()
        let summary: Synthetic.Summary
        do {
            summary = try Synthetic.generate(options, into: URL(fileURLWithPath: out, isDirectory: true))
        } catch {
            // An unwritable --out is an unusable argument: exit 2, as the other commands do.
            Terminal.error("cannot write the dataset: \(error)")
            throw ExitCode(2)
        }
        print(String(format: "generated %d leads (%d converted, %d lost, %d open) and %d events in %@ (%.1f s)",
                     summary.leads, summary.converted, summary.lost, summary.open, summary.events, out,
                     Date().timeIntervalSince(started)))
    }
}
