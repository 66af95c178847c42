import Foundation
import Hummingbird
import HummingbirdTesting
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

    /// The same keys for the routes the server's router registers. A HEAD registered beside a
    /// GET counts as the GET's, as the HEADs the router generates for every GET do: the
    /// document lists the GET.
    static func registeredOperations() throws -> Set<String> {
        let router = buildRouter(store: try LeadStore.inMemory(), configuration: APIConfiguration(version: "test"))
        let routes = router.routes.map { (method: $0.method, path: $0.path.description) }
        let gets = Set(routes.filter { $0.method == .get }.map(\.path))
        return Set(routes.filter { !($0.method == .head && gets.contains($0.path)) }
            .map { operationKey(method: $0.method.rawValue, path: $0.path) })
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

    /// Where a JSON value departs from a schema of the document: a key the schema does not list
    /// (unless `additionalProperties` allows it), a required key missing, a wrong type, an array
    /// outside `minItems`/`maxItems`, a string outside its `enum` or `const`. The subset of JSON
    /// Schema openapi.json describes shapes with; formats and descriptions are not checked.
    static func mismatches(_ value: Any, _ schema: [String: Any], at path: String = "$") throws -> [String] {
        let schema = try flattened(schema)
        var found: [String] = []
        if let types = (schema["type"] as? [String]) ?? (schema["type"] as? String).map({ [$0] }) {
            let type = jsonType(value)
            guard types.contains(type) || (type == "integer" && types.contains("number")) else {
                return ["\(path): \(type), documented as \(types.joined(separator: " or "))"]
            }
        }
        if let allowed = schema["enum"] as? [String], let text = value as? String, !allowed.contains(text) {
            found.append("\(path): \"\(text)\" is not in its enum")
        }
        if let constant = schema["const"] as? String, let text = value as? String, text != constant {
            found.append("\(path): \"\(text)\", documented as \"\(constant)\"")
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: [String: Any]]
            for key in (schema["required"] as? [String] ?? []) where object[key] == nil {
                found.append("\(path).\(key): required, but missing")
            }
            for (key, member) in object.sorted(by: { $0.key < $1.key }) {
                if let property = properties?[key] {
                    found += try mismatches(member, property, at: "\(path).\(key)")
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    found += try mismatches(member, additional, at: "\(path).\(key)")
                } else if properties != nil && schema["additionalProperties"] as? Bool != true {
                    found.append("\(path).\(key): not documented")
                }
            }
        }
        if let array = value as? [Any] {
            if let minimum = schema["minItems"] as? Int, array.count < minimum {
                found.append("\(path): \(array.count) items, documented minItems \(minimum)")
            }
            if let maximum = schema["maxItems"] as? Int, array.count > maximum {
                found.append("\(path): \(array.count) items, documented maxItems \(maximum)")
            }
            if let items = schema["items"] as? [String: Any] {
                for (index, item) in array.enumerated() { found += try mismatches(item, items, at: "\(path)[\(index)]") }
            }
        }
        for keyword in ["oneOf", "anyOf"] {
            guard let branches = schema[keyword] as? [[String: Any]] else { continue }
            let results = try branches.map { try mismatches(value, $0, at: path) }
            if !results.contains(where: \.isEmpty) {
                found.append("\(path): matches no branch of its \(keyword); the first: \(results.first ?? [])")
            }
        }
        return found
    }

    /// `schema` with its `$ref` followed and its `allOf` merged into one object schema, so that a
    /// key documented by any part counts as documented.
    static func flattened(_ schema: [String: Any]) throws -> [String: Any] {
        var schema = schema
        if let reference = schema["$ref"] as? String {
            var target: Any = try document()
            for component in reference.dropFirst(2).split(separator: "/") {
                target = try #require((target as? [String: Any])?[String(component)], "\(reference) resolves")
            }
            schema.removeValue(forKey: "$ref")
            schema.merge(try flattened(try #require(target as? [String: Any]))) { mine, _ in mine }
        }
        guard let parts = schema.removeValue(forKey: "allOf") as? [[String: Any]] else { return schema }
        for part in try parts.map(flattened) {
            let properties = (schema["properties"] as? [String: Any] ?? [:]).merging(part["properties"] as? [String: Any] ?? [:]) { a, _ in a }
            let required = (schema["required"] as? [String] ?? []) + (part["required"] as? [String] ?? [])
            schema.merge(part) { mine, _ in mine }
            if !properties.isEmpty { schema["properties"] = properties }
            if !required.isEmpty { schema["required"] = required }
        }
        return schema
    }

    static func jsonType(_ value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case _ where JSONNumbers.isBool(value): "boolean"
        case let number as NSNumber: number.doubleValue.rounded() == number.doubleValue ? "integer" : "number"
        case is String: "string"
        case is [Any]: "array"
        case is [String: Any]: "object"
        default: "\(type(of: value))"
        }
    }

    /// The schema the document gives the JSON response of `method path` with `status`.
    static func responseSchema(_ method: String, _ path: String, _ status: Int) throws -> [String: Any] {
        let paths = try #require(try document()["paths"] as? [String: [String: Any]])
        let operation = try #require(paths[path]?[method.lowercased()] as? [String: Any], "\(method) \(path) is documented")
        let responses = try #require(operation["responses"] as? [String: [String: Any]])
        var response = try #require(responses[String(status)], "\(method) \(path) documents \(status)")
        if response["$ref"] != nil { response = try flattened(response) }
        let content = response["content"] as? [String: [String: Any]]
        return try #require(content?["application/json"]?["schema"] as? [String: Any], "\(method) \(path) \(status) is JSON")
    }

    /// The schema a component names, as a `$ref` to it.
    static func schema(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }

    @Test("the shape checker finds undocumented, missing and mistyped keys, through $ref, allOf and oneOf")
    func shapeChecker() throws {
        let schema: [String: Any] = ["allOf": [
            ["type": "object", "properties": ["a": ["type": "integer"]], "required": ["a"]],
            ["properties": ["b": ["type": ["string", "null"], "enum": ["x"]], "c": ["type": "array", "minItems": 1, "items": ["type": "number"]]]],
        ]]
        #expect(try Self.mismatches(["a": 1, "b": "x", "c": [1.5]], schema) == [])
        #expect(try Self.mismatches(["a": 1, "b": NSNull(), "c": [2]], schema) == [], "an integer is a number; null allowed")
        #expect(try Self.mismatches(["b": "y", "c": [], "d": true], schema) == [
            "$.a: required, but missing", "$.b: \"y\" is not in its enum", "$.c: 0 items, documented minItems 1", "$.d: not documented",
        ])
        #expect(try Self.mismatches(["a": "1"], schema) == ["$.a: string, documented as integer"])
        #expect(try !Self.mismatches(["status": "ok"], Self.schema("Error")).isEmpty, "through $ref")
        let either: [String: Any] = ["oneOf": [["type": "string"], ["type": "boolean"]]]
        #expect(try Self.mismatches(true, either) == [])
        #expect(try Self.mismatches(1, either).count == 1)
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

    @Test("an empty events batch, as a pipeline's flush sends it, is accepted with zero counts, as documented")
    func emptyEventsBatch() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let body: [String: Any] = ["batch": [Any]()]
        let requestMismatches = try Self.mismatches(body, Self.schema("EventsRequest"))
        #expect(requestMismatches == [])
        try await api.app.test(.router) { client in
            let reply = try await client.call(.post, "/api/v1/events", key: api.writer, raw: #"{"batch": []}"#)
            #expect(reply.status == .ok)
            let replyMismatches = try Self.mismatches(reply.json, Self.responseSchema("POST", "/api/v1/events", 200))
            #expect(replyMismatches == [])
            for count in ["events_added", "duplicates", "leads_created", "leads_merged", "rejected"] {
                #expect(reply.data[count] as? Int == 0, "\(count)")
            }
            #expect((reply.data["leads"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("reports and models come in their documented shapes")
    func reportAndModelShapes() async throws {
        let api = try TestAPI(leads: 50)
        defer { api.cleanUp() }
        try LeadRoutesTests.activateDefaultModel(api.store)
        let app = api.app { $0.reportsDirectory = api.directory.appendingPathComponent("reports").path }
        try await app.test(.router) { client in
            let made = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["period": "90d"])
            #expect(made.status == .created)
            let madeMismatches = try Self.mismatches(made.json, Self.responseSchema("POST", "/api/v1/reports", 201))
            #expect(madeMismatches == [])
            #expect((made.data["files"] as? [[String: Any]])?.count == 6, "every file of a report is checked")
            let listed = try await client.call(.get, "/api/v1/reports", key: api.reader)
            let listedMismatches = try Self.mismatches(listed.json, Self.responseSchema("GET", "/api/v1/reports", 200))
            #expect(listedMismatches == [])
            let active = try await client.call(.get, "/api/v1/models/active", key: api.reader)
            let activeMismatches = try Self.mismatches(active.json, Self.responseSchema("GET", "/api/v1/models/active", 200))
            #expect(activeMismatches == [])
            let models = try await client.call(.get, "/api/v1/models", key: api.reader)
            let modelsMismatches = try Self.mismatches(models.json, Self.responseSchema("GET", "/api/v1/models", 200))
            #expect(modelsMismatches == [])

            // A model file from before undefined values were written as null leaves them out;
            // the API still gives every documented key.
            try await api.store.writer.write { db in
                try db.execute(sql: "UPDATE models SET body = json_remove(body, '$.metrics.auc', '$.metrics.calibration[0].mean_predicted')")
            }
            let older = try await client.call(.get, "/api/v1/models/active", key: api.reader)
            let olderMismatches = try Self.mismatches(older.json, Self.responseSchema("GET", "/api/v1/models/active", 200))
            #expect(olderMismatches == [])
            let metrics = try #require(older.data["metrics"] as? [String: Any])
            #expect(metrics["auc"] is NSNull)
        }
    }

    @Test("Content-Encoding is documented on exactly the operations that decode their body by it")
    func contentEncodingIsDocumentedWhereDecoded() async throws {
        let api = try TestAPI(leads: 2)
        defer { api.cleanUp() }
        let paths = try #require(try Self.document()["paths"] as? [String: [String: Any]])
        var operations: [(method: String, path: String)] = []
        var documented = Set<String>()
        for (path, item) in paths {
            for method in Self.methods {
                guard let operation = item[method] as? [String: Any], operation["requestBody"] != nil else { continue }
                operations.append((method.uppercased(), path))
                let parameters = operation["parameters"] as? [[String: Any]] ?? []
                if parameters.contains(where: { $0["$ref"] as? String == "#/components/parameters/ContentEncoding" }) {
                    documented.insert("\(method.uppercased()) \(path)")
                }
            }
        }
        let app = api.app { $0.reportsDirectory = api.directory.appendingPathComponent("reports").path }
        let requests = operations
        let decoding = try await app.test(.router) { client in
            var decoding = Set<String>()
            for (method, path) in requests {
                // An encoding no route takes: a route that decodes by the header refuses it, naming it.
                let uri = path.replacingOccurrences(of: "{id}", with: "1").replacingOccurrences(of: "{tag}", with: "vip")
                let headers: HTTPFields = [.authorization: "Bearer \(api.everything)", .contentEncoding: "br",
                                           .contentType: "application/json"]
                let reply = try await client.execute(uri: uri, method: HTTPRequest.Method(method)!, headers: headers,
                                                     body: ByteBuffer(string: "{}")) { $0 }
                let body = (try? JSONSerialization.jsonObject(with: Data(buffer: reply.body))) as? [String: Any]
                if (body?["errors"] as? [String: Any])?["Content-Encoding"] != nil { decoding.insert("\(method) \(path)") }
            }
            return decoding
        }
        #expect(!decoding.isEmpty)
        #expect(decoding.subtracting(documented).sorted() == [], "decoded but not documented")
        #expect(documented.subtracting(decoding).sorted() == [], "documented but not decoded")
    }
}
