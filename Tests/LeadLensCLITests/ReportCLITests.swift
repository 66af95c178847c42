import ArgumentParser
import Foundation
@testable import leadlens
import LeadStore
import Testing

@Suite("leadlens report")
struct ReportCLITests {
    private let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-report-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    private var db: String { directory.appendingPathComponent("store.sqlite").path }

    /// Parses (which validates) and runs `leadlens report ARGS`; returns the exit status main
    /// would give.
    private func report(_ arguments: [String]) -> Int32 {
        do {
            let command = try ReportCommand.parse(arguments + ["--db", db])
            try command.run()
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch {
            return LeadLens.exitCode(for: error) == .validationFailure ? 2 : LeadLens.exitCode(for: error).rawValue
        }
    }

    @Test("Bad input exits with status 2", arguments: [
        ["--format", "pdf"],
        ["--format", "html,xml"],
        ["--format", ""],
        ["--from", "2026-03-02", "--to", "2026-03-01"],
        ["--from", "2026-03-01T12:00:00Z", "--to", "2026-03-01T11:00:00Z"],
        ["--from", "yesterday"],
        ["--from", "0001-01-01", "--to", "9999-12-31"],
        ["--to", "2026-03-01"],
        ["--period", "30"],
        ["--period", "7d", "--from", "2026-03-01"],
        ["--keep", "0"],
    ])
    func badInput(arguments: [String]) {
        #expect(report(arguments + ["--out", directory.appendingPathComponent("reports").path]) == 2)
    }

    @Test("An unwritable folder exits with status 2")
    func unwritableFolder() throws {
        let blocker = directory.appendingPathComponent("a-file")
        try Data().write(to: blocker)
        #expect(report(["--out", blocker.appendingPathComponent("reports").path]) == 2)
    }

    @Test("An empty store gives a report; --skip-empty writes none")
    func emptyStore() throws {
        _ = try LeadStore.open(path: db)  // an empty store; a missing one is an error (exit 2)
        let out = directory.appendingPathComponent("reports")
        #expect(report(["--out", out.path, "--skip-empty"]) == 0)
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("latest.json").path))
        #expect(report(["--out", out.path, "--from", "2026-01-01", "--to", "2026-01-01"]) == 0)
        let latest = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("latest.json"))) as? [String: Any]
        let path = try #require(latest?["path"] as? String)
        let html = try String(contentsOf: out.appendingPathComponent(path), encoding: .utf8)
        #expect(html.contains("No data for this period") && html.contains("1 Jan 2026"))
    }

    @Test("serve refuses an invalid schedule or time zone at start, with the reason")
    func serveRefusesBadSchedules() {
        for (arguments, reason) in [
            (["--report-schedule", "61 * * * *"], "out of range"),
            (["--report-schedule", "0 6 * *"], "expected 5 fields"),
            (["--report-schedule", "0 6 * * *", "--report-timezone", "Mars/Olympus"], "time zone"),
            (["--report-schedule", "0 6 * * *", "--report-keep", "0"], "--report-keep"),
        ] {
            #expect {
                _ = try ServeCommand.parse(arguments)
            } throws: { error in
                LeadLens.exitCode(for: error) == .validationFailure && LeadLens.fullMessage(for: error).contains(reason)
            }
        }
        #expect(throws: Never.self) { _ = try ServeCommand.parse(["--report-schedule", "0 6 * * MON-FRI", "--report-timezone", "utc"]) }
    }
}
