import Foundation
import GRDB
@testable import LeadReports
import LeadStore
import Testing

@Suite("Reports")
struct ReportTests {
    let directory: URL

    init() throws {
        directory = try TestStore.temporaryDirectory()
    }

    func generator(_ store: LeadStore, formats: Set<Reports.Format> = [.html, .csv], keep: Int? = nil,
                   skipEmpty: Bool = false) -> Reports.Generator {
        var options = Reports.Generator.Options(database: "test.sqlite", leadlensVersion: "test")
        options.formats = formats
        options.keep = keep
        options.skipEmpty = skipEmpty
        return Reports.Generator(store: store, directory: directory.appendingPathComponent("reports"), options: options)
    }

    func file(_ manifest: Reports.Manifest, _ name: String) -> URL {
        directory.appendingPathComponent("reports").appendingPathComponent(manifest.id).appendingPathComponent(name)
    }

    @Test("CSV files hold exactly the stats endpoint's numbers for the period, and every lead in it")
    func csvNumbersEqualTheStats() throws {
        // setup
        let store = try TestStore.make(TestStore.leads(count: 700, seed: 11), in: directory)
        let period = Reports.Period.last(days: 30, now: TestStore.now)

        // act
        let manifest = try #require(try generator(store).generate(period: period, now: TestStore.now))

        // check: the endpoint computes LeadStats for the same filter, with its own default window.
        let stats = try store.reader.read { try LeadStats.compute(period.filter, now: TestStore.now, in: $0) }
        #expect(stats.total > 100 && stats.total < 700, "the period should hold part of the leads")
        #expect(manifest.leads == stats.total)

        let bySource = try CSVReader.table(file(manifest, "by_source.csv"))
        #expect(bySource.header == ["source", "leads", "converted", "conversion_rate", "average_score", "expected_conversions"])
        #expect(bySource.rows.count == stats.bySource.count)
        for (row, expected) in zip(bySource.rows, stats.bySource) {
            #expect(row["source"] == expected.source.map(CSVWriter.text) ?? "")
            #expect(Int(row["leads"]!) == expected.count)
            #expect(Int(row["converted"]!) == expected.converted)
            #expect(Double(row["conversion_rate"]!) == expected.conversionRate)
            #expect(Double(row["average_score"]!) == expected.averageScore)
            #expect(Double(row["expected_conversions"]!) == expected.expectedConversions)
        }

        let byStatus = try CSVReader.table(file(manifest, "by_status.csv"))
        #expect(Dictionary(uniqueKeysWithValues: byStatus.rows.map { ($0["status"]!, Int($0["leads"]!)!) }) == stats.byStatus)
        for row in byStatus.rows {
            #expect(Double(row["average_score"]!) == stats.averageScoreByStatus[row["status"]!])
        }

        let buckets = try CSVReader.table(file(manifest, "score_buckets.csv"))
        #expect(buckets.rows.map { Int($0["leads"]!)! } == stats.scoreHistogram.map(\.count))
        #expect(buckets.rows.map { Int($0["converted"]!)! } == stats.scoreHistogram.map(\.converted))
        #expect(buckets.rows.map { Int($0["min_score"]!)! } == stats.scoreHistogram.map(\.min))

        // daily.csv covers every day the period touches, so it adds up to the total; where its
        // days overlap the endpoint's 30-day window, the counts agree.
        let daily = try CSVReader.table(file(manifest, "daily.csv"))
        #expect(daily.rows.reduce(0) { $0 + Int($1["new_leads"]!)! } == stats.total)
        let endpointDaily = Dictionary(uniqueKeysWithValues: stats.daily.map { ($0.date, $0.new) })
        for row in daily.rows {
            if let expected = endpointDaily[row["date"]!] { #expect(Int(row["new_leads"]!) == expected) }
        }
        #expect(daily.rows.count == 31, "30 days from 10:00 touch 31 UTC days")

        // leads.csv: the period's leads, in id order, values as stored.
        let leads = try CSVReader.table(file(manifest, "leads.csv"))
        #expect(leads.header == CSVFiles.leadsHeader)
        let stored = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, company, status, score, probability FROM leads WHERE created_at >= ? AND created_at < ? ORDER BY id
                """, arguments: [period.from, period.until])
        }
        #expect(leads.rows.map { Int64($0["id"]!)! } == stored.map { $0[0] as Int64 })
        for (row, lead) in zip(leads.rows, stored) {
            #expect(row["company"] == CSVWriter.text(lead[1] as String?))
            #expect(row["status"] == lead[2] as String)
            #expect(row["score"] == (lead[3] as Int?).map(String.init) ?? "")
            #expect(row["probability"].flatMap(Double.init) == lead[4] as Double?)
        }
        var statusCounts: [String: Int] = [:]
        for row in leads.rows { statusCounts[row["status"]!, default: 0] += 1 }
        #expect(statusCounts == stats.byStatus)
        #expect(manifest.files.first { $0.name == "leads.csv" }?.rows == stats.total)
    }

    @Test("The HTML shows the stats endpoint's numbers")
    func htmlNumbersEqualTheStats() throws {
        let store = try TestStore.make(TestStore.leads(count: 500, seed: 5), in: directory)
        let period = Reports.Period.last(days: 45, now: TestStore.now)
        let manifest = try #require(try generator(store, formats: [.html]).generate(period: period, now: TestStore.now))
        let html = try String(contentsOf: file(manifest, "summary.html"), encoding: .utf8)
        let stats = try store.reader.read { try LeadStats.compute(period.filter, now: TestStore.now, in: $0) }

        // Headline cards: read the shown text back as numbers.
        var cards: [String: String] = [:]
        for capture in try HTMLCheck.captures(#"data-metric="([a-z_]+)">.*?<div class="value">(.*?)</div>"#, in: html) {
            cards[capture[0]] = capture[1]
        }
        func number(_ text: String?) -> Double? {
            text.flatMap { Double($0.replacingOccurrences(of: ",", with: "").replacingOccurrences(of: "%", with: "")) }
        }
        #expect(number(cards["store_total"]) == 500)
        #expect(number(cards["total"]) == Double(stats.total))
        #expect(number(cards["converted"]) == Double(stats.converted))
        #expect(abs(number(cards["conversion_rate"])! - stats.conversionRate * 100) <= 0.05)
        #expect(abs(number(cards["average_score"])! - stats.averageScore!) <= 0.05)
        #expect(abs(number(cards["expected_conversions"])! - stats.expectedConversions) <= 0.05)

        // Source table: one row per source, in the endpoint's order, counts as computed.
        let rows = try HTMLCheck.captures(#"<tr data-source="([^"]*)">(.*?)</tr>"#, in: html)
        #expect(rows.map { HTMLCheck.decodeEntities($0[0]) } == stats.bySource.map { $0.source ?? "(no source)" })
        for (row, expected) in zip(rows, stats.bySource) {
            let cells = try HTMLCheck.captures(#"<td[^>]*>(.*?)</td>"#, in: row[1]).map { $0[0] }
            #expect(number(cells[1]) == Double(expected.count))
            #expect(number(cells[2]) == Double(expected.converted))
            #expect(abs(number(cells[3])! - expected.conversionRate * 100) <= 0.05)
        }

        // Funnel: every status with its count.
        let funnel = try HTMLCheck.captures(#"<tr data-status="([^"]*)">.*?<b>([0-9,]+)</b>"#, in: html)
        #expect(Dictionary(uniqueKeysWithValues: funnel.map { (HTMLCheck.decodeEntities($0[0]), Int(number($0[1])!)) }) == stats.byStatus)

        // Top leads: open, scored, in the period, best first, at most 50.
        let topIDs = try HTMLCheck.captures(#"<tr data-lead="([^"]*)">"#, in: html).map { $0[0] }
        let expectedTop = try store.reader.read { db in
            try String.fetchAll(db, sql: """
                SELECT external_id FROM leads
                WHERE created_at >= ? AND created_at < ? AND score IS NOT NULL
                  AND status NOT IN ('converted', 'lost', 'closed', 'disqualified')
                ORDER BY score DESC, probability DESC, id LIMIT 50
                """, arguments: [period.from, period.until])
        }
        #expect(topIDs == expectedTop)
        #expect(html.contains("no explanation available") == false, "every top lead is explained by its model")

        // The footer names the models behind the scores shown, with their counts.
        let scoredBy = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT model_version, count(*) FROM leads WHERE created_at >= ? AND created_at < ? AND model_version IS NOT NULL
                GROUP BY model_version ORDER BY count(*) DESC, model_version
                """, arguments: [period.from, period.until]).map { "\($0[0] as String) (\($0[1] as Int) leads)" }  // under 1,000: no grouping
        }
        #expect(!scoredBy.isEmpty)
        let shown = try HTMLCheck.captures(#"<dt>Scores shown from</dt><dd>(.*?)</dd>"#, in: html).first?.first
        #expect(shown.map(HTMLCheck.decodeEntities) == scoredBy.joined(separator: ", "))
    }

    @Test("The HTML is well formed, self-contained, and shows user strings as text")
    func htmlIsWellFormedAndEscaped() throws {
        let store = try TestStore.make(TestStore.leads(count: 300, seed: 3), in: directory)
        let manifest = try #require(try generator(store, formats: [.html]).generate(
            period: .last(days: 60, now: TestStore.now), now: TestStore.now))
        let html = try String(contentsOf: file(manifest, "summary.html"), encoding: .utf8)

        #expect(HTMLCheck.balanceProblems(html) == [])
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        // The lead named <script>… appears, escaped; no markup from the data gets through.
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.contains("<b>bold</b>"))
        #expect(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"))
        // Nothing is fetched: no external references of any kind.
        for needle in ["src=", "http://", "https://", "@import", "url(", "<link", "<img", "<iframe"] {
            #expect(!html.contains(needle), "summary.html contains \(needle)")
        }
        #expect(html.contains("@media print") && html.contains("size: A4"))
    }

    @Test("An empty store gives a valid report that says there is no data")
    func emptyStore() throws {
        let store = try TestStore.make([], in: directory)
        let period = Reports.Period.last(days: 7, now: TestStore.now)
        let manifest = try #require(try generator(store).generate(period: period, now: TestStore.now))
        #expect(manifest.leads == 0)
        let html = try String(contentsOf: file(manifest, "summary.html"), encoding: .utf8)
        #expect(html.contains("No data for this period"))
        // An empty store is not a period to widen.
        #expect(html.contains("The store holds no leads yet") && !html.contains("widen the period"))
        #expect(HTMLCheck.balanceProblems(html) == [])
        // No new lead, no rate: 0/0 is not "0.0%".
        let rate = try HTMLCheck.captures(#"data-metric="conversion_rate">.*?<div class="value">(.*?)</div>"#, in: html)
        #expect(rate.map { $0[0] } == ["–"])
        #expect(try CSVReader.table(file(manifest, "leads.csv")).rows.isEmpty)
        #expect(try CSVReader.table(file(manifest, "by_source.csv")).rows.isEmpty)
        let daily = try CSVReader.table(file(manifest, "daily.csv"))
        #expect(daily.rows.count == period.dayCount && daily.rows.allSatisfy { $0["new_leads"] == "0" })
        // index.json lists exactly the files written, with their sizes.
        let names = try FileManager.default.contentsOfDirectory(atPath: file(manifest, "").path).filter { $0 != "index.json" }
        #expect(Set(manifest.files.map(\.name)) == Set(names))
        for entry in manifest.files {
            let size = try FileManager.default.attributesOfItem(atPath: file(manifest, entry.name).path)[.size] as? Int
            #expect(size == entry.bytes)
        }
    }

    @Test("One lead, one file, one model's lead: singular wherever report text counts one")
    func singularForOne() throws {
        // setup: one scored open lead and one unscored one in the period, one lead outside it.
        let store = try TestStore.make([
            TestLead(externalID: "A", createdAt: TestStore.nowMillis - TestStore.day, probability: 0.9),
            TestLead(externalID: "B", createdAt: TestStore.nowMillis - TestStore.day),
            TestLead(externalID: "C", createdAt: TestStore.nowMillis - 20 * TestStore.day, probability: 0.2),
        ], in: directory)

        // act
        let week = try #require(try generator(store, formats: [.html]).generate(period: .last(days: 7, now: TestStore.now), now: TestStore.now))
        let html = try String(contentsOf: file(week, "summary.html"), encoding: .utf8)

        // check
        let shown = try HTMLCheck.captures(#"<dt>Scores shown from</dt><dd>(.*?)</dd>"#, in: html).first?.first
        #expect(shown?.hasSuffix(" (1 lead)") == true, "\(shown ?? "none")")
        #expect(html.contains("<div class=\"note\">1 scored lead</div>"))
        #expect(HTMLCheck.decodeEntities(html).contains(
            "The period's 1 highest-scoring lead that is neither converted nor lost, with what moved its score most"))
        #expect(html.contains(": 1 lead, "), "the histogram band's tooltip")
        #expect(try !Self.saysOneLeads(html))
    }

    @Test("While the period's leads are open, the report says so beside the converted count it compares with expected conversions")
    func openLeadsExplainTheGap() throws {
        let store = try TestStore.make([
            TestLead(externalID: "A", status: "new", createdAt: TestStore.nowMillis - TestStore.day, probability: 0.9),
            TestLead(externalID: "B", status: "contacted", createdAt: TestStore.nowMillis - TestStore.day, probability: 0.6),
            TestLead(externalID: "C", status: "lost", createdAt: TestStore.nowMillis - 2 * TestStore.day, probability: 0.1),
            TestLead(externalID: "D", status: "converted", createdAt: TestStore.nowMillis - 3 * TestStore.day, probability: 0.7),
        ], in: directory)
        let week = try #require(try generator(store, formats: [.html]).generate(period: .last(days: 7, now: TestStore.now), now: TestStore.now))
        let html = HTMLCheck.decodeEntities(try String(contentsOf: file(week, "summary.html"), encoding: .utf8))
        #expect(html.contains("of the new leads; 2 still open"))
        #expect(html.contains("2 of the period's 4 leads are neither converted nor closed yet."))

        // All closed: the plain comparison.
        let closed = try TestStore.make([
            TestLead(externalID: "E", status: "lost", createdAt: TestStore.nowMillis - TestStore.day, probability: 0.2),
        ], in: directory.appendingPathComponent("closed", isDirectory: true))
        let settled = try #require(try generator(closed, formats: [.html]).generate(period: .last(days: 7, now: TestStore.now), now: TestStore.now))
        let plain = HTMLCheck.decodeEntities(try String(contentsOf: file(settled, "summary.html"), encoding: .utf8))
        #expect(plain.contains("compare them with the converted count.") && !plain.contains("still open"))
    }

    /// Whether `text` counts one thing in the plural ("1 leads", "1 scored leads").
    static func saysOneLeads(_ text: String) throws -> Bool {
        let pattern = try NSRegularExpression(pattern: #"(?<![0-9.,])1 (scored |held-out |highest-scoring )?leads\b"#)
        return pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    @Test("A period without a name shows its dates once; one without a scored lead says so in a sentence")
    func unnamedPeriodAndNoScores() throws {
        let store = try TestStore.make([TestLead(externalID: "A", createdAt: TestStore.nowMillis - TestStore.day)], in: directory)
        let january = Reports.Period(from: 1_577_836_800_000, until: 1_580_515_200_000)  // 2020-01-01 to 2020-02-01 UTC
        let manifest = try #require(try generator(store, formats: [.html]).generate(period: january, now: TestStore.now))
        let html = try String(contentsOf: file(manifest, "summary.html"), encoding: .utf8)
        #expect(try HTMLCheck.captures(#"<dt>Period</dt><dd>(.*?)</dd>"#, in: html).first?.first == "1 Jan 2020 – 31 Jan 2020")
        #expect(html.components(separatedBy: "1 Jan 2020 – 31 Jan 2020").count - 1 == 4, "the title, the heading, the new-leads card and the footer")
        #expect(try HTMLCheck.captures(#"<dt>Scores shown from</dt><dd>(.*?)</dd>"#, in: html).first?.first
                == "No lead in the period has a score.")
        #expect(html.contains("The store holds 1 lead created at other times"))
        #expect(try !Self.saysOneLeads(html))

        // A named period keeps its name next to the dates.
        let named = try #require(try generator(store, formats: [.html]).generate(period: .last(days: 7, now: TestStore.now), now: TestStore.now))
        let namedHTML = try String(contentsOf: file(named, "summary.html"), encoding: .utf8)
        #expect(try HTMLCheck.captures(#"<dt>Period</dt><dd>(.*?)</dd>"#, in: namedHTML).first?.first == "8 Mar 2026 – 15 Mar 2026 (last 7 days)")
        // Its one lead is unscored: the top-leads section says so, without a count of none.
        #expect(namedHTML.contains("No scored open lead in this period.") && !namedHTML.contains("0 highest-scoring"))
    }

    @Test("leads.csv writes times as the API and its export do: ISO 8601 UTC to the second")
    func csvTimesMatchTheAPI() throws {
        let created = TestStore.nowMillis - TestStore.day + 123  // 2026-03-14T10:00:00.123Z
        let store = try TestStore.make([TestLead(externalID: "A", createdAt: created)], in: directory)
        try store.writer.write { db in
            try db.execute(sql: "UPDATE leads SET last_activity_at = ? WHERE external_id = 'A'", arguments: [created + 3_600_000])
        }
        let manifest = try #require(try generator(store, formats: [.csv]).generate(period: .last(days: 7, now: TestStore.now), now: TestStore.now))
        let row = try #require(try CSVReader.table(file(manifest, "leads.csv")).rows.first)
        #expect(row["created_at"] == "2026-03-14T10:00:00Z")
        #expect(row["last_activity_at"] == "2026-03-14T11:00:00Z")
        #expect(row["created_at"] == ISODate.string(created), "the formatter GET /leads/export and the API's JSON use")
    }

    @Test("--skip-empty writes nothing for an empty period")
    func skipEmpty() throws {
        let store = try TestStore.make(TestStore.leads(count: 20, seed: 1), in: directory)
        let empty = Reports.Period(from: TestStore.nowMillis + TestStore.day, until: TestStore.nowMillis + 2 * TestStore.day)
        #expect(try generator(store, skipEmpty: true).generate(period: empty, now: TestStore.now) == nil)
        #expect(try Reports.Archive(directory: directory.appendingPathComponent("reports")).list().isEmpty)
    }

    @Test("CSV fields with commas, quotes, line breaks and any Unicode parse back unchanged")
    func csvRoundTrip() throws {
        var random = SplitMix(state: 99)
        let alphabet = Array("ab ,\"\r\n'=é😀\t;")
        let records = (0..<200).map { _ in
            (0..<(1 + random.below(5))).map { _ in String((0..<random.below(12)).map { _ in alphabet[random.below(alphabet.count)] }) }
        }
        let url = directory.appendingPathComponent("round.csv")
        let writer = try CSVWriter(url: url)
        for record in records { try writer.write(record) }
        try writer.close()
        let parsed = try CSVReader.parse(String(contentsOf: url, encoding: .utf8))
        // A record of one empty field is an empty line, which reads back as one empty field too.
        #expect(parsed == records)
        #expect(CSVWriter.text("=SUM(A1)") == "'=SUM(A1)" && CSVWriter.text("-2+cmd|' /C calc'!A0") == "'-2+cmd|' /C calc'!A0")
        #expect(CSVWriter.text("a=b") == "a=b" && CSVWriter.text("@x") == "'@x" && CSVWriter.text("\tx") == "'\tx")
        // Only a plain number stays as given: a spreadsheet computes "+1-555-1234" (-5788).
        #expect(CSVWriter.text("+1 (555) 010-1234") == "'+1 (555) 010-1234" && CSVWriter.text("+") == "'+")
        #expect(CSVWriter.text("+1-555-1234") == "'+1-555-1234" && CSVWriter.text("-2+3") == "'-2+3")
        #expect(CSVWriter.text("-12.5") == "-12.5" && CSVWriter.text("-1.2.3") == "'-1.2.3")
        #expect(CSVWriter.text("+14155550123") == "'+14155550123", "Excel would show 1.4E+10")
        // An apostrophe already there is doubled, so dropping one on re-import is exact.
        #expect(CSVWriter.text("'=x") == "''=x" && CSVWriter.text("it's") == "it's" && CSVWriter.text("'quoted'") == "'quoted'")
        #expect(CSVWriter.text("''=x") == "'''=x" && CSVWriter.text("'-5") == "''-5" && CSVWriter.text("'") == "'")
    }
}
