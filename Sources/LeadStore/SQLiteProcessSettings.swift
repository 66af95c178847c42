internal import CSQLiteConfig

/// SQLite settings that apply to the whole process and take effect only before SQLite's first
/// use in it, so they are applied before LeadStore opens its first connection.
enum SQLiteProcessSettings {
    /// Whether they took effect: false when something in the process used SQLite first.
    static let applied: Bool = {
        // Debian's libsqlite3 defaults to serialized mode and memory statistics, which lock a
        // mutex on every API call and every allocation. On the ingest benchmark those locks
        // were about 3% of the writer's samples (perf).
        let threading = csqlite_use_multithread_mode()
        let statistics = csqlite_disable_memory_statistics()
        return threading == 0 && statistics == 0
    }()
}
