internal import CSQLiteConfig

/// SQLite settings that apply to the whole process and take effect only before SQLite's first
/// use in it, so they are applied before LeadStore opens its first connection.
///
/// Threading needs nothing here: GRDB opens every connection with SQLITE_OPEN_NOMUTEX, since it
/// hands each one to one thread at a time.
enum SQLiteProcessSettings {
    /// Whether they took effect: false when something in the process used SQLite first.
    static let applied: Bool = {
        // Memory statistics lock a process-wide mutex on every allocation SQLite makes, which
        // the writer, the parser's frees and the checkpointer all contend for. Off, an
        // unscored ingest of the benchmark's 1M events went from 3.33-3.38 s to 3.14-3.26 s
        // (A/B, three runs each).
        csqlite_disable_memory_statistics() == 0
    }()
}
