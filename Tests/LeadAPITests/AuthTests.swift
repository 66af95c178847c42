import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
@testable import LeadAPI
import LeadStore
import Logging
import Testing

@Suite("Auth, scopes and rate limits")
struct AuthTests {
    @Test("a missing, unknown or revoked key gets 401 in the error shape; both header forms work")
    func unauthorized() async throws {
        let api = try TestAPI(leads: 3)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let missing = try await client.call(.get, "/api/v1/leads", key: nil)
            #expect(missing.status == .unauthorized)
            #expect(missing.errorCode == "UNAUTHORIZED")
            #expect(missing.json["status"] as? String == "error")
            let wrong = try await client.call(.get, "/api/v1/leads", key: "llk_not-a-key")
            #expect(wrong.status == .unauthorized)
            // Paths the router reads as an API route need a key however they are spelled.
            for path in ["//api/v1/leads", "/api//v1/leads/1", "/api/v1/leads/", "/api/v1///keys"] {
                #expect(try await client.call(.get, path, key: nil).status == .unauthorized, "\(path)")
            }
            #expect(try await client.call(.post, "//api/v1/keys", key: nil, json: ["name": "x", "scopes": ["admin"]]).status
                    == .unauthorized)
            #expect(try await client.call(.get, "/api/v1/health/", key: nil).status == .ok)

            let bearer = try await client.call(.get, "/api/v1/leads", key: api.reader)
            #expect(bearer.status == .ok)
            var headers = HTTPFields()
            headers[HTTPFields.Element.Name("X-API-Key")!] = api.reader
            let viaHeader = try await client.execute(uri: "/api/v1/leads", method: .get, headers: headers) { $0.status }
            #expect(viaHeader == .ok)
            let padded = try await client.execute(uri: "/api/v1/leads", method: .get,
                                                  headers: [.authorization: "bearer \t \(api.reader)"]) { $0.status }
            #expect(padded == .ok)

            let created = try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": "temp", "scopes": ["read"]])
            #expect(created.status == .created)
            let secret = try #require(created.data["key"] as? String)
            #expect(try await client.call(.get, "/api/v1/leads", key: secret).status == .ok)
            let id = try #require(created.data["id"] as? Int)
            let keys = try await client.call(.get, "/api/v1/keys", key: api.admin)
            #expect(keys.list.contains { $0["id"] as? Int == id && $0["key"] == nil }, "a listed key never shows its secret")
            keys.expectWholeList(path: "/api/v1/keys")
            // A live key's name is its own: revoking "admin" by name must not take a second key with it.
            let taken = try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": "admin", "scopes": ["read"]])
            #expect(taken.status == .conflict && taken.fieldErrors["name"] != nil)
            // A misspelt setting is named, not replaced by its default (1000/h here).
            for name in ["1", "+1", "-1", " 2 "] {
                let numeric = try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": name, "scopes": ["read"]])
                #expect(numeric.status == .unprocessableContent && numeric.fieldErrors["name"] != nil, "revoke \(name) would take a key by id")
            }
            let typo = try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": "t2", "scopes": ["read"], "ratee": "1/s"])
            #expect(typo.status == .unprocessableContent && typo.fieldErrors["ratee"] != nil)
            let rescoreTypo = try await client.call(.post, "/api/v1/leads/rescore", key: api.admin, json: ["id": [1]])
            #expect(rescoreTypo.status == .unprocessableContent && rescoreTypo.fieldErrors["id"] != nil, "not a rescore of every lead")
            #expect(try await client.call(.delete, "/api/v1/keys/\(id)", key: api.admin).status == .noContent)
            #expect(try await client.call(.get, "/api/v1/leads", key: secret).status == .unauthorized)
            // Once revoked, the name is free again.
            #expect(try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": "temp", "scopes": ["read"]]).status == .created)
        }
    }

    @Test("a write-only key is told which lead it wrote, never what the lead holds")
    func writeOnlyKeysReadNothing() async throws {
        let api = try TestAPI(leads: 3)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/leads", key: api.writer, json: ["email": "w@example.com", "first_name": "Wes"])
            #expect(created.status == .created)
            #expect(Set(created.data.keys) == ["id", "updated_at"], "\(created.data)")
            #expect(try OpenAPITests.mismatches(created.json, OpenAPITests.responseSchema("POST", "/api/v1/leads", 201)) == [])
            let id = try #require(created.data["id"] as? Int)
            for (method, path, body) in [(HTTPRequest.Method.post, "/tags", ["name": "zz"]), (.delete, "/tags/zz", [:]),
                                         (.put, "/status", ["status": "new"]), (.patch, "", ["company": "Acme"]),
                                         (.put, "/assign", ["user_id": NSNull()]), (.put, "/notes", ["notes": "x"])] as [(HTTPRequest.Method, String, [String: Any])] {
                let reply = try await client.call(method, "/api/v1/leads/\(id)\(path)", key: api.writer, json: body)
                #expect((200..<300).contains(reply.status.code) && Set(reply.data.keys) == ["id", "updated_at"], "\(method) \(path): \(reply.data)")
            }
            // A key that may read gets the lead.
            let full = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["company": "Initech"])
            #expect(full.data["email"] as? String == "w@example.com" && full.data["company"] as? String == "Initech")
            #expect(try OpenAPITests.mismatches(full.json, OpenAPITests.responseSchema("PATCH", "/api/v1/leads/{id}", 200)) == [])
        }
    }

    @Test("Bearer and X-API-Key must agree when both are sent; an admin key follows the jobs it starts")
    func keyHeadersAndJobs() async throws {
        let api = try TestAPI(leads: 3)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            func get(_ path: String, bearer: String?, header: String?) async throws -> TestResponse {
                var headers = HTTPFields()
                if let bearer { headers[.authorization] = "Bearer \(bearer)" }
                if let header { headers[HTTPFields.Element.Name("X-API-Key")!] = header }
                return try await client.execute(uri: path, method: .get, headers: headers, body: nil) { $0 }
            }
            #expect(try await get("/api/v1/leads", bearer: api.reader, header: api.reader).status == .ok)
            #expect(try await get("/api/v1/leads", bearer: "bad", header: api.reader).status == .unauthorized)
            #expect(try await get("/api/v1/leads", bearer: api.reader, header: "bad").status == .unauthorized)

            try LeadRoutesTests.activateDefaultModel(api.store)
            let job = try await client.call(.post, "/api/v1/leads/rescore", key: api.admin)
            #expect(job.status == .accepted)
            let location = try #require(job.header("Location"))
            #expect(try await client.call(.get, location, key: api.admin).status == .ok)
            #expect(try await client.call(.get, "/api/v1/leads", key: api.admin).status == .forbidden, "no other read")
        }
    }

    @Test("a key name with control characters is refused: it would forge lines in keys list")
    func keyNamesWithoutControlCharacters() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            for name in ["bad\nname", "red\u{1B}[31m", "tab\tname", "zero\u{200B}width"] {
                let reply = try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": name, "scopes": ["read"]])
                #expect(reply.status == .unprocessableContent && reply.fieldErrors["name"] != nil, "\(name.debugDescription)")
            }
            #expect(try await client.call(.post, "/api/v1/keys", key: api.admin, json: ["name": "Café dashboard", "scopes": ["read"]]).status == .created)
        }
    }

    @Test("a report that cannot be written is a 500 that names no server path")
    func reportFailureNamesNoPath() async throws {
        let api = try TestAPI(leads: 3)
        defer { api.cleanUp() }
        let blocker = api.directory.appendingPathComponent("not-a-folder")
        try Data("x".utf8).write(to: blocker)
        let app = api.app { $0.reportsDirectory = blocker.appendingPathComponent("reports").path }
        try await app.test(.router) { client in
            let reply = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["period": "7d"])
            #expect(reply.status == .internalServerError && reply.errorCode == "SERVER_ERROR")
            #expect(!reply.text.contains(api.directory.path) && !reply.text.contains("not-a-folder"), "\(reply.text)")
        }
    }

    @Test("a store another process holds locked past the busy timeout is a 500 with Retry-After, its SQL left out")
    func busyStore() throws {
        let request = Request(head: .init(method: .post, scheme: "http", authority: "localhost", path: "/api/v1/leads"), body: .init(buffer: .init()))
        let busy = DatabaseError(resultCode: .SQLITE_BUSY, message: "database is locked", sql: "INSERT INTO leads (email) VALUES ('a@b.c')")
        let error = APIError.wrapping(busy, request: request, bodyLimit: 1 << 20, logger: Logger(label: "test"))
        #expect(error.code == .serverError && error.headers[.retryAfter] == "1")
        #expect(!error.message.contains("INSERT") && !error.message.contains("a@b.c"))
    }

    @Test("keys are stored only as SHA-256 hashes")
    func hashedAtRest() throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let stored = try api.store.reader.read { db in try Data.fetchAll(db, sql: "SELECT key_hash FROM api_keys") }
        #expect(stored.count == 5)
        #expect(stored.allSatisfy { $0.count == 32 })
        let dump = try api.store.reader.read { db in
            try String.fetchAll(db, sql: "SELECT name || prefix || scopes FROM api_keys").joined()
        }
        #expect(!dump.contains(api.admin))
        #expect(stored.contains(APIKeys.hash(api.admin)))
    }

    /// Every route the router registers under /api/v1, but health, as a request path: each
    /// parameter filled with a value that names nothing.
    static func protectedRoutes() throws -> [(method: HTTPRequest.Method, route: String, path: String)] {
        let router = buildRouter(store: try LeadStore.inMemory(), configuration: APIConfiguration(version: "test"))
        return router.routes.compactMap { route in
            let pattern = route.path.description
            guard pattern.hasPrefix("/api/v1/"), pattern != "/api/v1/health" else { return nil }
            let path = route.path.components.map { $0.description.hasPrefix("{") || $0.description.hasPrefix(":") ? "404404" : $0.description }
            return (route.method, pattern, "/" + path.joined(separator: "/"))
        }
    }

    @Test("every route under /api/v1 but health answers 401 without a key, and 403 to a key without its scope")
    func everyRouteIsGuarded() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let routes = try Self.protectedRoutes()
        #expect(routes.count > 30, "the router's routes were not found")
        // For each scope, a key that holds both others.
        let lacking = try await api.store.writer.write { db in
            try Dictionary(uniqueKeysWithValues: [Scope.read, .write, .admin].map { missing in
                (missing, try APIKeys.create(name: "no-\(missing)", scopes: Set([Scope.read, .write, .admin]).subtracting([missing]),
                                             rateLimit: .unlimited, in: db).key)
            })
        }
        try await api.app.test(.router) { client in
            for (method, route, path) in routes {
                let anonymous = try await client.call(method, path, key: nil, json: [:])
                #expect(anonymous.status == .unauthorized, "\(method) \(route)")
                if method != .head { #expect(anonymous.errorCode == "UNAUTHORIZED", "\(method) \(route)") }
                let scope = RequiredScope.for(method: method, route: route)
                // The key lacking read holds admin, which may follow jobs.
                if RequiredScope.alsoAdmits([.write, .admin], method: method, route: route) { continue }
                let refused = try await client.call(method, path, key: lacking[scope], json: [:])
                #expect(refused.status == .forbidden, "\(method) \(route) with a key lacking \(scope)")
            }
        }
    }

    @Test("every route that takes a body answers 413 to one over the limit, before reading it")
    func everyBodyRouteRefusesOversizedBodies() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let routes = try Self.protectedRoutes().filter { [.post, .put, .patch].contains($0.method) }
        #expect(routes.count > 15, "the router's routes were not found")
        try await api.app.test(.router) { client in
            for (method, route, path) in routes {
                let reply = try await client.execute(
                    uri: path, method: method,
                    headers: [.authorization: "Bearer \(api.everything)", .contentType: "application/json",
                              .contentLength: String(APILimits.maxBodyBytes + 1)],
                    body: nil) { $0 }
                #expect(reply.status == .contentTooLarge, "\(method) \(route)")
                #expect(String(buffer: reply.body).contains("PAYLOAD_TOO_LARGE"), "\(method) \(route)")
            }
        }
    }

    @Test("the body limit is the server's to set, and a 413 names it")
    func configuredBodyLimit() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app { $0.maxBodyBytes = 4 << 10 }.test(.router) { client in
            let note = String(repeating: "n", count: 3_000)
            let fits = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "fits@example.com", "notes": note])
            #expect(fits.status == .created)
            let over = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                             json: ["email": "over@example.com", "notes": note + note])
            #expect(over.status == .contentTooLarge)
            #expect(over.json["message"] as? String == "the request body is over the limit of 4 KiB")
            // Compressed, the limit holds for what the body decodes to.
            let events = try JSONSerialization.data(withJSONObject: ["type": "track", "userId": "zip", "event": String(repeating: "e", count: 400),
                                                                     "properties": ["pad": String(repeating: "p", count: 6_000)]])
            let packed = try await client.execute(
                uri: "/api/v1/events", method: .post,
                headers: [.authorization: "Bearer \(api.writer)", .contentType: "application/json", .contentEncoding: "gzip"],
                body: ByteBuffer(bytes: try gzipped(Array(events)))) { $0 }
            #expect(packed.status == .contentTooLarge)
            // The same on a lead that does not exist: a body refused is a 413, not a 404.
            let patch = try JSONSerialization.data(withJSONObject: ["notes": String(repeating: "n", count: 6_000)])
            let missing = try await client.execute(
                uri: "/api/v1/leads/404404", method: .patch,
                headers: [.authorization: "Bearer \(api.writer)", .contentType: "application/json", .contentEncoding: "gzip"],
                body: ByteBuffer(bytes: try gzipped(Array(patch)))) { $0 }
            #expect(missing.status == .contentTooLarge)
        }
        #expect(ByteCount.parse("20M") == 20 << 20 && ByteCount.parse("512 KiB") == 512 << 10 && ByteCount.parse("1000") == 1000)
        #expect(ByteCount.parse("1.5M") == nil && ByteCount.parse("M") == nil && ByteCount.parse("10X") == nil
                && ByteCount.parse("99999999999G") == nil)
        #expect(ByteCount.describe(10 << 20) == "10 MiB" && ByteCount.describe(4096) == "4 KiB" && ByteCount.describe(1536) == "1536 bytes")
    }

    @Test("a key without the route's scope gets 403", arguments: [
        ("reader", HTTPRequest.Method.post, "/api/v1/leads"),
        ("reader", .post, "/api/v1/events"),
        ("writer", .get, "/api/v1/leads"),
        ("writer", .post, "/api/v1/models/train"),
        ("reader", .post, "/api/v1/leads/rescore"),
        ("writer", .get, "/api/v1/keys"),
        ("admin", .get, "/api/v1/leads/stats"),
        ("writer", .get, "/api/v1/reports"),
        ("writer", .post, "/api/v1/reports"),
        // The router skips empty segments and a trailing slash; the scope check must too.
        ("writer", .post, "/api/v1//keys"),
        ("writer", .post, "/api/v1/models//train"),
        ("writer", .post, "/api/v1/leads/rescore/"),
        ("reader", .delete, "//api/v1/leads/1"),
    ])
    func forbidden(key: String, method: HTTPRequest.Method, path: String) async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let secret = ["reader": api.reader, "writer": api.writer, "admin": api.admin][key]!
        try await api.app.test(.router) { client in
            let reply = try await client.call(method, path, key: secret, json: [:])
            #expect(reply.status == .forbidden)
            #expect(reply.errorCode == "FORBIDDEN")
        }
    }

    @Test("over its limit a key gets 429 with Retry-After; every response carries the rate headers")
    func rateLimited() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let limited = try await api.store.writer.write { db in
            try APIKeys.create(name: "tight", scopes: [.read], rateLimit: RateLimit(limit: 2, windowSeconds: 3600), in: db).key
        }
        try await api.app.test(.router) { client in
            let first = try await client.call(.get, "/api/v1/leads", key: limited)
            #expect(first.status == .ok)
            #expect(first.header("X-RateLimit-Limit") == "2")
            #expect(first.header("X-RateLimit-Remaining") == "1")
            let reset = try #require(first.header("X-RateLimit-Reset").flatMap(Int64.init))
            let now = Int64(Date().timeIntervalSince1970)
            #expect(reset > now && reset <= now + 3600)
            // An error response is still authenticated: it carries the headers too.
            let second = try await client.call(.get, "/api/v1/leads/999999", key: limited)
            #expect(second.status == .notFound)
            #expect(second.header("X-RateLimit-Remaining") == "0")
            let third = try await client.call(.get, "/api/v1/leads", key: limited)
            #expect(third.status == .tooManyRequests)
            #expect(third.errorCode == "RATE_LIMITED")
            #expect(third.header("X-RateLimit-Remaining") == "0")
            let retry = try #require(third.header("Retry-After").flatMap(Int64.init))
            #expect(retry >= 1 && retry <= 3600)
        }
    }

    @Test("fixed windows: the count resets when the window turns")
    func windows() {
        let clock = ManualClock(seconds: 7200)
        let limiter = RateLimiter(clock: { clock.seconds })
        let limit = RateLimit(limit: 2, windowSeconds: 60)
        #expect(limiter.take(key: 1, limit: limit).allowed)
        #expect(limiter.take(key: 1, limit: limit).allowed)
        let refused = limiter.take(key: 1, limit: limit)
        #expect(!refused.allowed)
        #expect(refused.reset == 7260)
        #expect(limiter.take(key: 2, limit: limit).allowed, "keys are counted apart")
        clock.seconds = 7260
        #expect(limiter.take(key: 1, limit: limit).allowed)
        #expect(limiter.take(key: 1, limit: .unlimited).allowed)
    }

    @Test("rate strings parse as documented")
    func rates() {
        #expect(RateLimit(parsing: "1000/h") == RateLimit(limit: 1000, windowSeconds: 3600))
        #expect(RateLimit(parsing: "60/min") == RateLimit(limit: 60, windowSeconds: 60))
        #expect(RateLimit(parsing: "unlimited")?.limit == nil)
        #expect(RateLimit(parsing: "0/h") == nil)
        #expect(RateLimit(parsing: "ten/h") == nil)
        #expect(RateLimit(parsing: "5/fortnight") == nil)
    }

    @Test("a name is refused exactly when revoke would read it as an id, as Int64(_:) does")
    func numericNamesAreIDs() throws {
        for text in ["7", "+7", "-7", " 7 ", "007", "99999999999999999999"] {
            #expect(APIKeys.isNumericName(text), "\(text)")
        }
        for text in ["7a", "+", "-", "", " ", "1.5", "1e3", "+-1", "1 2", "\u{0663}"] {
            #expect(!APIKeys.isNumericName(text), "\(text)")
            #expect(Int64(text.trimmingCharacters(in: .whitespaces)) == nil, "\(text)")
        }
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            let first = try APIKeys.create(name: "first", scopes: [.read], in: db).record
            _ = try APIKeys.create(name: "second", scopes: [.read], in: db)
            #expect(try APIKeys.revoke("+\(first.id)", in: db) == 1, "a signed number is an id, as it is refused as a name")
            #expect(try APIKeys.revoke("99999999999999999999", in: db) == 0, "a number past Int64 is no key's id")
            #expect(try APIKeys.revoke(" second ", in: db) == 1, "names are trimmed, as when created")
        }
    }

    @Test("scopes: GET needs read, changes need write, keys/training/rescoring/reports need admin")
    func requiredScopes() {
        #expect(RequiredScope.for(method: .get, route: "/api/v1/leads/stats") == .read)
        #expect(RequiredScope.for(method: .post, route: "/api/v1/intake") == .write)
        #expect(RequiredScope.for(method: .delete, route: "/api/v1/leads/{id}") == .write)
        #expect(RequiredScope.for(method: .post, route: "/api/v1/models/train") == .admin)
        #expect(RequiredScope.for(method: .post, route: "/api/v1/leads/rescore") == .admin)
        #expect(RequiredScope.for(method: .get, route: "/api/v1/keys") == .admin)
        #expect(RequiredScope.for(method: .delete, route: "/api/v1/keys/{id}") == .admin)
        #expect(RequiredScope.for(method: .post, route: "/api/v1/reports") == .admin)
        #expect(RequiredScope.for(method: .get, route: "/api/v1/reports/{id}/{file}") == .read)
        #expect(RequiredScope.for(method: .get, route: "/api/v1/keysight") == .read, "a prefix of a word is not the keys route")
    }
}

final class ManualClock: @unchecked Sendable {
    var seconds: Int64
    init(seconds: Int64) { self.seconds = seconds }
}

@Suite("Cross-origin access")
struct CrossOriginTests {
    static let dashboard = "https://dash.example.com"

    func call(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, origin: String?, key: String? = nil,
              extra: HTTPFields = [:]) async throws -> TestResponse {
        var headers = extra
        if let origin { headers[.origin] = origin }
        if let key { headers[.authorization] = "Bearer \(key)" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: nil) { $0 }
    }

    @Test("an allowed origin's preflight passes without a key, and its pages read answers and errors with their rate headers; other origins get no CORS headers")
    func allowedOrigins() async throws {
        let api = try TestAPI(leads: 3)
        defer { api.cleanUp() }
        let app = api.app { $0.corsOrigins = [Self.dashboard] }
        try await app.test(.router) { client in
            let preflight = try await call(client, .options, "/api/v1/leads/stats", origin: Self.dashboard,
                                           extra: [.accessControlRequestMethod: "GET", .accessControlRequestHeaders: "authorization"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == Self.dashboard)
            #expect(preflight.headers[.accessControlAllowHeaders]?.lowercased().contains("x-api-key") == true)

            let stats = try await call(client, .get, "/api/v1/leads/stats", origin: Self.dashboard, key: api.reader)
            #expect(stats.status == .ok && stats.headers[.accessControlAllowOrigin] == Self.dashboard)
            #expect(stats.headers[.vary]?.contains("Origin") == true)
            // Read on the response itself: a dashboard shows the key's rate limit.
            #expect(stats.headers[.accessControlExposeHeaders]?.contains("X-RateLimit-Remaining") == true)
            let unauthorized = try await call(client, .get, "/api/v1/leads", origin: Self.dashboard)
            #expect(unauthorized.status == .unauthorized && unauthorized.headers[.accessControlAllowOrigin] == Self.dashboard)
            #expect(unauthorized.headers[.accessControlExposeHeaders]?.contains("Retry-After") == true, "errors expose their headers too")
            let errorBody = try JSONSerialization.jsonObject(with: Data(unauthorized.body.readableBytesView)) as? [String: Any]
            #expect(errorBody?["code"] as? String == "UNAUTHORIZED", "the one error shape")

            let elsewhere = try await call(client, .get, "/api/v1/leads/stats", origin: "https://evil.example", key: api.reader)
            #expect(elsewhere.status == .ok && elsewhere.headers[.accessControlAllowOrigin] == nil)
            #expect(elsewhere.headers[.vary]?.contains("Origin") == true, "a shared cache keeps the origins apart")
            let elsewherePreflight = try await call(client, .options, "/api/v1/leads/stats", origin: "https://evil.example",
                                                    extra: [.accessControlRequestMethod: "GET"])
            #expect(elsewherePreflight.headers[.accessControlAllowOrigin] == nil)
        }
        // Off unless asked for.
        try await api.app.test(.router) { client in
            let plain = try await call(client, .get, "/api/v1/leads/stats", origin: Self.dashboard, key: api.reader)
            #expect(plain.status == .ok && plain.headers[.accessControlAllowOrigin] == nil)
        }
    }

    @Test("origins are taken as browsers send them, or refused")
    func originSyntax() {
        #expect(CrossOrigin.normalized("https://Dash.Example.com/") == "https://dash.example.com")
        #expect(CrossOrigin.normalized("http://localhost:3000") == "http://localhost:3000")
        #expect(CrossOrigin.normalized("*") == "*")
        #expect(CrossOrigin.normalized("https://a.example:443") == "https://a.example")
        #expect(CrossOrigin.normalized("http://[::1]:8080") == "http://[::1]:8080")
        for bad in ["dash.example.com", "https://dash.example.com/app", "ftp://x.example", "https://", "https://*.example.com",
                    "https://user@a.com", "https://a b.com", "https://a.com:99999", "https://a.com:"] {
            #expect(CrossOrigin.normalized(bad) == nil, "\(bad)")
        }
    }
}
