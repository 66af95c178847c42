import GRDB
import LeadStore
import Synchronization

/// Group commit for the API's writes. SQLite has one writer, and on a large store each small
/// transaction rewrites the same index and table pages into the WAL. Requests that arrive while
/// a transaction is running are queued and run together in the next one, each in a savepoint of
/// its own: one request's failure rolls back only its own changes, and every request still gets
/// its own result. Under load this turns hundreds of commits a second into tens.
final class WriteCoalescer: Sendable {
    private typealias Work = @Sendable (Database) throws -> any Sendable
    private struct Pending {
        let work: Work
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private let writer: any DatabaseWriter
    private let queue = Mutex<(pending: [Pending], draining: Bool)>(([], false))
    /// Bounds one transaction: events requests carry up to 5000 events each.
    static let maxRequestsPerTransaction = 64

    init(writer: any DatabaseWriter) {
        self.writer = writer
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
                let results = try await writer.write { db -> [Result<any Sendable, any Error>] in
                    works.map { work in
                        Result {
                            var value: (any Sendable)?
                            try db.inSavepoint {
                                value = try work(db)
                                return .commit
                            }
                            return value!
                        }
                    }
                }
                for (pending, result) in zip(batch, results) { pending.continuation.resume(with: result) }
            } catch {
                // The commit itself failed: none of the batch's changes are in the store.
                for pending in batch { pending.continuation.resume(throwing: error) }
            }
        }
    }
}
