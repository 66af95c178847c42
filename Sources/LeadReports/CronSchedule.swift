import Foundation
import LeadStore

/// A 5-field cron expression — minute, hour, day of month, month, day of week — with `*`, single
/// values, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n`, lists `a,b-c`, month names JAN–DEC,
/// day names SUN–SAT (0 and 7 are both Sunday), and the macros @yearly, @monthly, @weekly,
/// @daily and @hourly.
///
/// As in Vixie cron, when both day of month and day of week are restricted (neither starts with
/// `*`), a day matches if *either* does: `0 6 1 * MON` runs on the 1st and on every Monday.
///
/// Next runs are computed on the wall clock of a time zone, and DST changes are handled so that
/// every wall-clock time runs at most once and never at a time that did not exist:
/// - a local time skipped by a spring-forward change (02:30 in New York on the second Sunday of
///   March) does not run that day: the run is skipped, not moved;
/// - a local time that happens twice when clocks fall back runs at its first occurrence only.
/// A schedule that says "daily at 02:30" therefore runs 364 or 365 times a year, never twice a
/// day. We chose that over Vixie cron's catch-up heuristics because a report made twice, or made
/// at a time nobody asked for, is more confusing than one that is missing once a year.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    /// Bit i set: value i matches.
    let minutes: UInt64
    let hours: UInt64
    let daysOfMonth: UInt64
    let months: UInt64
    /// Bits 0–6, Sunday = 0.
    let daysOfWeek: UInt64
    let daysOfMonthRestricted: Bool
    let daysOfWeekRestricted: Bool
    /// The expression as given.
    public let expression: String

    public var description: String { expression }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var expression: String
        public var reason: String
        public var description: String { "invalid cron expression \"\(expression)\": \(reason)" }
    }

    static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    public init(parsing expression: String) throws(ParseError) {
        self.expression = expression
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        let text = Self.macros[trimmed.lowercased()] ?? trimmed
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        func fail(_ reason: String) -> ParseError { ParseError(expression: expression, reason: reason) }
        guard fields.count == 5 else {
            throw fail("expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        do {
            minutes = try Self.parseField(fields[0], name: "minute", range: 0...59, names: [:])
            hours = try Self.parseField(fields[1], name: "hour", range: 0...23, names: [:])
            daysOfMonth = try Self.parseField(fields[2], name: "day of month", range: 1...31, names: [:])
            months = try Self.parseField(
                fields[3], name: "month", range: 1...12,
                names: Dictionary(uniqueKeysWithValues: Self.monthNames.enumerated().map { ($1, $0 + 1) }))
            var days = try Self.parseField(
                fields[4], name: "day of week", range: 0...7,
                names: Dictionary(uniqueKeysWithValues: Self.dayNames.enumerated().map { ($1, $0) }))
            if days & (1 << 7) != 0 { days = (days | 1) & ~(1 << 7) }  // 7 is Sunday too
            daysOfWeek = days
        } catch let reason as FieldError {
            throw fail(reason.message)
        } catch {
            throw fail("\(error)")
        }
        daysOfMonthRestricted = !fields[2].hasPrefix("*")
        daysOfWeekRestricted = !fields[4].hasPrefix("*")
        // Refuse what can never run ("0 0 30 2 *"), rather than a scheduler that waits forever.
        if daysOfMonthRestricted && !daysOfWeekRestricted {
            let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            let firstDay = daysOfMonth.trailingZeroBitCount
            let possible = (1...12).contains { months & (1 << $0) != 0 && longest[$0 - 1] >= firstDay }
            if !possible { throw fail("no month in it has that day, so it would never run") }
        }
    }

    private struct FieldError: Error { var message: String }

    /// One field as a bit set over `range`.
    private static func parseField(_ field: String, name: String, range: ClosedRange<Int>, names: [String: Int]) throws -> UInt64 {
        func value(_ text: Substring) throws -> Int {
            if let number = Int(text) {
                guard range.contains(number) else {
                    throw FieldError(message: "\(name) \(number) is out of range \(range.lowerBound)-\(range.upperBound)")
                }
                return number
            }
            if let named = names[text.uppercased()] { return named }
            throw FieldError(message: "\"\(text)\" is not a valid \(name)")
        }
        var bits: UInt64 = 0
        for item in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw FieldError(message: "empty item in the \(name) list \"\(field)\"") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw FieldError(message: "\"\(item)\" has more than one step in the \(name) field") }
            var step = 1
            if parts.count == 2 {
                guard let n = Int(parts[1]), n >= 1, n <= range.upperBound else {
                    throw FieldError(message: "step \"\(parts[1])\" in the \(name) field must be 1-\(range.upperBound)")
                }
                step = n
            }
            let base = parts[0]
            var low: Int, high: Int
            if base == "*" {
                low = range.lowerBound
                high = range.upperBound
                // Day of week "*" covers 0-6; 7 would only repeat Sunday.
                if name == "day of week" { high = 6 }
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw FieldError(message: "range \"\(base)\" in the \(name) field runs backwards") }
            } else {
                low = try value(base)
                // "a/n" means from a to the end of the range, stepping n.
                high = parts.count == 2 ? range.upperBound : low
            }
            for v in stride(from: low, through: high, by: step) { bits |= 1 << UInt64(v) }
        }
        return bits
    }

    // MARK: - Next run

    /// The first time strictly after `date` at which the schedule runs on `timeZone`'s wall clock,
    /// or nil when there is none within the next 30 years (never, for a valid expression).
    public func nextRun(after date: Date, in timeZone: TimeZone) -> Date? {
        let afterSeconds = Int64((date.timeIntervalSince1970).rounded(.down))
        let localNow = afterSeconds + Int64(timeZone.secondsFromGMT(for: date))
        // Start at the next whole local minute. Wall times before it may still lie after `date`
        // (the clock fell back), but those already ran at their first occurrence.
        let startMinute = Civil.floorDiv(localNow, 60) + 1
        var day = Civil.floorDiv(startMinute * 60, 86_400)
        let lastDay = day + 366 * 30
        var firstMinuteOfDay = Int(startMinute - day * 1440)
        while day <= lastDay {
            let (_, month, dayOfMonth) = Civil.date(fromDays: day)
            let weekday = Int(Civil.floorMod(day + 4, 7))  // 1970-01-01 was a Thursday
            if months & (1 << UInt64(month)) != 0 && matches(dayOfMonth: dayOfMonth, weekday: weekday) {
                for hour in 0..<24 where hours & (1 << UInt64(hour)) != 0 {
                    for minute in 0..<60 where minutes & (1 << UInt64(minute)) != 0 {
                        let minuteOfDay = hour * 60 + minute
                        guard minuteOfDay >= firstMinuteOfDay else { continue }
                        let local = day * 86_400 + Int64(minuteOfDay) * 60
                        // Skipped (nil) local times don't run; repeated ones run the first time only.
                        if let instant = Self.firstInstant(ofLocal: local, in: timeZone), instant > afterSeconds {
                            return Date(timeIntervalSince1970: TimeInterval(instant))
                        }
                    }
                }
            }
            day += 1
            firstMinuteOfDay = 0
        }
        return nil
    }

    private func matches(dayOfMonth: Int, weekday: Int) -> Bool {
        let domMatch = daysOfMonth & (1 << UInt64(dayOfMonth)) != 0
        let dowMatch = daysOfWeek & (1 << UInt64(weekday)) != 0
        if daysOfMonthRestricted && daysOfWeekRestricted { return domMatch || dowMatch }
        return domMatch && dowMatch
    }

    /// The earliest instant (unix seconds) whose wall-clock time in `timeZone` is `local`
    /// (seconds since the epoch, read as if UTC); nil when that wall time does not exist.
    static func firstInstant(ofLocal local: Int64, in timeZone: TimeZone) -> Int64? {
        // The offsets in force around that time: a zone changes offset at most once within a day.
        var offsets = Set<Int>()
        for probe in [local - 86_400, local, local + 86_400] {
            offsets.insert(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(probe))))
        }
        let instants = offsets.map { local - Int64($0) }.filter { instant in
            Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))) == local - instant
        }
        return instants.min()
    }
}

/// Proleptic Gregorian calendar arithmetic on day numbers since 1970-01-01, exact and free of
/// Calendar and formatters (Howard Hinnant's algorithms).
enum Civil {
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }
    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }

    static func date(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let date = LeadStats.civilDate(days)
        return (Int(date.year), Int(date.month), Int(date.day))
    }

    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
