// sqlite3_config is variadic, which Swift cannot call.
#include <sqlite3.h>

// No memory statistics: with them (SQLite's default), every allocation SQLite makes takes a
// process-wide mutex to keep the counters. Takes effect only before SQLite's first use in the
// process; returns SQLITE_OK, or SQLITE_MISUSE when SQLite was already in use.
static inline int csqlite_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
