import Foundation
import GRDB
@testable import LeadAPI
import LeadStore
import Synchronization
import Testing

@Suite("Group commit")
struct WriteCoalescerTests {
    struct Refused: Error {}

    /// Runs `write(i)` for 0..<count at once; i → whether it returned true (false when it threw).
    static func concurrentWrites(_ count: Int, _ write: @escaping @Sendable (Int) async throws -> Bool) async -> [Int: Bool] {
        await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<count {
                group.addTask { (i, (try? await write(i)) ?? false) }
            }
            var outcomes: [Int: Bool] = [:]
            for await (i, ok) in group { outcomes[i] = ok }
            return outcomes
        }
    }

    static func externalIDs(_ api: TestAPI) async throws -> Set<String> {
        Set(try await api.store.reader.read { db in try String.fetchAll(db, sql: "SELECT external_id FROM leads") })
    }

    final class RunCounts: Sendable {
        let runs = Mutex<[Int: Int]>([:])
    }

    @Test("concurrent writes all land; a failing one rolls back only its own changes")
    func isolation() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let coalescer = WriteCoalescer(writer: api.store.writer)
        let outcomes = await Self.concurrentWrites(200) { i in
            let id = try await coalescer.write { db -> Int64 in
                try db.execute(sql: "INSERT INTO leads (external_id, created_at, updated_at) VALUES (?, 0, 0)",
                               arguments: ["G\(i)"])
                if i % 7 == 0 { throw Refused() }
                return db.lastInsertedRowID
            }
            return id > 0
        }
        let stored = try await Self.externalIDs(api)
        for i in 0..<200 {
            #expect(outcomes[i] == (i % 7 != 0))
            #expect(stored.contains("G\(i)") == (i % 7 != 0), "lead \(i)")
        }
        let count = try await api.store.reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") }
        #expect(count == stored.count, "a request re-run after a rollback wrote its lead once")
    }

    @Test("a failure that wrote nothing fails alone, without re-running the batch")
    func cleanFailures() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let coalescer = WriteCoalescer(writer: api.store.writer)
        let counter = RunCounts()
        let outcomes = await Self.concurrentWrites(200) { i in
            try await coalescer.write { db in
                counter.runs.withLock { $0[i, default: 0] += 1 }
                if i % 5 == 0 { throw Refused() }
                try db.execute(sql: "INSERT INTO leads (external_id, created_at, updated_at) VALUES (?, 0, 0)",
                               arguments: ["C\(i)"])
            }
            return true
        }
        let stored = try await Self.externalIDs(api)
        let counts = counter.runs.withLock { $0 }
        for i in 0..<200 {
            #expect(outcomes[i] == (i % 5 != 0))
            #expect(stored.contains("C\(i)") == (i % 5 != 0), "lead \(i)")
            #expect(counts[i] == 1, "request \(i) ran \(counts[i] ?? 0) times")
        }
    }
}

extension WriteCoalescerTests {
    /// Rescoring stand-in: marks the leads it is given (score 50) and records each call's ids.
    final class RescoreLog: Sendable {
        let calls = Mutex<[[Int64]]>([])
        /// The external id of a lead that cannot be rescored.
        let poisoned: String?

        init(poisoned: String? = nil) { self.poisoned = poisoned }

        var rescore: WriteCoalescer.Rescore {
            { db, ids in
                for id in ids where self.poisoned != nil {
                    let externalID = try String.fetchOne(db, sql: "SELECT external_id FROM leads WHERE id = ?", arguments: [id])
                    if externalID == self.poisoned { throw Refused() }
                }
                for id in ids { try db.execute(sql: "UPDATE leads SET score = 50 WHERE id = ?", arguments: [id]) }
                self.calls.withLock { $0.append(ids) }
                return ids.count
            }
        }
    }

    static func insertLead(_ externalID: String, in db: Database) throws -> Int64 {
        try db.execute(sql: "INSERT INTO leads (external_id, created_at, updated_at) VALUES (?, 0, 0)", arguments: [externalID])
        return db.lastInsertedRowID
    }

    @Test("touched leads are rescored once each, in one pass per transaction, before it commits")
    func rescoresTouchedLeadsOnce() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let log = RescoreLog()
        let transactions = Mutex(0)
        let coalescer = WriteCoalescer(writer: api.store.writer, rescore: log.rescore,
                                       afterTransaction: { transactions.withLock { $0 += 1 } })
        let outcomes = await Self.concurrentWrites(100) { i in
            let id = try await coalescer.write(rescoringTouched: { db in
                // The first transaction waits for the other requests to queue, so they share
                // the next ones whatever the machine's timing.
                let deadline = ContinuousClock.now + .seconds(10)
                while i == 0, coalescer.queuedRequests < 99, ContinuousClock.now < deadline { usleep(1000) }
                let id = try Self.insertLead("R\(i)", in: db)
                return (id, [id, id])  // named twice: still rescored once
            })
            return id > 0
        }
        #expect(outcomes.values.allSatisfy { $0 })
        let unscored = try await api.store.reader.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM leads WHERE score IS NULL")
        }
        #expect(unscored == 0, "every committed lead was rescored in its transaction")
        let calls = log.calls.withLock { $0 }
        let rescored = calls.flatMap { $0 }
        #expect(rescored.count == 100 && Set(rescored).count == 100, "each lead once")
        #expect(calls.allSatisfy { $0 == $0.sorted() }, "ids in ascending order, for range reads")
        let count = transactions.withLock { $0 }
        #expect(calls.count == count && count < 100, "one pass per transaction (\(calls.count) passes, \(count) transactions)")
        // A plain write names no leads and triggers no rescoring.
        _ = try await coalescer.write { db in try Self.insertLead("plain", in: db) }
        #expect(log.calls.withLock { $0.count } == calls.count)
    }

    @Test("a failed rescore rolls the batch back; each request then commits or fails on its own")
    func failedRescoreIsolated() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let log = RescoreLog(poisoned: "F13")
        let committedScores = Mutex(0)
        let coalescer = WriteCoalescer(writer: api.store.writer, rescore: log.rescore,
                                       didCommit: { scored in committedScores.withLock { $0 += scored } })
        let outcomes = await Self.concurrentWrites(60) { i in
            let id = try await coalescer.write(rescoringTouched: { db in
                let id = try Self.insertLead("F\(i)", in: db)
                return (id, [id])
            })
            return id > 0
        }
        let failed = outcomes.filter { !$0.value }.map(\.key)
        #expect(failed == [13], "only the request whose lead cannot be rescored fails")
        let (leads, unscored) = try await api.store.reader.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM leads WHERE score IS NULL") ?? -1)
        }
        #expect(leads == 59 && unscored == 0)
        #expect(try await Self.externalIDs(api) == Set((0..<60).filter { $0 != 13 }.map { "F\($0)" }))
        // Scores count once committed: the rolled-back pass and the re-runs are not both counted.
        #expect(committedScores.withLock { $0 } == 59)
    }
}

@Suite("JSON writing")
struct JSONWriterTests {
    @Test("strings with quotes, backslashes, newlines, control characters and non-ASCII round-trip")
    func escaping() throws {
        let samples = ["plain", "quote \" and \\ backslash", "line\nbreak\r\ttab", "\u{01}\u{1F}", "Zoë 💡 日本", "</script>", ""]
        var json = JSONWriter()
        json.beginObject()
        for (index, sample) in samples.enumerated() {
            json.key("k\(index)")
            json.value(sample)
        }
        json.key("n"); json.value(Double.nan)
        json.key("d"); json.value(0.1 + 0.2)
        json.key("i"); json.value(Int64.min)
        json.endObject()
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(buffer: json.buffer)) as? [String: Any])
        for (index, sample) in samples.enumerated() { #expect(parsed["k\(index)"] as? String == sample) }
        #expect(parsed["n"] is NSNull)
        #expect(String(buffer: json.buffer).contains("\"d\":0.30000000000000004"), "shortest round-trip digits")
        #expect(abs((parsed["d"] as? Double ?? 0) - 0.3) < 1e-15)
        #expect((parsed["i"] as? NSNumber)?.int64Value == Int64.min)
    }

    @Test("dates are ISO 8601 UTC seconds, equal to Foundation's formatter, before and after the epoch")
    func dates() throws {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        var generator = SystemRandomNumberGenerator()
        let fixed: [Int64] = [0, -1, 999, 1000, -1000, -1001, 951_782_400_000, 4_107_542_399_999, 253_402_300_799_000]
        // From 1600: before the 1582 reform Foundation's calendar is Julian, the API's proleptic Gregorian.
        let random = (0..<2000).map { _ in Int64.random(in: -11_676_096_000_000...253_402_300_799_999, using: &generator) }
        for millis in fixed + random {
            let seconds = (Double(millis) / 1000).rounded(.down)
            let expected = formatter.string(from: Date(timeIntervalSince1970: seconds))
            #expect(ISODate.string(millis) == expected, "\(millis)")
        }
        var json = JSONWriter()
        json.beginArray()
        json.date(1_790_000_000_123)
        json.date(nil)
        json.endArray()
        #expect(String(buffer: json.buffer) == #"["2026-09-21T14:13:20Z",null]"#)
    }
}
