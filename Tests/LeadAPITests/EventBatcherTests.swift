import Foundation
import GRDB
@testable import LeadAPI
import LeadIngest
import LeadScoring
import LeadStore
import Testing

@Suite("Merged event writes")
struct EventBatcherTests {
    static func records(_ messages: [[String: Any]]) throws -> [Ingest.Record] {
        let body = try JSONSerialization.data(withJSONObject: ["batch": messages])
        return try Ingest.segmentMessages(Array(body), maxMessages: 100).records
    }

    /// Request `i`: a new event and a shared one for the lead every request names, and an event
    /// for a lead of its own.
    static func request(_ i: Int) throws -> [Ingest.Record] {
        try records([
            ["type": "track", "userId": "shared", "event": "Email Opened", "messageId": "own-\(i)"],
            ["type": "track", "userId": "shared", "event": "Demo Requested", "messageId": "everyone"],
            ["type": "track", "userId": "lead-\(i)", "event": "Email Clicked", "messageId": "lead-\(i)"],
        ])
    }

    /// Sends every request while a write holds the writer, so they queue; then lets it go.
    static func whileWriterBusy(_ api: TestAPI, _ requests: [[Ingest.Record]]) async throws
        -> [Result<EventBatcher.Outcome, any Error>] {
        let coalescer = WriteCoalescer(writer: api.store.writer)
        let batcher = EventBatcher(writes: coalescer, scorer: ActiveScorer())
        let blocker = Task {
            try await coalescer.write { _ in
                let deadline = Date().addingTimeInterval(10)
                while batcher.queuedRequests < requests.count && Date() < deadline { usleep(1000) }
            }
        }
        let outcomes = await withTaskGroup(of: (Int, Result<EventBatcher.Outcome, any Error>).self) { group in
            for (i, records) in requests.enumerated() {
                group.addTask {
                    do { return (i, .success(try await batcher.write(records))) } catch { return (i, .failure(error)) }
                }
            }
            var outcomes: [Int: Result<EventBatcher.Outcome, any Error>] = [:]
            for await (i, outcome) in group { outcomes[i] = outcome }
            return (0..<requests.count).map { outcomes[$0]! }
        }
        try await blocker.value
        return outcomes
    }

    @Test("requests that queue while the writer is busy are written together, each answered for its own")
    func merged() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try LeadRoutesTests.activateDefaultModel(api.store)
        let outcomes = try await Self.whileWriterBusy(api, (0..<6).map(Self.request)).map { try $0.get() }

        let added: Int = outcomes.map(\.result.counts.eventsAdded).reduce(0, +)
        #expect(added == 6 + 1 + 6)
        let duplicates: Int = outcomes.map(\.result.counts.duplicateEvents).reduce(0, +)
        #expect(duplicates == 5, "the shared message is added once")
        let created: Int = outcomes.map(\.result.counts.leadsCreated).reduce(0, +)
        #expect(created == 7)
        let shared = try #require(try await api.store.reader.read { db in
            try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'shared'")
        })
        let stored = try await api.store.reader.read { db in
            try Int.fetchOne(db, sql: "SELECT score FROM leads WHERE id = ?", arguments: [shared])
        }
        for outcome in outcomes {
            #expect(outcome.modelVersion == "default-v0")
            #expect(outcome.scored.map(\.leadID) == outcome.result.touched, "every touched lead is reported")
            let reported = try #require(outcome.scored.first { $0.leadID == shared })
            #expect(reported.score == stored)
            #expect(reported.previousScore == nil, "one transaction: the shared lead was unscored before it")
        }
        let scoreChanges = try await api.store.reader.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM lead_timeline WHERE lead_id = ? AND kind = 'score_changed'",
                             arguments: [shared])
        }
        #expect(scoreChanges == 1, "rescored once, not once per request")
    }

    @Test("a request the merged write fails on fails alone; the others are written")
    func failureIsolation() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let requests = try (0..<5).map(Self.request)
        let poison = try #require(requests[3].last?.event?.dedupeKey)
        try await api.store.writer.write { db in
            try db.execute(sql: """
                CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.dedupe_key = \(poison)
                BEGIN SELECT RAISE(ABORT, 'refused'); END
                """)
        }
        let outcomes = try await Self.whileWriterBusy(api, requests)
        for (i, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let written):
                #expect(i != 3)
                #expect(written.result.counts.eventsAdded >= 2, "request \(i)")
            case .failure:
                #expect(i == 3)
            }
        }
        let leads = try await api.store.reader.read { db in
            Set(try String.fetchAll(db, sql: "SELECT external_id FROM leads"))
        }
        #expect(leads == ["shared", "lead-0", "lead-1", "lead-2", "lead-4"])
        let events = try await api.store.reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events") }
        #expect(events == 4 + 1 + 4, "four own events for the shared lead, the shared one once, one per surviving lead")
    }

    @Test("events sent in different transactions share properties rows, and one whose last event went is made again")
    func propertiesRowsSpanTransactions() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let batcher = EventBatcher(writes: WriteCoalescer(writer: api.store.writer), scorer: ActiveScorer())
        func send(_ user: String, _ message: String, _ properties: [String: Any]) async throws {
            _ = try await batcher.write(try Self.records([
                ["type": "track", "userId": user, "event": "Viewed Page", "messageId": message, "properties": properties],
            ]))
        }
        func rows() async throws -> [String] {
            try await api.store.reader.read { db in
                try String.fetchAll(db, sql: "SELECT id || ' ' || refs || ' ' || properties FROM event_property_sets ORDER BY id")
            }
        }
        try await send("a", "m1", ["plan": "pro"])
        try await send("b", "m2", ["plan": "pro"])
        try await send("c", "m3", ["plan": "free"])
        #expect(try await rows() == [#"1 2 {"plan":"pro"}"#, #"2 1 {"plan":"free"}"#], "each transaction stored its own copy")
        #expect(batcher.propertySets.count == 2)

        // Deleting the leads deletes their events, and the row no event names goes with them.
        try await api.store.writer.write { db in try db.execute(sql: "DELETE FROM leads WHERE external_id IN ('a', 'b')") }
        #expect(try await rows() == [#"2 1 {"plan":"free"}"#])
        try await send("d", "m4", ["plan": "pro"])
        #expect(try await rows() == [#"1 1 {"plan":"pro"}"#, #"2 1 {"plan":"free"}"#], "the cached id names its properties again")
        let dangling = try await api.store.reader.read { db in
            try Int.fetchOne(db, sql: """
                SELECT count(*) FROM events WHERE properties_id IS NOT NULL
                AND properties_id NOT IN (SELECT id FROM event_property_sets)
                """)
        }
        #expect(dangling == 0)
    }
}
