import GRDB
import Logging
import ServiceLifecycle

/// Checkpoints a serving store's WAL (see `LeadStore.open(path:logger:serving:)`) from a
/// connection of its own, off the request path. A passive checkpoint copies committed WAL frames
/// into the database file without waiting for, or blocking, the writer or readers. Runs beside
/// the server in its service group and stops with it.
public struct WALCheckpointer: Service {
    let path: String
    let interval: Duration
    let logger: Logger

    public init(path: String, interval: Duration = .milliseconds(100), logger: Logger) {
        self.path = path
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var configuration = Configuration()
        configuration.label = "leadlens.checkpoint"
        let connection = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? connection.close() }
        while !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return  // cancelled
            }
            do {
                _ = try await connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
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
