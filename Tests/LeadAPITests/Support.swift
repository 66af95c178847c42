import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import LeadAPI
import LeadStore
import NIOCore
import Testing

/// A file store in a temporary folder (so the server's reader pool and change monitor are
/// real), seeded with deterministic leads, and keys of every scope.
struct TestAPI {
    let store: LeadStore
    let directory: URL
    let admin: String
    let reader: String
    /// Write only: what a form or a pipeline holds. Writes to a lead answer with its id alone.
    let writer: String
    /// Read and write: what a sales tool holds, whose writes answer with the lead.
    let editor: String
    let everything: String

    static let statuses = ["new", "contacted", "qualified", "converted", "lost"]
    static let sources = ["web", "ads", "referral", nil]

    init(leads: Int = 0, now: Int64 = LeadStore.nowMillis()) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-api-\(UUID().uuidString)")
        store = try LeadStore.open(path: directory.appendingPathComponent("store.sqlite").path)
        (admin, reader, writer, editor, everything) = try store.writer.write { db in
            try Self.seed(leads, now: now, in: db)
            return (try APIKeys.create(name: "admin", scopes: [.admin], rateLimit: .unlimited, in: db).key,
                    try APIKeys.create(name: "reader", scopes: [.read], rateLimit: .unlimited, in: db).key,
                    try APIKeys.create(name: "writer", scopes: [.write], rateLimit: .unlimited, in: db).key,
                    try APIKeys.create(name: "editor", scopes: [.read, .write], rateLimit: .unlimited, in: db).key,
                    try APIKeys.create(name: "all", scopes: [.read, .write, .admin], rateLimit: .unlimited, in: db).key)
        }
    }

    /// Leads spread over 60 days before `now`, with every status, a few sources, scores of
    /// 0–100 or none, and a tag on some.
    static func seed(_ count: Int, now: Int64, in db: Database) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for i in 0..<count {
            let created = now - Int64(next() % (60 * 86_400_000))
            let scored = next() % 5 != 0
            let score = Int(next() % 101)
            let probability = Double(score) / 100 * 0.98 + 0.01
            try db.execute(sql: """
                INSERT INTO leads (external_id, email, first_name, last_name, company, source, status, assigned_to,
                                   created_at, updated_at, score, probability, model_version, scored_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [
                    "E\(i)", "person\(i)@example.com", "First\(i)", "Last\(i % 37)", "Company \(i % 11)",
                    sources[Int(next() % 4)], statuses[Int(next() % 5)], i % 3 == 0 ? "rep-\(i % 2)" : nil,
                    created, created, scored ? score : nil, scored ? probability : nil, scored ? "test-v1" : nil,
                    scored ? now : nil,
                ])
            if i % 4 == 0 {
                try db.execute(sql: "INSERT INTO lead_tags (lead_id, tag) VALUES (?, 'vip')", arguments: [db.lastInsertedRowID])
            }
        }
    }

    var app: some ApplicationProtocol {
        buildApplication(store: store, configuration: APIConfiguration(version: "test"))
    }

    /// The app with a configuration of the test's own.
    func app(_ configure: (inout APIConfiguration) -> Void) -> some ApplicationProtocol {
        var configuration = APIConfiguration(version: "test")
        configure(&configuration)
        return buildApplication(store: store, configuration: configuration)
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// One decoded response.
struct Reply {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }
    var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
    var list: [[String: Any]] { json["data"] as? [[String: Any]] ?? [] }
    var meta: [String: Any] { json["meta"] as? [String: Any] ?? [:] }
    var errorCode: String? { json["code"] as? String }
    var fieldErrors: [String: [String]] { json["errors"] as? [String: [String]] ?? [:] }
    var text: String { String(buffer: body) }
    var links: [String: Any] { json["links"] as? [String: Any] ?? [:] }

    /// A list sent whole is one page in the usual envelope: its meta counts the items it holds
    /// and its links all point at `path`.
    func expectWholeList(path: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let count = list.count
        #expect(meta["total"] as? Int == count, sourceLocation: sourceLocation)
        #expect(meta["per_page"] as? Int == count, sourceLocation: sourceLocation)
        #expect(meta["current_page"] as? Int == 1 && meta["last_page"] as? Int == 1, sourceLocation: sourceLocation)
        if count > 0 {
            #expect(meta["from"] as? Int == 1 && meta["to"] as? Int == count, sourceLocation: sourceLocation)
        } else {
            #expect(meta["from"] is NSNull && meta["to"] is NSNull, sourceLocation: sourceLocation)
        }
        #expect(meta["next_cursor"] is NSNull, sourceLocation: sourceLocation)
        for name in ["first", "last", "self"] { #expect(links[name] as? String == path, sourceLocation: sourceLocation) }
        #expect(links["prev"] is NSNull && links["next"] is NSNull, sourceLocation: sourceLocation)
    }

    func header(_ name: String) -> String? {
        HTTPFields.Element.Name(name).flatMap { headers[$0] }
    }
}

extension TestClientProtocol {
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String?, json: Any? = nil, raw: String? = nil,
        contentType: String? = nil, headers extra: HTTPFields = [:]
    ) async throws -> Reply {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json))
            headers[.contentType] = "application/json"
        } else if let raw {
            body = ByteBuffer(string: raw)
        }
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: method, headers: headers, body: body) { response in
            Reply(status: response.status, headers: response.headers, body: response.body)
        }
    }
}

/// `bytes` compressed by gzip(1), as an event pipeline sends a body with `Content-Encoding: gzip`.
func gzipped(_ bytes: [UInt8]) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-c"]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    // Written from another thread: a body larger than the pipe's buffer would otherwise
    // block this one while gzip blocks writing its output.
    let writer = Thread {
        input.fileHandleForWriting.write(Data(bytes))
        try? input.fileHandleForWriting.close()
    }
    writer.start()
    let compressed = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0, !compressed.isEmpty else {
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "gzip -c exited \(process.terminationStatus)"])
    }
    return Array(compressed)
}

/// `bytes` as raw deflate data (RFC 1951): gzip(1)'s output without its 10-byte header (it
/// writes no name from a pipe) and 8-byte trailer.
func rawDeflated(_ bytes: [UInt8]) throws -> [UInt8] {
    let gzip = try gzipped(bytes)
    precondition(gzip[3] == 0, "a gzip header with optional fields")
    return Array(gzip[10..<(gzip.count - 8)])
}

/// `bytes` as zlib data (RFC 1950), what HTTP calls `deflate`: a header, raw deflate, Adler-32.
func zlibWrapped(_ bytes: [UInt8]) throws -> [UInt8] {
    var a: UInt32 = 1, b: UInt32 = 0
    for byte in bytes {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }
    let adler = b << 16 | a
    return [0x78, 0x9C] + (try rawDeflated(bytes)) + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: adler >> $0) }
}
