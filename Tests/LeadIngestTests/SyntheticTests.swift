import Foundation
import Testing
import LeadStore
@testable import LeadIngest

@Suite("Synthetic data generator")
struct SyntheticTests {
    // MARK: Determinism

    @Test func sameSeedAndAsOfGiveByteIdenticalFiles() throws {
        let a = try GeneratedDataset(leads: 500, seed: 7)
        let b = try GeneratedDataset(leads: 500, seed: 7)
        defer { a.remove(); b.remove() }
        for name in GeneratedDataset.fileNames {
            let da = try Data(contentsOf: a.dir.appendingPathComponent(name))
            let db = try Data(contentsOf: b.dir.appendingPathComponent(name))
            #expect(!da.isEmpty)
            #expect(da == db, "\(name) differs between two runs with the same seed")
        }
    }

    @Test func differentSeedGivesDifferentData() throws {
        let a = try GeneratedDataset(leads: 300, seed: 1)
        let b = try GeneratedDataset(leads: 300, seed: 2)
        defer { a.remove(); b.remove() }
        for name in GeneratedDataset.fileNames {
            let da = try Data(contentsOf: a.dir.appendingPathComponent(name))
            let db = try Data(contentsOf: b.dir.appendingPathComponent(name))
            #expect(da != db, "\(name) is identical for seeds 1 and 2")
        }
    }

    @Test func asOfShiftsCreationDates() throws {
        let asOf = try #require(ISO8601DateFormatter().date(from: "2025-06-15T00:00:00Z"))
        let g = try GeneratedDataset(leads: 200, seed: 42, asOf: asOf)
        defer { g.remove() }
        let truth = try g.groundTruth()
        #expect(truth["as_of"] as? String == "2025-06-15T00:00:00Z")
        for row in try g.leadRows() {
            let created = try #require(Self.parseISO(row["Created At"] ?? ""))
            #expect(created < asOf && created >= asOf.addingTimeInterval(-365 * 86_400))
        }
    }

    @Test func defaultAsOfIsFixed() {
        #expect(ISO8601DateFormatter().string(from: Synthetic.defaultAsOf) == "2026-11-01T00:00:00Z")
        #expect(Synthetic.Options(leads: 1).seed == 42)
    }

    // MARK: Shape of the files

    @Test func leadCountAndSummaryMatchTheFiles() throws {
        let g = try GeneratedDataset(leads: 1234, seed: 3)
        defer { g.remove() }
        let s = g.summary
        #expect(s.leads == 1234)
        #expect(s.converted + s.lost + s.open == 1234)
        #expect(s.files.map(\.lastPathComponent) == GeneratedDataset.fileNames)

        let rows = try g.leadRows()
        #expect(rows.count == 1234)
        #expect(rows.first?["Lead ID"] == "L0000001")
        #expect(rows.last?["Lead ID"] == "L0001234")
        #expect(Set(rows.compactMap { $0["Lead ID"] }).count == 1234)

        let events = try g.eventLines()
        #expect(events.count == s.events)
        #expect(Double(s.events) / 1234 > 6 && Double(s.events) / 1234 < 14, "mean events per lead should be ~10")

        let truthLeads = try #require(try g.groundTruth()["leads"] as? [[String: Any]])
        #expect(truthLeads.count == 1234)
        #expect(truthLeads.filter { $0["label"] as? Int == 1 }.count == s.converted)
        #expect(truthLeads.filter { $0["label"] is NSNull }.count == s.open)
    }

    @Test func csvHasCRMHeadersAndNeedsRealQuoting() throws {
        let g = try GeneratedDataset(leads: 3000, seed: 11)
        defer { g.remove() }
        let text = try String(contentsOf: g.dir.appendingPathComponent("leads.csv"), encoding: .utf8)
        let table = try StrictCSV.parse(text)
        #expect(table.first == [
            "Lead ID", "First Name", "Last Name", "E-mail", "Phone Number", "Company Name", "Lead Source", "Status",
            "Created At", "Value", "Industry", "Employees", "Country", "Tags", "Notes",
        ])
        #expect(table.allSatisfy { $0.count == 15 }, "every record must have 15 fields")
        let rows = try g.leadRows()
        // The ingester's CSV reader must cope with these; make sure the generator really produces them.
        #expect(rows.contains { $0["Company Name"]?.contains(",") == true })
        #expect(rows.contains { $0["Company Name"]?.contains("\"") == true })
        #expect(rows.contains { $0["Notes"]?.contains("\n") == true })
        #expect(rows.contains { $0["Tags"]?.contains(",") == true })
        #expect(rows.contains { $0["Employees"] == "" } && rows.contains { $0["Value"] == "" })

        let phones = rows.filter { $0["Phone Number"] != "" }.count
        #expect(abs(Double(phones) / 3000 - 0.70) < 0.05)
        for row in rows {
            let email = row["E-mail"] ?? ""
            #expect(email == email.lowercased() && email.contains("+") && email.contains("@"), "bad e-mail \(email)")
            #expect(Synthetic.Vocabulary.sources.contains(row["Lead Source"] ?? ""))
            #expect(Synthetic.Vocabulary.industries.contains(row["Industry"] ?? ""))
            #expect(Synthetic.Vocabulary.countries.contains(row["Country"] ?? ""))
        }
    }

    @Test func everyEventLineIsValidSegmentJSONInLeadAndTimeOrder() throws {
        let g = try GeneratedDataset(leads: 800, seed: 5)
        defer { g.remove() }
        let created = try Dictionary(uniqueKeysWithValues: g.leadRows().map {
            ($0["Lead ID"] ?? "", try #require(Self.parseISO($0["Created At"] ?? "")))
        })
        let asOf = Synthetic.defaultAsOf
        let leadsByID = try Dictionary(uniqueKeysWithValues: g.leadRows().map { ($0["Lead ID"] ?? "", $0) })
        var messageIds = Set<String>()
        var withoutId = 0, withCampaign = 0
        var previous: (user: String, time: Date)?
        let lines = try g.eventLines()
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            let e = try #require(object as? [String: Any], "not a JSON object: \(line)")
            let type = try #require(e["type"] as? String)
            let user = try #require(e["userId"] as? String)
            let time = try #require(Self.parseISO(e["timestamp"] as? String ?? ""), "bad timestamp in \(line)")
            switch type {
            case "track": #expect(e["event"] is String && e["properties"] is [String: Any])
            case "page": #expect(e["name"] is String && (e["properties"] as? [String: Any])?["path"] is String)
            case "identify":
                // Traits must agree with the CSV: checks JSON escaping and CSV quoting against each other.
                let traits = try #require(e["traits"] as? [String: Any])
                let row = try #require(leadsByID[user])
                #expect(traits["email"] as? String == row["E-mail"])
                #expect(traits["firstName"] as? String == row["First Name"])
                #expect(traits["lastName"] as? String == row["Last Name"])
                #expect(traits["company"] as? String == (row["Company Name"] == "" ? nil : row["Company Name"]))
            default: Issue.record("unexpected type \(type)")
            }
            if let id = e["messageId"] as? String {
                #expect(messageIds.insert(id).inserted, "duplicate messageId \(id)")
            } else {
                withoutId += 1
            }
            if (e["context"] as? [String: Any])?["campaign"] != nil { withCampaign += 1 }

            let start = try #require(created[user], "event for unknown lead \(user)")
            #expect(time >= start && time < min(asOf, start.addingTimeInterval(60 * 86_400)))
            if let p = previous {
                #expect(p.user < user || (p.user == user && p.time < time), "events not grouped by lead in time order")
            }
            previous = (user, time)
        }
        #expect(withoutId > 0 && Double(withoutId) / Double(lines.count) < 0.10)
        #expect(withCampaign > 0 && Double(withCampaign) / Double(lines.count) < 0.20)
    }

    // MARK: Outcomes and ground truth

    @Test func oldLeadsHaveOutcomesAndRecentLeadsAreOpen() throws {
        let g = try GeneratedDataset(leads: 2000, seed: 9)
        defer { g.remove() }
        let labels = try g.truthByLead()
        var sawOld = false, sawRecent = false
        for row in try g.leadRows() {
            let id = row["Lead ID"] ?? ""
            let created = try #require(Self.parseISO(row["Created At"] ?? ""))
            let status = row["Status"] ?? ""
            let label = labels[id]?.label
            if Synthetic.defaultAsOf.timeIntervalSince(created) > 45 * 86_400 {
                sawOld = true
                #expect(["converted", "lost", "disqualified"].contains(status), "\(id) is old but \(status)")
                #expect(label == (status == "converted" ? 1 : 0))
            } else {
                sawRecent = true
                #expect(["new", "contacted", "qualified"].contains(status), "\(id) is recent but \(status)")
                #expect(label == nil)
            }
        }
        #expect(sawOld && sawRecent)
    }

    @Test func conversionRateMatchesMeanTrueProbabilityAndIsInformative() throws {
        let g = try GeneratedDataset(leads: 6000, seed: 42)
        defer { g.remove() }
        let labeled = try g.truthByLead().values.compactMap { t in t.label.map { (t.probability, $0) } }
        let n = Double(labeled.count)
        #expect(n > 4500)
        let converted = Double(labeled.filter { $0.1 == 1 }.count)
        let meanP = labeled.map(\.0).reduce(0, +) / n
        // Each label is an independent Bernoulli(p): the converted count has variance Σ p(1 − p).
        let sd = labeled.map { $0.0 * (1 - $0.0) }.reduce(0, +).squareRoot() / n
        #expect(abs(converted / n - meanP) < 4 * sd, "rate \(converted / n) vs mean p \(meanP) (sd \(sd))")
        #expect(converted / n > 0.15 && converted / n < 0.25, "conversion rate \(converted / n) outside 15–25%")

        let auc = Self.auc(labeled)
        #expect(auc > 0.78 && auc < 0.90, "ground-truth AUC \(auc) outside the intended range")
    }

    @Test func storedProbabilitiesRecomputeFromTheGeneratedData() throws {
        let g = try GeneratedDataset(leads: 1500, seed: 21)
        defer { g.remove() }
        let truthJSON = try g.groundTruth()
        let intercept = try #require(truthJSON["intercept"] as? Double)
        let coefficients = try #require(truthJSON["coefficients"] as? [[String: Any]])
        let freeDomains = Set(try #require(truthJSON["free_email_domains"] as? [String]))
        #expect(coefficients.contains { $0["feature"] as? String == "count:Demo Requested" })
        #expect(coefficients.contains { $0["feature"] as? String == "count:Viewed Pricing Page" })

        // Event counts per lead, under the names the ingester gives them.
        var counts: [String: [String: Int]] = [:]
        for line in try g.eventLines() {
            let e = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let user = try #require(e["userId"] as? String)
            switch e["type"] as? String {
            case "track": counts[user, default: [:]][e["event"] as? String ?? "", default: 0] += 1
            case "page": counts[user, default: [:]]["Viewed \(e["name"] as? String ?? "") Page", default: 0] += 1
            default: break
            }
        }

        let truth = try g.truthByLead()
        var checked = 0
        for row in try g.leadRows() {
            let id = row["Lead ID"] ?? ""
            let stored = try #require(truth[id]?.probability)
            #expect(stored > 0 && stored < 1)

            let eventCounts = counts[id] ?? [:]
            let source = row["Lead Source"] ?? ""
            let industry = row["Industry"] ?? ""
            let hasPhone = !(row["Phone Number"] ?? "").isEmpty
            let domain = (row["E-mail"] ?? "").split(separator: "@").last.map(String.init) ?? ""
            let freeEmail = freeDomains.contains(domain)
            let employees = Int(row["Employees"] ?? "")

            // 1. Replay ground_truth.json's coefficients, as an external evaluator would.
            var z = intercept
            for c in coefficients {
                let feature = c["feature"] as? String ?? ""
                let weight = try #require(c["weight"] as? Double)
                let x: Double
                if feature.hasPrefix("count:") {
                    #expect(c["transform"] as? String == "log1p")
                    x = log1p(Double(eventCounts[String(feature.dropFirst(6))] ?? 0))
                } else if feature.hasPrefix("source:") {
                    x = feature == "source:\(source)" ? 1 : 0
                } else if feature.hasPrefix("industry:") {
                    x = feature == "industry:\(industry)" ? 1 : 0
                } else if feature == "has_phone" {
                    x = hasPhone ? 1 : 0
                } else if feature == "free_email_domain" {
                    x = freeEmail ? 1 : 0
                } else if feature == "employees" {
                    let missing = try #require(c["missing_value"] as? Int)
                    x = log1p(Double(employees ?? missing))
                } else {
                    Issue.record("unknown feature \(feature)")
                    x = 0
                }
                z += weight * x
            }
            let replayed = 1 / (1 + exp(-z))
            #expect(abs(replayed - stored) < 1e-12, "\(id): replayed \(replayed) vs stored \(stored)")

            // 2. The generator's own model, fed only from the files.
            let helper = Synthetic.TruthModel.probability(
                eventCounts: eventCounts, source: source, hasPhone: hasPhone, freeEmail: freeEmail,
                employees: employees, industry: industry)
            #expect(helper.map { abs($0 - stored) < 1e-12 } == true, "\(id): helper \(String(describing: helper))")
            checked += 1
        }
        #expect(checked == 1500)
    }

    @Test func truthModelSignsMatchTheStory() {
        let byName = Dictionary(uniqueKeysWithValues: Synthetic.TruthModel.coefficients.map {
            (Synthetic.TruthModel.featureName($0.term), $0.weight)
        })
        #expect((byName["count:Unsubscribed"] ?? 0) < 0)
        #expect((byName["count:Demo Requested"] ?? 0) > 0.5)
        #expect((byName["count:Viewed Pricing Page"] ?? 0) > 0.5)
        #expect(byName["source:organic"] == nil && byName["industry:other"] == nil, "baselines must be left out")
    }

    // MARK: Formatting helpers and errors

    @Test func civilDateMatchesFoundationCalendar() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        // From 1600 on: Foundation switches to the Julian calendar before 1582, we are proleptic Gregorian.
        for days in stride(from: -135_000, through: 2_900_000, by: 997) {
            let date = Date(timeIntervalSince1970: Double(days) * 86_400)
            let c = calendar.dateComponents([.year, .month, .day], from: date)
            let (y, m, d) = LeadStats.civilDate(Int64(days))
            #expect(Int(y) == c.year && Int(m) == c.month && Int(d) == c.day, "day \(days)")
        }
    }

    @Test func zeroLeadsWritesEmptyButValidFiles() throws {
        let g = try GeneratedDataset(leads: 0, seed: 1)
        defer { g.remove() }
        #expect(try g.leadRows().isEmpty)
        #expect(try g.eventLines().isEmpty)
        #expect((try g.groundTruth()["leads"] as? [Any])?.isEmpty == true)
    }

    @Test func invalidInputsThrowClearErrors() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("synthetic-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        #expect(throws: Synthetic.GenerationError.self) {
            try Synthetic.generate(.init(leads: -1), into: tmp)
        }
        // Its times must be ones ingest reads: before 2200.
        #expect(throws: Synthetic.GenerationError.self) {
            try Synthetic.generate(.init(leads: 1, asOf: Date(timeIntervalSince1970: 7_300_000_000)), into: tmp)
        }
        // A directory "inside" a regular file can't be created, even as root.
        try Data("x".utf8).write(to: tmp)
        let blocked = tmp.appendingPathComponent("out")
        do {
            _ = try Synthetic.generate(.init(leads: 10), into: blocked)
            Issue.record("expected an error for an unwritable directory")
        } catch let error as Synthetic.GenerationError {
            guard case .cannotCreateDirectory(let path, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(path == blocked.path)
            #expect(error.description.contains(blocked.path))
        }
    }

    // MARK: Helpers

    static func parseISO(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        if s.contains(".") { f.formatOptions = [.withInternetDateTime, .withFractionalSeconds] }
        return f.date(from: s)
    }

    /// Rank AUC (Mann–Whitney) with midranks for ties.
    static func auc(_ scored: [(Double, Int)]) -> Double {
        let sorted = scored.sorted { $0.0 < $1.0 }
        var rankSum = 0.0
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1].0 == sorted[i].0 { j += 1 }
            let midrank = Double(i + j) / 2 + 1
            for k in i...j where sorted[k].1 == 1 { rankSum += midrank }
            i = j + 1
        }
        let pos = Double(sorted.filter { $0.1 == 1 }.count)
        let neg = Double(sorted.count) - pos
        return (rankSum - pos * (pos + 1) / 2) / (pos * neg)
    }
}

/// One generated data set in its own temporary directory.
private struct GeneratedDataset {
    static let fileNames = ["leads.csv", "events.ndjson", "ground_truth.json"]

    let dir: URL
    let summary: Synthetic.Summary

    init(leads: Int, seed: UInt64, asOf: Date = Synthetic.defaultAsOf) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("synthetic-\(UUID().uuidString)")
        summary = try Synthetic.generate(.init(leads: leads, seed: seed, asOf: asOf), into: dir)
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    /// leads.csv as header-keyed dictionaries.
    func leadRows() throws -> [[String: String]] {
        let table = try StrictCSV.parse(try String(contentsOf: dir.appendingPathComponent("leads.csv"), encoding: .utf8))
        guard let header = table.first else { return [] }
        return table.dropFirst().map { Dictionary(zip(header, $0), uniquingKeysWith: { a, _ in a }) }
    }

    func eventLines() throws -> [String] {
        try String(contentsOf: dir.appendingPathComponent("events.ndjson"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    func groundTruth() throws -> [String: Any] {
        let data = try Data(contentsOf: dir.appendingPathComponent("ground_truth.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func truthByLead() throws -> [String: (probability: Double, label: Int?)] {
        let leads = try #require(try groundTruth()["leads"] as? [[String: Any]])
        var out: [String: (probability: Double, label: Int?)] = [:]
        for l in leads {
            let id = try #require(l["external_id"] as? String)
            out[id] = (try #require(l["probability"] as? Double), l["label"] as? Int)
        }
        return out
    }
}

/// Minimal strict RFC 4180 reader (quoted fields, doubled quotes, embedded newlines), independent of
/// the ingester so the generator's output is checked against the spec rather than against our parser.
private enum StrictCSV {
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ text: String) throws -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = String.UnicodeScalarView()
        var scalars = Array(text.unicodeScalars)[...]
        var line = 1
        while !scalars.isEmpty {
            // One field: quoted or bare, then a separator (",", newline or end of input).
            if scalars.first == "\"" {
                scalars.removeFirst()
                var closed = false
                while let c = scalars.popFirst() {
                    if c == "\"" {
                        if scalars.first == "\"" { scalars.removeFirst(); field.append("\"") } else { closed = true; break }
                    } else {
                        if c == "\n" { line += 1 }
                        field.append(c)
                    }
                }
                guard closed else { throw Malformed(description: "unterminated quoted field at line \(line)") }
            } else {
                while let c = scalars.first, c != ",", c != "\n", c != "\r" {
                    guard c != "\"" else { throw Malformed(description: "bare quote in unquoted field at line \(line)") }
                    field.append(c)
                    scalars.removeFirst()
                }
            }
            row.append(String(field))
            field = .init()
            switch scalars.popFirst() {
            case ",":
                if scalars.isEmpty { row.append("") }
            case "\r":
                guard scalars.popFirst() == "\n" else { throw Malformed(description: "stray CR at line \(line)") }
                fallthrough
            case "\n", nil:
                rows.append(row)
                row = []
                line += 1
            case let c?:
                throw Malformed(description: "unexpected \(c) after a quoted field at line \(line)")
            }
        }
        if !row.isEmpty { rows.append(row) }
        return rows
    }
}
