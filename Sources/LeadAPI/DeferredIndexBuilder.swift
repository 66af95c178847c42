import GRDB
import LeadStore
import Logging
import NIOPosix
import ServiceLifecycle

/// Builds the query indexes a bulk load deferred once no loader holds the store. `serve` builds
/// a killed load's indexes when it starts, but a load that was still running then, or that
/// began into the empty store while it serves, can be killed later: lists and stats would then
/// scan without their indexes until the server restarted. Runs beside the server in its service
/// group and stops with it.
public struct DeferredIndexBuilder: Service {
    let store: LeadStore
    let interval: Duration
    let logger: Logger

    public init(store: LeadStore, interval: Duration = .seconds(10), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        // Cancelled at shutdown: an index build already under way runs to its end (one
        // transaction per index), the wait for the next check does not.
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: interval)
                do {
                    guard try await store.reader.read({ try DeferredIndexes.arePending($0) }) else { continue }
                    // The build blocks on SQLite for seconds on a large store: not on the cooperative pool.
                    let store = self.store
                    if try await NIOThreadPool.singleton.runIfActive({ try store.restoreDeferredIndexes() }) {
                        logger.notice("built the query indexes a stopped bulk load left")
                    }
                } catch is CancellationError {
                    return
                } catch {
                    // Retried on the next check; lists and stats stay correct meanwhile, only slower.
                    logger.warning("could not build the indexes a bulk load left", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
