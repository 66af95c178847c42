import Foundation
import GRDB
import LeadStore
import Synchronization

/// Tells whether the store changed since a value was computed, whoever wrote it: this server,
/// an ingest in another process, a cron job. It watches SQLite's `PRAGMA data_version` on a
/// connection of its own, which changes whenever any other connection commits
/// (https://www.sqlite.org/pragma.html#pragma_data_version). A dashboard polling the stats then
/// gets a cached answer until the data really changes, and never a stale one.
final class ChangeMonitor: Sendable {
    private let watcher: DatabaseQueue?

    init(store: LeadStore) {
        let path = store.writer.path
        if path.isEmpty || path == ":memory:" || path.hasPrefix("file::memory:") {
            watcher = nil  // a private in-memory store: nothing to watch, nothing cached
        } else {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.label = "leadlens.change-monitor"
            watcher = try? DatabaseQueue(path: path, configuration: configuration)
        }
    }

    /// The store's current version, or nil when changes cannot be observed (then nothing is cached).
    func version() async -> Int? {
        guard let watcher else { return nil }
        return try? await watcher.read { db in try Int.fetchOne(db, sql: "PRAGMA data_version") }
    }
}

/// Values computed from the store, each valid for the store version it was computed at.
final class VersionedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries = Mutex<(version: Int?, values: [Key: Value])>((nil, [:]))
    private let capacity: Int

    init(capacity: Int = 256) {
        self.capacity = capacity
    }

    /// The cached value for `key` at `version`, or `compute()`'s, which is then cached.
    func value(for key: Key, version: Int?, compute: () async throws -> Value) async throws -> Value {
        if let version, let hit = entries.withLock({ $0.version == version ? $0.values[key] : nil }) {
            return hit
        }
        let value = try await compute()
        if let version {
            entries.withLock { entries in
                if entries.version != version || entries.values.count >= capacity { entries = (version, [:]) }
                entries.values[key] = value
            }
        }
        return value
    }
}
