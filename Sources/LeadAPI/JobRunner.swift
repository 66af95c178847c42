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

    init(store: LeadStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Records a queued job and starts it. `work` returns the job's result as a JSON object.
    func start(kind: String, parameters: [String: Any], work: @escaping @Sendable (Progress) throws -> [String: Any]) async throws -> Job {
        let parametersJSON = Self.json(parameters)
        let job = try await store.writer.write { db -> Job in
            let now = LeadStore.nowMillis()
            try db.execute(sql: "INSERT INTO jobs (kind, state, created_at, parameters) VALUES (?, 'queued', ?, ?)",
                           arguments: [kind, now, parametersJSON])
            return Job(id: db.lastInsertedRowID, kind: kind, state: "queued", progress: 0, createdAt: now)
        }
        let store = self.store
        let logger = self.logger
        NIOThreadPool.singleton.submit { state in
            guard case .active = state else { return }
            let id = job.id
            try? store.writer.write { db in
                try db.execute(sql: "UPDATE jobs SET state = 'running', started_at = ? WHERE id = ?",
                               arguments: [LeadStore.nowMillis(), id])
            }
            do {
                let result = try work(Progress(store: store, id: id))
                try store.writer.write { db in
                    try db.execute(sql: """
                        UPDATE jobs SET state = 'succeeded', progress = 1, finished_at = ?, result = ? WHERE id = ?
                        """, arguments: [LeadStore.nowMillis(), Self.json(result), id])
                }
                logger.info("job succeeded", metadata: ["job.id": "\(id)", "job.kind": "\(kind)"])
            } catch {
                let message = (error as? Failure)?.message ?? "the job failed"
                logger.error("job failed", metadata: ["job.id": "\(id)", "job.kind": "\(kind)", "error.type": "\(type(of: error))"])
                try? store.writer.write { db in
                    try db.execute(sql: "UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ?",
                                   arguments: [LeadStore.nowMillis(), message, id])
                }
            }
        }
        return job
    }

    func find(_ id: Int64) async throws -> Job? {
        try await store.reader.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]).map { row in
                Job(id: row["id"], kind: row["kind"], state: row["state"], progress: row["progress"],
                    createdAt: row["created_at"], startedAt: row["started_at"], finishedAt: row["finished_at"],
                    result: row["result"], error: row["error"])
            }
        }
    }

    static func json(_ object: [String: Any]) -> String {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
