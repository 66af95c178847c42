import Foundation
@testable import LeadReports
@testable import LeadStore
import Testing

@Suite("Report periods")
struct PeriodTests {
    private func date(_ iso: String) -> Date { ISO8601DateFormatter().date(from: iso)! }
    private func millis(_ iso: String) -> Int64 { Int64(date(iso).timeIntervalSince1970 * 1000) }

    @Test("last-week is the last full Monday-to-Monday week, also when run on a Monday; last-month the last full month")
    func calendarPeriods() throws {
        let wednesday = try #require(Reports.Period.named("last-week", now: date("2026-03-04T10:00:00Z")))
        #expect(wednesday.from == millis("2026-02-23T00:00:00Z") && wednesday.until == millis("2026-03-02T00:00:00Z"))
        #expect(Reports.Period.named("LAST-WEEK", now: date("2026-03-02T06:00:00Z")) == wednesday, "the Monday report covers the week just ended")
        #expect(Reports.Period.named("last-week", now: date("2026-03-01T23:59:59Z"))?.until == millis("2026-02-23T00:00:00Z"))
        let january = try #require(Reports.Period.named("last-month", now: date("2026-01-15T12:00:00Z")))
        #expect(january.from == millis("2025-12-01T00:00:00Z") && january.until == millis("2026-01-01T00:00:00Z"))
        let march = try #require(Reports.Period.named("last-month", now: date("2026-03-31T23:00:00Z")))
        #expect(march.from == millis("2026-02-01T00:00:00Z") && march.until == millis("2026-03-01T00:00:00Z"))
        #expect(Reports.Period.named("7d", now: date("2026-03-04T10:00:00Z")) == .last(days: 7, now: date("2026-03-04T10:00:00Z")))
        #expect(Reports.Period.named("last-year") == nil && Reports.Period.named("0d") == nil)
    }

    @Test("last-week and last-month follow the given zone's calendar, east and west of UTC")
    func calendarPeriodsInAZone() throws {
        let tokyo = try #require(TimeZone(identifier: "Asia/Tokyo"))
        // Monday 06:00:30 in Tokyo is still Sunday in UTC: the UTC week would be the one before.
        let mondayMorning = date("2026-03-08T21:00:30Z")
        let week = try #require(Reports.Period.named("last-week", now: mondayMorning, in: tokyo))
        #expect(week.from == millis("2026-03-02T00:00:00+09:00") && week.until == millis("2026-03-09T00:00:00+09:00"))
        #expect(week.name == "last week" && week.timeZone == tokyo)
        #expect(Reports.Period.named("last-week", now: date("2026-03-09T00:00:00+09:00"), in: tokyo) == week,
                "at Monday midnight the week just ended is the last one")
        #expect(Reports.Period.named("last-week", now: mondayMorning)?.until == millis("2026-03-02T00:00:00Z"), "UTC by default")
        let february = try #require(Reports.Period.named("last-month", now: date("2026-02-28T16:00:00Z"), in: tokyo))
        #expect(february.from == millis("2026-02-01T00:00:00+09:00") && february.until == millis("2026-03-01T00:00:00+09:00"))

        // Sunday evening in Los Angeles is Monday in UTC: the week that ends at the coming midnight is not over.
        let losAngeles = try #require(TimeZone(identifier: "America/Los_Angeles"))
        let sundayEvening = date("2026-01-12T02:00:00Z")
        let pacificWeek = try #require(Reports.Period.named("last-week", now: sundayEvening, in: losAngeles))
        #expect(pacificWeek.from == millis("2025-12-29T00:00:00-08:00") && pacificWeek.until == millis("2026-01-05T00:00:00-08:00"))
        #expect(Reports.Period.named("last-week", now: sundayEvening)?.until == millis("2026-01-12T00:00:00Z"), "UTC's week has ended")
        let december = try #require(Reports.Period.named("last-month", now: date("2026-02-01T03:00:00Z"), in: losAngeles))
        #expect(december.from == millis("2025-12-01T00:00:00-08:00") && december.until == millis("2026-01-01T00:00:00-08:00"))

        // Nd counts 24-hour days back from now, whatever the zone.
        #expect(Reports.Period.named("7d", now: mondayMorning, in: tokyo) == .last(days: 7, now: mondayMorning))
    }

    @Test("A week across a DST change runs midnight to midnight on the wall clock: 167 or 169 hours")
    func calendarPeriodsAcrossDST() throws {
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        // 29 March 2026, the last Sunday of March: 02:00 CET became 03:00 CEST.
        let spring = try #require(Reports.Period.named("last-week", now: date("2026-03-30T06:00:00+02:00"), in: berlin))
        #expect(spring.from == millis("2026-03-23T00:00:00+01:00") && spring.until == millis("2026-03-30T00:00:00+02:00"))
        #expect(spring.until - spring.from == 167 * 3_600_000)
        // 25 October 2026: 03:00 CEST became 02:00 CET.
        let autumn = try #require(Reports.Period.named("last-week", now: date("2026-10-26T06:00:00+01:00"), in: berlin))
        #expect(autumn.until - autumn.from == 169 * 3_600_000)
        let march = try #require(Reports.Period.named("last-month", now: date("2026-04-01T06:00:00+02:00"), in: berlin))
        #expect(march.from == millis("2026-03-01T00:00:00+01:00") && march.until == millis("2026-04-01T00:00:00+02:00"))
    }

    @Test("A zone's period shows its own dates, named; a UTC one shows UTC dates")
    func zoneDatesShown() throws {
        let tokyo = try #require(TimeZone(identifier: "Asia/Tokyo"))
        let week = try #require(Reports.Period.named("last-week", now: date("2026-03-08T21:00:30Z"), in: tokyo))
        #expect(Format.dateRange(week) == "2 Mar 2026 – 8 Mar 2026, Asia/Tokyo")
        #expect(week.dayCount == 8, "the daily series stays in UTC days: Sunday 15:00 to Sunday 15:00 touches 8")
        let utcWeek = try #require(Reports.Period.named("last-week", now: date("2026-03-09T10:00:00Z")))
        #expect(Format.dateRange(utcWeek) == "2 Mar 2026 – 8 Mar 2026")
        // A zone whose midnights are UTC's needs no name.
        let london = try #require(Reports.Period.named("last-week", now: date("2026-01-12T10:00:00Z"), in: TimeZone(identifier: "Europe/London")!))
        #expect(Format.dateRange(london) == "5 Jan 2026 – 11 Jan 2026")
    }

    @Test("long periods chart weeks from Monday to Sunday, after a partial first week")
    func weeksStartOnMonday() {
        // 2026-01-01 was a Thursday; 200 days put the chart in weekly bars.
        let first = Civil.days(year: 2026, month: 1, day: 1)
        let days = (0..<200).map { offset -> LeadStats.Day in
            let (y, m, d) = Civil.date(fromDays: first + Int64(offset))
            return LeadStats.Day(date: String(format: "%04d-%02d-%02d", y, m, d), new: 1)
        }
        let chart = SummaryView.dailyChart(days)
        #expect(chart.bars.first?.tooltip == "2026-01-01 – 2026-01-04: 4 new")
        #expect(chart.bars.dropFirst().first?.tooltip == "2026-01-05 – 2026-01-11: 7 new")
        #expect(chart.bars.count == 1 + 28)  // 4 days, then 196 days in 28 weeks
    }
}
