import Foundation
import Hummingbird
import HummingbirdTesting
import LeadAPI
import LeadStore
import Testing

@Suite("API basics")
struct HealthTests {
    func makeStore(leads: Int) throws -> LeadStore {
        let store = try LeadStore.inMemory()
        try store.writer.write { db in
            for i in 0..<leads {
                try db.execute(sql: "INSERT INTO leads (external_id, created_at, updated_at) VALUES (?, 0, 0)", arguments: ["L\(i)"])
            }
        }
        return store
    }

    @Test("GET /api/v1/health answers without auth, unwrapped, with the lead count")
    func health() async throws {
        let store = try makeStore(leads: 3)
        let app = buildApplication(store: store, configuration: APIConfiguration(version: "9.9.9"))
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/health", method: .get) { response in
                #expect(response.status == .ok)
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(body?["status"] as? String == "ok")
                #expect(body?["version"] as? String == "9.9.9")
                #expect(body?["leads"] as? Int == 3)
                #expect(body?["model_version"] is NSNull)
                let timestamp = try #require(body?["timestamp"] as? String)
                #expect(ISO8601DateFormatter().date(from: timestamp) != nil)
            }
        }
    }

    @Test("an unknown route answers 404 in the one error shape (401 without a key: routes are not revealed)")
    func unknownRoute() async throws {
        let store = try makeStore(leads: 0)
        let key = try await store.writer.write { db in try APIKeys.create(name: "k", scopes: [.read], in: db).key }
        let app = buildApplication(store: store, configuration: APIConfiguration(version: "1"))
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/nothing-here", method: .get) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/api/v1/nothing-here", method: .get, headers: [.authorization: "Bearer \(key)"]) { response in
                #expect(response.status == .notFound)
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(body?["status"] as? String == "error")
                #expect(body?["code"] as? String == "NOT_FOUND")
                #expect(body?["errors"] as? [String: Any] != nil)
                #expect((body?["message"] as? String)?.isEmpty == false)
            }
        }
    }

    @Test("HEAD of the streamed export claims no length: its headers are the GET's, Content-Length left out")
    func headOfStreamedExport() async throws {
        let store = try makeStore(leads: 3)
        let key = try await store.writer.write { db in try APIKeys.create(name: "k", scopes: [.read, .write], in: db).key }
        let auth: HTTPFields = [.authorization: "Bearer \(key)"]
        try await buildApplication(store: store, configuration: APIConfiguration(version: "1")).test(.router) { client in
            let get = try await client.execute(uri: "/api/v1/leads/export", method: .get, headers: auth) { $0 }
            #expect(get.status == .ok && get.headers[.contentLength] == nil, "streamed")
            try await client.execute(uri: "/api/v1/leads/export", method: .head, headers: auth) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentLength] == nil, "not Content-Length: 0 for a body that is not empty")
                #expect(response.headers[.contentType] == get.headers[.contentType])
                #expect(response.headers[.contentDisposition] == get.headers[.contentDisposition])
                #expect(response.body.readableBytes == 0)
            }
            // A bad query is the GET's 422, and the path still answers only GET and HEAD.
            try await client.execute(uri: "/api/v1/leads/export?min_score=200", method: .head, headers: auth) { response in
                #expect(response.status == .unprocessableContent)
            }
            try await client.execute(uri: "/api/v1/leads/export", method: .post, headers: auth) { response in
                #expect(response.status == .methodNotAllowed && response.headers[.allow] == "GET, HEAD")
            }
        }
    }

    @Test("a known path under another method answers 405 with Allow; an unknown path stays 404")
    func wrongMethod() async throws {
        let store = try makeStore(leads: 1)
        let key = try await store.writer.write { db in try APIKeys.create(name: "k", scopes: [.read, .write, .admin], in: db).key }
        let app = buildApplication(store: store, configuration: APIConfiguration(version: "1"))
        let auth: HTTPFields = [.authorization: "Bearer \(key)"]
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/leads/stats", method: .delete, headers: auth) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD")
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(body?["code"] as? String == "METHOD_NOT_ALLOWED")
                #expect(body?["errors"] as? [String: Any] != nil)
            }
            // A captured segment matches any id: the lead route's methods, whether or not it exists.
            try await client.execute(uri: "/api/v1/leads/123456", method: .post, headers: auth) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "DELETE, GET, HEAD, PATCH, PUT")
            }
            try await client.execute(uri: "/api/v1/leads/1/tags/vip", method: .get, headers: auth) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "DELETE")
            }
            try await client.execute(uri: "/api/v1/leads/1/nothing", method: .post, headers: auth) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.allow] == nil)
            }
            // HEAD is answered wherever GET is, without a body; a handler's own 404 stays one.
            try await client.execute(uri: "/api/v1/health", method: .head) { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/api/v1/leads/stats", method: .head, headers: auth) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/v1/leads/999999", method: .get, headers: auth) { response in
                #expect(response.status == .notFound)
            }
            // Without a key the route table is not revealed.
            try await client.execute(uri: "/api/v1/leads/stats", method: .delete) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }
}
