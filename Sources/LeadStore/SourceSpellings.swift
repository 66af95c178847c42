import Foundation
import GRDB

/// One spelling per lead source, whatever case it arrives in. "Google" from a CRM export and
/// "google" from a utm tag are one source: stored as the spelling the store saw first (or, for
/// sources stored before, the one most leads had), so the stats, the reports and the `source`
/// filter count and match them as one, as the scorer's categories already did.
public enum SourceSpellings {
    /// What two spellings of one source have in common: lowercased, in Unicode's composed form
    /// (NFC), since SQLite compares bytes and "É" may arrive as one code point or as two.
    public static func folded(_ source: String) -> String {
        // ASCII has one form: skip the normalization, the common case.
        source.utf8.allSatisfy { $0 < 0x80 } ? source.lowercased() : source.precomposedStringWithCanonicalMapping.lowercased()
    }

    /// The store's spelling of `source`, which becomes the spelling when it is the first of its
    /// kind. Inside the caller's write transaction.
    public static func canonical(_ source: String, in db: Database) throws -> String {
        let key = folded(source)
        let select = try db.cachedStatement(sql: "SELECT spelling FROM source_spellings WHERE folded = ?")
        if let spelling = try String.fetchOne(select, arguments: [key]) { return spelling }
        // OR IGNORE: another process may have added the same source since the lookup.
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO source_spellings (folded, spelling) VALUES (?, ?)")
            .execute(arguments: [key, source])
        return try String.fetchOne(select, arguments: [key]) ?? source
    }

    /// The SQL condition matching leads whose source is `source` in any case, with its
    /// arguments. A constant subquery, so the source index still serves it.
    static func condition(matching source: String) -> (sql: String, arguments: StatementArguments) {
        ("source = coalesce((SELECT spelling FROM source_spellings WHERE folded = ?), ?)", [folded(source), source])
    }

    /// v13: the table, filled from the sources stored so far, each spelled as most of its leads
    /// spell it (ties: the first in byte order), and every lead's source rewritten to it.
    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE source_spellings (
                folded   TEXT PRIMARY KEY,
                spelling TEXT NOT NULL
            ) WITHOUT ROWID;
            """)
        var groups: [String: [(spelling: String, count: Int)]] = [:]
        let rows = try Row.fetchCursor(db, sql: "SELECT source, count(*) FROM leads WHERE source IS NOT NULL GROUP BY source")
        while let row = try rows.next() {
            let spelling: String = row[0]
            groups[folded(spelling), default: []].append((spelling, row[1]))
        }
        for (key, spellings) in groups {
            // Compared as bytes, as SQLite stores them: Swift's == calls NFC and NFD text equal.
            func preferred(_ a: (spelling: String, count: Int), _ b: (spelling: String, count: Int)) -> Bool {
                a.count != b.count ? a.count > b.count : a.spelling.utf8.lexicographicallyPrecedes(b.spelling.utf8)
            }
            let chosen = spellings.min(by: preferred)!.spelling
            try db.execute(sql: "INSERT INTO source_spellings (folded, spelling) VALUES (?, ?)", arguments: [key, chosen])
            for other in spellings where !other.spelling.utf8.elementsEqual(chosen.utf8) {
                try db.execute(sql: "UPDATE leads SET source = ? WHERE source = ?", arguments: [chosen, other.spelling])
            }
        }
    }
}
