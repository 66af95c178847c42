import GRDB
@testable import LeadIngest
import LeadStore
import Testing

@Suite("Request sessions")
struct RequestSessionTests {
    static func records(_ json: String) throws -> [Ingest.Record] {
        let parsed = try Ingest.segmentMessages(Array(json.utf8), maxMessages: 100, receivedAt: 1_800_000_000_000)
        #expect(parsed.rejects.isEmpty)
        return parsed.records
    }

    /// Requests whose leads and events overlap: a lead created by one and updated or left
    /// unchanged by later ones, an event sent twice across requests and twice within one.
    static func requests() throws -> [[Ingest.Record]] {
        try [
            records("""
                {"batch": [
                  {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com", "company": "Acme"}},
                  {"type": "track", "userId": "u1", "event": "Email Opened", "messageId": "m1", "timestamp": "2026-01-01T00:00:00Z"},
                  {"type": "track", "userId": "u1", "event": "Email Clicked", "messageId": "m2", "timestamp": "2026-01-02T00:00:00Z"}
                ]}
                """),
            records("""
                {"batch": [
                  {"type": "track", "userId": "u1", "event": "Email Opened", "messageId": "m1", "timestamp": "2026-01-01T00:00:00Z"},
                  {"type": "track", "userId": "u1", "event": "Demo Requested", "messageId": "m3", "timestamp": "2026-01-03T00:00:00Z"},
                  {"type": "identify", "userId": "u1", "traits": {"company": "Acme Corp"}},
                  {"type": "track", "userId": "u2", "event": "Email Opened", "messageId": "m4", "timestamp": "2026-01-04T00:00:00Z"}
                ]}
                """),
            records("""
                {"batch": [
                  {"type": "identify", "userId": "u1", "traits": {"company": "Acme Corp"}},
                  {"type": "identify", "userId": "u2", "traits": {"email": "u2@example.com"}},
                  {"type": "track", "userId": "u3", "event": "Form Submitted", "messageId": "m5", "timestamp": "2026-01-05T00:00:00Z"},
                  {"type": "track", "userId": "u3", "event": "Form Submitted", "messageId": "m5", "timestamp": "2026-01-05T00:00:00Z"},
                  {"type": "track", "userId": "u2", "event": "Email Opened", "messageId": "m4", "timestamp": "2026-01-04T00:00:00Z"}
                ]}
                """),
        ]
    }

    struct Answer: Equatable {
        var counts: Ingest.Counts
        var leads: [Int64]
        var created: [Bool]
        var touched: [Int64]

        init(_ result: Ingest.RequestResult) {
            counts = result.counts
            leads = result.leads.map(\.id)
            created = result.leads.map(\.created)
            touched = result.touched
        }
    }

    static func contents(_ store: LeadStore) throws -> [String] {
        try store.reader.read { db in
            try String.fetchAll(db, sql: """
                SELECT id || ' ' || coalesce(external_id, '') || ' ' || coalesce(email, '') || ' ' || coalesce(company, '')
                       || ' ' || coalesce(last_activity_at, '') FROM leads ORDER BY id
                """)
            + String.fetchAll(db, sql: "SELECT lead_id || ' ' || occurred_at || ' ' || type_id FROM events ORDER BY id")
            + String.fetchAll(db, sql: "SELECT lead_id || ' ' || event_count || ' ' || first_at || ' ' || last_at FROM lead_activity ORDER BY lead_id")
        }
    }

    @Test("requests written in one pass are answered each as if written alone, in order")
    func mergedEqualsSequential() throws {
        let requests = try Self.requests()
        let sequential = try LeadStore.inMemory()
        let one = try requests.map { records in
            try sequential.writer.write { db in Answer(try Ingest.RequestSession().write(records, in: db)) }
        }
        let merged = try LeadStore.inMemory()
        let together = try merged.writer.write { db in
            try Ingest.RequestSession().write(groups: requests, in: db).map(Answer.init)
        }
        #expect(together == one)
        #expect(try Self.contents(merged) == Self.contents(sequential))

        // The cases the requests were built for, so the comparison above cannot pass vacuously.
        #expect(one.map(\.counts.leadsCreated) == [1, 1, 1])
        #expect(one.map(\.counts.eventsAdded) == [2, 2, 1])
        #expect(one.map(\.counts.duplicateEvents) == [0, 1, 2])
        #expect(one[1].counts.leadsUpdated == 1, "u1, created by the first request")
        #expect(one[2].counts.leadsUnchanged == 1, "u1 again, with the company it has")
        #expect(one[2].counts.leadsUpdated == 1, "u2 gets its email")
        #expect(one[2].touched == [2, 3], "u2 changed and u3 new; u1 unchanged and u2's event a duplicate")
    }

    @Test("a single request's counts match the batch writer's own")
    func singleRequestCounts() throws {
        let records = try Self.requests().joined()
        let viaSession = try LeadStore.inMemory()
        let answer = try viaSession.writer.write { db in try Ingest.RequestSession().write(Array(records), in: db) }
        let viaWriter = try LeadStore.inMemory()
        let counts = try viaWriter.writer.write { db in try BatchWriter().write(Array(records), in: db) }
        #expect(answer.counts == counts)
    }
}
