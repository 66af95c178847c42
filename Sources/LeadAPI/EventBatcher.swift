import GRDB
import LeadIngest
import LeadScoring
import Synchronization

/// Writes the POST /events requests that wait for the writer together, as one ingest pass and
/// one rescore. A pipeline's requests keep hitting the same active leads: written one by one
/// inside a group commit, each folded those leads' activity and rescored them again, which was
/// most of the writer's time. Each request still gets its own counts and its leads' scores after
/// the commit (`previous_score` is then the score before the whole transaction).
///
/// Requests queue here until a transaction of the ``WriteCoalescer`` runs, and that transaction
/// takes them all (up to ``maxRecordsPerWrite``): the longer the writer is busy, the more it
/// merges. Should the merged write fail, every request is written again on its own, so one
/// request's failure does not cost the others theirs.
final class EventBatcher: Sendable {
    struct Outcome: Sendable {
        let result: Ingest.RequestResult
        let scored: [LeadScorer.Scored]
        let modelVersion: String?
    }

    private struct Pending: Sendable {
        let records: [Ingest.Record]
        let continuation: CheckedContinuation<Outcome, any Error>
    }

    private let writes: WriteCoalescer
    private let scorer: ActiveScorer
    /// Event properties rows the server's committed writes stored: each write has a session of
    /// its own, and without this every transaction stored its properties in rows of its own.
    let propertySets = Ingest.PropertySetCache()
    /// Requests no transaction has taken yet, and whether a flush is on its way to take them.
    private let state = Mutex<(queue: [Pending], flushScheduled: Bool)>(([], false))
    /// Bounds one merged write: a request carries up to 5000 events.
    static let maxRecordsPerWrite = 50_000

    init(writes: WriteCoalescer, scorer: ActiveScorer) {
        self.writes = writes
        self.scorer = scorer
    }

    /// Requests no transaction has taken yet.
    var queuedRequests: Int { state.withLock { $0.queue.count } }

    func write(_ records: [Ingest.Record]) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let schedule = state.withLock { state in
                state.queue.append(Pending(records: records, continuation: continuation))
                defer { state.flushScheduled = true }
                return !state.flushScheduled
            }
            if schedule { Task { await self.flush() } }
        }
    }

    /// Takes the queued requests that fit one write. Requests left over get a flush of their own,
    /// which the coalescer runs after this one.
    private func takeQueued() -> [Pending] {
        let (taken, more) = state.withLock { state in
            var records = 0
            let count = state.queue.prefix { pending in
                defer { records += pending.records.count }
                return records == 0 || records + pending.records.count <= Self.maxRecordsPerWrite
            }.count
            let taken = Array(state.queue.prefix(count))
            state.queue.removeFirst(count)
            state.flushScheduled = !state.queue.isEmpty
            return (taken, state.flushScheduled)
        }
        if more { Task { await self.flush() } }
        return taken
    }

    /// The requests of one flush, taken once: a transaction rerun after a rollback writes the
    /// same ones, and a transaction that never ran its body still hands them over.
    private final class Taken: Sendable {
        private let requests = Mutex<[Pending]?>(nil)

        func get(_ take: () -> [Pending]) -> [Pending] {
            requests.withLock { requests in
                if let requests { return requests }
                let taken = take()
                requests = taken
                return taken
            }
        }
    }

    private func flush() async {
        let taken = Taken()
        let (scorer, propertySets) = (self.scorer, self.propertySets)
        let written: Result<Written, any Error>
        do {
            // Taken inside the transaction, as late as possible: whatever queued meanwhile joins.
            written = .success(try await writes.write { db in
                try Self.write(taken.get(self.takeQueued).map(\.records), scorer: scorer, propertySets: propertySets, in: db)
            })
        } catch {
            written = .failure(error)
        }
        let requests = taken.get(takeQueued)  // also when the transaction never ran its body
        switch written {
        case .success(let written):
            // The coalescer answers with the run that committed.
            propertySets.add(written.createdPropertySets)
            for (pending, outcome) in zip(requests, written.outcomes) { pending.continuation.resume(returning: outcome) }
        case .failure(let error) where requests.count == 1:
            requests[0].continuation.resume(throwing: error)
        case .failure:
            for pending in requests {
                let records = pending.records
                do {
                    let written = try await writes.write { db in
                        try Self.write([records], scorer: scorer, propertySets: propertySets, in: db)
                    }
                    propertySets.add(written.createdPropertySets)
                    pending.continuation.resume(returning: written.outcomes[0])
                } catch {
                    pending.continuation.resume(throwing: error)
                }
            }
        }
    }

    /// One transaction's outcomes, and the properties rows it stored.
    private struct Written: Sendable {
        let outcomes: [Outcome]
        let createdPropertySets: [String: Int64]
    }

    private static func write(_ groups: [[Ingest.Record]], scorer: ActiveScorer, propertySets: Ingest.PropertySetCache,
                              in db: Database) throws -> Written {
        let session = Ingest.RequestSession(sharedPropertySets: propertySets)
        let results = try session.write(groups: groups, in: db)
        guard let current = try scorer.scorer(in: db) else {
            return Written(outcomes: results.map { Outcome(result: $0, scored: [], modelVersion: nil) },
                           createdPropertySets: session.createdPropertySets)
        }
        var touched = Set<Int64>()
        for result in results { touched.formUnion(result.touched) }
        let scored = try current.rescore(ids: touched.sorted(), in: db)
        let byLead = Dictionary(scored.map { ($0.leadID, $0) }, uniquingKeysWith: { $1 })
        let outcomes = results.map { result in
            Outcome(result: result, scored: result.touched.compactMap { byLead[$0] }, modelVersion: current.model.version)
        }
        return Written(outcomes: outcomes, createdPropertySets: session.createdPropertySets)
    }
}
