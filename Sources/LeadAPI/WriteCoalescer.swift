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
final class WriteCoalescer: Sendable {
    private typealias Work = @Sendable (Database) throws -> any Sendable
    private struct Pending {
        let work: Work
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private let writer: any DatabaseWriter
    /// Runs after every transaction, committed or not, before its requests are answered.
    private let afterTransaction: @Sendable () -> Void
    private let queue = Mutex<(pending: [Pending], draining: Bool)>(([], false))
    /// Bounds one transaction: events requests carry up to 5000 events each.
    static let maxRequestsPerTransaction = 64

    init(writer: any DatabaseWriter, afterTransaction: @escaping @Sendable () -> Void = {}) {
        self.writer = writer
        self.afterTransaction = afterTransaction
    }

    private func transaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        defer { afterTransaction() }
        return try await writer.write(body)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let value = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let startDraining = queue.withLock { queue in
                queue.pending.append(Pending(work: { try body($0) }, continuation: continuation))
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
            do {
                let results = try await transaction { db in try Self.runTogether(works, in: db) }
                for (pending, result) in zip(batch, results) { pending.continuation.resume(with: result) }
            } catch is FailedAfterWriting where batch.count > 1 {
                for pending in batch {
                    let result: Result<any Sendable, any Error>
                    do { result = .success(try await transaction { db in try pending.work(db) }) } catch { result = .failure(error) }
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

    /// Runs the works in order in the open transaction, keeping the failures that wrote nothing.
    private static func runTogether(_ works: [Work], in db: Database) throws -> [Result<any Sendable, any Error>] {
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(works.count)
        for work in works {
            // Rows changed by completed statements; a statement that fails undoes its own changes.
            let changesBefore = db.totalChangesCount
            do {
                results.append(.success(try work(db)))
            } catch {
                guard db.totalChangesCount == changesBefore, db.isInsideTransaction else {
                    throw FailedAfterWriting(underlying: error)
                }
                results.append(.failure(error))
            }
        }
        return results
    }
}
