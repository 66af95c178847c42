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
