import Foundation
import GRDB
import HummingbirdTesting
@testable import LeadAPI
import LeadStore
import Logging
import Synchronization
import Testing

@Suite("Background jobs")
struct JobsTests {
    /// The pid of a process that has exited: no process holds it until the kernel wraps around.
    static func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    @Test("a job whose server stopped before it finished reads as failed, not running forever; a live server's job stays running")
    func interruptedJobsFail() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let dead = try Self.deadPID()
        // A dead server's; one from before jobs had owners; an earlier server's under this
        // process's pid (a container restarted as PID 1); then a live server's (the test
        // runner's parent stands in for it).
        let owners: [(Int32?, String?)] = [(dead, "a"), (nil, nil), (getpid(), "earlier"), (getppid(), "live")]
        let ids = try await api.store.writer.write { db in
            try owners.map { owner -> Int64 in
                try db.execute(sql: """
                    INSERT INTO jobs (kind, state, created_at, started_at, parameters, owner_pid, owner_token)
                    VALUES ('rescore', 'running', 1, 2, '{}', ?, ?)
                    """, arguments: [owner.0, owner.1])
                return db.lastInsertedRowID
            }
        }
        let app = buildApplication(store: api.store, configuration: APIConfiguration(version: "test"))
        try await app.test(.router) { client in
            for id in ids.prefix(3) {
                let job = try await client.call(.get, "/api/v1/jobs/\(id)", key: api.reader).data
                #expect(job["state"] as? String == "failed", "\(job)")
                #expect((job["error"] as? String)?.hasPrefix("interrupted") == true)
                #expect(job["finished_at"] is String)
            }
            let live = try await client.call(.get, "/api/v1/jobs/\(ids[3])", key: api.reader).data
            #expect(live["state"] as? String == "running")
        }
    }

    @Test("jobs run one at a time in the order posted: the second waits queued until the first finishes")
    func jobsRunInOrder() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let runner = JobRunner(store: api.store, logger: Logger(label: "test"))
        let order = Mutex<[String]>([])
        let release = DispatchSemaphore(value: 0)
        let first = try await runner.start(kind: "train", parameters: [:]) { _ in
            order.withLock { $0.append("first started") }
            release.wait()
            order.withLock { $0.append("first finished") }
            return [:]
        }
        let second = try await runner.start(kind: "rescore", parameters: [:]) { _ in
            order.withLock { $0.append("second started") }
            return [:]
        }
        func state(_ id: Int64) async throws -> String? { try await runner.find(id)?.state }
        // Wait for the first to start; the second must still be queued behind it.
        for _ in 0..<500 where try await state(first.id) != "running" { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await state(first.id) == "running")
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await state(second.id) == "queued")
        #expect(order.withLock { $0 } == ["first started"])
        release.signal()
        for _ in 0..<500 where try await state(second.id) != "succeeded" { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await state(first.id) == "succeeded")
        #expect(try await state(second.id) == "succeeded")
        #expect(order.withLock { $0 } == ["first started", "first finished", "second started"])
    }
}
