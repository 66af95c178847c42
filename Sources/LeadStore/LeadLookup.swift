import Foundation
import GRDB

/// Finds a lead the way a person names it: by id, external id or email.
public enum LeadLookup {
    /// An all-digit key is tried as an id first, then as an external id; a key with "@" as an
    /// email (trimmed, case-insensitive, as stored).
    public static func find(_ key: String, in db: Database) throws -> Int64? {
        let key = key.trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty else { return nil }
        if let id = Int64(key), try Bool.fetchOne(db, sql: "SELECT 1 FROM leads WHERE id = ?", arguments: [id]) != nil {
            return id
        }
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = ?", arguments: [key]) {
            return id
        }
        if key.contains("@") {
            return try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE email = ? ORDER BY id LIMIT 1",
                                      arguments: [key.lowercased()])
        }
        return nil
    }
}
