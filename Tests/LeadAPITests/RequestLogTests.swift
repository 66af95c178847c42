import Foundation
import Hummingbird
import HummingbirdTesting
import LeadAPI
import LeadStore
import Logging
import Synchronization
import Testing

@Suite("Request ids and the access log")
struct RequestLogTests {
    static let requestID = HTTPFields.Element.Name("X-Request-ID")!

    @Test("each response carries a request id; a well-formed client id is kept, anything else replaced")
    func requestIDs() async throws {
        let api = try TestAPI(leads: 2)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            var seen: Set<String> = []
            for _ in 0..<2 {
                try await client.execute(uri: "/api/v1/health", method: .get) { response in
                    let id = try #require(response.headers[Self.requestID])
                    #expect(!id.isEmpty && RequestLogTests.isWellFormed(id))
                    seen.insert(id)
                }
            }
            #expect(seen.count == 2, "each request gets an id of its own")
            try await client.execute(uri: "/api/v1/health", method: .get, headers: [Self.requestID: "lb-7f3a:Root=1"]) { response in
                #expect(response.headers[Self.requestID] == "lb-7f3a:Root=1")
            }
            for bad in ["two words", String(repeating: "a", count: 129), "id\u{7F}", "ünïcode"] {
                try await client.execute(uri: "/api/v1/health", method: .get, headers: [Self.requestID: bad]) { response in
                    let id = try #require(response.headers[Self.requestID])
                    #expect(id != bad && RequestLogTests.isWellFormed(id))
                }
            }
            // Errors carry it too: a 401 from the auth middleware, a 404 nothing routed.
            try await client.execute(uri: "/api/v1/leads", method: .get, headers: [Self.requestID: "req-401"]) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[Self.requestID] == "req-401")
            }
            try await client.execute(uri: "/nowhere", method: .get, headers: [Self.requestID: "req-404"]) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[Self.requestID] == "req-404")
            }
        }
    }

    @Test("at info, one line per request: method, route pattern, status, duration, key name; never the path as sent or the query")
    func accessLog() async throws {
        let api = try TestAPI(leads: 3)
        defer { api.cleanUp() }
        let sink = LogSink()
        var logger = Logger(label: "test") { _ in CapturingLogHandler(sink: sink) }
        logger.logLevel = .info
        let app = buildApplication(store: api.store, configuration: APIConfiguration(version: "test"), logger: logger)
        let leadID = try await api.store.writer.read { db in try Int64.fetchOne(db, sql: "SELECT min(id) FROM leads") }
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/leads/\(try #require(leadID))", method: .get,
                                     headers: [.authorization: "Bearer \(api.reader)", Self.requestID: "req-show"]) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/v1/leads?search=person1%40example.com", method: .get,
                                     headers: [.authorization: "Bearer \(api.reader)", Self.requestID: "req-search"]) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/v1/leads/999999", method: .get,
                                     headers: [.authorization: "Bearer \(api.reader)", Self.requestID: "req-missing"]) { _ in }
            try await client.execute(uri: "/api/v1/leads", method: .get, headers: [Self.requestID: "req-nokey"]) { _ in }
            try await client.execute(uri: "/secret%0Aforged=line", method: .get, headers: [Self.requestID: "req-unrouted"]) { _ in }
            // An uptime check's HEAD: its body is dropped after the route answers, its line is not.
            try await client.execute(uri: "/api/v1/leads/stats", method: .head,
                                     headers: [.authorization: "Bearer \(api.reader)", Self.requestID: "req-head"]) { response in
                #expect(response.status == .ok)
            }
        }
        let lines = sink.entries.filter { $0.message == "request" }
        func line(_ id: String) -> [String: String]? {
            lines.first { $0.metadata["hb.request.id"] == id }?.metadata
        }
        #expect(lines.count == 6)
        #expect(line("req-head")?["http.method"] == "HEAD" && line("req-head")?["http.route"] == "/api/v1/leads/stats")
        let show = try #require(line("req-show"))
        #expect(show["http.method"] == "GET")
        #expect(show["http.route"] == "/api/v1/leads/{id}")
        #expect(show["http.status"] == "200")
        #expect(show["api_key"] == "reader")
        #expect(Double(show["duration_ms"] ?? "") != nil)
        #expect(line("req-search")?["http.route"] == "/api/v1/leads")
        #expect(line("req-missing")?["http.status"] == "404")
        #expect(line("req-nokey")?["http.status"] == "401")
        #expect(line("req-nokey")?["api_key"] == "-")
        #expect(line("req-unrouted")?["http.route"] == "unmatched")
        let everything = sink.entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(!everything.contains("person1"), "a query's lead data never reaches the log")
        #expect(!everything.contains("forged") && !everything.contains("secret"), "nor a path as sent")
        #expect(!everything.contains(api.reader), "nor the key itself")
    }

    @Test("below info no line is logged, and ids are still sent")
    func quietByDefault() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let sink = LogSink()
        var logger = Logger(label: "test") { _ in CapturingLogHandler(sink: sink) }
        logger.logLevel = .warning
        let app = buildApplication(store: api.store, configuration: APIConfiguration(version: "test"), logger: logger)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/health", method: .get) { response in
                #expect(response.headers[Self.requestID] != nil)
            }
        }
        #expect(sink.entries.isEmpty)
    }

    static func isWellFormed(_ id: String) -> Bool {
        id.utf8.count <= 128 && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:=".contains($0)) }
    }
}

final class LogSink: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }
    private let stored = Mutex<[Entry]>([])
    var entries: [Entry] { stored.withLock { $0 } }
    func append(_ entry: Entry) { stored.withLock { $0.append(entry) } }
}

/// Keeps its metadata as a value, as a real handler does, so a middleware's
/// `logger[metadataKey:]` reaches the lines logged through that logger.
struct CapturingLogHandler: LogHandler {
    let sink: LogSink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        sink.append(.init(level: event.level, message: "\(event.message)",
                          metadata: merged.mapValues { "\($0)" }))
    }
}
