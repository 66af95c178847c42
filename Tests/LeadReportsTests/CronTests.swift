import Foundation
@testable import LeadReports
import Logging
import Synchronization
import Testing

@Suite("Cron schedules")
struct CronTests {
    /// The values a field matches, read back through `nextRun` would be indirect: test the bit
    /// sets against the forms' definitions instead.
    static func values(_ bits: UInt64, in range: ClosedRange<Int>) -> [Int] {
        range.filter { bits & (1 << UInt64($0)) != 0 }
    }

    @Test("Every field form: *, values, ranges, steps, lists, names")
    func fieldForms() throws {
        let all = try CronSchedule(parsing: "* * * * *")
        #expect(Self.values(all.minutes, in: 0...59) == Array(0...59))
        #expect(Self.values(all.hours, in: 0...23) == Array(0...23))
        #expect(Self.values(all.daysOfMonth, in: 1...31) == Array(1...31))
        #expect(Self.values(all.months, in: 1...12) == Array(1...12))
        #expect(Self.values(all.daysOfWeek, in: 0...7) == Array(0...6))
        #expect(!all.daysOfMonthRestricted && !all.daysOfWeekRestricted)

        let forms = try CronSchedule(parsing: "*/15 9-17/4 1,15,20 JAN-mar,Dec mon-FRI,SUN")
        #expect(Self.values(forms.minutes, in: 0...59) == [0, 15, 30, 45])
        #expect(Self.values(forms.hours, in: 0...23) == [9, 13, 17])
        #expect(Self.values(forms.daysOfMonth, in: 1...31) == [1, 15, 20])
        #expect(Self.values(forms.months, in: 1...12) == [1, 2, 3, 12])
        #expect(Self.values(forms.daysOfWeek, in: 0...7) == [0, 1, 2, 3, 4, 5])

        let steps = try CronSchedule(parsing: "5/20 0-23/6 */10 */5 7")
        #expect(Self.values(steps.minutes, in: 0...59) == [5, 25, 45])
        #expect(Self.values(steps.hours, in: 0...23) == [0, 6, 12, 18])
        #expect(Self.values(steps.daysOfMonth, in: 1...31) == [1, 11, 21, 31])
        #expect(Self.values(steps.months, in: 1...12) == [1, 6, 11])
        #expect(Self.values(steps.daysOfWeek, in: 0...7) == [0], "7 is Sunday")

        let daily = try CronSchedule(parsing: "@daily")
        #expect(Self.values(daily.minutes, in: 0...59) == [0] && Self.values(daily.hours, in: 0...23) == [0])
        #expect(try CronSchedule(parsing: "  0   6 * * *  ").minutes == 1)
    }

    @Test("Invalid expressions are refused with the reason", arguments: [
        ("0 6 * *", "expected 5 fields"),
        ("0 6 * * * *", "expected 5 fields"),
        ("60 * * * *", "out of range"),
        ("* 24 * * *", "out of range"),
        ("* * 0 * *", "out of range"),
        ("* * * 13 *", "out of range"),
        ("* * * * 8", "out of range"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "step"),
        ("1,,2 * * * *", "empty item"),
        ("* * * FOO *", "not a valid month"),
        ("* * * * MONDAY", "not a valid day of week"),
        ("0 0 30 2 *", "never run"),
        ("0 0 31 4,6,9,11 *", "never run"),
        ("@sometimes", "expected 5 fields"),
    ])
    func invalid(expression: String, reason: String) {
        #expect {
            _ = try CronSchedule(parsing: expression)
        } throws: { error in
            let message = (error as? CronSchedule.ParseError)?.description ?? ""
            return message.contains(reason) && message.contains(expression)
        }
    }

    // MARK: - Next runs

    /// The rule, stated independently with Foundation's Calendar: step through instants minute by
    /// minute; a minute runs when its wall-clock fields match and that wall-clock time was not
    /// already seen earlier in the scan (it repeats when clocks fall back). A wall time that
    /// clocks skip never appears in the scan, so it never runs. The scan starts `lookback`
    /// before `after` so repeats are recognized.
    static func oracle(_ expression: String, after: Date, in zone: TimeZone, limitMinutes: Int) throws -> Date? {
        let schedule = try CronSchedule(parsing: expression)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        func matches(_ c: DateComponents) -> Bool {
            let dom = schedule.daysOfMonth & (1 << UInt64(c.day!)) != 0
            let dow = schedule.daysOfWeek & (1 << UInt64(c.weekday! - 1)) != 0
            let day = schedule.daysOfMonthRestricted && schedule.daysOfWeekRestricted ? (dom || dow) : (dom && dow)
            return day && schedule.minutes & (1 << UInt64(c.minute!)) != 0 && schedule.hours & (1 << UInt64(c.hour!)) != 0
                && schedule.months & (1 << UInt64(c.month!)) != 0
        }
        let start = floor(after.timeIntervalSince1970 / 60) * 60 - 3 * 3600
        var seen = Set<Int>()
        for step in 0..<(limitMinutes + 180) {
            let instant = Date(timeIntervalSince1970: start + Double(step) * 60)
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: instant)
            let firstTime = seen.insert(((c.year! * 100 + c.month!) * 100 + c.day!) * 10_000 + c.hour! * 100 + c.minute!).inserted
            if instant > after && firstTime && matches(c) { return instant }
        }
        return nil
    }

    static func date(_ iso: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: iso)!
    }

    @Test("Next runs match the minute-by-minute rule, in UTC and in zones with DST, around their changes", arguments: [
        "UTC", "America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata",
    ])
    func nextRunsMatchTheRule(zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        let expressions = [
            "0 6 * * *", "30 2 * * *", "30 1 * * *", "*/20 * * * *", "15 0-3 * * *", "0 */3 * * *", "45 1,2,3 * * SUN",
            "0 9 * * MON-FRI", "0 0 1 * *", "10 2 1,15 * 0", "0 12 * MAR,NOV *", "59 23 * * *", "0 1 * * 6,7",
        ]
        // Instants around 2026's DST changes of these zones (and an ordinary week), plus odd minutes.
        let anchors = ["2026-03-08T05:00:00Z", "2026-03-29T00:00:00Z", "2026-04-05T14:00:00Z", "2026-10-04T15:00:00Z",
                       "2026-10-25T00:30:00Z", "2026-11-01T05:00:00Z", "2026-06-10T12:00:00Z"].map(Self.date)
        var checked = 0
        for expression in expressions {
            let schedule = try CronSchedule(parsing: expression)
            for anchor in anchors {
                for offset in [-7200.0, 1037, 9000] {
                    let after = anchor.addingTimeInterval(offset)
                    guard let expected = try Self.oracle(expression, after: after, in: zone, limitMinutes: 2 * 24 * 60) else { continue }
                    #expect(schedule.nextRun(after: after, in: zone) == expected, "\(expression) after \(after) in \(zoneName)")
                    checked += 1
                }
            }
        }
        #expect(checked > 150)
    }

    @Test("Spring forward: a skipped local time does not run that day")
    func springForward() throws {
        let newYork = TimeZone(identifier: "America/New_York")!
        // 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
        let schedule = try CronSchedule(parsing: "30 2 * * *")
        let next = try #require(schedule.nextRun(after: Self.date("2026-03-07T12:00:00-05:00"), in: newYork))
        #expect(next == Self.date("2026-03-09T02:30:00-04:00"))
        // A time after the gap the same day still runs.
        #expect(try CronSchedule(parsing: "30 3 * * *").nextRun(after: Self.date("2026-03-08T00:00:00-05:00"), in: newYork)
                == Self.date("2026-03-08T03:30:00-04:00"))
        // London: 01:30 does not exist on 2026-03-29.
        let london = TimeZone(identifier: "Europe/London")!
        #expect(try CronSchedule(parsing: "30 1 * * *").nextRun(after: Self.date("2026-03-28T12:00:00Z"), in: london)
                == Self.date("2026-03-30T01:30:00+01:00"))
    }

    @Test("Fall back: a repeated local time runs once, at its first occurrence")
    func fallBack() throws {
        let newYork = TimeZone(identifier: "America/New_York")!
        // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
        let schedule = try CronSchedule(parsing: "30 1 * * *")
        let first = try #require(schedule.nextRun(after: Self.date("2026-10-31T12:00:00-04:00"), in: newYork))
        #expect(first == Self.date("2026-11-01T01:30:00-04:00"))
        let second = try #require(schedule.nextRun(after: first, in: newYork))
        #expect(second == Self.date("2026-11-02T01:30:00-05:00"), "not again an hour later at 01:30 EST")
        // Hourly through the change: 01:00 runs once, then 02:00 EST, two real hours later.
        let hourly = try CronSchedule(parsing: "0 * * * *")
        let one = try #require(hourly.nextRun(after: Self.date("2026-11-01T00:30:00-04:00"), in: newYork))
        #expect(one == Self.date("2026-11-01T01:00:00-04:00"))
        #expect(hourly.nextRun(after: one, in: newYork) == Self.date("2026-11-01T02:00:00-05:00"))
        let london = TimeZone(identifier: "Europe/London")!
        let run = try #require(schedule.nextRun(after: Self.date("2026-10-24T12:00:00Z"), in: london))
        #expect(run == Self.date("2026-10-25T01:30:00+01:00"))
        #expect(schedule.nextRun(after: run, in: london) == Self.date("2026-10-26T01:30:00Z"))
    }

    @Test("Day of month and day of week together match either, as in Vixie cron")
    func dayOfMonthOrWeek() throws {
        let utc = TimeZone(identifier: "UTC")!
        let schedule = try CronSchedule(parsing: "0 6 13 * FRI")
        // From Wednesday 2026-03-11: Friday the 13th is both; then Friday 20th; the 13th of April is a Monday.
        var runs: [Date] = []
        var after = Self.date("2026-03-11T00:00:00Z")
        for _ in 0..<5 {
            after = try #require(schedule.nextRun(after: after, in: utc))
            runs.append(after)
        }
        #expect(runs == ["2026-03-13", "2026-03-20", "2026-03-27", "2026-04-03", "2026-04-10"].map { Self.date("\($0)T06:00:00Z") })
        let leap = try CronSchedule(parsing: "0 0 29 2 *")
        #expect(leap.nextRun(after: Self.date("2026-03-01T00:00:00Z"), in: utc) == Self.date("2028-02-29T00:00:00Z"))
    }
}

@Suite("Report scheduler")
struct SchedulerTests {
    /// A clock that moves only when the scheduler sleeps.
    final class FakeClock: Sendable {
        let seconds: Mutex<TimeInterval>
        init(_ start: Date) { seconds = Mutex(start.timeIntervalSince1970) }
        var now: Date { Date(timeIntervalSince1970: seconds.withLock { $0 }) }
        func advance(_ duration: Duration) {
            let (s, attoseconds) = duration.components
            seconds.withLock { $0 += Double(s) + Double(attoseconds) / 1e18 }
        }
    }

    struct Failure: Error {}

    @Test("Runs at each tick; a failed run is logged and the next tick runs anyway")
    func runsEachTickAndSurvivesFailures() async throws {
        let clock = FakeClock(CronTests.date("2026-03-14T23:58:30Z"))
        let runs = Mutex<[Date]>([])
        let logs = LogCapture()
        let scheduler = Reports.Scheduler(
            schedule: try CronSchedule(parsing: "0 * * * *"), timeZone: TimeZone(identifier: "UTC")!,
            logger: Logger(label: "test") { _ in logs }, now: { clock.now },
            sleep: { duration in
                clock.advance(duration)
                await Task.yield()
            },
            job: {
                let count = runs.withLock { runs in
                    runs.append(clock.now)
                    return runs.count
                }
                if count == 2 { throw Failure() }   // the second run fails
                if count == 4 { throw CancellationError() }  // stop the loop
                clock.advance(.seconds(42))  // a run takes time
            })
        try await scheduler.loop()
        let times = runs.withLock { $0 }
        #expect(times == ["2026-03-15T00:00:00Z", "2026-03-15T01:00:00Z", "2026-03-15T02:00:00Z", "2026-03-15T03:00:00Z"].map(CronTests.date))
        #expect(logs.messages.contains { $0.contains("scheduled report failed") })
    }
}

/// Captures log messages in memory (never LoggingSystem.bootstrap in tests).
final class LogCapture: LogHandler, Sendable {
    private let stored = Mutex<[String]>([])
    var messages: [String] { stored.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    func log(event: LogEvent) {
        stored.withLock { $0.append("\(event.message)") }
    }
}
