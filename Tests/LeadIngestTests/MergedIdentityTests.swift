import Foundation
import GRDB
@testable import LeadIngest
import LeadStore
import Testing

/// A merge keeps the duplicate's external id, email and phone for the lead it merged into, so
/// the duplicate's data sent again updates that lead instead of making the duplicate anew.
@Suite("Merged identities")
struct MergedIdentityTests {
    static let leadsCSV = """
        Lead ID,E-mail,Phone,First Name
        L1,ann@acme.io,+1 555 010 0001,Ann
        L2,ann.work@acme.io,+1 555 010 0002,Ann

        """

    static let eventsNDJSON = """
        {"type":"track","event":"Email Opened","userId":"L1","messageId":"m1","timestamp":"2026-01-05T10:00:00Z"}
        {"type":"track","event":"Email Opened","userId":"L2","messageId":"m2","timestamp":"2026-01-06T10:00:00Z"}
        {"type":"page","name":"Pricing","userId":"L2","timestamp":"2026-01-07T10:00:00Z","properties":{"path":"/pricing"}}
        {"type":"track","event":"Demo Requested","userId":"L2","timestamp":"2026-01-08T10:00:00Z","properties":{"email":"ann.work@acme.io"}}

        """

    private func leadID(_ externalID: String, in store: LeadStore) throws -> Int64 {
        try #require(try store.reader.read { try Int64.fetchOne($0, sql: "SELECT id FROM leads WHERE external_id = ?", arguments: [externalID]) })
    }

    private func merge(_ duplicate: String, into primary: String, in store: LeadStore) throws {
        let (primaryID, duplicateID) = (try leadID(primary, in: store), try leadID(duplicate, in: store))
        try store.writer.write { try LeadMutations.merge(primary: primaryID, duplicate: duplicateID, in: $0) }
    }

    private func mergedIdentities(_ store: LeadStore) throws -> [[String]] {
        try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT m.kind, m.value, l.external_id FROM lead_merged_identities m JOIN leads l ON l.id = m.lead_id ORDER BY m.kind, m.value
                """).map { [$0[0], $0[1], $0[2]] }
        }
    }

    private func expectConsistent(_ store: LeadStore) throws {
        try store.reader.read { (db: Database) throws in
            #expect(try LeadActivity.fetchAll(db).mapValues(\.normalized) == LeadActivity.recompute(db).mapValues(\.normalized))
            #expect(try propertySetMismatches(db) == [])
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
        }
    }

    @Test("re-ingesting a merged lead's data adds no lead and no event, and leaves the primary's email and phone",
          arguments: [1, 5000])
    func reingestAfterMerge(batchSize: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        var options = Ingest.Options()
        options.batchSize = batchSize
        let files = [try directory.write("leads.csv", Self.leadsCSV), try directory.write("events.ndjson", Self.eventsNDJSON)]
        for file in files { try ingest(store, file, options: options) }
        try merge("L2", into: "L1", in: store)
        #expect(try store.count("leads") == 1)
        #expect(try store.count("events") == 4)
        #expect(try mergedIdentities(store) == [["email", "ann.work@acme.io", "L1"], ["external_id", "L2", "L1"],
                                                ["phone_digits", "15550100002", "L1"]])
        for _ in 0..<2 {
            for file in files {
                let again = try ingest(store, file, options: options)
                #expect(again.counts.leadsCreated == 0 && again.counts.eventsAdded == 0 && again.counts.leadsUpdated == 0,
                        "\(again.counts)")
            }
        }
        #expect(try store.count("leads") == 1)
        #expect(try store.count("events") == 4)
        let lead = try #require(try store.leads().first)
        #expect(lead.externalID == "L1" && lead.email == "ann@acme.io" && lead.phone == "+1 555 010 0001",
                "an identity kept from the merge replaced the lead's own")
        #expect(try store.customValues(externalID: "L1") == ["Other email": "ann.work@acme.io", "Other phone": "+1 555 010 0002"])
        try expectConsistent(store)
    }

    @Test("a merged-away lead's data sent again only fills the primary's blanks: the merge chose its values")
    func reingestAfterMergeKeepsThePrimarysProfile() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let csv = try directory.write("leads.csv", """
            Lead ID,E-mail,First Name,Company,Plan,Value
            L1,ann@acme.io,Ann,,Basic,
            L2,ann.work@acme.io,Annie,Initech,Pro,1200
            L2,,Anna,,Enterprise,900

            """)
        try ingest(store, csv)
        try merge("L2", into: "L1", in: store)
        let afterMerge = try #require(try store.leads().first)
        #expect(afterMerge.firstName == "Ann" && afterMerge.company == "Initech" && afterMerge.value == 900)
        for _ in 0..<2 {
            let again = try ingest(store, csv)
            #expect(again.counts.leadsCreated == 0 && again.counts.leadsUpdated == 0, "\(again.counts)")
        }
        let lead = try #require(try store.leads().first)
        #expect(lead.firstName == "Ann", "the duplicate's first name replaced the primary's")
        #expect(lead.company == "Initech" && lead.value == 900)
        #expect(try store.customValues(externalID: "L1")["Plan"] == "Basic")

        // A dated message of the duplicate applies by its time: a newer identify moves the lead.
        let identify = try directory.write("identify.ndjson",
            #"{"type":"identify","userId":"L2","timestamp":"2030-01-01T00:00:00Z","traits":{"firstName":"Annabel","status":"qualified"}}"# + "\n")
        let newer = try ingest(store, identify)
        #expect(newer.counts.leadsUpdated == 1 && newer.counts.leadsCreated == 0, "\(newer.counts)")
        let moved = try #require(try store.leads().first)
        #expect(moved.firstName == "Annabel" && moved.status == "qualified")
        try expectConsistent(store)
    }

    @Test("merges chain: C into B, then B into A, and every one's data finds A; deleting A drops them all")
    func chainedMerges() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let csv = try directory.write("leads.csv", """
            Lead ID,E-mail,Phone
            A,a@x.io,
            B,b@x.io,555 010 0002
            C,c@x.io,555 010 0003

            """)
        let events = try directory.write("events.ndjson", """
            {"type":"track","event":"Email Opened","userId":"C","messageId":"c1","timestamp":"2026-01-05T10:00:00Z"}
            {"type":"track","event":"Email Opened","anonymousId":"v1","properties":{"email":"c@x.io"},"timestamp":"2026-01-06T10:00:00Z"}

            """)
        try ingest(store, csv)
        try ingest(store, events)
        try merge("C", into: "B", in: store)
        try merge("B", into: "A", in: store)
        // A took B's phone (it had none), so B's digits are A's own, not kept aside.
        #expect(try mergedIdentities(store) == [["email", "b@x.io", "A"], ["email", "c@x.io", "A"], ["external_id", "B", "A"],
                                                ["external_id", "C", "A"], ["phone_digits", "5550100003", "A"]])
        for file in [csv, events] {
            let again = try ingest(store, file)
            #expect(again.counts.leadsCreated == 0 && again.counts.eventsAdded == 0, "\(again.counts)")
        }
        // An email kept from a merge whose record names another external id is another person.
        let other = try ingest(store, try directory.write("other.csv", "Lead ID,E-mail\nZ,b@x.io\n"))
        #expect(other.counts.leadsCreated == 1)
        #expect(try store.count("leads") == 2)
        #expect(try store.count("events") == 2)
        try expectConsistent(store)

        let a = try leadID("A", in: store)
        let deleted = try store.writer.write { try LeadMutations.delete(a, in: $0) }
        #expect(deleted)
        #expect(try mergedIdentities(store) == [])
        try expectConsistent(store)
    }
}
