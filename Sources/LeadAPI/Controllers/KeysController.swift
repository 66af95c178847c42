import Foundation
import GRDB
import Hummingbird
import LeadStore

/// /api/v1/keys (admin): list, create and revoke API keys. A new key is shown once.
struct KeysController {
    let services: APIServices

    func register(on api: RouterGroup<APIRequestContext>) {
        api.get("keys", use: list)
        api.post("keys", use: create)
        api.delete("keys/:id", use: revoke)
    }

    struct KeyJSON: Encodable, Sendable {
        let key: APIKey
        var secret: String?

        enum CodingKeys: String, CodingKey {
            case id, name, prefix, scopes, rateLimit = "rate_limit", createdAt = "created_at", revokedAt = "revoked_at", key
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(key.id, forKey: .id)
            try c.encode(key.name, forKey: .name)
            try c.encode(key.prefix, forKey: .prefix)
            try c.encode(Scope.allCases.filter(key.scopes.contains).map(\.rawValue), forKey: .scopes)
            try c.encode(key.rateLimit.limit == nil ? nil : key.rateLimit.description, forKey: .rateLimit)
            try c.encode(ISODate.string(key.createdAt), forKey: .createdAt)
            try c.encode(key.revokedAt.map(ISODate.string), forKey: .revokedAt)
            if let secret { try c.encode(secret, forKey: .key) }
        }
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> WholeList<KeyJSON> {
        let keys = try await services.store.reader.read { db in try APIKeys.list(in: db) }
        return WholeList(keys.map { KeyJSON(key: $0) }, path: "/api/v1/keys")
    }

    struct CreateBody: StrictBody {
        let name: String
        let scopes: [String]
        let rate: String?
        static let knownKeys: Set<String> = ["name", "scopes", "rate"]
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let body = try await LeadBody.decode(CreateBody.self, request, context: context)
        var errors: [String: [String]] = [:]
        let name = body.name.trimmingCharacters(in: .whitespaces)
        if name.isEmpty || name.count > 100 { errors["name"] = ["must be 1 to 100 characters"] }
        if APIKeys.isNumericName(name) { errors["name"] = ["must not be a number (digits, signed or not): a number names a key's id"] }
        if APIKeys.hasControlCharacters(name) { errors["name"] = ["must not hold control characters (line breaks, escapes)"] }
        let scopes = Scope.set(named: body.scopes)
        if scopes == nil { errors["scopes"] = ["must list read, write or admin"] }
        let rate = body.rate.map { RateLimit(parsing: $0) } ?? .default
        if rate == nil { errors["rate"] = ["must look like 10/s, 60/min, 1000/h, 5000/day or unlimited"] }
        if !errors.isEmpty { throw APIError(.validationFailed, "invalid key", errors: errors) }
        let created: (key: String, record: APIKey)
        do {
            created = try await services.write { db in try APIKeys.create(name: name, scopes: scopes!, rateLimit: rate!, in: db) }
        } catch is APIKeys.NameTaken {
            throw APIError(.conflict, "a live key already has this name", errors: ["name": ["is taken by a live key; revoke it first or choose another"]])
        }
        return try EditedResponse(status: .created, response: DataResponse(data: KeyJSON(key: created.record, secret: created.key)))
            .response(from: request, context: context)
    }

    @Sendable func revoke(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let raw = context.parameters.get("id"), let id = Int64(raw) else { throw APIError(.notFound, "no such key") }
        let revoked = try await services.write { db in try APIKeys.revoke(String(id), in: db) }
        guard revoked > 0 else { throw APIError(.notFound, "no such live key") }
        services.keys.invalidate()
        return Response(status: .noContent)
    }
}
