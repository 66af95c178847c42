import GRDB
import LeadStore
import Synchronization

/// Group commit for the API's writes. SQLite has one writer, and on a large store each small
/// transaction rewrites the same index and table pages into the WAL. Requests that arrive while
/// a transaction is running are queued and run together in the next one, and every request still
/// gets its own result. Under load this turns hundreds of commits a second into tens.
///
/// One request's failure must not cost the others their writes. A failure that changed nothing
/// (the usual 404/409/422, found before writing) has nothing to undo, so the batch goes on. A
/// failure after a write rolls the whole transaction back, and each request of the batch then runs
/// again in a transaction of its own; request bodies are plain database work, safe to re-run.
/// Savepoints per request would isolate failures too, but SQLite copies every page a savepoint
/// first touches into its sub-journal (tens of MB for one batch of events with 16 KiB pages),
/// and statement releases inside a savepoint walk that in-memory journal from its start.
/// They made POST /events ~5× slower.
///
/// A write made with ``write(rescoringTouched:)`` names the leads it touched, and the coalescer
/// rescores those of the whole transaction in one pass after its last request has written and
/// before it commits. Rescoring one lead per request inside the batch cost POST /intake a third
/// of its throughput (measured: 2,190 requests/s against 3,420 without rescoring), most of it
/// the per-pass work of resolving the model's layout and stepping its queries.
final class WriteCoalescer: Sendable {
    /// A request's database work: its answer, and the leads it wants rescored before commit.
    private typealias Work = @Sendable (Database) throws -> (answer: any Sendable, touched: [Int64])
    private struct Pending {
        let work: Work
        let continuation: CheckedContinuation<any Sendable, any Error>
    }
    /// Rescores leads in the open transaction; returns how many it scored.
    typealias Rescore = @Sendable (Database, [Int64]) throws -> Int

    private let writer: any DatabaseWriter
    /// Rescores the leads a transaction's requests touched, inside it.
    private let rescore: Rescore
    /// Runs after every transaction, committed or not, before its requests are answered.
    private let afterTransaction: @Sendable () -> Void
    /// Runs after a commit with the number of leads its rescore scored: counted once committed,
    /// so a batch that rolls back and runs again request by request is not counted twice.
    private let didCommit: @Sendable (_ leadsScored: Int) -> Void
    private let queue = Mutex<(pending: [Pending], draining: Bool)>(([], false))
    /// Bounds one transaction: events requests carry up to 5000 events each.
    static let maxRequestsPerTransaction = 64

    /// Requests waiting for a transaction.
    var queuedRequests: Int { queue.withLock { $0.pending.count } }

    init(writer: any DatabaseWriter, rescore: @escaping Rescore = { _, _ in 0 },
         afterTransaction: @escaping @Sendable () -> Void = {}, didCommit: @escaping @Sendable (_ leadsScored: Int) -> Void = { _ in }) {
        self.writer = writer
        self.rescore = rescore
        self.afterTransaction = afterTransaction
        self.didCommit = didCommit
    }

    private func transaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        defer { afterTransaction() }
        return try await writer.write(body)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await enqueue { db in (try body(db), []) }
    }

    /// A write whose `touched` leads are rescored with the rest of its transaction's, before
    /// the commit. The answer must not depend on their new scores.
    func write<T: Sendable>(rescoringTouched body: @escaping @Sendable (Database) throws -> (T, touched: [Int64])) async throws -> T {
        try await enqueue { db in try body(db) }
    }

    private func enqueue<T: Sendable>(_ work: @escaping Work) async throws -> T {
        let value = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let startDraining = queue.withLock { queue in
                queue.pending.append(Pending(work: work, continuation: continuation))
                if queue.draining { return false }
                queue.draining = true
                return true
            }
            if startDraining {
                Task { await self.drain() }
            }
        }
        return value as! T
    }

    private func drain() async {
        while true {
            let batch = queue.withLock { queue -> [Pending] in
                let batch = Array(queue.pending.prefix(Self.maxRequestsPerTransaction))
                queue.pending.removeFirst(batch.count)
                if batch.isEmpty { queue.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            let works = batch.map(\.work)
            let rescore = self.rescore
            do {
                let (results, scored) = try await transaction { db in try Self.runTogether(works, rescore: rescore, in: db) }
                didCommit(scored)
                for (pending, result) in zip(batch, results) { pending.continuation.resume(with: result) }
            } catch is FailedAfterWriting where batch.count > 1 {
                for pending in batch {
                    let result: Result<any Sendable, any Error>
                    do {
                        let (answer, scored) = try await transaction { db in
                            let (results, scored) = try Self.runTogether([pending.work], rescore: rescore, in: db)
                            return (try results[0].get(), scored)
                        }
                        didCommit(scored)
                        result = .success(answer)
                    } catch let failure as FailedAfterWriting {
                        result = .failure(failure.underlying)
                    } catch {
                        result = .failure(error)
                    }
                    pending.continuation.resume(with: result)
                }
            } catch let failure as FailedAfterWriting {
                for pending in batch { pending.continuation.resume(throwing: failure.underlying) }
            } catch {
                // The commit itself failed: none of the batch's changes are in the store.
                for pending in batch { pending.continuation.resume(throwing: error) }
            }
        }
    }

    /// A request failed after changing rows: the transaction must roll back.
    private struct FailedAfterWriting: Error {
        let underlying: any Error
    }

    /// Runs the works in order in the open transaction, keeping the failures that wrote nothing,
    /// then rescores the leads the successful ones touched. Returns each work's result and how
    /// many leads were scored.
    private static func runTogether(_ works: [Work], rescore: Rescore, in db: Database) throws
        -> (results: [Result<any Sendable, any Error>], scored: Int) {
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(works.count)
        var touched = Set<Int64>()
        for work in works {
            // Rows changed by completed statements; a statement that fails undoes its own changes.
            let changesBefore = db.totalChangesCount
            do {
                let (answer, leads) = try work(db)
                results.append(.success(answer))
                touched.formUnion(leads)
            } catch {
                guard db.totalChangesCount == changesBefore, db.isInsideTransaction else {
                    throw FailedAfterWriting(underlying: error)
                }
                results.append(.failure(error))
            }
        }
        var scored = 0
        if !touched.isEmpty {
            do {
                scored = try rescore(db, touched.sorted())
            } catch {
                throw FailedAfterWriting(underlying: error)
            }
        }
        return (results, scored)
    }
}
