import Foundation
import GRDB
import LeadStore
import Logging
import NIOPosix
import Synchronization

/// Background jobs (training, rescoring): recorded in the store's `jobs` table so any client
/// can follow them at /api/v1/jobs/{id}, and run on NIO's blocking thread pool, never on an
/// event loop or the cooperative pool (BLAS and SQLite block).
final class JobRunner: Sendable {
    struct Job: Sendable {
        var id: Int64
        var kind: String
        var state: String
        var progress: Double
        var createdAt: Int64
        var startedAt: Int64?
        var finishedAt: Int64?
        var result: String?
        var error: String?
    }

    /// A job's view of itself: progress reports, throttled to one write every half second.
    final class Progress: Sendable {
        private let store: LeadStore
        private let id: Int64
        private let lastWrite = Mutex(Date.distantPast)

        init(store: LeadStore, id: Int64) {
            self.store = store
            self.id = id
        }

        func report(_ fraction: Double) {
            let now = Date()
            let due = lastWrite.withLock { lastWrite in
                guard now.timeIntervalSince(lastWrite) >= 0.5 else { return false }
                lastWrite = now
                return true
            }
            guard due else { return }
            try? store.writer.write { db in
                try db.execute(sql: "UPDATE jobs SET progress = ? WHERE id = ?", arguments: [min(max(fraction, 0), 1), id])
            }
        }
    }

    /// Why a job failed, in words fit for the client.
    struct Failure: Error {
        var message: String
    }

    private let store: LeadStore
    private let logger: Logger
    /// Names this runner in the jobs it records, beside its pid: a server restarted under the
    /// same pid (a container's PID 1) is not the one that ran the jobs before.
    private let token = UUID().uuidString
    /// Jobs this runner recorded and has not finished.
    private let unfinished = Mutex<Set<Int64>>([])
    /// Jobs run one at a time, in the order they were posted: a rescore posted after a training
    /// uses the model that training activated, and two trainings never share the two cores.
    private let line = Mutex(Line())

    private struct Line {
        var isRunning = false
        var waiting: [@Sendable () -> Void] = []
    }

    init(store: LeadStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    static let interruptedMessage = "interrupted: the server running it stopped before it finished; start it again"

    /// Whether a queued or running job's server has stopped: it is this runner's and no longer
    /// running, or its process is gone (or is this one, restarted), or it was recorded before
    /// jobs had owners. A job another live server on the same store runs is not.
    func isOrphaned(id: Int64, ownerPID: Int32?, ownerToken: String?) -> Bool {
        if ownerToken == token { return !unfinished.withLock { $0.contains(id) } }
        guard let ownerPID, ownerPID != getpid() else { return true }
        return kill(ownerPID, 0) != 0 && errno == ESRCH  // EPERM: alive, another user's
    }

    /// Marks failed the jobs whose server stopped or died before they finished, whose rows would
    /// otherwise say queued or running forever. Returns how many were marked.
    @discardableResult
    func failInterruptedJobs() async throws -> Int {
        try await store.writer.write { db in
            let orphans = try Row.fetchAll(db, sql: "SELECT id, owner_pid, owner_token FROM jobs WHERE state IN ('queued', 'running')")
                .filter { self.isOrphaned(id: $0["id"], ownerPID: $0["owner_pid"], ownerToken: $0["owner_token"]) }
                .map { $0["id"] as Int64 }
            for id in orphans {
                try db.execute(sql: "UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ?",
                               arguments: [LeadStore.nowMillis(), Self.interruptedMessage, id])
            }
            return orphans.count
        }
    }

    /// Records a queued job and starts it. `work` returns the job's result as a JSON object.
    func start(kind: String, parameters: [String: Any], work: @escaping @Sendable (Progress) throws -> [String: Any]) async throws -> Job {
        let parametersJSON = Self.json(parameters)
        let job = try await store.writer.write { db -> Job in
            let now = LeadStore.nowMillis()
            try db.execute(sql: """
                INSERT INTO jobs (kind, state, created_at, parameters, owner_pid, owner_token) VALUES (?, 'queued', ?, ?, ?, ?)
                """, arguments: [kind, now, parametersJSON, getpid(), token])
            let id = db.lastInsertedRowID
            // Before the commit: a concurrent failInterruptedJobs must not take it for an orphan.
            unfinished.withLock { _ = $0.insert(id) }
            return Job(id: id, kind: kind, state: "queued", progress: 0, createdAt: now)
        }
        let store = self.store
        let logger = self.logger
        enqueue { [self] isActive in
            let id = job.id
            // Once finished here, the job reads as interrupted should its row still say otherwise.
            defer { unfinished.withLock { _ = $0.remove(id) } }
            guard isActive else { return }  // the pool is shutting down with the server
            // Every write checks the state: a row marked interrupted stays so.
            try? store.writer.write { db in
                try db.execute(sql: "UPDATE jobs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'",
                               arguments: [LeadStore.nowMillis(), id])
            }
            do {
                let result = try work(Progress(store: store, id: id))
                try store.writer.write { db in
                    try db.execute(sql: """
                        UPDATE jobs SET state = 'succeeded', progress = 1, finished_at = ?, result = ?
                        WHERE id = ? AND state IN ('queued', 'running')
                        """, arguments: [LeadStore.nowMillis(), Self.json(result), id])
                }
                logger.info("job succeeded", metadata: ["job.id": "\(id)", "job.kind": "\(kind)"])
            } catch {
                let message = (error as? Failure)?.message ?? "the job failed"
                logger.error("job failed", metadata: ["job.id": "\(id)", "job.kind": "\(kind)", "error.type": "\(type(of: error))"])
                try? store.writer.write { db in
                    try db.execute(sql: "UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ? AND state IN ('queued', 'running')",
                                   arguments: [LeadStore.nowMillis(), message, id])
                }
            }
        }
        return job
    }

    /// Runs `run` on NIO's blocking pool once every job posted before it has finished. Its
    /// argument says whether the pool is still active (false while it shuts down).
    private func enqueue(_ run: @escaping @Sendable (Bool) -> Void) {
        let next: @Sendable () -> Void = { [self] in
            NIOThreadPool.singleton.submit { state in
                if case .active = state { run(true) } else { run(false) }
                self.runNext()
            }
        }
        let startsNow = line.withLock { line in
            if line.isRunning { line.waiting.append(next); return false }
            line.isRunning = true
            return true
        }
        if startsNow { next() }
    }

    private func runNext() {
        let next = line.withLock { line -> (@Sendable () -> Void)? in
            guard !line.waiting.isEmpty else { line.isRunning = false; return nil }
            return line.waiting.removeFirst()
        }
        next?()
    }

    /// The job; one whose server stopped before it finished is marked failed first, so a client
    /// polling it gets a final state whichever server it asks.
    func find(_ id: Int64) async throws -> Job? {
        func read() async throws -> (job: Job, ownerPID: Int32?, ownerToken: String?)? {
            try await store.reader.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]).map { row in
                    (Job(id: row["id"], kind: row["kind"], state: row["state"], progress: row["progress"],
                         createdAt: row["created_at"], startedAt: row["started_at"], finishedAt: row["finished_at"],
                         result: row["result"], error: row["error"]),
                     row["owner_pid"], row["owner_token"])
                }
            }
        }
        guard let (job, ownerPID, ownerToken) = try await read() else { return nil }
        guard job.state == "queued" || job.state == "running", isOrphaned(id: id, ownerPID: ownerPID, ownerToken: ownerToken)
        else { return job }
        try await failInterruptedJobs()
        return try await read()?.job
    }

    static func json(_ object: [String: Any]) -> String {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
