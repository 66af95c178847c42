import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import LeadAPI
import LeadStore
import Testing

@Suite("Lists, keyset pages and stats")
struct ListAndStatsTests {
    /// Every lead as the brute-force oracle sees it.
    static func allLeads(_ store: LeadStore) throws -> [LeadRecord] {
        try store.reader.read { db in
            try LeadRecord.fetch(ids: try Int64.fetchAll(db, sql: "SELECT id FROM leads ORDER BY id"), in: db)
        }
    }

    @Test("search matches names, email, phone and company ignoring case, beyond ASCII too; % and _ are literal")
    func searchIgnoresCase() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            var ids: [String: Int] = [:]
            for (name, body) in [("zoe", ["first_name": "Zoë", "last_name": "Müller", "email": "zoe@example.com"]),
                                 ("ann", ["first_name": "Ann", "company": "ÉCOLE 50% Off", "email": "ann@example.com"]),
                                 ("bob", ["first_name": "Bob", "phone": "+1 555 0100", "email": "bob_x@example.com"])] {
                ids[name] = try await client.call(.post, "/api/v1/leads", key: api.writer, json: body).data["id"] as? Int
            }
            func found(_ term: String) async throws -> Set<Int> {
                let query = term.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? term
                return Set(try await client.call(.get, "/api/v1/leads?search=\(query)", key: api.reader).list.compactMap { $0["id"] as? Int })
            }
            #expect(try await found("ZOË") == [ids["zoe"]!])
            #expect(try await found("mÜLLER") == [ids["zoe"]!])
            #expect(try await found("école") == [ids["ann"]!])
            #expect(try await found("ANN@") == [ids["ann"]!])
            #expect(try await found("50%") == [ids["ann"]!], "% is a literal, not a wildcard")
            #expect(try await found("b_x") == [ids["bob"]!])
            #expect(try await found("555 0100") == [ids["bob"]!])
            // A phone typed another way than stored finds it by its digits.
            #expect(try await found("5550") == [ids["bob"]!])
            #expect(try await found("(555) 01-00") == [ids["bob"]!])
            #expect(try await found("15550100") == [ids["bob"]!])
            #expect(try await found("555\u{2011}0100") == [ids["bob"]!], "a non-breaking hyphen, as pasted from a web page")
            #expect(try await found("555\u{00A0}0100") == [ids["bob"]!], "a non-breaking space")
            #expect(try await found("5-0") == [], "two digits are too few to read as a phone")
            #expect(try await found("5551") == [])
            #expect(try await found("zoë müller") == [ids["zoe"]!], "the full name")
            #expect(try await found("ZOË MÜL") == [ids["zoe"]!])
            // A space sent as "+", as forms, URLSearchParams and urlencode send it; "%2B" is a plus.
            let plus = try await client.call(.get, "/api/v1/leads?search=555+0100", key: api.reader)
            #expect(plus.list.compactMap { $0["id"] as? Int } == [ids["bob"]!])
            #expect((plus.links["self"] as? String)?.contains("search=555%200100") == true)
            #expect(try await client.call(.get, "/api/v1/leads?search=%2B1%20555", key: api.reader).list.compactMap { $0["id"] as? Int }
                    == [ids["bob"]!])
            // The stats take the same filter.
            let stats = try await client.call(.get, "/api/v1/leads/stats?search=%C3%BCLLER", key: api.reader)
            #expect(stats.data["total"] as? Int == 1)
            // Tags ignore case beyond ASCII as well.
            _ = try await client.call(.post, "/api/v1/leads/\(ids["zoe"]!)/tags", key: api.writer, json: ["name": "Ünicode Tag"])
            _ = try await client.call(.post, "/api/v1/leads/\(ids["ann"]!)/tags", key: api.writer, json: ["name": "VIP"])
            for (tag, expected) in [("%C3%BCnicode%20tag", ids["zoe"]!), ("%C3%9CNICODE+TAG", ids["zoe"]!), ("vip", ids["ann"]!)] {
                let tagged = try await client.call(.get, "/api/v1/leads?tag=\(tag)", key: api.reader)
                #expect(tagged.list.compactMap { $0["id"] as? Int } == [expected], "\(tag)")
            }
        }
    }

    @Test("offset pagination: meta and links add up")
    func pageArithmetic() async throws {
        let api = try TestAPI(leads: 53)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let last = try await client.call(.get, "/api/v1/leads?per_page=10&page=6&status=new,converted,contacted,qualified,lost", key: api.reader)
            #expect(last.status == .ok)
            #expect(last.meta["total"] as? Int == 53)
            #expect(last.meta["per_page"] as? Int == 10)
            #expect(last.meta["current_page"] as? Int == 6)
            #expect(last.meta["last_page"] as? Int == 6)
            #expect(last.meta["from"] as? Int == 51)
            #expect(last.meta["to"] as? Int == 53)
            #expect(last.list.count == 3)
            #expect(last.meta["next_cursor"] is NSNull)
            let links = try #require(last.json["links"] as? [String: Any])
            #expect(links["next"] is NSNull)
            #expect((links["prev"] as? String)?.contains("page=5") == true)
            #expect((links["first"] as? String)?.contains("page=1") == true)
            #expect((links["last"] as? String)?.contains("page=6") == true)
            #expect((links["self"] as? String)?.contains("status=") == true, "links keep the filters")

            let first = try await client.call(.get, "/api/v1/leads", key: api.reader)
            #expect(first.meta["per_page"] as? Int == 25)
            #expect(first.meta["from"] as? Int == 1)
            #expect(first.meta["to"] as? Int == 25)
            #expect(first.meta["last_page"] as? Int == 3)
            #expect(first.meta["next_cursor"] is String)

            let beyond = try await client.call(.get, "/api/v1/leads?page=9", key: api.reader)
            #expect(beyond.list.isEmpty)
            #expect(beyond.meta["from"] is NSNull)
        }
    }

    @Test("bad query parameters give 422 naming each field", arguments: [
        ("per_page=101", "per_page"), ("per_page=0", "per_page"), ("min_score=90&max_score=10", "min_score"),
        ("min_score=-1", "min_score"), ("max_score=101", "max_score"), ("sort=salary", "sort"),
        ("direction=sideways", "direction"), ("created_after=yesterday", "created_after"),
        ("scored=maybe", "scored"), ("cursor=garbage", "cursor"), ("page=0", "page"),
        ("min_scor=80", "min_scor"), ("minScore=80", "minScore"), ("min_score=80&min_score=90", "min_score"),
    ])
    func badQueries(query: String, field: String) async throws {
        let api = try TestAPI(leads: 2)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            // The stats take a list's page and leave it unread.
            let pageField = ["page", "per_page", "cursor"].contains(field)
            for path in ["/api/v1/leads", "/api/v1/leads/stats", "/api/v1/leads/export"] where !(path.hasSuffix("stats") && pageField) {
                let reply = try await client.call(.get, "\(path)?\(query)", key: api.reader)
                #expect(reply.status == .unprocessableContent, "\(path)?\(query)")
                #expect(reply.errorCode == "VALIDATION_FAILED")
                #expect(reply.fieldErrors[field] != nil, "\(path)?\(query) names \(field)")
            }
        }
    }

    @Test("statuses sent twice are one list; the stats take a list's query string whole; cache busters pass; a lead's own lists take only pages")
    func parameterNames() async throws {
        let api = try TestAPI(leads: 40)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let twice = try await client.call(.get, "/api/v1/leads?status=new&status=lost&per_page=100", key: api.reader)
            let listed = try await client.call(.get, "/api/v1/leads?status=new,lost&per_page=100", key: api.reader)
            let total = try #require(listed.meta["total"] as? Int)
            #expect(twice.status == .ok && twice.meta["total"] as? Int == total && total > 0)
            // A blank value (an empty form input) neither filters nor conflicts.
            let blank = try await client.call(.get, "/api/v1/leads?min_score=&min_score=0&status=&per_page=100", key: api.reader)
            #expect(blank.status == .ok, "\(blank.json)")
            // Thousands of unknown names: refused, naming the first few, not echoing them all.
            let flood = (0..<2000).map { "x\($0)=1" }.joined(separator: "&")
            let flooded = try await client.call(.get, "/api/v1/leads?\(flood)", key: api.reader)
            #expect(flooded.status == .unprocessableContent && flooded.fieldErrors.count == 20)
            let conflicting = try await client.call(.get, "/api/v1/leads?direction=desc&order=asc", key: api.reader)
            #expect(conflicting.status == .unprocessableContent && conflicting.fieldErrors["direction"] != nil)
            #expect(Set(twice.list.compactMap { $0["status"] as? String }) == ["new", "lost"])

            let query = "status=new&sort=score&direction=desc&page=3&page=4&per_page=500&cursor=x&_=1700000000"
            let stats = try await client.call(.get, "/api/v1/leads/stats?\(query)", key: api.reader)
            let plain = try await client.call(.get, "/api/v1/leads/stats?status=new", key: api.reader)
            #expect(stats.status == .ok, "\(stats.json)")
            let newLeads = try #require(plain.data["total"] as? Int)
            #expect(stats.data["total"] as? Int == newLeads && newLeads > 0)

            let lead = try #require(listed.list.first?["id"] as? Int)
            let timeline = try await client.call(.get, "/api/v1/leads/\(lead)/events?status=new", key: api.reader)
            #expect(timeline.status == .unprocessableContent && timeline.fieldErrors["status"] != nil)
            let paged = try await client.call(.get, "/api/v1/leads/\(lead)/events?per_page=5&_=1", key: api.reader)
            #expect(paged.status == .ok)
        }
    }

    @Test("the export takes no page, per_page or cursor: refused by name, not answered with every row")
    func exportTakesNoPages() async throws {
        let api = try TestAPI(leads: 30)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let cursor = try #require(try await client.call(.get, "/api/v1/leads?per_page=10&sort=score", key: api.reader)
                .meta["next_cursor"] as? String)
            let encoded = try #require(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
            for (query, field) in [("sort=score&cursor=\(encoded)", "cursor"), ("page=2", "page"), ("per_page=10", "per_page")] {
                let reply = try await client.call(.get, "/api/v1/leads/export?\(query)", key: api.reader)
                #expect(reply.status == .unprocessableContent, "\(query)")
                #expect(reply.fieldErrors.keys.sorted() == [field], "\(query): \(reply.json)")
            }
            let sorted = try await client.call(.get, "/api/v1/leads/export?sort=score&direction=asc", key: api.reader)
            #expect(sorted.status == .ok, "sort and direction stay the export's")
        }
    }

    @Test("min/max score filters equal a brute-force filter of all leads", arguments: [
        (80, 100), (0, 0), (50, 50), (0, 100), (33, 66),
    ])
    func scoreFilters(min: Int, max: Int) async throws {
        let api = try TestAPI(leads: 400)
        defer { api.cleanUp() }
        let expected = try Self.allLeads(api.store)
            .filter { ($0.score ?? -1) >= min && ($0.score ?? 101) <= max }
            .sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
            .map(\.id)
        try await api.app.test(.router) { client in
            var ids: [Int64] = []
            var page = 1
            while true {
                let reply = try await client.call(.get, "/api/v1/leads?min_score=\(min)&max_score=\(max)&per_page=100&page=\(page)", key: api.reader)
                #expect(reply.meta["total"] as? Int == expected.count)
                ids += reply.list.map { Int64($0["id"] as! Int) }
                if reply.list.count < 100 { break }
                page += 1
            }
            #expect(ids == expected, "newest first, exactly the leads in range")

            var walked: [Int64] = []
            var cursor: String?
            repeat {
                let query = "/api/v1/leads?min_score=\(min)&max_score=\(max)&per_page=13" + (cursor.map { "&cursor=\($0)" } ?? "")
                let reply = try await client.call(.get, query, key: api.reader)
                walked += reply.list.map { Int64($0["id"] as! Int) }
                cursor = reply.meta["next_cursor"] as? String
            } while cursor != nil
            #expect(walked == expected, "keyset pages walk the same leads")

            let oldest = try await client.call(.get, "/api/v1/leads?min_score=\(min)&max_score=\(max)&direction=asc&per_page=100", key: api.reader)
            #expect(oldest.list.map { Int64($0["id"] as! Int) } == Array(expected.reversed().prefix(100)))
        }
    }

    @Test("sorting by score puts unscored leads last descending and first ascending, ties by creation time")
    func scoreSort() async throws {
        let api = try TestAPI(leads: 120)
        defer { api.cleanUp() }
        let all = try Self.allLeads(api.store)
        try await api.app.test(.router) { client in
            for descending in [true, false] {
                let expected = all.sorted {
                    let l = ($0.score ?? -1, $0.createdAt, $0.id), r = ($1.score ?? -1, $1.createdAt, $1.id)
                    return descending ? l > r : l < r
                }.map(\.id)
                var paged: [Int64] = []
                for page in 1...18 {
                    let query = "/api/v1/leads?sort=score&direction=\(descending ? "desc" : "asc")&per_page=7&page=\(page)"
                    paged += try await client.call(.get, query, key: api.reader).list.map { Int64($0["id"] as! Int) }
                }
                #expect(paged == expected, "offset pages by score \(descending ? "desc" : "asc")")
                var ids: [Int64] = []
                var cursor: String?
                repeat {
                    let query = "/api/v1/leads?sort=score&direction=\(descending ? "desc" : "asc")&per_page=7" + (cursor.map { "&cursor=\($0)" } ?? "")
                    let reply = try await client.call(.get, query, key: api.reader)
                    #expect(reply.status == .ok)
                    ids += reply.list.map { Int64($0["id"] as! Int) }
                    cursor = reply.meta["next_cursor"] as? String
                } while cursor != nil
                #expect(ids == expected, "keyset walk by score \(descending ? "desc" : "asc")")
            }
        }
    }

    @Test("keyset pages stay exact while leads are being inserted", arguments: ["created_at", "score", "last_name", "email"])
    func keysetUnderInserts(sort: String) async throws {
        let api = try TestAPI(leads: 150)
        defer { api.cleanUp() }
        let before = Set(try Self.allLeads(api.store).map(\.id))
        try await api.app.test(.router) { client in
            var seen: [Int64] = []
            var cursor: String?
            var inserted = 0
            repeat {
                let query = "/api/v1/leads?sort=\(sort)&per_page=20" + (cursor.map { "&cursor=\($0)" } ?? "")
                let reply = try await client.call(.get, query, key: api.reader)
                #expect(reply.status == .ok)
                seen += reply.list.map { Int64($0["id"] as! Int) }
                cursor = reply.meta["next_cursor"] as? String
                // Meanwhile, new leads arrive at both ends of the order.
                for side in ["a", "z"] {
                    let created = try await client.call(.post, "/api/v1/intake", key: api.writer, json: [
                        "email": "\(side)\(inserted)-new@example.com", "last_name": "\(side)new\(inserted)",
                    ])
                    #expect(created.status == .created)
                    inserted += 1
                }
            } while cursor != nil
            #expect(Set(seen).count == seen.count, "no lead appears twice")
            #expect(before.isSubset(of: Set(seen)), "every lead present at the start appears")
        }
    }

    @Test("stats equal a brute-force recomputation, filtered and not")
    func statsBruteForce() async throws {
        let now = LeadStore.nowMillis()
        let api = try TestAPI(leads: 500, now: now)
        defer { api.cleanUp() }
        let all = try Self.allLeads(api.store)
        let thirtyDaysAgo = now - 30 * 86_400_000
        let afterString = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(thirtyDaysAgo) / 1000))
        try await api.app.test(.router) { client in
            for (query, leads) in [("", all), ("?created_after=\(afterString)", all.filter { $0.createdAt >= thirtyDaysAgo / 1000 * 1000 }),
                                   ("?source=web&tag=vip", all.filter { $0.source == "web" && $0.tags.contains("vip") })] {
                let reply = try await client.call(.get, "/api/v1/leads/stats\(query)", key: api.reader)
                #expect(reply.status == .ok)
                let data = reply.data
                #expect(data["total"] as? Int == leads.count, "total \(query)")
                let byStatus = Dictionary(grouping: leads, by: \.status).mapValues(\.count)
                #expect(data["by_status"] as? [String: Int] == byStatus)
                let converted = leads.filter { $0.status == "converted" }.count
                #expect(data["converted"] as? Int == converted)

                let sources = try #require(data["by_source"] as? [[String: Any]])
                for (source, group) in Dictionary(grouping: leads, by: \.source) {
                    let row = try #require(sources.first { ($0["source"] as? String) == source })
                    #expect(row["count"] as? Int == group.count)
                    #expect(row["converted"] as? Int == group.filter { $0.status == "converted" }.count)
                    let expected = group.compactMap(\.probability).reduce(0, +)
                    #expect(abs((row["expected_conversions"] as? Double ?? -1) - expected) < 1e-9)
                    let scores = group.compactMap(\.score)
                    if scores.isEmpty { #expect(row["avg_score"] is NSNull) } else {
                        #expect(abs((row["avg_score"] as? Double ?? -1) - Double(scores.reduce(0, +)) / Double(scores.count)) < 1e-9)
                    }
                }
                #expect(sources.count == Set(leads.map(\.source)).count)

                let histogram = try #require(data["score_histogram"] as? [[String: Any]])
                #expect(histogram.count == 10)
                for (index, bucket) in histogram.enumerated() {
                    let inBucket = leads.filter { $0.score.map { min($0 / 10, 9) == index } ?? false }
                    #expect(bucket["min"] as? Int == index * 10)
                    #expect(bucket["max"] as? Int == (index == 9 ? 100 : index * 10 + 9))
                    #expect(bucket["count"] as? Int == inBucket.count)
                    #expect(bucket["converted"] as? Int == inBucket.filter { $0.status == "converted" }.count)
                }
                let averages = try #require(data["avg_score_by_status"] as? [String: Double])
                for (status, group) in Dictionary(grouping: leads, by: \.status) {
                    let scores = group.compactMap(\.score)
                    guard !scores.isEmpty else { continue }
                    #expect(abs(averages[status]! - Double(scores.reduce(0, +)) / Double(scores.count)) < 1e-9)
                }

                let daily = try #require(data["daily"] as? [[String: Any]])
                #expect(daily.count == 30)
                let dayMillis: Int64 = 86_400_000
                let today = now / dayMillis
                for (offset, day) in daily.enumerated() {
                    let number = today - 29 + Int64(offset)
                    #expect(day["date"] as? String == LeadStats.dayString(number))
                    #expect(day["new"] as? Int == leads.filter { $0.createdAt / dayMillis == number }.count)
                }
            }

            // The dashboard's cached answer follows new data at once.
            let before = try await client.call(.get, "/api/v1/leads/stats", key: api.reader).data["total"] as? Int
            _ = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "fresh@example.com"])
            let after = try await client.call(.get, "/api/v1/leads/stats", key: api.reader).data["total"] as? Int
            #expect(after == (before ?? 0) + 1)

            // So do cached list pages: a new lead heads the newest-first page, and an edit shows.
            let newest = "/api/v1/leads?sort=created_at&direction=desc&per_page=5"
            let first = try await client.call(.get, newest, key: api.reader)
            #expect(first.list.first?["email"] as? String == "fresh@example.com")
            let again = try await client.call(.get, newest, key: api.reader)
            #expect(again.text == first.text, "an unchanged store answers the same page")
            _ = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "fresher@example.com"])
            let moved = try await client.call(.get, newest, key: api.reader)
            #expect(moved.list.first?["email"] as? String == "fresher@example.com")
            #expect(moved.meta["total"] as? Int == (first.meta["total"] as? Int ?? 0) + 1)
            let id = try #require(moved.list.first?["id"] as? Int)
            _ = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.writer, json: ["company": "Edited Co"])
            let edited = try await client.call(.get, newest, key: api.reader)
            #expect(edited.list.first?["company"] as? String == "Edited Co")
        }
    }

    @Test("the CSV export has the JSON field names as header and parses back to the filtered leads")
    func export() async throws {
        let api = try TestAPI(leads: 2300)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            _ = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                      json: ["email": "quote@example.com", "company": "Acme, \"Inc\"", "notes": "line one\nline two"])
            _ = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                      json: ["email": "formula@example.com", "company": "=HYPERLINK(\"http://x\")",
                                             "first_name": "@SUM(1)", "last_name": "-2+3", "phone": "+1-555-1234",
                                             "notes": "-12.5"])
            let reply = try await client.call(.get, "/api/v1/leads/export?min_score=10", key: api.reader)
            #expect(reply.status == .ok)
            #expect(reply.header("Content-Type")?.hasPrefix("text/csv") == true)
            let rows = CSVReader.parse(reply.text)
            let header = try #require(rows.first)
            let one = try await client.call(.get, "/api/v1/leads?per_page=1", key: api.reader).list[0]
            #expect(Set(header) == Set(one.keys), "header names equal the lead object's keys")
            let total = try await client.call(.get, "/api/v1/leads?min_score=10", key: api.reader).meta["total"] as? Int
            #expect(rows.count - 1 == total)
            let all = try await client.call(.get, "/api/v1/leads/export", key: api.reader)
            let parsed = CSVReader.parse(all.text)
            let companyColumn = try #require(header.firstIndex(of: "company"))
            let notesColumn = try #require(header.firstIndex(of: "notes"))
            let quoted = try #require(parsed.first { $0[companyColumn] == "Acme, \"Inc\"" })
            #expect(quoted[notesColumn] == "line one\nline two")
            // Client text that a spreadsheet would run as a formula is defused, a phone too (Excel
            // computes +1-555-1234); a plain number, which it reads as that number, is not.
            let formula = try #require(parsed.first { $0[header.firstIndex(of: "email")!] == "formula@example.com" })
            #expect(formula[companyColumn] == "'=HYPERLINK(\"http://x\")")
            #expect(formula[header.firstIndex(of: "first_name")!] == "'@SUM(1)")
            #expect(formula[header.firstIndex(of: "last_name")!] == "'-2+3")
            #expect(formula[header.firstIndex(of: "phone")!] == "'+1-555-1234")
            #expect(formula[notesColumn] == "-12.5")
            #expect(formula[header.firstIndex(of: "custom_fields")!] == "{}", "as in the JSON")

            // An export, edited in a spreadsheet, ingests back as the leads it came from: none is
            // new, its custom fields stay themselves, nothing the server computes becomes one.
            _ = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                      json: ["external_id": "RT1", "email": "rt@example.com", "Plan": "gold", "Seats": 12, "tags": "vip"])
            func roundTripLead() async throws -> [String: Any] {
                try #require(try await client.call(.get, "/api/v1/leads?search=rt@example.com", key: api.reader).list.first)
            }
            let before = try await roundTripLead()
            let exported = try await client.call(.get, "/api/v1/leads/export", key: api.reader).text
            let edited = exported.replacingOccurrences(of: ",rt@example.com,", with: ",RT@example.com,")
            let reimport = try await client.call(.post, "/api/v1/leads/import", key: api.writer, raw: edited, contentType: "text/csv")
            #expect(reimport.data["leads_created"] as? Int == 0, "\(reimport.json)")
            #expect(reimport.data["leads_updated"] as? Int == 0, "an unedited export changes nothing: \(reimport.json)")
            #expect(reimport.data["rejected"] as? Int == 0, "\(reimport.json)")
            let after = try await roundTripLead()
            #expect(after["id"] as? Int == before["id"] as? Int && after["external_id"] as? String == "RT1")
            #expect((after["custom_fields"] as? NSDictionary) == (before["custom_fields"] as? NSDictionary))
            #expect((after["custom_fields"] as? [String: Any])?.keys.sorted() == ["Plan", "Seats"])
            let formulaAgain = try await client.call(.get, "/api/v1/leads?search=formula@example.com", key: api.reader).list.first
            #expect(formulaAgain?["company"] as? String == "=HYPERLINK(\"http://x\")" && formulaAgain?["phone"] as? String == "+1-555-1234")
        }
    }
}

/// A minimal RFC 4180 reader for checking what the server writes.
enum CSVReader {
    static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var inQuotes = false
        var iterator = Array(text).makeIterator()
        var pending: Character? = nil
        while let c = pending ?? iterator.next() {
            pending = nil
            if inQuotes {
                if c == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { field.append("\"") } else { inQuotes = false; pending = next }
                    } else { inQuotes = false }
                } else { field.append(c) }
                continue
            }
            switch c {
            case "\"": inQuotes = true
            case ",": row.append(field); field = ""
            case "\r\n", "\n": row.append(field); rows.append(row); row = []; field = ""
            default: field.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
