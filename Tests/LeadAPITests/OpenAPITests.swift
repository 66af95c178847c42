import Foundation
import Hummingbird
import LeadAPI
import LeadStore
import Testing

/// openapi.json is the API's contract: these tests fail when a route is missing from it, when it
/// documents a route the server lacks, or when its error shape drifts from `APIError`.
@Suite("OpenAPI document")
struct OpenAPITests {
    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    /// The document as a JSON object.
    static func document() throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: OpenAPIDocument.data) as? [String: Any])
    }

    /// "GET /api/v1/leads/{}" for each documented operation.
    static func documentedOperations() throws -> Set<String> {
        let paths = try #require(try document()["paths"] as? [String: [String: Any]])
        var operations = Set<String>()
        for (path, item) in paths {
            for method in methods where item[method] != nil {
                operations.insert(operationKey(method: method, path: path))
            }
        }
        return operations
    }

    /// The same keys for the routes the server's router registers.
    static func registeredOperations() throws -> Set<String> {
        let router = buildRouter(store: try LeadStore.inMemory(), configuration: APIConfiguration(version: "test"))
        return Set(router.routes.map { operationKey(method: $0.method.rawValue, path: $0.path.description) })
    }

    static func operationKey(method: String, path: String) -> String {
        "\(method.uppercased()) \(normalize(path))"
    }

    /// A path with every parameter written "{}", so names and syntax don't matter: Hummingbird
    /// renders a capture as "{id}" but accepts ":id" when registering, and a controller may name it
    /// differently from the document. Empty segments (a trailing or doubled slash) are dropped.
    static func normalize(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { segment -> String in
            if segment.hasPrefix(":") { return "{}" }
            // "{id}", and captures inside a segment such as "{file}.json"
            return segment.replacingOccurrences(of: #"\{[^}/]*\}"#, with: "{}", options: .regularExpression)
        }
        return "/" + segments.joined(separator: "/")
    }

    @Test("paths normalize: :id and {id} match, names and trailing slashes don't matter")
    func normalization() {
        #expect(Self.normalize("/api/v1/leads/:id") == "/api/v1/leads/{}")
        #expect(Self.normalize("/api/v1/leads/{id}/") == "/api/v1/leads/{}")
        #expect(Self.normalize("api/v1/leads/{leadID}/tags/:tag") == "/api/v1/leads/{}/tags/{}")
        #expect(Self.normalize("/reports/{id}/{file}.csv") == "/reports/{}/{}.csv")
        #expect(Self.normalize("/") == "/")
        #expect(Self.operationKey(method: "get", path: "/api/v1/health/") == "GET /api/v1/health")
    }

    @Test("the document is OpenAPI 3.1 with both auth schemes")
    func header() throws {
        let document = try Self.document()
        #expect((document["openapi"] as? String)?.hasPrefix("3.1") == true)
        let components = try #require(document["components"] as? [String: Any])
        let schemes = try #require(components["securitySchemes"] as? [String: [String: Any]])
        #expect(schemes.values.contains { $0["type"] as? String == "http" && $0["scheme"] as? String == "bearer" })
        #expect(schemes.values.contains {
            $0["type"] as? String == "apiKey" && $0["in"] as? String == "header" && $0["name"] as? String == "X-API-Key"
        })
    }

    @Test("every route the router registers is documented")
    func routesAreDocumented() throws {
        let missing = try Self.registeredOperations().subtracting(Self.documentedOperations())
        #expect(missing.sorted() == [], "routes missing from openapi.json")
    }

    @Test("every documented operation is a route")
    func documentedOperationsExist() throws {
        let missing = try Self.documentedOperations().subtracting(Self.registeredOperations())
        #expect(missing.sorted() == [], "documented in openapi.json but not registered")
    }

    @Test("GET /openapi.json's response is the document, as JSON")
    func response() {
        let response = OpenAPIDocument.response()
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
        #expect(response.body.contentLength == OpenAPIDocument.data.count)
    }

    @Test("the Error schema's codes are APIError's")
    func errorCodes() throws {
        let components = try #require(try Self.document()["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: [String: Any]])
        let codes = try #require(schemas["ErrorCode"]?["enum"] as? [String])
        #expect(Set(codes) == Set(APIError.Code.allCases.map(\.rawValue)))
        let error = try #require(schemas["Error"])
        #expect(Set(error["required"] as? [String] ?? []) == ["status", "message", "code", "errors"])
    }

    @Test("every 4xx and 5xx response has the one Error shape")
    func errorResponses() throws {
        let document = try Self.document()
        let components = try #require(document["components"] as? [String: Any])
        let shared = try #require(components["responses"] as? [String: [String: Any]])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var wrong: [String] = []
        for (path, item) in paths {
            for method in Self.methods {
                guard let operation = item[method] as? [String: Any],
                      let responses = operation["responses"] as? [String: [String: Any]] else { continue }
                for (status, response) in responses where status.hasPrefix("4") || status.hasPrefix("5") {
                    // Resolve a shared response ("#/components/responses/NotFound").
                    let resolved = (response["$ref"] as? String).flatMap { shared[$0.components(separatedBy: "/").last!] }
                        ?? response
                    let content = resolved["content"] as? [String: [String: Any]]
                    let schema = content?["application/json"]?["schema"] as? [String: Any]
                    if schema?["$ref"] as? String != "#/components/schemas/Error" {
                        wrong.append("\(method.uppercased()) \(path) \(status)")
                    }
                }
            }
        }
        #expect(wrong.sorted() == [], "error responses without the Error schema")
    }
}
