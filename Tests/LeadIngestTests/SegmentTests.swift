import Foundation
import GRDB
@testable import LeadIngest
import LeadStore
import Testing

@Suite("Segment messages")
struct SegmentTests {
    private func records(_ line: String) -> (records: [Ingest.Record], rejects: [IngestError]) {
        var text = line
        return text.withUTF8 { bytes in
            var records: [Ingest.Record] = []
            var rejects: [IngestError] = []
            do {
                let value = try JSONParser.parse(bytes)
                SegmentMapper(source: bytes, line: 7, receivedAt: 1_000).records(from: value, into: &records, rejects: &rejects)
            } catch {
                rejects.append(IngestError(.malformedJSON, line: 7, reason: "\(error)"))
            }
            return (records, rejects)
        }
    }

    @Test func identifyMapsTraitsToFieldsAndCustomFields() throws {
        let (records, rejects) = records("""
            {"type":"identify","userId":"u1","traits":{"email":" Ann@Example.COM ","firstName":"Ann","lastName":"Lee",\
            "phone":"+1 (555) 010-9999","company":"Acme","source":"webinar","plan_interest":"pro","seats":12,"tags":["vip","trial"]}}
            """)
        #expect(rejects.isEmpty)
        let lead = try #require(records.first).lead
        #expect(lead.identity == Ingest.Identity(externalID: "u1", email: "ann@example.com", phoneDigits: "15550109999"))
        #expect(lead.fields[.firstName] == "Ann" && lead.fields[.lastName] == "Lee" && lead.fields[.company] == "Acme")
        #expect(lead.fields[.source] == "webinar")
        #expect(lead.custom == [.init(label: "plan_interest", value: "pro"), .init(label: "seats", value: "12")])
        #expect(lead.tags == ["vip", "trial"])
        #expect(records.first?.event == nil)
    }

    @Test func trackKeepsNameTimeValueAndRawProperties() throws {
        let (records, _) = records("""
            {"type":"track","event":"Demo Requested","userId":"u1","messageId":"m-1","timestamp":"2026-03-04T12:34:56.789Z",\
            "properties":{"plan": "pro","value":"1,200.50"},"context":{"campaign":{"source":"google"}}}
            """)
        let record = try #require(records.first)
        let event = try #require(record.event)
        #expect(event.typeName == "Demo Requested")
        #expect(event.occurredAt == 1_772_627_696_789)
        #expect(event.value == 1200.5)
        #expect(event.properties == #"{"plan": "pro","value":"1,200.50"}"#)
        #expect(event.dedupeKey == DedupeKey.forMessageID("m-1"))
        #expect(record.lead.sourceFallback == "google")
    }

    @Test func pageAndScreenAreNamedLikeSegmentDestinations() throws {
        let page = records(#"{"type":"page","name":"Pricing","userId":"u1","timestamp":"2026-01-01T00:00:00Z"}"#)
        let unnamed = records(#"{"type":"page","anonymousId":"a1","timestamp":"2026-01-01T00:00:00Z"}"#)
        let screen = records(#"{"type":"screen","name":"Home","userId":"u1","timestamp":"2026-01-01T00:00:00Z"}"#)
        #expect(page.records.first?.event?.typeName == "Viewed Pricing Page")
        #expect(unnamed.records.first?.event?.typeName == "Page Viewed")
        #expect(unnamed.records.first?.lead.identity.anonymousID == "a1")
        #expect(screen.records.first?.event?.typeName == "Viewed Home Screen")
    }

    @Test func groupSetsCompanyAndAliasLinksIds() throws {
        let group = records(#"{"type":"group","userId":"u1","groupId":"g1","traits":{"name":"Acme Inc","industry":"Retail","employees":120}}"#)
        #expect(group.records.first?.lead.fields[.company] == "Acme Inc")
        #expect(group.records.first?.lead.custom == [.init(label: "company.id", value: "g1"), .init(label: "company.industry", value: "Retail"),
                                                     .init(label: "company.employees", value: "120")])
        // Segment's company trait is an object: its name is the company, the rest custom fields.
        let company = records(#"{"type":"identify","userId":"u2","traits":{"email":"b@x.io","company":{"name":"Beta","plan":"pro"}}}"#)
        #expect(company.rejects.isEmpty)
        #expect(company.records.first?.lead.fields[.company] == "Beta")
        #expect(company.records.first?.lead.identity.email == "b@x.io")
        #expect(company.records.first?.lead.custom == [.init(label: "company.plan", value: "pro")])
        let alias = records(#"{"type":"alias","userId":"u1","previousId":"anon-9"}"#)
        #expect(alias.records.first?.lead.identity == Ingest.Identity(externalID: "u1", anonymousID: "anon-9"))
        let toItself = records(#"{"type":"alias","userId":"u1","previousId":"u1"}"#)
        #expect(toItself.records.first?.lead.identity == Ingest.Identity(externalID: "u1"), "a user's own id is no device of it")
    }

    @Test func batchYieldsEachMessageAndRejectsOnlyTheBadOne() {
        let (records, rejects) = records("""
            {"batch":[{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z"},\
            {"type":"track","event":"B","timestamp":"2026-01-01T00:00:00Z"},\
            {"type":"track","event":"C","userId":"u2","timestamp":"2026-01-01T00:00:00Z"}]}
            """)
        #expect(records.compactMap(\.event?.typeName) == ["A", "C"])
        #expect(rejects.map(\.code) == [.noIdentity])
    }

    @Test func batchContextAppliesToEveryMessageUnderItsOwn() throws {
        let (records, rejects) = records("""
            {"batch":[{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z"},\
            {"type":"track","event":"B","userId":"u2","timestamp":"2026-01-01T00:00:00Z",\
            "context":{"campaign":{"source":"newsletter"},"traits":{"company":"Own Co"}}},\
            {"type":"identify","userId":"u3","traits":{"company":"Trait Co"}}],\
            "context":{"campaign":{"source":"google"},"traits":{"company":"Batch Co","plan":"pro"}}}
            """)
        #expect(rejects.isEmpty)
        #expect(records.map(\.lead.sourceFallback) == ["google", "newsletter", "google"])
        #expect(records.map { $0.lead.fields[.company] } == ["Batch Co", "Own Co", "Trait Co"])
        #expect(records.allSatisfy { $0.lead.custom == [.init(label: "plan", value: "pro")] })
        let wrong = self.records(#"{"batch":[{"type":"track","event":"A","userId":"u1"}],"context":"web"}"#)
        #expect(wrong.records.isEmpty)
        #expect(wrong.rejects.map(\.field) == ["context"])
        // A bad value in the batch's context is rejected once, under context, not per message.
        let badTrait = self.records("""
            {"batch":[{"type":"track","event":"A","userId":"u1"},{"type":"track","event":"B","userId":"u2"}],            "context":{"traits":{"value":"lots"}}}
            """)
        #expect(badTrait.records.isEmpty)
        #expect(badTrait.rejects.map(\.field) == ["context.traits.value"])
    }

    @Test("A message's own campaign without a source keeps its batch's; its own traits replace the batch's")
    func batchContextMergesByKey() throws {
        let (records, rejects) = records("""
            {"batch":[{"type":"track","event":"A","userId":"u1","anonymousId":"a1",            "context":{"campaign":{"name":"spring"},"traits":{"plan":"own"}}}],            "context":{"campaign":{"source":"google"},"traits":{"plan":"batch","anonymousId":"shared"}}}
            """)
        #expect(rejects.isEmpty)
        let lead = try #require(records.first).lead
        #expect(lead.sourceFallback == "google")
        #expect(lead.custom == [.init(label: "plan", value: "own")], "one value per field, the most specific")
        #expect(lead.identity.anonymousID == "a1", "ids come from the message, never from traits")
    }

    @Test("a batch's context traits never identify: its messages stay the people their ids name")
    func batchContextTraitsDoNotIdentify() throws {
        let (records, rejects) = records("""
            {"batch":[{"type":"track","event":"A","userId":"q1"},{"type":"track","event":"B","userId":"q2"},            {"type":"track","event":"C","anonymousId":"anon9"},{"type":"track","event":"D"},            {"type":"track","event":"E","userId":"q3","context":{"traits":{"email":"own@x.io"}}}],            "context":{"traits":{"email":"shared@x.io","Phone Number":"+1 555 010 9999","plan":"pro"}}}
            """)
        #expect(records.map { $0.lead.identity } == [
            Ingest.Identity(externalID: "q1"), Ingest.Identity(externalID: "q2"),
            Ingest.Identity(anonymousID: "anon9"), Ingest.Identity(externalID: "q3", email: "own@x.io"),
        ])
        #expect(records.allSatisfy { $0.lead.fields[.phone] == nil })
        #expect(records.prefix(3).allSatisfy { $0.lead.fields[.email] == nil })
        #expect(records.allSatisfy { $0.lead.custom == [.init(label: "plan", value: "pro")] })
        // The message with no id of its own gains none from the batch.
        #expect(rejects.map(\.code) == [.noIdentity])
        #expect(rejects.map(\.field) == ["batch[3]"])
    }

    @Test("a record's custom fields are capped, and repeated labels still replace at any count")
    func customFieldLimits() throws {
        func identify(_ count: Int, repeatFirst: Bool = false) -> String {
            var traits = (0..<count).map { #""k\#($0)":"v""# }
            if repeatFirst { traits.append(#""K-0":"last""#) }
            return #"{"type":"identify","userId":"u1","traits":{"# + traits.joined(separator: ",") + "}}"
        }
        let atLimit = records(identify(Ingest.maxCustomFields, repeatFirst: true))
        #expect(atLimit.rejects.isEmpty)
        let custom = try #require(atLimit.records.first).lead.custom
        #expect(custom.count == Ingest.maxCustomFields)
        #expect(custom.first == .init(label: "K-0", value: "last"))
        let over = records(identify(Ingest.maxCustomFields + 1))
        #expect(over.records.isEmpty)
        #expect(over.rejects.map(\.code) == [.valueTooLarge])
        #expect(over.rejects.first?.field == "traits.k\(Ingest.maxCustomFields)")

        let batchTraits = (0...SegmentMapper.maxBatchContextTraits).map { #""t\#($0)":1"# }.joined(separator: ",")
        let batch = records(#"{"batch":[{"type":"track","event":"A","userId":"u1"}],"context":{"traits":{"# + batchTraits + "}}}")
        #expect(batch.records.isEmpty)
        #expect(batch.rejects.map(\.field) == ["context.traits"])
        // Tags count too, and a record holds at most Ingest.maxTags of them.
        let tags = (0...SegmentMapper.maxBatchContextTraits).map { #""t\#($0)""# }.joined(separator: ",")
        let taggedBatch = records(#"{"batch":[{"type":"track","event":"A","userId":"u1"}],"context":{"traits":{"tags":["# + tags + "]}}}")
        #expect(taggedBatch.records.isEmpty && taggedBatch.rejects.map(\.field) == ["context.traits"])
        let manyTags = (0...Ingest.maxTags).map { #""t\#($0)""# }.joined(separator: ",")
        let tagged = records(#"{"type":"identify","userId":"u1","traits":{"tags":["# + manyTags + "]}}")
        #expect(tagged.records.isEmpty && tagged.rejects.map(\.code) == [.valueTooLarge])
        // A company object's members are custom fields each: counted as such.
        let company = records(#"{"batch":[{"type":"track","event":"A","userId":"u1"}],"context":{"traits":{"company":{"# + batchTraits + "}}}}")
        #expect(company.records.isEmpty)
        #expect(company.rejects.map(\.field) == ["context.traits"])
    }

    @Test("A bad value in a context or traits is named by its whole path")
    func contextErrorsNameTheirPath() throws {
        let cases: [(String, String)] = [
            (#"{"type":"track","event":"A","userId":"u1","context":{"campaign":{"source":5}}}"#, "context.campaign.source"),
            (#"{"type":"track","event":"A","userId":"u1","context":{"traits":{"value":"lots"}}}"#, "context.traits.value"),
            (#"{"type":"identify","userId":"u1","traits":{"value":"lots"}}"#, "traits.value"),
            (#"{"batch":[{"type":"track","event":"A","userId":"u1"}],"context":{"campaign":{"source":5}}}"#, "context.campaign.source"),
            (#"{"batch":[{"type":"track","event":"A","userId":"u1","context":{"traits":{"value":"x"}}}]}"#, "batch[0].context.traits.value"),
        ]
        for (line, field) in cases {
            #expect(records(line).rejects.map(\.field) == [field], "\(line)")
        }
    }

    @Test("A track's context traits are dated by the event, as an identify's traits are by it")
    func trackContextTraitsAreDated() throws {
        let dated = records(#"{"type":"track","event":"A","userId":"u1","timestamp":"2026-09-01T00:00:00Z","context":{"traits":{"firstName":"Old"}}}"#)
        #expect(dated.records.first?.lead.sentAt == Timestamp.parse("2026-09-01T00:00:00Z"))
        let bare = records(#"{"type":"track","event":"A","userId":"u1","timestamp":"2026-09-01T00:00:00Z"}"#)
        #expect(bare.records.first?.lead.sentAt == nil, "an event without traits leaves the lead's row unread")
    }

    @Test("An older event's context traits never undo a newer identify, whatever the order they arrive in")
    func olderContextTraitsOnlyFillBlanks() throws {
        let identify = #"{"type":"identify","userId":"u1","timestamp":"2026-10-10T00:00:00Z","traits":{"firstName":"New","plan":"new"}}"#
        let older = #"{"batch":[{"type":"page","userId":"u1","timestamp":"2026-09-01T00:00:00Z","context":{"traits":{"firstName":"Old","plan":"old","lastName":"Lee"}}}]}"#
        let newer = #"{"type":"track","event":"A","userId":"u1","timestamp":"2026-11-01T00:00:00Z","context":{"traits":{"firstName":"Newest"}}}"#
        let directory = try TemporaryDirectory()
        for (order, expected) in [([identify, older], "New"), ([older, identify], "New"), ([newer, identify], "Newest"), ([identify, newer], "Newest")] {
            let store = try LeadStore.inMemory()
            for (index, line) in order.enumerated() { try ingest(store, try directory.write("\(index).ndjson", line + "\n")) }
            let lead = try #require(try store.leads().first)
            #expect(lead.firstName == expected, "\(order)")
            #expect(lead.lastName == "Lee" || !order.contains(older), "an older event still fills a blank")
            if order.contains(older) { #expect(try store.customValues(externalID: "u1")["plan"] == "new") }
        }
    }

    @Test func identifyTraitsWinOverContextTraits() throws {
        let (records, _) = records("""
            {"type":"identify","userId":"u1","traits":{"firstName":"Ann"},"context":{"traits":{"firstName":"Old","lastName":"Lee"}}}
            """)
        let lead = try #require(records.first).lead
        #expect(lead.fields[.firstName] == "Ann")
        #expect(lead.fields[.lastName] == "Lee")
    }

    @Test("Malformed messages are rejected with the field and reason", arguments: [
        (#"{"type":"track","event":"A","userId":"u1","timestamp":"yesterday"}"#, IngestError.Code.badTimestamp, "timestamp"),
        (#"{"type":"track","event":"A","userId":{"id":1},"timestamp":"2026-01-01T00:00:00Z"}"#, .wrongType, "userId"),
        (#"{"type":"track","event":42,"userId":"u1"}"#, .wrongType, "event"),
        (#"{"type":"identify","userId":"u1","traits":"nope"}"#, .wrongType, "traits"),
        (#"{"type":"track","event":"A","userId":"u1","properties":{"value":"lots"}}"#, .wrongType, "properties.value"),
        (#"{"type":"identify","traits":{"firstName":"Ann"}}"#, .noIdentity, nil),
        (#"{"type":"teleport","userId":"u1"}"#, .unsupported, "type"),
        // An alias names two ids (the spec requires both): without one it links nothing.
        (#"{"type":"alias","userId":"u1"}"#, .wrongType, "previousId"),
        (#"{"type":"alias","userId":"u1","previousId":"  "}"#, .wrongType, "previousId"),
        (#"{"type":"alias","previousId":"anon-9"}"#, .wrongType, "userId"),
        // An identify's time decides whether it overwrites newer traits: an unreadable one is
        // rejected, as a track's is, not read as undated.
        (#"{"type":"identify","userId":"u1","traits":{"firstName":"Ann"},"timestamp":"2026-02-30T00:00:00Z"}"#, .badTimestamp, "timestamp"),
        (#"{"type":"group","userId":"u1","groupId":"g1","timestamp":"garbage"}"#, .badTimestamp, "timestamp"),
        (#"{"type":"track","event":"A","userId":"u1","timestamp":true}"#, .wrongType, "timestamp"),
        // An address is never a number, and no known field is a yes/no: once, `"email": 123`
        // became a custom field and `"phone": true` the phone "true".
        (#"{"type":"identify","userId":"u1","traits":{"email":123}}"#, .wrongType, "traits.email"),
        (#"{"type":"identify","userId":"u1","traits":{"phone":true}}"#, .wrongType, "traits.phone"),
        (#"{"type":"identify","userId":"u1","traits":{"company":false}}"#, .wrongType, "traits.company"),
    ] as [(String, IngestError.Code, String?)])
    func malformed(line: String, code: IngestError.Code, field: String?) {
        let (records, rejects) = records(line)
        #expect(records.isEmpty)
        #expect(rejects.first?.code == code)
        #expect(rejects.first?.field == field)
        #expect(rejects.first?.line == 7)
    }

    @Test("A message without an identity is told where Segment keeps an email: a top-level one is not read")
    func noIdentitySaysWhereTheEmailGoes() {
        let (records, rejects) = records(#"{"type":"track","event":"Demo Requested","email":"ann@example.com"}"#)
        #expect(records.isEmpty)
        #expect(rejects.first?.code == .noIdentity)
        #expect(rejects.first?.reason.contains("under traits, context.traits") == true, "\(rejects.first?.reason ?? "")")
    }

    @Test("Numbers are read as text where pipelines send them: ids, phones, owners; booleans only in custom fields")
    func numbersWhereTheyBelong() throws {
        let (records, rejects) = records(#"{"type":"identify","userId":4521,"traits":{"phone":5550100999,"assignedTo":7,"tags":2024,"status":3,"vip":true}}"#)
        #expect(rejects.isEmpty)
        let patch = try #require(records.first?.lead)
        #expect(patch.identity.externalID == "4521" && patch.fields[.phone] == "5550100999" && patch.fields[.assignedTo] == "7")
        #expect(patch.tags == ["2024"])
        // A numbered stage is no status the API knows: kept aside, as a text one would be.
        #expect(patch.fields[.status] == nil && patch.custom.map(\.value) == ["3", "true"])
    }

    @Test func dedupeKeyComesFromMessageIdOrContent() throws {
        let a = records(#"{"type":"track","event":"A","userId":"u1","messageId":"m1","timestamp":"2026-01-01T00:00:00Z"}"#)
        let b = records(#"{"type":"track","event":"A","userId":"u1","messageId":"m1","timestamp":"2026-02-01T00:00:00Z"}"#)
        let c = records(#"{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z","properties":{"x":1}}"#)
        let d = records(#"{"userId":"u1","timestamp":"2026-01-01T00:00:00Z","properties":{"x":1},"type":"track","event":"A"}"#)
        let e = records(#"{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z","properties":{"x":2}}"#)
        let keys = [a, b, c, d, e].map { $0.records.first?.event?.dedupeKey }
        #expect(keys[0] == keys[1])  // same messageId: the same event
        #expect(keys[2] == keys[3])  // same content in another key order: the same event
        #expect(keys[2] != keys[4])  // other properties: another event
        #expect(keys.allSatisfy { ($0 ?? -1) > 0 })
    }

    @Test("a content key is the same for every serialization of the same properties")
    func contentKeysAreCanonical() throws {
        let prefix = #"{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z","properties":"#
        let spellings = [
            #"{"a":1,"b":{"y":[1,"é"],"x":null},"c":"q\"t"}"#,
            #"{ "c" : "q\"t", "b" : { "x" : null, "y" : [ 1.0, "\u00e9" ] }, "a" : 1e0 }"#,
        ]
        let keys = try spellings.map { try #require(records(prefix + $0 + "}").records.first?.event?.dedupeKey) }
        #expect(keys[0] == keys[1])
        // The properties are still stored as received.
        #expect(records(prefix + spellings[1] + "}").records.first?.event?.properties == spellings[1])
        // Integers past 2^53 are told apart by their text, which a Double no longer holds.
        let orders = try [#"{"order_id":12345678901234567}"#, #"{"order_id":12345678901234568}"#].map {
            try #require(records(prefix + $0 + "}").records.first?.event)
        }
        #expect(orders[0].dedupeKey != orders[1].dedupeKey)
        #expect(orders.allSatisfy { $0.legacyDedupeKey == nil })
        let otherValue = try #require(records(prefix + #"{"a":1,"b":{"y":[1,"e"],"x":null},"c":"q\"t"}"# + "}").records.first?.event)
        let nestedList = try #require(records(prefix + #"{"a":1,"b":{"y":["é",1],"x":null},"c":"q\"t"}"# + "}").records.first?.event)
        #expect(otherValue.dedupeKey != keys[0] && nestedList.dedupeKey != keys[0])  // arrays keep their order
    }

    @Test("the key earlier versions hashed from the raw bytes is kept only when it differs")
    func legacyContentKeys() throws {
        let prefix = #"{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z","properties":"#
        let canonical = try #require(records(prefix + #"{"a":1,"b":2}}"#).records.first?.event)
        #expect(canonical.legacyDedupeKey == nil)
        let spaced = try #require(records(prefix + #"{"b":2, "a":1}}"#).records.first?.event)
        #expect(spaced.dedupeKey == canonical.dedupeKey)
        let identity = Ingest.Identity(externalID: "u1")
        var raw = #"{"b":2, "a":1}"#
        let rawKey = raw.withUTF8 { DedupeKey.forContent(typeName: "A", identity: identity, occurredAt: 1_767_225_600_000, properties: $0) }
        #expect(spaced.legacyDedupeKey == rawKey)
        // Events with a messageId, or without properties, have no other key.
        #expect(try #require(records(prefix + #"{"b":2, "a":1},"messageId":"m"}"#).records.first?.event).legacyDedupeKey == nil)
        #expect(try #require(records(#"{"type":"track","event":"A","userId":"u1","properties":{ }}"#).records.first?.event).legacyDedupeKey == nil)
    }

    @Test func timestampsParse() {
        #expect(Timestamp.parse("2026-03-04T12:34:56Z") == 1_772_627_696_000)
        #expect(Timestamp.parse("2026-03-04T14:34:56.5+02:00") == 1_772_627_696_500)
        #expect(Timestamp.parse("2026-03-04 12:34:56") == 1_772_627_696_000)
        #expect(Timestamp.parse("2026-03-04") == 1_772_582_400_000)
        #expect(Timestamp.parse("2026-03-04t12:34:56z") == 1_772_627_696_000)
        #expect(Timestamp.parse("2026-03-04T12:34:56,25Z") == 1_772_627_696_250)
        #expect(Timestamp.parse("2026-03-04T07:04:56-0530") == 1_772_627_696_000)
        #expect(Timestamp.parse("2026-03-04T12:34") == 1_772_627_640_000)
        #expect(Timestamp.parse("2026-03-04T12:34:60Z") == 1_772_627_699_000, "a leap second folds into :59")
        for malformed in ["2026-03-04T12:34:56.Z", "2026-03-04T12:34:56Zx", "2026-03-04T12:34:56+24:00", "2026-03-04T12:3",
                          "2026-03-04T", "2026-3-04", "2026-03-04X12:34:56"] {
            #expect(Timestamp.parse(malformed) == nil, "\(malformed)")
        }
        #expect(Timestamp.parse("1772627696") == 1_772_627_696_000)
        #expect(Timestamp.parse("1772627696789") == 1_772_627_696_789)
        #expect(Timestamp.parse("2026-02-30") == nil)
        #expect(Timestamp.parse("2026-03-04T25:00:00Z") == nil)
        #expect(Timestamp.parse("03/04/2026") == nil)
        // Eight digits that make a day are that day, not 1970-08-23; other epochs end before 2200.
        #expect(Timestamp.parse("20260105") == Timestamp.parse("2026-01-05"))
        #expect(Timestamp.parse("20261332") == nil)
        #expect(Timestamp.parse("99999999999999") == nil)
        #expect(Timestamp.parse("99999999999") == nil)
        #expect(Timestamp.fromEpoch(7_258_118_399) != nil && Timestamp.fromEpoch(7_258_118_400) == nil)
        // Written dates share that range: placeholders such as 9999-12-31 are not times.
        #expect(Timestamp.parse("9999-12-31T00:00:00Z") == nil && Timestamp.parse("2200-01-01") == nil)
        #expect(Timestamp.parse("2199-12-31T23:59:59Z") == 7_258_118_399_000)
        #expect(Timestamp.parse("1900-01-01") == -2_208_988_800_000 && Timestamp.parse("1899-12-31") == nil)
        #expect(Timestamp.fromNumber(20_260_105) == Timestamp.parse("2026-01-05"), "a JSON number reads as the digit string does")
        #expect(Timestamp.fromNumber(1_772_627_696) == 1_772_627_696_000)
    }

    @Test("Numbers: thousands commas and currency, never a decimal comma, hex or nan")
    func numbersParse() {
        for (text, value) in [("1200", 1200.0), ("1,200.50", 1200.5), ("$1 200", 1200), ("-3e2", -300), ("1,234,567", 1_234_567),
                              ("+12", 12), ("€ 99.5", 99.5), ("₹12,34,567", 1_234_567), ("12,34,567.50", 1_234_567.5), ("1,50,000", 150_000), (".5", 0.5),
                              ("1e3", 1000), ("$-12", -12), ("-1,234.5", -1234.5)] {
            #expect(LeadPatchBuilder.parseNumber(text) == value, "\(text)")
        }
        for text in ["12,5", "€1.200,50", "1,2,3", "1,20", ",100", "100,", "0x10", "nan", "inf", "1.5,000", "", "1,2345", "1e3,000"] {
            #expect(LeadPatchBuilder.parseNumber(text) == nil, "\(text)")
        }
        #expect(NumberText.parse("1,200") == 1200)
        #expect(NumberText.parse("+1 555 0100") == nil, "a phone number is not a custom field's number")
    }
}

@Suite("JSON parser")
struct JSONParserTests {
    @Test func parsesEveryValueKind() throws {
        let value = try JSONParser.parse(#"{"s":"a\"b\u00e9\ud83d\ude00","n":-1.5e2,"i":42,"t":true,"f":false,"z":null,"a":[1,[]],"o":{}}"#)
        #expect(value["s"] == .string("a\"bé😀"))
        #expect(value["n"] == .number(-150))
        #expect(value["i"] == .number(42))
        #expect(value["t"] == .bool(true) && value["f"] == .bool(false) && value["z"] == .null)
        #expect(value["a"] == .array([.number(1), .array([])]))
    }

    @Test("Raw UTF-8 strings keep their text, ASCII or not, wherever the high bytes sit")
    func rawUTF8Strings() throws {
        for text in ["plain ascii", "é漢😀", "ends with é", "é starts", "x😀", ""] {
            let value = try JSONParser.parse(#"{"k":""# + text + #"","next":"ok"}"#)
            #expect(value["k"] == .string(text))
            #expect(value["next"] == .string("ok"))
        }
        // A lone continuation byte right before the closing quote is still invalid.
        let invalid: [UInt8] = Array(#"{"a":"ab"#.utf8) + [0x80] + Array(#""}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try invalid.withUnsafeBufferPointer { try JSONParser.parse($0) } }
    }

    @Test("Rejects what is not JSON", arguments: [
        "{", #"{"a":}"#, #"{"a":1,}"#, "[1 2]", #"{"a":1} x"#, "tru", #"{"a":"\x"}"#, "01", #""\ud800""#, "{\"a\":\"\u{01}\"}",
    ])
    func rejects(text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        let invalid: [UInt8] = Array(#"{"a":""#.utf8) + [0xFF] + Array(#""}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try invalid.withUnsafeBufferPointer { try JSONParser.parse($0) } }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(deep) }
    }
}
