import Foundation
import LeadStore

/// Reports: a dated folder of one self-contained summary.html and CSV files, written on demand
/// (`leadlens report`, the API) or on a cron schedule (`leadlens serve --report-schedule`).
public enum Reports {
    /// The leads a report covers: created in [from, until), unix ms. Its daily series uses UTC
    /// days, like the stats'; a calendar period's bounds follow `timeZone`'s days.
    public struct Period: Sendable, Equatable {
        public var from: Int64
        public var until: Int64
        /// How the report names it ("last 30 days"); nil: by its dates.
        public var name: String?
        /// The zone whose midnights bound the period (last-week in Asia/Tokyo); the report shows
        /// its dates in that zone.
        public var timeZone: TimeZone

        public init(from: Int64, until: Int64, name: String? = nil, timeZone: TimeZone = Reports.utc) {
            self.from = from
            self.until = until
            self.name = name
            self.timeZone = timeZone
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

        /// A period by name, relative to `now`: "Nd" (N × 24 hours up to now), "last-week" (the
        /// last full calendar week, Monday 00:00 to Monday 00:00 in `timeZone`: run on a Monday,
        /// the week just ended) or "last-month" (the last full calendar month in `timeZone`).
        /// Nil for anything else.
        public static func named(_ text: String, now: Date = Date(), in timeZone: TimeZone = Reports.utc) -> Period? {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            calendar.firstWeekday = 2  // Monday
            // The unit before the one `now` is in, from its first midnight to the current one's:
            // a week across a DST change is 167 or 169 hours.
            func previous(_ unit: Calendar.Component, name: String) -> Period? {
                guard let current = calendar.dateInterval(of: unit, for: now),
                      let previous = calendar.dateInterval(of: unit, for: current.start.addingTimeInterval(-1)) else { return nil }
                return Period(from: Reports.millis(previous.start), until: Reports.millis(current.start), name: name, timeZone: timeZone)
            }
            switch text.lowercased() {
            case "last-week": return previous(.weekOfYear, name: "last week")
            case "last-month": return previous(.month, name: "last month")
            default: return days(in: text).map { last(days: $0, now: now) }
            }
        }

        /// The `days` days up to `now`.
        public static func last(days: Int, now: Date = Date()) -> Period {
            let until = Reports.millis(now)
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
        var lastDay: Int64 { Civil.floorDiv(lastInstant, dayMillis) }
        var dayCount: Int { Int(lastDay - firstDay + 1) }

        /// Day numbers of the first and last day the period touches in its zone: the dates it shows.
        var firstLocalDay: Int64 { localDay(from) }
        var lastLocalDay: Int64 { localDay(lastInstant) }

        /// Whether its zone's dates differ from UTC's, so showing them needs the zone's name.
        var hasLocalDates: Bool { firstLocalDay != firstDay || lastLocalDay != lastDay }

        private var lastInstant: Int64 { max(until, from + 1) - 1 }

        private func localDay(_ millis: Int64) -> Int64 {
            let offset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(millis) / 1000))
            return Civil.floorDiv(millis + Int64(offset) * 1000, dayMillis)
        }
    }

    static let dayMillis: Int64 = 86_400_000

    /// The zone reports use unless told otherwise: periods, the daily series and times are UTC.
    public static let utc = TimeZone(identifier: "UTC")!

    /// Unix ms of `date`, rounded down.
    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// What a report contains besides index.json.
    public enum Format: String, Sendable, CaseIterable, Codable {
        case html
        case csv
    }

    /// Statuses that end a lead's pipeline: converted, lost, closed, disqualified or unqualified.
    /// The others are open, the ones the top-leads table lists.
    public static let closedStatuses: Set<String> = LeadStats.convertedStatuses.union(["lost", "closed", "disqualified", "unqualified"])

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
