import Foundation
import LeadStore

/// Reports: a dated folder of one self-contained summary.html and CSV files, written on demand
/// (`leadlens report`, the API) or on a cron schedule (`leadlens serve --report-schedule`).
public enum Reports {
    /// The leads a report covers: created in [from, until), unix ms. Dates are UTC days, like
    /// the stats' daily series.
    public struct Period: Sendable, Equatable {
        public var from: Int64
        public var until: Int64
        /// How the report names it ("last 30 days"); nil: by its dates.
        public var name: String?

        public init(from: Int64, until: Int64, name: String? = nil) {
            self.from = from
            self.until = until
            self.name = name
        }

        /// The longest period a report covers: its daily chart and CSV have a row per day.
        public static let maxDays = 36_600

        /// Whether the period fits in ``maxDays``.
        public var isWithinLimit: Bool { until - from <= Int64(Self.maxDays) * 86_400_000 }

        /// N from "Nd" (N days up to now, 1–36600); nil for anything else.
        public static func days(in text: String) -> Int? {
            guard text.hasSuffix("d"), let days = Int(text.dropLast()), (1...36_600).contains(days) else { return nil }
            return days
        }

        /// A period by name, relative to `now`: "Nd" (N days up to now), "last-week" (the last
        /// full calendar week, Monday to Monday, UTC: the Monday report's) or "last-month" (the
        /// last full calendar month, UTC). Nil for anything else.
        public static func named(_ text: String, now: Date = Date()) -> Period? {
            let today = Civil.floorDiv(Int64((now.timeIntervalSince1970 * 1000).rounded(.down)), dayMillis)
            switch text.lowercased() {
            case "last-week":
                // Day 0 (1970-01-01) was a Thursday: day + 3 counts weekdays from Monday.
                let monday = today - Civil.floorMod(today + 3, 7)
                return Period(from: (monday - 7) * dayMillis, until: monday * dayMillis, name: "last week")
            case "last-month":
                let (year, month, _) = Civil.date(fromDays: today)
                let first = Civil.days(year: year, month: month, day: 1)
                let previous = month == 1 ? Civil.days(year: year - 1, month: 12, day: 1) : Civil.days(year: year, month: month - 1, day: 1)
                return Period(from: previous * dayMillis, until: first * dayMillis, name: "last month")
            default:
                return days(in: text).map { last(days: $0, now: now) }
            }
        }

        /// The `days` days up to `now`.
        public static func last(days: Int, now: Date = Date()) -> Period {
            let until = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
            return Period(from: until - Int64(days) * dayMillis, until: until, name: days == 1 ? "last 24 hours" : "last \(days) days")
        }

        /// The filter that selects the period's leads: what the stats endpoint takes.
        public var filter: LeadFilter {
            var filter = LeadFilter()
            filter.createdFrom = from
            filter.createdUntil = until
            return filter
        }

        /// UTC day numbers of the first and last day the period touches.
        var firstDay: Int64 { Civil.floorDiv(from, dayMillis) }
        var lastDay: Int64 { Civil.floorDiv(max(until, from + 1) - 1, dayMillis) }
        var dayCount: Int { Int(lastDay - firstDay + 1) }
    }

    static let dayMillis: Int64 = 86_400_000

    /// What a report contains besides index.json.
    public enum Format: String, Sendable, CaseIterable, Codable {
        case html
        case csv
    }

    /// Statuses that end a lead's pipeline: converted, or one of the default lost statuses. The
    /// others are open, the ones the top-leads table lists.
    public static let closedStatuses: Set<String> = LeadStats.convertedStatuses.union(["lost", "closed", "disqualified"])

    /// What a report's files are: the manifest written as index.json.
    public struct Manifest: Codable, Sendable, Equatable {
        public static let formatName = "leadlens-report/1"

        public var format = Manifest.formatName
        /// The folder name: yyyy-MM-dd-HHmmss (UTC) of the generation time, "-2", "-3", … when
        /// several reports start within one second.
        public var id: String
        public var generatedAt: Date
        public var leadlensVersion: String
        public var database: String
        public var period: PeriodInfo
        public var modelVersion: String?
        /// Leads created in the period.
        public var leads: Int
        public var files: [File]

        public struct PeriodInfo: Codable, Sendable, Equatable {
            public var from: Date
            /// Exclusive.
            public var until: Date
        }

        public struct File: Codable, Sendable, Equatable {
            public var name: String
            public var contentType: String
            public var bytes: Int
            /// Data rows (CSV files only, header excluded).
            public var rows: Int?
            public var description: String

            enum CodingKeys: String, CodingKey {
                case name, bytes, rows, description
                case contentType = "content_type"
            }
        }

        enum CodingKeys: String, CodingKey {
            case format, id, database, period, leads, files
            case generatedAt = "generated_at"
            case leadlensVersion = "leadlens_version"
            case modelVersion = "model_version"
        }
    }

    /// A generation failure worth its own message: the folder cannot be written, and so on.
    public struct ReportError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    static let jsonEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let jsonDecoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    /// Content types the files are served with.
    public static func contentType(ofFile name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "html": "text/html; charset=utf-8"
        case "csv": "text/csv; charset=utf-8; header=present"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}
