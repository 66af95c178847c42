import ArgumentParser
import Foundation
@testable import leadlens
import LeadReports
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

    @Test("A scheduled last-week is the week just ended in the schedule's zone; leadlens report's stays UTC")
    func scheduledPeriodFollowsTheScheduleZone() throws {
        let store = try LeadStore.open(path: db)
        func date(_ iso: String) -> Date { ISO8601DateFormatter().date(from: iso)! }
        func millis(_ iso: String) -> Int64 { Int64(date(iso).timeIntervalSince1970 * 1000) }
        let options = try ReportScheduleOptions.parse([
            "--report-schedule", "0 6 * * MON", "--report-timezone", "Asia/Tokyo", "--report-period", "last-week",
        ])
        // The tick: Monday 06:00 in Tokyo, still Sunday 21:00 in UTC.
        let tick = try #require(try CronSchedule(parsing: "0 6 * * MON").nextRun(after: date("2026-03-08T12:00:00Z"), in: options.timeZone()))
        #expect(tick == date("2026-03-08T21:00:00Z"))

        let scheduled = try options.period(store: store, now: tick.addingTimeInterval(30))
        #expect(scheduled.from == millis("2026-03-02T00:00:00+09:00") && scheduled.until == millis("2026-03-09T00:00:00+09:00"))
        let onDemand = try ReportArguments.periodSpec("last-week", option: "--period").period(store: store, now: tick.addingTimeInterval(30))
        #expect(onDemand.from == millis("2026-02-23T00:00:00Z") && onDemand.until == millis("2026-03-02T00:00:00Z"))
    }

    @Test("The summary line puts one lead and one file in the singular")
    func summaryLine() {
        #expect(ReportCommand.summary(id: "2026-03-09-060000", leads: 1, files: 1, folder: "reports/2026-03-09-060000", seconds: 0.5)
            == "report 2026-03-09-060000: 1 lead, 1 file in reports/2026-03-09-060000/ (0.50 s)")
        #expect(ReportCommand.summary(id: "r", leads: 0, files: 7, folder: "r", seconds: 1).hasPrefix("report r: 0 leads, 7 files in r/"))
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
