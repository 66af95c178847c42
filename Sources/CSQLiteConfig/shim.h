// sqlite3_config is variadic, which Swift cannot call.
#include <sqlite3.h>

// Process-wide settings, which take effect only before SQLite's first use in the process.
// Returns SQLITE_OK, or SQLITE_MISUSE when SQLite was already in use (nothing changes then).
//
// Multi-thread mode: connections lock no mutex of their own on every call. GRDB already hands
// each connection to one thread at a time (its SerializedDatabase), which is all this mode asks.
static inline int csqlite_use_multithread_mode(void) {
    return sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
}

// No memory statistics: with them, every allocation SQLite makes takes a process-wide mutex.
static inline int csqlite_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
