import ArgumentParser
import Foundation
import LeadIngest
import LeadReports
import LeadStore
import Logging
import ServiceLifecycle

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a report: a self-contained summary.html and CSV files, in a dated folder.",
        discussion: """
            Writes OUT/<yyyy-MM-dd-HHmmss>/ (UTC) with summary.html (headline numbers, new leads per \
            day, the status funnel, the score distribution, sources, the top 50 open leads with their \
            top factors, model health), leads.csv, by_source.csv, by_status.csv, score_buckets.csv, \
            daily.csv and index.json, then points OUT/latest.json at it. The numbers are the stats \
            endpoint's for the same period.

            The period covers leads created in it. Dates are UTC (a scheduled report's weeks and \
            months are its --report-timezone's); --to is inclusive when it is a date, exact when it \
            is a datetime.

            Examples:
              leadlens report                                   # the last 30 days
              leadlens report --period 7d --format html
              leadlens report --from 2026-01-01 --to 2026-03-31 --out reports/q1
              leadlens report --period all --keep 10
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(help: ArgumentHelp("Folder the report folders go in.", valueName: "dir"))
    var out = "reports"

    @Option(help: ArgumentHelp("Nd (days up to now), last-week (Monday to Monday, UTC), last-month, or all. Default: 30d.", valueName: "period"))
    var period: String?

    @Option(help: ArgumentHelp("Start of the period: YYYY-MM-DD or an ISO 8601 datetime (UTC unless it has an offset).", valueName: "date"))
    var from: String?

    @Option(help: ArgumentHelp("End of the period (default: now). A date includes that whole day.", valueName: "date"))
    var to: String?

    @Option(help: ArgumentHelp("What to write: html, csv, or both.", valueName: "list"))
    var format = "html,csv"

    @Flag(help: "Write nothing when the period has no lead.")
    var skipEmpty = false

    @Option(help: ArgumentHelp("Keep only the N newest reports in the folder, deleting older ones.", valueName: "N"))
    var keep: Int?

    func validate() throws {
        _ = try ReportArguments.formats(format)
        if period != nil && (from != nil || to != nil) { throw ValidationError("Give --period or --from/--to, not both.") }
        if to != nil && from == nil { throw ValidationError("--to needs --from.") }
        if let period { _ = try ReportArguments.periodSpec(period, option: "--period") }
        if let from { _ = try ReportArguments.range(from: from, to: to) }
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1.") }
    }

    func run() throws {
        let formats = try ReportArguments.formats(format)
        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.report")
        let now = Date()
        let reportPeriod: Reports.Period
        if let from {
            reportPeriod = try ReportArguments.range(from: from, to: to, now: now)
        } else {
            reportPeriod = try ReportArguments.periodSpec(period ?? "30d", option: "--period").period(store: leadStore, now: now)
        }
        var options = Reports.Generator.Options(database: store.db, leadlensVersion: LeadLens.version)
        options.formats = formats
        options.skipEmpty = skipEmpty
        options.keep = keep
        let generator = Reports.Generator(
            store: leadStore, directory: URL(fileURLWithPath: out, isDirectory: true), options: options,
            logger: store.makeLogger(label: "leadlens.report"))
        let started = Date()
        let manifest: Reports.Manifest?
        do {
            manifest = try generator.generate(period: reportPeriod, now: now)
        } catch let error as Reports.ReportError {
            // An unwritable folder and the like: the arguments cannot work as given.
            Terminal.error(error.message)
            throw ExitCode(2)
        }
        guard let manifest else {
            print("no lead in the period: nothing written (--skip-empty)")
            return
        }
        let folder = URL(fileURLWithPath: out).appendingPathComponent(manifest.id).path
        print(Self.summary(id: manifest.id, leads: manifest.leads, files: manifest.files.count, folder: folder,
                           seconds: Date().timeIntervalSince(started)))
        if manifest.files.contains(where: { $0.name == "summary.html" }) { print("  \(folder)/summary.html") }
    }

    /// The line a written report is announced with.
    static func summary(id: String, leads: Int, files: Int, folder: String, seconds: TimeInterval) -> String {
        "report \(id): \(leads) lead\(leads == 1 ? "" : "s"), \(files) file\(files == 1 ? "" : "s") in \(folder)/ "
            + String(format: "(%.2f s)", seconds)
    }
}

/// Scheduled reports for `leadlens serve`.
struct ReportScheduleOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write a report on this 5-field cron schedule, e.g. \"0 6 * * *\" (daily at 06:00).", valueName: "cron"))
    var reportSchedule: String?

    @Option(help: ArgumentHelp("Time zone the schedule runs in: local (the server's), utc, or an IANA name.", valueName: "zone"))
    var reportTimezone = "local"

    @Option(help: ArgumentHelp("Keep the N newest reports.", valueName: "N"))
    var reportKeep = 30

    @Option(help: ArgumentHelp("Folder scheduled reports go in.", valueName: "dir"))
    var reportsDir = "reports"

    @Option(help: ArgumentHelp("Period each scheduled report covers: Nd up to the run, last-week, last-month (weeks and months in --report-timezone), or all.", valueName: "period"))
    var reportPeriod = "30d"

    func validate() throws {
        if let reportSchedule {
            do { _ = try CronSchedule(parsing: reportSchedule) } catch {
                throw ValidationError("--report-schedule: \(error.description)")
            }
        }
        _ = try timeZone()
        if reportKeep < 1 { throw ValidationError("--report-keep must be at least 1.") }
        _ = try ReportArguments.periodSpec(reportPeriod, option: "--report-period")
    }

    func timeZone() throws -> TimeZone {
        switch reportTimezone.lowercased() {
        case "local": return TimeZone.current
        case "utc": return Reports.utc
        default:
            guard let zone = TimeZone(identifier: reportTimezone) else {
                throw ValidationError("--report-timezone must be local, utc or an IANA time zone name, got \"\(reportTimezone)\".")
            }
            return zone
        }
    }

    /// The scheduler service, or none without --report-schedule.
    func schedulers(store: LeadStore, database: String, logger: Logger) throws -> [any Service] {
        guard let reportSchedule else { return [] }
        let schedule = try CronSchedule(parsing: reportSchedule)
        let zone = try timeZone()
        var options = Reports.Generator.Options(database: database, leadlensVersion: LeadLens.version)
        options.keep = reportKeep
        let generator = Reports.Generator(store: store, directory: URL(fileURLWithPath: reportsDir, isDirectory: true),
                                          options: options, logger: logger)
        Terminal.status("reports: \"\(schedule)\" (\(zone.identifier)) into \(reportsDir)/, keeping \(reportKeep)")
        return [Reports.Scheduler(schedule: schedule, timeZone: zone, logger: logger) {
            let now = Date()
            _ = try await generator.generateInBackground(period: try period(store: store, now: now), now: now)
        }]
    }

    /// The period a run at `now` reports: a calendar period's weeks and months are the
    /// schedule's zone's, so the Monday 06:00 Tokyo report covers the Tokyo week just ended.
    func period(store: LeadStore, now: Date) throws -> Reports.Period {
        try ReportArguments.periodSpec(reportPeriod, option: "--report-period").period(store: store, now: now, timeZone: timeZone())
    }
}

/// Parsing of the report options, shared by `report` and `serve`.
enum ReportArguments {
    enum PeriodSpec {
        /// Nd, last-week or last-month: resolved at each run, so a schedule's reports move on.
        case named(String)
        case all

        func period(store: LeadStore, now: Date, timeZone: TimeZone = Reports.utc) throws -> Reports.Period {
            switch self {
            case .named(let name):
                guard let period = Reports.Period.named(name, now: now, in: timeZone) else {
                    throw Reports.ReportError("no \(name) period in \(timeZone.identifier) at \(now)")
                }
                return period
            case .all: return try store.reader.read { db in try Reports.Period.allTime(in: db, now: now) }
            }
        }
    }

    static func periodSpec(_ text: String, option: String) throws -> PeriodSpec {
        if text.lowercased() == "all" { return .all }
        guard Reports.Period.named(text) != nil else {
            throw ValidationError("\(option) must be Nd (N days up to now, 1-36600), last-week, last-month or all, got \"\(text)\".")
        }
        return .named(text)
    }

    static func formats(_ text: String) throws -> Set<Reports.Format> {
        var formats = Set<Reports.Format>()
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
            guard let format = Reports.Format(rawValue: name) else {
                throw ValidationError("unknown --format \"\(name)\": use html, csv, or html,csv.")
            }
            formats.insert(format)
        }
        if formats.isEmpty { throw ValidationError("--format is empty: use html, csv, or html,csv.") }
        return formats
    }

    /// [from, to): a date-only --to includes that whole day.
    static func range(from: String, to: String?, now: Date = Date()) throws -> Reports.Period {
        guard let start = Timestamp.parseISO8601(from) else {
            throw ValidationError("--from must be YYYY-MM-DD or an ISO 8601 datetime, got \"\(from)\".")
        }
        var end = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        if let to {
            guard let parsed = Timestamp.parseEnd(to) else {
                throw ValidationError("--to must be YYYY-MM-DD or an ISO 8601 datetime, got \"\(to)\".")
            }
            end = parsed
        }
        guard start < end else {
            let bound = to.map { "--to (\($0))" } ?? "now, where --to defaults to"
            throw ValidationError("--from (\(from)) must be before \(bound): the period would be empty.")
        }
        let period = Reports.Period(from: start, until: end)
        guard period.isWithinLimit else {
            throw ValidationError("--from to --to spans more than \(Reports.Period.maxDays) days: a report has a row per day.")
        }
        return period
    }
}
