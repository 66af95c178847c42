import Foundation
import GRDB
import LeadStore
import Synchronization

/// Tells whether the store changed since a value was computed, whoever wrote it: this server,
/// an ingest in another process, a cron job. A dashboard polling the stats then gets a cached
/// answer until the data really changes, and never one older than the last write.
///
/// Two signals make the version. SQLite's `PRAGMA data_version` on a connection of its own
/// changes whenever any other connection commits
/// (https://www.sqlite.org/pragma.html#pragma_data_version); a background task samples it every
/// 20 ms, so a request reads the version from memory and never waits on SQLite. Writes made
/// through this server also bump a local counter as they commit, so a client that reads its
/// own write never sees the cache from before it.
final class ChangeMonitor: Sendable {
    private let watcher: DatabaseQueue?
    private let sampled = Atomic<Int>(0)
    private let localWrites = Atomic<Int>(0)
    static let interval: Duration = .milliseconds(20)

    init(store: LeadStore) {
        guard let path = store.filePath else {
            watcher = nil  // a private in-memory store: nothing to watch, nothing cached
            return
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "leadlens.change-monitor"
        watcher = try? DatabaseQueue(path: path, configuration: configuration)
        guard let watcher else { return }
        sampled.store((try? watcher.read { db in try Int.fetchOne(db, sql: "PRAGMA data_version") } ?? 0) ?? 0, ordering: .relaxed)
        Task.detached { [weak self] in
            while let monitor = self {
                if let version = try? await watcher.read({ db in try Int.fetchOne(db, sql: "PRAGMA data_version") }) {
                    monitor.sampled.store(version, ordering: .releasing)
                }
                try? await Task.sleep(for: Self.interval)
            }
        }
    }

    /// The store's current version, or nil when changes cannot be observed (then nothing is cached).
    func version() -> Int? {
        guard watcher != nil else { return nil }
        return sampled.load(ordering: .acquiring) &* 1_000_003 &+ localWrites.load(ordering: .acquiring)
    }

    /// Called after every write this server commits.
    func noteWrite() {
        localWrites.add(1, ordering: .releasing)
    }
}

/// Values computed from the store, each valid for the store version it was computed at.
final class VersionedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries = Mutex<(version: Int?, values: [Key: Value])>((nil, [:]))
    private let capacity: Int

    init(capacity: Int = 256) {
        self.capacity = capacity
    }

    /// Computations under way: concurrent misses of one key at one version share one computation.
    /// After a write every polling dashboard misses at once, and each computing the stats of a
    /// 1M-lead store itself made the first answers to 16 connections take over a second.
    private let inFlight = Mutex<[Key: (version: Int, task: Task<Value, any Error>)]>([:])

    /// The cached value for `key` at `version`, or `compute()`'s, which is then cached. Without a
    /// version nothing is cached or shared.
    func value(for key: Key, version: Int?, compute: @escaping @Sendable () async throws -> Value) async throws -> Value {
        guard let version else { return try await compute() }
        if let hit = entries.withLock({ $0.version == version ? $0.values[key] : nil }) {
            return hit
        }
        let task = inFlight.withLock { flights in
            if let flight = flights[key], flight.version == version { return flight.task }
            let task = Task { try await compute() }
            flights[key] = (version, task)
            return task
        }
        defer { inFlight.withLock { if $0[key]?.task == task { $0[key] = nil } } }
        let value = try await task.value
        entries.withLock { entries in
            if entries.version != version || entries.values.count >= capacity { entries = (version, [:]) }
            entries.values[key] = value
        }
        return value
    }
}
