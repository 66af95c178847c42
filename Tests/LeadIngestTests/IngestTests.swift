import Foundation
import GRDB
@testable import LeadIngest
import LeadStore
import Testing

@Suite("Ingest")
struct IngestTests {
    static let leadsCSV = """
        Lead ID,First Name,Last Name,E-mail,Phone Number,Company Name,Lead Source,Status,Created At,Value,Industry,Tags
        L1,Ann,Lee,ann@acme.io,+1 555 010 0001,"Acme, Inc",webinar,new,2026-01-02T10:00:00Z,"1,200",software,"vip,trial"
        L2,Bo,Kim,BO@Beta.io,,Beta,organic,converted,2026-01-03,,retail,
        ,Cy,Roe,cy@gamma.io,555.010.0003,Gamma,,lost,2026-01-04,50,,newsletter

        """

    static let eventsNDJSON = """
        {"type":"track","event":"Email Opened","userId":"L1","messageId":"m1","timestamp":"2026-01-05T10:00:00Z"}
        {"type":"track","event":"Email Opened","userId":"L1","messageId":"m2","timestamp":"2026-01-06T10:00:00Z"}
        {"type":"page","name":"Pricing","userId":"L2","messageId":"m3","timestamp":"2026-01-07T10:00:00Z","properties":{"path":"/pricing"}}
        {"type":"track","event":"Demo Requested","userId":"L9","timestamp":"2026-01-08T10:00:00Z","properties":{"email":"cy@gamma.io"},"context":{"campaign":{"source":"google"}}}
        {"type":"identify","userId":"L4","traits":{"email":"dee@delta.io","firstName":"Dee","plan_interest":"pro"},"context":{"campaign":{"source":"linkedin"}}}
        {"type":"track","event":"Email Opened","userId":"L1","timestamp":"2026-01-09T10:00:00Z"}

        """

    @Test func csvLeadsMapToColumnsCustomFieldsAndTags() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let summary = try ingest(store, try directory.write("leads.csv", Self.leadsCSV))
        #expect(summary.counts.leadsCreated == 3 && summary.counts.rejected == 0)
        let leads = try store.leads()
        #expect(leads[0] == LeadRow(externalID: "L1", email: "ann@acme.io", phone: "+1 555 010 0001", firstName: "Ann",
                                    lastName: "Lee", company: "Acme, Inc", source: "webinar", status: "new", value: 1200,
                                    createdAt: Timestamp.parse("2026-01-02T10:00:00Z")!))
        #expect(leads[1].email == "bo@beta.io" && leads[1].status == "converted" && leads[1].value == nil)
        #expect(leads[2].externalID == nil && leads[2].email == "cy@gamma.io")
        #expect(try store.customValues(externalID: "L1") == ["Industry": "software"])
        #expect(try store.tags(externalID: "L1") == ["trial", "vip"])
    }

    @Test("The before-commit hook sees exactly the leads a transaction created, changed or gave events")
    func beforeCommitSeesTouchedLeads() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let leads = try directory.write("leads.csv", Self.leadsCSV)
        let events = try directory.write("events.ndjson", Self.eventsNDJSON)
        final class Seen: @unchecked Sendable { var batches: [[Int64]] = [] }
        let seen = Seen()
        let ingester = Ingester(store: store) { db, ids in
            #expect(db.isInsideTransaction)
            seen.batches.append(ids)
        }
        _ = try ingester.ingest(path: leads.path)
        #expect(seen.batches == [[1, 2, 3]])
        _ = try ingester.ingest(path: events.path)
        // L1 and L2 got events; "L9" matched lead 3 by email; L4 is new (4).
        #expect(seen.batches.last == [1, 2, 3, 4])
        // Nothing new: no transaction has anything to rescore.
        seen.batches.removeAll()
        _ = try ingester.ingest(path: events.path)
        _ = try ingester.ingest(path: leads.path)
        #expect(seen.batches.isEmpty)
    }

    @Test("An event whose only news is a utm source sets a sourceless lead's source once, and touches no other lead")
    func utmSourceOnAnExistingLead() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        final class Seen: @unchecked Sendable { var batches: [[Int64]] = [] }
        let seen = Seen()
        let ingester = Ingester(store: store) { _, ids in seen.batches.append(ids) }
        _ = try ingester.ingest(path: try directory.write("leads.csv", "id,email,source\nL1,a@x.io,\nL2,b@x.io,referral\n").path)
        let utm = try directory.write("utm.ndjson", """
            {"type":"track","event":"Email Opened","userId":"L1","messageId":"u1","context":{"campaign":{"source":"google"}}}
            {"type":"track","event":"Email Opened","userId":"L1","messageId":"u2","context":{"campaign":{"source":"bing"}}}
            {"type":"track","event":"Email Opened","userId":"L2","messageId":"u3","context":{"campaign":{"source":"google"}}}

            """)
        seen.batches.removeAll()
        let first = try ingester.ingest(path: utm.path).counts
        // L1 gains a source (the first utm wins: a lead's source is set only when it has none);
        // L2 keeps its own. Both got events, so both are rescored.
        #expect(first.leadsUpdated == 1 && first.eventsAdded == 3)
        #expect(try store.leads().map(\.source) == ["google", "referral"])
        #expect(seen.batches == [[1, 2]])

        // A fresh writer, with no cache of which leads have a source, changes nothing either.
        seen.batches.removeAll()
        let again = try Ingester(store: store) { _, ids in seen.batches.append(ids) }.ingest(path: utm.path).counts
        #expect(again.leadsUpdated == 0 && again.duplicateEvents == 3)
        #expect(try store.leads().map(\.source) == ["google", "referral"])
        #expect(seen.batches.isEmpty)
    }

    @Test("A failing before-commit hook rolls the transaction back")
    func failingHookRollsBack() throws {
        struct HookFailure: Error {}
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        final class Switch: @unchecked Sendable { var failing = true }
        let hookFails = Switch()
        let ingester = Ingester(store: store) { _, _ in if hookFails.failing { throw HookFailure() } }
        let path = try directory.write("leads.csv", Self.leadsCSV).path
        #expect(throws: HookFailure.self) { try ingester.ingest(path: path) }
        #expect(try store.count("leads") == 0)
        // The same ingester then writes everything: no cache kept the rolled-back leads' ids.
        hookFails.failing = false
        let summary = try ingester.ingest(path: path)
        #expect(summary.counts.leadsCreated == 3)
        #expect(try store.count("leads") == 3)
    }

    @Test("two keys of one object naming a field: the first wins and the other is kept aside, in traits and intake alike")
    func repeatedFieldKeysInJSON() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let identify = try directory.write("t.ndjson", """
            {"type":"identify","userId":"t4","timestamp":"2026-02-01T00:00:00Z","traits":{"phone":"+1 555 0101","mobile":"+1 555 0202","email":"a@x.com","e-mail":"B@x.com","company":"A","company_name":"a","Mobile Phone":"1 (555) 0101"}}

            """)
        try ingest(store, identify)
        let lead = try #require(try store.leads().first)
        #expect(lead.phone == "+1 555 0101" && lead.email == "a@x.com" && lead.company == "A", "\(lead)")
        // A different value is kept under its key; the same one (by digits, or ignoring case) is not.
        #expect(try store.customValues(externalID: "t4") == ["mobile": "+1 555 0202", "e-mail": "B@x.com"])

        let (patch, errors) = LeadInput.patch(from: try #require(LeadInput.object(Array(#"""
            {"external_id":"t5","phone":"+1 555 0101","mobile":"+1 555 0202","source":"web","lead_source":"Web"}
            """#.utf8))))
        #expect(errors.isEmpty)
        let intake = try #require(patch)
        #expect(intake.fields[.phone] == "+1 555 0101" && intake.fields[.source] == "web")
        #expect(intake.custom.map(\.label) == ["mobile"])

        // A second key is checked as the field's own value: no way around a 422.
        for body in [#"{"email":"s@x.com","status":"new","stage":"Working - Contacted"}"#, #"{"email":"s@x.com","value":100,"amount":"lots"}"#,
                     #"{"email":"s@x.com","created_at":"2026-01-01","created":"garbage"}"#] {
            let (refused, problems) = LeadInput.patch(from: try #require(LeadInput.object(Array(body.utf8))))
            #expect(refused == nil && problems.count == 1, "\(body): \(problems)")
        }
        // A key that sets nothing (null, blank, "Unassigned") is no first key.
        let blankFirstBody = #"{"email":"s@x.com","phone":null,"mobile":"+1 555 0303","owner":"Unassigned","assignee":"bob"}"#
        let (blankFirst, _) = LeadInput.patch(from: try #require(LeadInput.object(Array(blankFirstBody.utf8))))
        #expect(blankFirst?.fields[.phone] == "+1 555 0303" && blankFirst?.fields[.assignedTo] == "bob" && blankFirst?.custom == [])
    }

    @Test("a file name shown in a log or summary line has its control characters escaped")
    func fileNamesAreEscaped() {
        #expect("we\"ird\nname\u{1B}[31m.ndjson".escapingControlCharacters == "we\"ird\\u{a}name\\u{1b}[31m.ndjson")
        #expect("Café leads.csv".escapingControlCharacters == "Café leads.csv")
    }

    @Test("a lead counts once in the summary, as created, else updated, else unchanged, across a file's batches",
          arguments: [1, 5000])
    func leadsCountOnce(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let same = try directory.write("same.csv", "email,first name\ns@x.com,Sam\ns@x.com,Sam\ns@x.com,Sam\n")
        let first = try ingest(store, same, options: options).counts
        #expect(first.leadsCreated == 1 && first.leadsUpdated == 0 && first.leadsUnchanged == 0, "\(first)")
        let again = try ingest(store, same, options: options).counts
        #expect(again.leadsCreated == 0 && again.leadsUpdated == 0 && again.leadsUnchanged == 1, "\(again)")
        // Unchanged by its first row, updated by its last: one lead updated.
        let later = try directory.write("later.csv", "email,first name\ns@x.com,Sam\ns@x.com,Samuel\ns@x.com,Samuel\n")
        let moved = try ingest(store, later, options: options).counts
        #expect(moved.leadsUpdated == 1 && moved.leadsUnchanged == 0, "\(moved)")
    }

    @Test("Re-ingesting the same files adds nothing")
    func idempotentReingest() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let csv = try directory.write("leads.csv", Self.leadsCSV)
        let ndjson = try directory.write("events.ndjson", Self.eventsNDJSON)
        let first = try ingest(store, csv).counts
        let firstEvents = try ingest(store, ndjson).counts
        #expect(first.leadsCreated == 3)
        // L4 is new; L9's event carries cy@gamma.io and so belongs to the third CSV lead.
        #expect(firstEvents.eventsAdded == 5 && firstEvents.leadsCreated == 1)
        let snapshot = try store.leads()
        let eventCount = try store.count("events")

        let again = try ingest(store, csv).counts
        let againEvents = try ingest(store, ndjson).counts
        #expect(again.leadsCreated == 0 && again.leadsUpdated == 0 && again.leadsUnchanged == 3)
        #expect(againEvents.eventsAdded == 0 && againEvents.duplicateEvents == 5 && againEvents.leadsCreated == 0)
        #expect(againEvents.leadsUpdated == 0)
        #expect(try store.leads() == snapshot)
        #expect(try store.count("events") == eventCount)
        #expect(try store.count("lead_tags") == 3)
    }

    @Test("events without a messageId, re-serialized by a pipeline, are not added again")
    func reserializedEventsAreDuplicates() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let sent = try directory.write("sent.ndjson", """
            {"type":"track","event":"Form Submitted","userId":"u1","timestamp":"2026-01-05T10:00:00Z","properties":{"form":"trial","fields":{"plan":"pro","seats":5}}}
            {"type":"page","name":"Pricing","userId":"u1","timestamp":"2026-01-06T10:00:00Z","properties":{"path":"/pricing","title":"Caf\\u00e9"}}

            """)
        let resent = try directory.write("resent.ndjson", """
            {"userId": "u1", "type": "track", "event": "Form Submitted", "timestamp": "2026-01-05T10:00:00.000Z", "properties": {"fields": {"seats": 5.0, "plan": "pro"}, "form": "trial"}}
            {"properties": {"title": "Café", "path": "/pricing"}, "timestamp": "2026-01-06T11:00:00+01:00", "name": "Pricing", "type": "page", "userId": "u1"}

            """)
        #expect(try ingest(store, sent).counts.eventsAdded == 2)
        let again = try ingest(store, resent).counts
        #expect(again.eventsAdded == 0 && again.duplicateEvents == 2)
        #expect(try store.count("events") == 2)
    }

    @Test("an event stored under the raw-bytes key of earlier versions is found when re-sent")
    func eventsStoredUnderLegacyKeysAreDuplicates() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let line = #"{"type":"track","event":"Email Opened","userId":"u1","timestamp":"2026-01-05T10:00:00Z","properties":{"campaign": "c1", "a": 1}}"#
        let file = try directory.write("events.ndjson", line + "\n")
        #expect(try ingest(store, file).counts.eventsAdded == 1)
        // What an earlier version stored: the key of the bytes as received.
        var text = line
        let event = try text.withUTF8 { bytes in
            var records: [Ingest.Record] = []
            var rejects: [IngestError] = []
            SegmentMapper(source: bytes, line: 1, receivedAt: 0).records(from: try JSONParser.parse(bytes), into: &records, rejects: &rejects)
            return try #require(records.first?.event)
        }
        let legacyKey = try #require(event.legacyDedupeKey)
        // A store that had events before v14, as an earlier version left it.
        try store.writer.write {
            try $0.execute(sql: "UPDATE events SET dedupe_key = ?", arguments: [legacyKey])
            try $0.execute(sql: "UPDATE store_facts SET value = 1 WHERE name = 'raw_content_keys'")
        }

        let again = try ingest(store, file).counts
        #expect(again.eventsAdded == 0 && again.duplicateEvents == 1)
        #expect(try store.count("events") == 1)
        // The same content sent to another lead is another event.
        let other = try directory.write("other.ndjson", line.replacingOccurrences(of: "\"u1\"", with: "\"u2\"") + "\n")
        #expect(try ingest(store, other).counts.eventsAdded == 1)
    }

    @Test("a source arriving in another case is stored in the spelling the store already has")
    func sourcesKeepOneSpelling() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let csv = try directory.write("leads.csv", """
            id,email,Lead Source
            L1,a@x.io,LinkedIn
            L2,b@x.io,linkedin
            L3,c@x.io,LINKEDIN

            """)
        let events = try directory.write("events.ndjson", """
            {"type":"track","event":"Visit","userId":"L4","messageId":"m1","context":{"campaign":{"source":"linkedIn"}}}
            {"type":"identify","userId":"L1","traits":{"source":"linkedin"}}

            """)
        #expect(try ingest(store, csv).counts.leadsCreated == 3)
        let summary = try ingest(store, events).counts
        #expect(summary.leadsCreated == 1)
        #expect(summary.leadsUpdated == 0, "the same source in another case is no change")
        #expect(try store.leads().map(\.source) == ["LinkedIn", "LinkedIn", "LinkedIn", "LinkedIn"])
    }

    @Test("Leads match by external id, then email (case-insensitive), then phone digits")
    func identityMatching() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        try ingest(store, try directory.write("leads.csv", Self.leadsCSV))
        try ingest(store, try directory.write("more.csv", """
            email,phone,company
            ANN@acme.io ,,Acme Corp
            ,(555) 010-0003,Gamma Ltd
            new@zeta.io,,Zeta

            """))
        let leads = try store.leads()
        #expect(leads.count == 4)
        #expect(leads[0].company == "Acme Corp")
        #expect(leads[2].company == "Gamma Ltd")
        // The event for unknown L9 carries cy@gamma.io: it matches lead 3, which gains the external id.
        try ingest(store, try directory.write("events.ndjson", Self.eventsNDJSON))
        let after = try store.leads()
        #expect(after[2].externalID == "L9")
        #expect(after[2].source == "google")  // utm source fills a missing source
        #expect(after[0].source == "webinar")  // and never replaces one
    }

    @Test("Counts are per file: a lead created by one file and updated by the next counts as updated")
    func countsArePerFile() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let ingester = Ingester(store: store)
        let first = try ingester.ingest(path: try directory.write("a.csv", "id,company\nL1,Acme\nL2,Beta\n").path)
        let second = try ingester.ingest(path: try directory.write("b.ndjson", """
            {"type":"identify","userId":"L1","traits":{"company":"Acme 2"}}
            {"type":"identify","userId":"L1","traits":{"plan":"pro"}}
            {"type":"identify","userId":"L2","traits":{"company":"Beta"}}
            """).path)
        #expect(first.counts.leadsCreated == 2)
        #expect(second.counts.leadsCreated == 0 && second.counts.leadsUpdated == 1 && second.counts.leadsUnchanged == 1)
    }

    @Test("A cached match never merges two people: a lead that gains an external id stops matching another one")
    func cachedIdentityStaysConsistent() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        try ingest(store, try directory.write("events.ndjson", """
            {"type":"identify","anonymousId":"x1","traits":{"email":"e@x.io","phone":"555 010 0001"}}
            {"type":"identify","userId":"A","traits":{"phone":"555 010 0001"}}
            {"type":"identify","userId":"B","traits":{"email":"e@x.io","firstName":"Bea"}}
            """))
        let leads = try store.leads()
        #expect(leads.map(\.externalID) == ["A", "B"])
        #expect(leads[1].firstName == "Bea" && leads[0].firstName == nil)
    }

    @Test("Formats are sniffed after a byte order mark; a pretty-printed JSON document parses whole")
    func sniffingAndJSONDocuments() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        var bom = Data([0xEF, 0xBB, 0xBF])
        bom.append(Data(#"{"type":"track","event":"A","userId":"u1","messageId":"1","timestamp":"2026-01-01T00:00:00Z"}"#.utf8))
        let sniffed = try ingest(store, try directory.write("upload.dat", bom))
        #expect(sniffed.counts.eventsAdded == 1 && sniffed.counts.rejected == 0)
        let pretty = try ingest(store, try directory.write("batch.json", """
            {
              "batch": [
                {"type": "track", "event": "B", "userId": "u2", "messageId": "2",
                 "timestamp": "2026-01-01T00:00:00Z"}
              ]
            }
            """))
        #expect(pretty.counts.eventsAdded == 1 && pretty.counts.rejected == 0)
        // One message on one line, then a blank line: read either way, it is one event.
        let oneLineThenMore = try ingest(store, try directory.write("single.json", """
            {"type": "track", "event": "C", "userId": "u2", "messageId": "3", "timestamp": "2026-01-01T00:00:00Z"}

            """))
        #expect(oneLineThenMore.counts.eventsAdded == 1 && oneLineThenMore.counts.rejected == 0)
    }

    @Test("NDJSON saved as .json is read line by line: each bad line is rejected alone")
    func ndjsonInADotJSONFile() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let lines = (1...3).map { #"{"type":"track","event":"A","userId":"u\#($0)","messageId":"m\#($0)","timestamp":"2026-01-01T00:00:00Z"}"# }
        let file = try directory.write("events.json", (lines + [#"{"type":"track","event":"#] + lines).joined(separator: "\r\n"))
        let summary = try ingest(store, file)
        #expect(summary.counts.eventsAdded == 3)
        #expect(summary.counts.duplicateEvents == 3)
        #expect(summary.counts.rejected == 1)
        #expect(summary.sampleRejects.map(\.line) == [4])

        // A broken or blank first line does not make the rest one document.
        for (name, first) in [("broken-first.json", #"{"type":"track","event":"#), ("blank-first.json", "  ")] {
            let other = try LeadStore.inMemory()
            let later = (4...6).map { #"{"type":"track","event":"A","userId":"u\#($0)","messageId":"m\#($0)","timestamp":"2026-01-01T00:00:00Z"}"# }
            let result = try ingest(other, try directory.write(name, ([first] + later).joined(separator: "\n")))
            #expect(result.counts.eventsAdded == 3, "\(name)")
            #expect(result.counts.rejected == (first.contains("{") ? 1 : 0), "\(name)")
            #expect(result.sampleRejects.map(\.line) == (first.contains("{") ? [1] : []), "\(name)")
        }
    }

    @Test func anUnreadableCSVHeaderFailsTheFile() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        var data = Data("id,".utf8)
        data.append(contentsOf: [0xFF, 0xFE])
        data.append(Data("\nL1,a@x.io\n".utf8))
        #expect(throws: IngestFileError.self) { try ingest(store, try directory.write("bad.csv", data)) }
        #expect(try store.count("leads") == 0)
    }

    @Test func numericIdsBeyondDoublePrecisionAreRejected() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let rejects = RejectRecorder()
        let summary = try ingest(store, try directory.write("ids.ndjson", """
            {"type":"identify","userId":12345,"traits":{"email":"a@x.io"}}
            {"type":"identify","userId":9007199254740993,"traits":{"email":"b@x.io"}}
            """), rejects: rejects)
        #expect(summary.counts.leadsCreated == 1)
        #expect(try store.leads().first?.externalID == "12345")
        #expect(rejects.rejects.map(\.error.field) == ["userId"])
    }

    @Test("Blank values never overwrite, non-blank values update")
    func blanksNeverOverwrite() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        try ingest(store, try directory.write("a.csv", "id,first name,company,status\nL1,Ann,Acme,new\n"))
        let summary = try ingest(store, try directory.write("b.csv", "id,first name,company,status\nL1,,Acme 2,\n"))
        #expect(summary.counts.leadsUpdated == 1)
        let lead = try #require(try store.leads().first)
        #expect(lead.firstName == "Ann" && lead.company == "Acme 2" && lead.status == "new")
    }

    @Test("Rejects file names the line and reason, and bad rows cost no good ones")
    func rejectsFile() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        var lines = [
            #"{"type":"track","event":"A","userId":"u1","messageId":"a","timestamp":"2026-01-01T00:00:00Z"}"#,
            #"{"type":"track","event":"A","userId":"u1","#,
            #"{"type":"track","event":"A","messageId":"b","timestamp":"2026-01-01T00:00:00Z"}"#,
            #"{"type":"track","event":"A","userId":"u1","messageId":"c","timestamp":"not a time"}"#,
            #"{"type":"track","event":"A","userId":"u1","messageId":"d","timestamp":"2026-01-02T00:00:00Z"}"#,
        ].joined(separator: "\n") + "\n"
        lines += #"{"type":"identify","userId":"u2","traits":{"notes":""# + String(repeating: "x", count: 70_000) + "\"}}\n"
        var data = Data(lines.utf8)
        data.append(contentsOf: Array(#"{"type":"identify","userId":"u3","traits":{"firstName":""#.utf8) + [0xFF, 0xFE] + Array("\"}}\n".utf8))
        let file = try directory.write("events.ndjson", data)
        let rejectsURL = directory.url.appendingPathComponent("rejects.ndjson")
        let sink = Ingest.RejectsFile(url: rejectsURL)
        let summary = try Ingester(store: store).ingest(path: file.path, rejects: sink)
        try sink.close()

        #expect(summary.counts.eventsAdded == 2)
        #expect(summary.counts.rejected == 5)
        let rejects = try String(contentsOf: rejectsURL, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(rejects.map { $0["line"] as? Int } == [2, 3, 4, 6, 7])
        #expect(rejects.map { $0["code"] as? String } == ["malformed_json", "no_identity", "bad_timestamp", "value_too_large", "invalid_utf8"])
        #expect(rejects[2]["field"] as? String == "timestamp")
        #expect((rejects[1]["raw"] as? String)?.contains(#""messageId":"b""#) == true)
        // A reason never repeats the row's values.
        #expect(summary.sampleRejects.allSatisfy { !$0.description.contains("not a time") })
    }

    @Test("a batch line with many bad messages is written to the rejects file once, with its first reject")
    func batchLineRawWrittenOnce() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let bad = (0..<50).map { #"{"type":"track","event":"A","userId":"u1","messageId":"m\#($0)","timestamp":"never"}"# }
        let good = #"{"type":"track","event":"A","userId":"u1","messageId":"ok","timestamp":"2026-01-01T00:00:00Z"}"#
        let line = #"{"batch":["# + (bad + [good]).joined(separator: ",") + "]}\n"
        let file = try directory.write("batch.ndjson", Data((line + line).utf8))
        let rejectsURL = directory.url.appendingPathComponent("rejects.ndjson")
        let sink = Ingest.RejectsFile(url: rejectsURL)
        let summary = try Ingester(store: store).ingest(path: file.path, rejects: sink)
        try sink.close()
        #expect(summary.counts.rejected == 100 && summary.counts.eventsAdded == 1)
        let rejects = try String(contentsOf: rejectsURL, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(rejects.count == 100)
        // Each of the two lines is written out once, by the first of its rejects.
        let withRaw = rejects.enumerated().filter { $0.element["raw"] is String }.map(\.offset)
        #expect(withRaw == [0, 50])
        #expect(rejects[0]["raw"] as? String == String(line.dropLast()))
        #expect(rejects.filter { $0["raw_with_line"] as? Bool == true }.count == 98)
        // Each names its message within the line.
        #expect(rejects.prefix(50).map { $0["field"] as? String } == (0..<50).map { "batch[\($0)].timestamp" })
    }

    @Test("a value over 64 KiB rejects the message holding it, not the rest of its batch line")
    func oversizedValueCostsOnlyItsMessage() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let long = String(repeating: "x", count: 70_000)
        let messages = [
            #"{"type":"track","event":"A","userId":"u1","messageId":"m1","timestamp":"2026-01-01T00:00:00Z"}"#,
            #"{"type":"track","event":"A","userId":"u1","messageId":"m2","timestamp":"2026-01-01T00:00:00Z","properties":{"desc":"\#(long)"}}"#,
            #"{"type":"identify","userId":"u2","traits":{"email":"u2@x.io"}}"#,
        ]
        let file = try directory.write("batch.ndjson", #"{"batch":["# + messages.joined(separator: ",") + "]}\n"
                                       + #"{"type":"track","event":"B","userId":"u3","messageId":"m3","properties":{"a":"\#(long)"}}"# + "\n")
        let rejects = RejectRecorder()
        let summary = try ingest(store, file, rejects: rejects)
        #expect(summary.counts.eventsAdded == 1 && summary.counts.leadsCreated == 2, "\(summary.counts)")
        #expect(rejects.rejects.map { [String($0.error.line), $0.error.field ?? ""] } == [["1", "batch[1].properties.desc"], ["2", "properties.a"]])
        #expect(rejects.rejects.allSatisfy { $0.error.code == .valueTooLarge })
    }

    @Test("each bad element of a one-line JSON array keeps its own text in the rejects file")
    func oneLineArrayRejectsKeepTheirText() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let array = #"[{"type":"track","event":"A","userId":"u1","timestamp":"never"},"# +
            #"{"type":"track","event":"B","userId":"u1","timestamp":"nor this"},"# +
            #"{"type":"track","event":"C","userId":"u1","messageId":"ok","timestamp":"2026-01-01T00:00:00Z"}]"#
        let file = try directory.write("export.json", Data(array.utf8))
        let rejectsURL = directory.url.appendingPathComponent("rejects.ndjson")
        let sink = Ingest.RejectsFile(url: rejectsURL)
        let summary = try Ingester(store: store).ingest(path: file.path, rejects: sink)
        try sink.close()
        #expect(summary.counts.rejected == 2 && summary.counts.eventsAdded == 1)
        let raws = try String(contentsOf: rejectsURL, encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["raw"] as? String
        }
        #expect(raws.count == 2)
        #expect(raws[0]?.contains(#""event":"A""#) == true && raws[1]?.contains(#""event":"B""#) == true)

        // Every element is on line 1: the field names which one, as a batch's rejects do.
        let rejects = RejectRecorder()
        let nested = #"[{"batch":[{"type":"track","event":"A","userId":"u2","timestamp":"never"}]},"# +
            #"{"type":"track","event":"B","userId":"u2","timestamp":"nor this"},{"type":"track",,}]"#
        _ = try Ingester(store: store).ingest(path: try directory.write("nested.json", Data(nested.utf8)).path, rejects: rejects)
        #expect(rejects.rejects.map(\.error.field) == ["[0].batch[0].timestamp", "[1].timestamp", "[2]"])
    }

    @Test("--strict aborts at the first bad row and commits nothing from the file")
    func strictRollsBack() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        // More good rows than one batch, so the rollback spans committed-looking batches.
        var csv = "id,email\n"
        for i in 0..<30 { csv += "L\(i),l\(i)@x.io\n" }
        csv += "L99,l99@x.io,extra\n"
        var options = Ingest.Options(strict: true)
        options.batchSize = 10
        let summary = try ingest(store, try directory.write("leads.csv", csv), options: options)
        #expect(summary.abortedStrict)
        #expect(summary.counts.leadsCreated == 0)
        #expect(try store.count("leads") == 0)

        // Without --strict the same file commits its good rows, and the writer's caches were not
        // poisoned by the rollback.
        let relaxed = try ingest(store, try directory.write("leads2.csv", csv))
        #expect(relaxed.counts.leadsCreated == 30 && relaxed.counts.rejected == 1)
    }

    @Test func jsonArrayStreamsElementsWithLines() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("events.json", """
            [
              {"type":"track","event":"A","userId":"u1","messageId":"1","timestamp":"2026-01-01T00:00:00Z"},
              {"type":"track","event":"A","userId":"u1","messageId":"2","timestamp":"bad"},
              {"batch":[{"type":"track","event":"B","userId":"u2","messageId":"3","timestamp":"2026-01-01T00:00:00Z"}]}
            ]
            """)
        let rejects = RejectRecorder()
        let summary = try ingest(store, file, rejects: rejects)
        #expect(summary.counts.eventsAdded == 2)
        #expect(rejects.rejects.map(\.error.line) == [3])
    }

    @Test("A stray closer in a JSON array rejects its element and the elements after it still ingest")
    func jsonArrayStrayCloser() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let rejects = RejectRecorder()
        let summary = try ingest(store, try directory.write("leads.json", """
            [{"type":"identify","userId":"a1"}},{"type":"identify","userId":"a2"},{"type":"identify","userId":"a3"}]
            """), rejects: rejects)
        #expect(summary.counts.rejected == 1 && rejects.rejects.map(\.error.line) == [1])
        #expect(try store.leads().map(\.externalID) == ["a2", "a3"])

        // A "]" is the end of the array only when nothing but whitespace follows it.
        let store2 = try LeadStore.inMemory()
        let rejects2 = RejectRecorder()
        let summary2 = try ingest(store2, try directory.write("leads2.json", """
            [
              {"type":"identify","userId":"b1"},
              {"type":"identify","userId":"b2"}],
              ]{"type":"identify","userId":"b3"},
              {"type":"identify","userId":"b4"}
            ]

            """), rejects: rejects2)
        #expect(summary2.counts.rejected == 2 && rejects2.rejects.map(\.error.line) == [3, 4])
        #expect(rejects2.rejects.allSatisfy { $0.error.code == .malformedJSON })
        #expect(try store2.leads().map(\.externalID) == ["b1", "b4"])
    }

    @Test("A mismatched bracket rejects only its element; brackets in strings are text")
    func jsonArrayMismatchedBrackets() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let rejects = RejectRecorder()
        let summary = try ingest(store, try directory.write("leads.json", """
            [
              {"type":"identify","userId":"c1","traits":{"x":[1}},
              {"type":"identify","userId":"c2"},
              {"type":"identify","userId":"c3","x":[1},
              {"type":"identify","userId":"c4","traits":{"x":{"y":1]},
              {"type":"identify","userId":"c5\\\\\\\"]}[{","traits":{"note":"}]\\\\"}},
              {"type":"identify","userId":"c6"}
            ]
            """), rejects: rejects)
        #expect(summary.counts.rejected == 3 && rejects.rejects.map(\.error.line) == [2, 4, 5])
        #expect(try store.leads().map(\.externalID) == ["c2", "c5\\\"]}[{", "c6"])
    }

    @Test func unreadableFileThrows() throws {
        let store = try LeadStore.inMemory()
        #expect(throws: (any Error).self) { try Ingester(store: store).ingest(path: "/nonexistent/leads.csv") }
    }

    @Test("Feature aggregates equal a from-scratch recomputation after random ingest orders and re-ingests",
          arguments: [1, 2, 3, 4, 5] as [UInt64])
    func aggregatesMatchRecomputation(seed: UInt64) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var rng = SplitMix(seed: seed)
        let types = ["Email Opened", "Email Clicked", "Demo Requested", "Webinar Attended"]
        var lines: [String] = []
        for i in 0..<600 {
            let lead = "u\(rng.next() % 40)"
            let type = types[Int(rng.next() % UInt64(types.count))]
            let day = 1 + rng.next() % 28
            let hasID = rng.next() % 5 != 0
            let id = hasID ? #","messageId":"m\#(i)""# : ""
            // A few shared property sets, some events without: the dictionary's counts are checked too.
            let campaign = rng.next() % 4
            let properties = campaign == 0 ? "" : #","properties":{"campaign":"c\#(campaign)"}"#
            lines.append(#"{"type":"track","event":"\#(type)","userId":"\#(lead)"\#(id),"timestamp":"2026-02-\#(day < 10 ? "0" : "")\#(day)T10:00:00Z"\#(properties)}"#)
        }
        // Ingest overlapping shuffled chunks, some twice, in small batches.
        var options = Ingest.Options()
        options.batchSize = 17
        for round in 0..<4 {
            var shuffled = lines
            shuffled.shuffle(using: &rng)
            let chunk = shuffled.prefix(350)
            try ingest(store, try directory.write("chunk\(round).ndjson", chunk.joined(separator: "\n")), options: options)
        }
        try ingest(store, try directory.write("all.ndjson", lines.joined(separator: "\n")), options: options)

        let (maintained, recomputed, lastActivity) = try store.reader.read { db in
            #expect(try propertySetMismatches(db) == [])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM event_property_sets") ?? 0 <= 3 * 5,
                    "each ingest adds at most one row per distinct properties")
            return (try LeadActivity.fetchAll(db).mapValues(\.normalized),
             try LeadActivity.recompute(db).mapValues(\.normalized),
             try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, last_activity_at FROM leads").map { ($0[0] as Int64, $0[1] as Int64?) }))
        }
        #expect(maintained.count == 40)
        #expect(maintained == recomputed)
        for (leadID, activity) in maintained { #expect(lastActivity[leadID] == activity.lastAt) }
        #expect(try store.count("events") == maintained.values.reduce(0) { $0 + Int($1.eventCount) })
    }
}

/// A small deterministic generator for shuffles in tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Anonymous visitors linked to a user")
struct AnonymousLinkingTests {
    /// A visitor browses anonymously, signs in (identify with the anonymousId), and browses on.
    static let lines = [
        #"{"type":"identify","userId":"u1","traits":{"email":"ada@example.com"}}"#,
        #"{"type":"track","event":"Viewed Pricing Page","anonymousId":"a1","messageId":"m1","timestamp":"2026-02-01T10:00:00Z"}"#,
        #"{"type":"page","name":"Docs","anonymousId":"a1","messageId":"m2","timestamp":"2026-02-01T10:05:00Z","properties":{"path":"/docs"}}"#,
        #"{"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m3","timestamp":"2026-02-01T10:10:00Z"}"#,
        #"{"type":"track","event":"Demo Requested","anonymousId":"a1","messageId":"m4","timestamp":"2026-02-01T10:20:00Z"}"#,
        #"{"type":"identify","userId":"u2","anonymousId":"a2"}"#,
        #"{"type":"track","event":"Email Opened","anonymousId":"a2","messageId":"m5","timestamp":"2026-02-02T10:00:00Z"}"#,
        // A lead holding the anonymous id under a user id of its own is another person: a second
        // user linking the same id does not absorb it.
        #"{"type":"identify","userId":"u3","anonymousId":"a3"}"#,
        #"{"type":"identify","userId":"u4"}"#,
        #"{"type":"identify","userId":"u4","anonymousId":"a3"}"#,
    ]

    @Test("linking merges the visitor's anonymous lead into the user, and re-ingesting adds nothing", arguments: [1, 2, 5000])
    func linkingMergesAndStaysIdempotent(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let file = try directory.write("visits.ndjson", Self.lines.joined(separator: "\n"))
        let first = try ingest(store, file, options: options)
        #expect(first.counts.eventsAdded == 4)
        // The visitor's lead, merged away, is not counted as created.
        #expect(first.counts.leadsCreated == 4, "\(first.counts)")
        for _ in 0..<2 {
            let again = try ingest(store, file, options: options)
            #expect(again.counts.eventsAdded == 0 && again.counts.leadsCreated == 0, "re-ingest added \(again.counts)")
        }
        try store.reader.read { db in
            let u1 = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'u1'"))
            #expect(try String.fetchAll(db, sql: "SELECT external_id FROM leads ORDER BY id") == ["u1", "u2", "u3", "u4"],
                    "the anonymous lead was left beside its user, or another user's lead was absorbed")
            #expect(try String.fetchAll(db, sql: "SELECT anonymous_id FROM lead_anonymous_ids WHERE lead_id = ?", arguments: [u1]) == ["a1"])
            let u3 = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'u3'"))
            #expect(try Int64.fetchOne(db, sql: "SELECT lead_id FROM lead_anonymous_ids WHERE anonymous_id = 'a3'") == u3,
                    "the first user to sign in on a browser keeps its id")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE lead_id = ?", arguments: [u1]) == 3)
            // One event carried properties; merged with its visitor, it still names them once.
            #expect(try String.fetchAll(db, sql: "SELECT properties FROM event_property_sets") == [#"{"path":"/docs"}"#])
            #expect(try propertySetMismatches(db) == [])
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty, "merging left orphan rows")
            #expect(try LeadActivity.fetchAll(db).mapValues(\.normalized) == LeadActivity.recompute(db).mapValues(\.normalized))
        }
    }
    /// One person, two devices: each browses anonymously, then signs in. Every device's visitor
    /// lead merges into the user, and a later anonymous event from either device finds the user.
    /// An alias names a third device the same way.
    @Test("a user's second and third devices merge into the user", arguments: [1, 3, 5000])
    func everyDeviceMergesIntoTheUser(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let file = try directory.write("devices.ndjson", [
            #"{"type":"page","name":"Home","anonymousId":"laptop","messageId":"m1","timestamp":"2026-02-01T10:00:00Z"}"#,
            #"{"type":"identify","userId":"u1","anonymousId":"laptop","traits":{"email":"ada@example.com"},"timestamp":"2026-02-01T10:01:00Z"}"#,
            #"{"type":"track","event":"Viewed Pricing Page","anonymousId":"phone","messageId":"m2","timestamp":"2026-02-03T08:00:00Z"}"#,
            #"{"type":"identify","anonymousId":"phone","traits":{"company":"Acme"},"timestamp":"2026-02-03T08:01:00Z"}"#,
            #"{"type":"identify","userId":"u1","anonymousId":"phone","timestamp":"2026-02-03T08:02:00Z"}"#,
            #"{"type":"track","event":"Demo Requested","anonymousId":"phone","messageId":"m3","timestamp":"2026-02-04T09:00:00Z"}"#,
            #"{"type":"track","event":"Email Opened","anonymousId":"laptop","messageId":"m4","timestamp":"2026-02-05T09:00:00Z"}"#,
            #"{"type":"page","name":"Docs","anonymousId":"tablet","messageId":"m5","timestamp":"2026-02-06T09:00:00Z"}"#,
            #"{"type":"alias","previousId":"tablet","userId":"u1","timestamp":"2026-02-06T09:01:00Z"}"#,
            #"{"type":"page","name":"Blog","anonymousId":"tablet","messageId":"m6","timestamp":"2026-02-07T09:00:00Z"}"#,
        ].joined(separator: "\n"))
        let first = try ingest(store, file, options: options)
        #expect(first.counts.leadsCreated == 1, "\(first.counts)")
        // The laptop's visitor became the user itself; the phone's and the tablet's merged into it.
        #expect(first.counts.leadsMerged == 2)
        #expect(first.counts.eventsAdded == 6)
        let again = try ingest(store, file, options: options)
        #expect(again.counts.leadsCreated == 0 && again.counts.eventsAdded == 0 && again.counts.leadsMerged == 0, "re-ingest added \(again.counts)")
        try store.reader.read { db in
            let leads = try Row.fetchAll(db, sql: "SELECT id, external_id, company FROM leads")
            try #require(leads.count == 1, "a device's visitor lead was left beside its user")
            let u1: Int64 = leads[0]["id"]
            #expect(leads[0]["external_id"] as String? == "u1")
            #expect(leads[0]["company"] as String? == "Acme", "the phone visitor's traits were lost in the merge")
            #expect(try String.fetchAll(db, sql: "SELECT anonymous_id FROM lead_anonymous_ids WHERE lead_id = ? ORDER BY 1",
                                        arguments: [u1]) == ["laptop", "phone", "tablet"])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE lead_id = ?", arguments: [u1]) == 6)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            #expect(try LeadActivity.fetchAll(db).mapValues(\.normalized) == LeadActivity.recompute(db).mapValues(\.normalized))
        }
    }

    /// The visitor's lead is merged into a user a later record of the same write created: the
    /// file made one lead, whatever the batch size.
    @Test("a visitor merged into a user created in the same write counts one lead created, none updated", arguments: [1, 5000])
    func visitorMergedIntoNewUserCountsOnce(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let summary = try ingest(store, try directory.write("visit.ndjson", [
            #"{"type":"track","event":"Viewed Pricing","anonymousId":"v1","messageId":"n1","timestamp":"2024-05-01T10:00:00Z"}"#,
            #"{"type":"identify","userId":"u9","traits":{"email":"u9@example.com"},"messageId":"n2","timestamp":"2024-05-02T10:00:00Z"}"#,
            #"{"type":"identify","userId":"u9","anonymousId":"v1","messageId":"n3","timestamp":"2024-05-02T11:00:00Z"}"#,
        ].joined(separator: "\n")), options: options)
        #expect(summary.counts.leadsCreated == 1 && summary.counts.leadsUpdated == 0 && summary.counts.leadsMerged == 1, "\(summary.counts)")
        #expect(try store.count("leads") == 1)
    }

    /// The visitor told us something newer than the user's last identify: merged, the newer
    /// trait stands, as it would had it been sent to the user, so a replay changes nothing.
    @Test("a visitor's newer traits win the merge, in either order, and re-ingesting changes nothing")
    func newerVisitorTraitsWin() throws {
        let lines = [
            #"{"type":"identify","userId":"k1","traits":{"email":"k1@example.com","firstName":"Old","plan":"free","source":"Partner"},"messageId":"r1","timestamp":"2024-05-01T10:00:00Z"}"#,
            #"{"type":"identify","anonymousId":"kb","traits":{"firstName":"New","plan":"pro","lastName":"Lee"},"messageId":"r2","timestamp":"2024-05-05T10:00:00Z","context":{"campaign":{"source":"google"}}}"#,
            #"{"type":"track","event":"Signed Up","userId":"k1","anonymousId":"kb","messageId":"r3","timestamp":"2024-05-06T10:00:00Z"}"#,
            // Signed in with traits older than the visitor's: the visitor's newer plan stands.
            #"{"type":"identify","userId":"k1","anonymousId":"kb","traits":{"plan":"basic"},"messageId":"r4","timestamp":"2024-05-03T10:00:00Z"}"#,
        ]
        for order in [[0, 1, 2], [1, 0, 2], [0, 1, 3]] {
            let directory = try TemporaryDirectory()
            let store = try makeFileStore(in: directory)
            let file = try directory.write("re.ndjson", order.map { lines[$0] }.joined(separator: "\n"))
            _ = try ingest(store, file)
            func profile() throws -> [String?] {
                try store.reader.read { db in
                    let row = try #require(try Row.fetchOne(db, sql: "SELECT id, first_name, last_name, email, source FROM leads"))
                    let plan = try String.fetchOne(db, sql: """
                        SELECT v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id WHERE f.key = 'plan' AND v.lead_id = ?
                        """, arguments: [row["id"] as Int64])
                    return [row["first_name"], row["last_name"], row["email"], plan, row["source"]]
                }
            }
            // The user's own source stays: a utm source only ever fills a blank one.
            let expected: [String?] = ["New", "Lee", "k1@example.com", "pro", "Partner"]
            #expect(try store.count("leads") == 1)
            #expect(try profile() == expected, "order \(order)")
            let again = try ingest(store, file)
            #expect(again.counts.leadsUpdated == 0, "order \(order): re-ingest changed \(again.counts)")
            #expect(try profile() == expected, "order \(order)")
        }
    }

    /// A lead holds one email: every other address it was given stays readable beside it,
    /// whether a merge, a newer identify or a late older one brought it, in any order of lines.
    @Test("other addresses are kept as Other email whichever order brings them")
    func otherAddressesAreKeptInAnyOrder() throws {
        let lines = [
            #"{"type":"identify","userId":"U1","traits":{"email":"u1@n.io","phone":"555 0100"},"timestamp":"2026-09-01T00:00:00Z","messageId":"o0"}"#,
            #"{"type":"identify","anonymousId":"d1","traits":{"email":"d1@n.io","phone":"555 0111","firstName":"Dee"},"timestamp":"2026-08-01T00:00:00Z","messageId":"o1"}"#,
            #"{"type":"alias","previousId":"d1","userId":"U1","timestamp":"2026-10-01T00:00:00Z","messageId":"o2"}"#,
        ]
        for order in [[0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0]] {
            let directory = try TemporaryDirectory()
            let store = try makeFileStore(in: directory)
            let file = try directory.write("o.ndjson", order.map { lines[$0] }.joined(separator: "\n"))
            _ = try ingest(store, file)
            func state() throws -> [String] {
                try store.reader.read { db in
                    try Row.fetchAll(db, sql: """
                        SELECT l.external_id, l.email, l.phone, f.label, v.value FROM leads l
                        LEFT JOIN lead_custom_values v ON v.lead_id = l.id LEFT JOIN custom_fields f ON f.id = v.field_id
                        ORDER BY l.id, f.label
                        """).map { row in (0..<5).map { (row[$0] as String?) ?? "-" }.joined(separator: " ") }
                }
            }
            #expect(try state() == ["U1 u1@n.io 555 0100 Other email d1@n.io", "U1 u1@n.io 555 0100 Other phone 555 0111"], "order \(order)")
            let again = try ingest(store, file)
            #expect(again.counts.leadsUpdated == 0 && again.counts.leadsCreated == 0, "order \(order): \(again.counts)")
        }
    }

    /// The visitor's identify is the newest: its email is the lead's whether it arrives before
    /// the link (a merge) or after it (an update), and the user's older one is kept beside it.
    @Test("a visitor's newer email wins in every order of the lines", arguments: [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
    func newerVisitorEmailWinsInEveryOrder(order: [Int]) throws {
        let lines = [
            #"{"type":"identify","userId":"u5","traits":{"email":"u5@x.com","firstName":"User"},"messageId":"b1","timestamp":"2026-02-01T10:00:00Z"}"#,
            #"{"type":"identify","anonymousId":"d5","traits":{"email":"v5@x.com","firstName":"Visitor"},"messageId":"b2","timestamp":"2026-02-05T10:00:00Z"}"#,
            #"{"type":"alias","previousId":"d5","userId":"u5","messageId":"b3","timestamp":"2026-02-03T10:00:00Z"}"#,
        ]
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        _ = try ingest(store, try directory.write("m.ndjson", order.map { lines[$0] }.joined(separator: "\n")))
        let state = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.external_id, l.email, l.first_name, v.value FROM leads l
                LEFT JOIN lead_custom_values v ON v.lead_id = l.id
                """).map { row in (0..<4).map { (row[$0] as String?) ?? "-" }.joined(separator: " ") }
        }
        #expect(state == ["u5 v5@x.com Visitor u5@x.com"])
    }

    /// A visitor lead sales has worked (a status, an owner) keeps its id and its device, as an
    /// email-only lead does: a merge would keep the user's status and lose theirs.
    @Test("a worked visitor lead is not merged into the user who signs in on its device")
    func workedVisitorLeadStaysApart() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        _ = try ingest(store, try directory.write("a.ndjson", [
            #"{"type":"identify","anonymousId":"phone","traits":{"email":"visitor@example.com"}}"#,
            #"{"type":"identify","anonymousId":"laptop","traits":{"company":"Acme"}}"#,
            #"{"type":"identify","userId":"u1","anonymousId":"desk"}"#,
        ].joined(separator: "\n")))
        try store.writer.write { db in
            try db.execute(sql: "UPDATE leads SET status = 'qualified' WHERE email = 'visitor@example.com'")
        }
        let linked = try ingest(store, try directory.write("b.ndjson", [
            #"{"type":"identify","userId":"u1","anonymousId":"phone"}"#,
            #"{"type":"identify","userId":"u1","anonymousId":"laptop"}"#,
            #"{"type":"track","event":"Demo Requested","anonymousId":"phone","messageId":"m1"}"#,
        ].joined(separator: "\n")))
        #expect(linked.counts.leadsCreated == 0)
        try store.reader.read { db in
            let owners = try Row.fetchAll(db, sql: """
                SELECT a.anonymous_id, l.external_id, l.email FROM lead_anonymous_ids a JOIN leads l ON l.id = a.lead_id ORDER BY 1
                """).map { "\($0[0] as String)→\($0[1] as String? ?? $0[2] as String? ?? "?")" }
            #expect(owners == ["desk→u1", "laptop→u1", "phone→visitor@example.com"])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") == 2)
            #expect(try String.fetchOne(db, sql: "SELECT company FROM leads WHERE external_id = 'u1'") == "Acme")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events e JOIN leads l ON l.id = e.lead_id WHERE l.status = 'qualified'") == 1,
                    "the worked lead's device keeps its events")
            // The pair is left for a person to decide, through the duplicates endpoint.
            let user = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'u1'"))
            let visitor = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE status = 'qualified'"))
            let duplicates = try LeadMutations.duplicates(of: user, in: db)
            #expect(duplicates.map(\.id) == [visitor] && duplicates.first?.matches == [.device])
            #expect(try LeadMutations.duplicates(of: visitor, in: db).map(\.id) == [user])
        }
        // Sent again, the pair is noted once.
        let again = try ingest(store, try directory.write("c.ndjson", #"{"type":"identify","userId":"u1","anonymousId":"phone"}"#))
        #expect(again.counts.leadsUpdated == 0)
        func notes() throws -> Int { try store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM lead_timeline WHERE kind = 'same_device'") ?? -1 } }
        #expect(try notes() == 2)
        // A person merging the pair settles both notes.
        try store.writer.write { db in
            let user = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'u1'"))
            let visitor = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE status = 'qualified'"))
            try LeadMutations.merge(primary: user, duplicate: visitor, in: db)
        }
        #expect(try notes() == 0)
    }

    /// A lead a list made from an email alone is the user a later row gives that email to, as
    /// it would have been matched had the row come first: the order of the inputs must not
    /// decide whether one person is one lead.
    @Test("a row giving a user an email merges the email-only lead into it", arguments: [1, 5000])
    func emailLinkMergesTheEmailOnlyLead(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let files = [
            try directory.write("a.csv", "E-mail,First Name,Status\nx@q.test,Ann,\nother@q.test,Bob,\nworked@q.test,Cy,qualified\n"),
            try directory.write("b.ndjson", #"{"type":"track","event":"Demo Requested","userId":"EXT9","messageId":"m1","timestamp":"2026-02-01T10:00:00Z"}"#
                                + "\n" + #"{"type":"track","event":"Demo Requested","userId":"EXT8","messageId":"m2","timestamp":"2026-02-01T10:00:00Z"}"#),
            // A lead sales already works (qualified) keeps its id and status: not merged away.
            try directory.write("c.csv", "Lead ID,E-mail\nEXT9,X@q.test\nEXT8,worked@q.test\n"),
        ]
        for file in files { _ = try ingest(store, file, options: options) }
        for file in files {
            let again = try ingest(store, file, options: options)
            #expect(again.counts.leadsCreated == 0 && again.counts.eventsAdded == 0, "\(again.counts)")
        }
        try store.reader.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT external_id, email, first_name FROM leads ORDER BY email, id")
                .map { [$0[0] as String?, $0[1] as String?, $0[2] as String?] }
            #expect(rows == [[nil, "other@q.test", "Bob"], [nil, "worked@q.test", "Cy"], ["EXT8", "worked@q.test", nil],
                             ["EXT9", "x@q.test", "Ann"]])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events e JOIN leads l ON l.id = e.lead_id WHERE l.external_id = 'EXT9'") == 1)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            #expect(try LeadActivity.fetchAll(db).mapValues(\.normalized) == LeadActivity.recompute(db).mapValues(\.normalized))
        }
    }

    /// The visitor gave an email before signing in, so a cached key still names the merged lead
    /// when that email comes again. With two records per write the visitor's lead is created in
    /// one write and merged in the next, where the stale hit must not lose the merge from the
    /// file's totals.
    @Test("a stale cache hit after a merge keeps the created count equal to the leads left", arguments: [1, 2, 5000])
    func staleHitAfterMergeKeepsCounts(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let file = try directory.write("visits.ndjson", [
            #"{"type":"identify","userId":"u1","traits":{"email":"ada@example.com"}}"#,
            #"{"type":"identify","anonymousId":"a1","traits":{"email":"visitor@example.com"}}"#,
            #"{"type":"identify","userId":"u1","anonymousId":"a1"}"#,
            #"{"type":"identify","traits":{"email":"visitor@example.com","company":"Acme"}}"#,
        ].joined(separator: "\n"))
        let first = try ingest(store, file, options: options)
        let leadsLeft = try store.count("leads")
        #expect(first.counts.leadsCreated == leadsLeft, "\(first.counts) with \(leadsLeft) leads stored")
        let again = try ingest(store, file, options: options)
        #expect(again.counts.leadsCreated == 0)
        #expect(try store.count("leads") == leadsLeft)
    }
}

@Suite("A long-lived ingester")
struct LongLivedIngesterTests {
    /// A watch or a stdin pipeline keeps one ingester for days: what it writes on day 3 is
    /// dated day 3, not the day it started.
    @Test("each write is stamped with the time it runs, not the time the ingester was made")
    func writesAreStampedWhenTheyRun() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let clock = Clock(millis: 1_767_225_600_000)  // 2026-01-01
        let ingester = Ingester(store: store, clock: { clock.millis })
        _ = try ingester.ingest(path: try directory.write("a.csv", "id,email\nL1,a@x.io\n").path)
        clock.millis += 3 * 86_400_000
        _ = try ingester.ingest(path: try directory.write("b.csv", "id,email,company\nL2,b@x.io,\nL1,,Acme\n").path)
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: "SELECT external_id, created_at, updated_at FROM leads ORDER BY external_id")
                .map { [$0[0] as String, String($0[1] as Int64), String($0[2] as Int64)] }
        }
        #expect(rows == [["L1", "1767225600000", "1767484800000"], ["L2", "1767484800000", "1767484800000"]])
    }

    @Test("an older identify replayed after a newer one fills blanks only, and resending it changes nothing")
    func olderIdentifyFillsBlanksOnly() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let newer = #"{"type":"identify","userId":"u-9","messageId":"idn-2","traits":{"title":"CTO","plan":"pro","company":"New Co"},"timestamp":"2026-12-03T00:00:00Z"}"#
        let older = #"{"type":"identify","userId":"u-9","messageId":"idn-1","traits":{"title":"Intern","plan":"free","company":"Old Co","phone":"+1 555 0100"},"timestamp":"2026-12-01T00:00:00Z"}"#
        _ = try ingest(store, try directory.write("newer.ndjson", newer))
        let replay = try ingest(store, try directory.write("older.ndjson", older))
        #expect(replay.counts.leadsUpdated == 1, "the blank phone is filled")
        func lead() throws -> [String?] {
            try store.reader.read { db in
                let row = try #require(try Row.fetchOne(db, sql: "SELECT id, company, phone FROM leads WHERE external_id = 'u-9'"))
                let custom = try Row.fetchAll(db, sql: """
                    SELECT f.label, v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id
                    WHERE v.lead_id = ? ORDER BY f.label
                    """, arguments: [row["id"] as Int64]).map { "\($0[0] as String)=\($0[1] as String)" }
                return [row["company"], row["phone"]] + custom
            }
        }
        #expect(try lead() == ["New Co", "+1 555 0100", "plan=pro", "title=CTO"])
        let again = try ingest(store, try directory.write("older-again.ndjson", older))
        #expect(again.counts.leadsUpdated == 0 && again.counts.leadsUnchanged == 1, "\(again.counts)")
        // Another message of the same instant does not flip what was applied either.
        let sameInstant = #"{"type":"identify","userId":"u-9","traits":{"title":"Founder"},"timestamp":"2026-12-03T00:00:00Z"}"#
        let tie = try ingest(store, try directory.write("same.ndjson", sameInstant))
        #expect(tie.counts.leadsUpdated == 0)
        // A newer one still wins.
        let newest = #"{"type":"identify","userId":"u-9","traits":{"title":"VP"},"timestamp":"2026-12-05T00:00:00Z"}"#
        _ = try ingest(store, try directory.write("newest.ndjson", newest))
        #expect(try lead() == ["New Co", "+1 555 0100", "plan=pro", "title=VP"])
    }

    @Test("a lead an identify creates is dated by the message, as one a track creates is; later messages do not move it")
    func identifyDatesTheLeadItCreates() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let clock = Clock(millis: 1_796_601_600_000)  // 2026-12-07
        let ingester = Ingester(store: store, clock: { clock.millis })
        _ = try ingester.ingest(path: try directory.write("backfill.ndjson", [
            #"{"type":"identify","userId":"H1","traits":{"email":"h1@x.io"},"timestamp":"2025-03-01T10:00:00Z"}"#,
            #"{"type":"group","userId":"H2","groupId":"g1","traits":{"name":"Acme"},"sentAt":"2025-04-01T00:00:00Z"}"#,
            #"{"type":"identify","userId":"H3","traits":{"email":"h3@x.io"}}"#,
            #"{"type":"identify","userId":"H1","traits":{"title":"CTO"},"timestamp":"2026-06-01T00:00:00Z"}"#,
        ].joined(separator: "\n")).path)
        let created = try store.reader.read { db in
            try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT external_id, created_at FROM leads")
                .map { ($0[0] as String, $0[1] as Int64) })
        }
        #expect(created == ["H1": Timestamp.parse("2025-03-01T10:00:00Z")!, "H2": Timestamp.parse("2025-04-01")!,
                            "H3": clock.millis])
    }

    final class Clock: @unchecked Sendable {
        var millis: Int64
        init(millis: Int64) { self.millis = millis }
    }
}

@Suite("Event properties dictionary")
struct PropertySetTests {
    static func track(_ user: String, _ message: String, _ properties: String) -> String {
        #"{"type":"track","event":"Viewed Page","userId":"\#(user)","messageId":"\#(message)","timestamp":"2026-02-01T10:00:00Z","properties":\#(properties)}"#
    }

    @Test("events with the same properties share a row, and deleting leads gives their references back")
    func sharedRowsAreCountedAndReleased() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let ingester = Ingester(store: store)
        let docs = #"{"path":"/docs"}"#, pricing = #"{"path":"/pricing"}"#
        let first = try directory.write("first.ndjson", [
            Self.track("a", "m1", docs), Self.track("a", "m2", pricing),
            Self.track("b", "m3", docs), Self.track("c", "m4", #"{"path": "/docs"}"#),
        ].joined(separator: "\n"))
        _ = try ingester.ingest(path: first.path)
        _ = try ingester.ingest(path: first.path)  // all duplicates: no row, no reference
        let docsID = try store.reader.read { db -> Int64? in
            #expect(try propertySetMismatches(db) == [])
            // Kept as received: another spacing is other text, so a row of its own.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM event_property_sets") == 3)
            return try Int64.fetchOne(db, sql: "SELECT id FROM event_property_sets WHERE properties = ?", arguments: [docs])
        }
        let lead = { (external: String) in
            try #require(try store.reader.read { try Int64.fetchOne($0, sql: "SELECT id FROM leads WHERE external_id = ?", arguments: [external]) })
        }
        let a = try lead("a")
        let timeline = try store.reader.read { try LeadMutations.timeline(a, offset: 0, limit: 10, in: $0) }
        #expect(Set(timeline.entries.compactMap(\.properties)) == [docs, pricing])

        // The API deletes on the ingest's own connection, which `data_version` does not report,
        // so the ingester's cache still names the rows.
        _ = try store.writer.write { db in
            try LeadMutations.delete(a, in: db)
            try LeadMutations.delete(try lead("c"), in: db)
        }
        try store.reader.read { (db: Database) throws in
            #expect(try propertySetMismatches(db) == [])
            #expect(try String.fetchAll(db, sql: "SELECT properties FROM event_property_sets") == [docs],
                    "properties only deleted leads named are gone with them")
        }
        _ = try store.writer.write { db in try LeadMutations.delete(try lead("b"), in: db) }
        #expect(try store.count("event_property_sets") == 0)

        // A cached row that went away is written again, under the id the cache holds.
        _ = try ingester.ingest(path: try directory.write("second.ndjson", Self.track("d", "m5", docs)).path)
        try store.reader.read { (db: Database) throws in
            #expect(try propertySetMismatches(db) == [])
            #expect(try Int64.fetchOne(db, sql: "SELECT properties_id FROM events") == docsID)
            #expect(try String.fetchOne(db, sql: "SELECT properties FROM event_property_sets") == docs)
        }
    }

    @Test("a rolled-back write forgets the rows it made: their ids go to other properties")
    func rollbackDropsCachedRows() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let first = Ingester(store: store), second = Ingester(store: store)  // one connection
        let docs = #"{"path":"/docs"}"#, pricing = #"{"path":"/pricing"}"#
        var strict = Ingest.Options()
        strict.strict = true
        strict.batchSize = 1  // the good row is written before the bad one is read
        let rolledBack = try first.ingest(path: try directory.write("bad.ndjson", Self.track("a", "m1", docs) + "\n{broken").path,
                                          options: strict)
        #expect(rolledBack.abortedStrict)
        // The id the rolled-back row had is free again, and another writer's properties take it.
        _ = try second.ingest(path: try directory.write("b.ndjson", Self.track("b", "m2", pricing)).path)
        _ = try first.ingest(path: try directory.write("c.ndjson", Self.track("c", "m3", docs)).path)
        try store.reader.read { (db: Database) throws in
            #expect(try propertySetMismatches(db) == [])
            #expect(try String.fetchAll(db, sql: """
                SELECT l.external_id || ' ' || s.properties FROM events e
                JOIN leads l ON l.id = e.lead_id JOIN event_property_sets s ON s.id = e.properties_id ORDER BY l.external_id
                """) == ["b " + pricing, "c " + docs])
        }
    }

    /// Events of `leads` naming one of two short objects and one over the cached length, with
    /// messageIds of their own per `session`, so every session's events are new.
    private func sessionEvents(session: Int, leads: [String]) -> String {
        let long = String(repeating: "x", count: BatchWriter.PropertySets.cachedLength + 10)
        return leads.enumerated().flatMap { index, lead in
            [#"{"campaign":"c1"}"#, #"{"campaign":"c2"}"#, #"{"note":"\#(long)"}"#].enumerated().map { offset, properties in
                #"{"type":"track","event":"Email Opened","userId":"\#(lead)","messageId":"s\#(session)-\#(index)-\#(offset)","properties":\#(properties)}"#
            }
        }.joined(separator: "\n")
    }

    @Test("separate ingest sessions of the same properties share one row per object, with exact references")
    func sessionsShareRows() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        for session in 0..<3 {
            // A new Ingester each time: a process of its own, with an empty cache.
            try ingest(store, try directory.write("s\(session).ndjson", sessionEvents(session: session, leads: ["L1", "L2"])))
        }
        try store.reader.read { (db: Database) throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM event_property_sets") == 3)
            #expect(try Int.fetchAll(db, sql: "SELECT refs FROM event_property_sets ORDER BY id") == [6, 6, 6])
            #expect(try propertySetMismatches(db) == [])
            for row in try Row.fetchAll(db, sql: "SELECT properties, hash FROM event_property_sets") {
                #expect(PropertySetHash.of(row[0] as String) == row[1] as Int64?)
            }
        }
        // Deleting the leads gives their references back; rows nobody names go.
        let l1 = try #require(try store.reader.read { try Int64.fetchOne($0, sql: "SELECT id FROM leads WHERE external_id = 'L1'") })
        try store.writer.write { _ = try LeadMutations.delete(l1, in: $0) }
        try store.reader.read { (db: Database) throws in
            #expect(try Int.fetchAll(db, sql: "SELECT refs FROM event_property_sets ORDER BY id") == [3, 3, 3])
            #expect(try propertySetMismatches(db) == [])
        }
        let l2 = try #require(try store.reader.read { try Int64.fetchOne($0, sql: "SELECT id FROM leads WHERE external_id = 'L2'") })
        try store.writer.write { _ = try LeadMutations.delete(l2, in: $0) }
        #expect(try store.count("event_property_sets") == 0)
    }
}
