import Crypto
import Foundation
import GRDB
import LeadStore

/// What a key may do: read is GET; write is create, update, delete and ingestion; admin is
/// keys, training, rescoring and reports. Scopes are independent: admin does not imply read.
public enum Scope: String, CaseIterable, Sendable, Codable {
    case read, write, admin

    /// The scopes named (case-insensitive, spaces trimmed); nil when a name is unknown or none is given.
    public static func set(named names: some Sequence<some StringProtocol>) -> Set<Scope>? {
        var scopes = Set<Scope>()
        for name in names {
            guard let scope = Scope(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased()) else { return nil }
            scopes.insert(scope)
        }
        return scopes.isEmpty ? nil : scopes
    }
}

/// Requests allowed per fixed window; nil limit means unlimited.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var limit: Int?
    public var windowSeconds: Int

    public static let `default` = RateLimit(limit: 1000, windowSeconds: 3600)
    public static let unlimited = RateLimit(limit: nil, windowSeconds: 3600)

    public init(limit: Int?, windowSeconds: Int) {
        self.limit = limit
        self.windowSeconds = windowSeconds
    }

    /// "1000/h", "60/min", "10/s", "5000/day" or "unlimited".
    public init?(parsing text: String) {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        if text == "unlimited" {
            self = .unlimited
            return
        }
        let parts = text.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, let limit = Int(parts[0]), limit > 0 else { return nil }
        let window: Int? = switch parts[1] {
        case "s", "sec", "second": 1
        case "m", "min", "minute": 60
        case "h", "hr", "hour": 3600
        case "d", "day": 86_400
        default: nil
        }
        guard let window else { return nil }
        self.init(limit: limit, windowSeconds: window)
    }

    public var description: String {
        guard let limit else { return "unlimited" }
        let unit = switch windowSeconds {
        case 1: "s"
        case 60: "min"
        case 86_400: "day"
        default: windowSeconds == 3600 ? "h" : "\(windowSeconds)s"
        }
        return "\(limit)/\(unit)"
    }
}

/// An API key as stored: never the key itself, only its SHA-256.
public struct APIKey: Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// The key's first characters, so a person can tell keys apart in `keys list`.
    public var prefix: String
    public var scopes: Set<Scope>
    public var rateLimit: RateLimit
    public var createdAt: Int64
    public var revokedAt: Int64?
}

public enum APIKeys {
    static let keyPrefix = "llk_"

    /// A live key already has the name: names tell keys apart, and `keys revoke NAME` must
    /// revoke the one key meant.
    public struct NameTaken: Error {}

    /// More than one live key has the name (stores from before names were unique): revoke by id.
    public struct AmbiguousName: Error {
        public let ids: [Int64]
    }

    /// A name that is a number, as `Int64(_:)` reads one (ASCII digits with an optional sign:
    /// "7", "+7", "-7"), would be taken for an id by `keys revoke`, which would then revoke
    /// another key: such names are refused. Spaces around it do not count, as names are trimmed.
    public static func isNumericName(_ name: String) -> Bool {
        var digits = Substring(name.trimmingCharacters(in: .whitespaces))
        if digits.first == "+" || digits.first == "-" { digits = digits.dropFirst() }
        return !digits.isEmpty && digits.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// A name with a control character (a line break, an ANSI escape) would forge lines or
    /// repaint the terminal of whoever runs `keys list`: such names are refused.
    public static func hasControlCharacters(_ name: String) -> Bool {
        name.unicodeScalars.contains { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }
    }

    /// Creates a key and returns it with its record. The key is shown once: only its hash is kept.
    public static func create(name: String, scopes: Set<Scope>, rateLimit: RateLimit = .default, in db: Database) throws -> (key: String, record: APIKey) {
        let name = name.trimmingCharacters(in: .whitespaces)  // "dash " and "dash" are one name
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", arguments: [name]) != nil {
            throw NameTaken()
        }
        let key = keyPrefix + randomToken()
        let now = LeadStore.nowMillis()
        let prefix = String(key.prefix(keyPrefix.count + 6))
        try db.execute(sql: """
            INSERT INTO api_keys (name, prefix, key_hash, scopes, rate_limit, rate_window, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [name, prefix, hash(key), encode(scopes), rateLimit.limit, rateLimit.windowSeconds, now])
        let record = APIKey(id: db.lastInsertedRowID, name: name, prefix: prefix, scopes: scopes,
                            rateLimit: rateLimit, createdAt: now, revokedAt: nil)
        return (key, record)
    }

    public static func list(in db: Database) throws -> [APIKey] {
        try Row.fetchAll(db, sql: "SELECT * FROM api_keys ORDER BY id").map(record)
    }

    /// The live (not revoked) key with this secret.
    public static func find(key: String, in db: Database) throws -> APIKey? {
        try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                         arguments: [hash(key)]).map(record)
    }

    /// Revokes by id or by name; returns how many keys it revoked (0 or 1). A name two live keys
    /// share revokes neither: ``AmbiguousName``.
    /// A number (``isNumericName(_:)``, the names creation refuses) is an id; anything else a name.
    public static func revoke(_ idOrName: String, in db: Database) throws -> Int {
        let now = LeadStore.nowMillis()
        let text = idOrName.trimmingCharacters(in: .whitespaces)
        if isNumericName(text) {
            // A number past Int64 is no key's id.
            guard let id = Int64(text) else { return 0 }
            try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [now, id])
        } else {
            let ids = try Int64.fetchAll(db, sql: "SELECT id FROM api_keys WHERE name = ? AND revoked_at IS NULL ORDER BY id",
                                         arguments: [text])
            if ids.count > 1 { throw AmbiguousName(ids: ids) }
            try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ?", arguments: [now, ids.first ?? -1])
        }
        return db.changesCount
    }

    static func hash(_ key: String) -> Data {
        Data(SHA256.hash(data: Data(key.utf8)))
    }

    /// 32 random bytes, base64url: 256 bits from the system's CSPRNG.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64URLEncodedString
    }

    static func encode(_ scopes: Set<Scope>) -> String {
        Scope.allCases.filter(scopes.contains).map(\.rawValue).joined(separator: ",")
    }

    static func record(_ row: Row) -> APIKey {
        let scopes = (row["scopes"] as String).split(separator: ",").compactMap { Scope(rawValue: String($0)) }
        return APIKey(
            id: row["id"], name: row["name"], prefix: row["prefix"], scopes: Set(scopes),
            rateLimit: RateLimit(limit: row["rate_limit"], windowSeconds: row["rate_window"]),
            createdAt: row["created_at"], revokedAt: row["revoked_at"])
    }
}
