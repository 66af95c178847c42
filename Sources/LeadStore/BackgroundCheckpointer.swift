import Dispatch
import Foundation
import GRDB
import Synchronization

/// Copies a store's WAL into its database file from a thread and connection of its own while
/// `leadlens ingest` runs, so the copy overlaps with parsing and writing. Otherwise the
/// writer stops to copy at each auto-checkpoint, and once more at close, while the parser's
/// core idles: on the ingest benchmark that wait was about 0.45 s of 5.1 (measured). A passive
/// checkpoint never blocks the writer or readers; when the writer's own auto-checkpoint comes,
/// it finds the frames copied and the WAL starts over, so the WAL stays as bounded as before.
///
/// The server has its own (the API's `WALCheckpointer`), which runs as a service.
public final class BackgroundCheckpointer: Sendable {
    private let stopRequested = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// Set once the thread runs; `stop` clears it. A failed init (no file) runs `deinit` too.
    private let running = Atomic<Bool>(false)

    /// Starts checkpointing the file store at `path` every `interval`; nil for a store without
    /// a file (in memory), which has no WAL.
    public init?(store: LeadStore, interval: DispatchTimeInterval = .milliseconds(50)) {
        guard let path = store.filePath else { return nil }
        let (stopRequested, finished) = (stopRequested, finished)
        let thread = Thread {
            defer { finished.signal() }
            var configuration = Configuration()
            configuration.label = "leadlens.checkpoint"
            // A failure only leaves the copying to the writer's own auto-checkpoint, as without this.
            guard let connection = try? DatabaseQueue(path: path, configuration: configuration) else { return }
            defer { try? connection.close() }
            while stopRequested.wait(timeout: .now() + interval) == .timedOut {
                _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
        }
        thread.name = "leadlens.checkpoint"
        thread.start()
        running.store(true, ordering: .releasing)
    }

    /// Stops after the checkpoint in progress, if any, and waits for the thread to end. Later
    /// calls return at once.
    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        stopRequested.signal()
        finished.wait()
    }

    deinit { stop() }
}
