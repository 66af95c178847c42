import Foundation
import GRDB

/// Finds a lead the way a person names it: by id, external id or email.
public enum LeadLookup {
    /// The key is tried as an external id first (CRM ids are often all digits), then, when all
    /// digits, as LeadLens's own id; "#42" always means id 42. A key with "@" is an email
    /// (trimmed, case-insensitive, as stored).
    public static func find(_ key: String, in db: Database) throws -> Int64? {
        let key = key.trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty else { return nil }
        if key.hasPrefix("#") {
            guard let id = Int64(key.dropFirst()) else { return nil }
            return try Bool.fetchOne(db, sql: "SELECT 1 FROM leads WHERE id = ?", arguments: [id]) != nil ? id : nil
        }
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = ?", arguments: [key]) {
            return id
        }
        if let id = Int64(key), try Bool.fetchOne(db, sql: "SELECT 1 FROM leads WHERE id = ?", arguments: [id]) != nil {
            return id
        }
        if key.contains("@") {
            return try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE email = ? ORDER BY id LIMIT 1",
                                      arguments: [EmailAddress.normalized(key) ?? key.lowercased()])
        }
        return nil
    }
}
