import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// Checkpoints a serving store's WAL (see `LeadStore.open(path:logger:serving:)`) from a
/// connection of its own, off the request path. A passive checkpoint copies committed WAL frames
/// into the database file without waiting for, or blocking, the writer or readers. Runs beside
/// the server in its service group and stops with it.
///
/// Under sustained writes that alone lets the WAL grow without end: SQLite starts the WAL over
/// only when a write transaction begins with every frame already copied, and a busy writer
/// commits again before a checkpoint running beside it finishes. A growing WAL is also slow to
/// write: each frame lands in new file blocks, which the kernel allocates and zeroes. POST
/// /intake ran 2,662/2,351/2,684 requests/s against 3,311/3,855/3,415 with the WAL file already
/// written (measured). So once the WAL passes ``restartBytes`` and a checkpoint here has left at
/// most ``catchUpBytes`` uncopied, the writer connection copies the rest, between two of its
/// transactions; its next transaction then starts the WAL over, rewriting blocks the file
/// already has. A reader still inside the WAL defers that to a later round.
public struct WALCheckpointer: Service {
    let path: String
    /// The store's writer, which copies the last frames so the WAL can start over; nil never
    /// interrupts it (the WAL then only starts over when writes pause).
    let writer: (any DatabaseWriter)?
    let interval: Duration
    /// WAL size past which the writer finishes a checkpoint that is nearly done.
    let restartBytes: Int
    /// The most the writer copies when it finishes one: a pause of a few milliseconds.
    static let catchUpBytes = 4 << 20
    let logger: Logger

    public init(path: String, writer: (any DatabaseWriter)? = nil, interval: Duration = .milliseconds(100),
                restartBytes: Int = 64 << 20, logger: Logger) {
        self.path = path
        self.writer = writer
        self.interval = interval
        self.restartBytes = restartBytes
        self.logger = logger
    }

    public func run() async throws {
        var configuration = Configuration()
        configuration.label = "leadlens.checkpoint"
        let connection = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? connection.close() }
        let pageSize = try await connection.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } ?? 4096
        while !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return  // cancelled
            }
            do {
                let (walFrames, copied) = try await connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                let frameBytes = pageSize + 24
                if let writer, walFrames * frameBytes >= restartBytes, (walFrames - copied) * frameBytes <= Self.catchUpBytes {
                    _ = try await writer.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }  // interrupted mid-checkpoint by the cancellation
                // A busy or failed checkpoint is retried on the next tick; the writer's own
                // backstop checkpoint keeps the WAL bounded meanwhile.
                logger.warning("checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
