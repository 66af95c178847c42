import Foundation
import GRDB
@testable import LeadIngest
import LeadStore

/// A scratch folder removed when the test ends.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> URL {
        try write(name, Data(text.utf8))
    }

    @discardableResult
    func write(_ name: String, _ data: Data) throws -> URL {
        let file = url.appendingPathComponent(name)
        try data.write(to: file)
        return file
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// Collects rejects in memory.
final class RejectRecorder: Ingest.RejectSink {
    var rejects: [(error: IngestError, raw: String?)] = []
    func reject(_ error: IngestError, path: String, raw: String?) {
        rejects.append((error, raw))
    }
}

struct LeadRow: Equatable {
    var externalID: String?
    var email: String?
    var phone: String?
    var firstName: String?
    var lastName: String?
    var company: String?
    var source: String?
    var status: String
    var value: Double?
    var createdAt: Int64
}

extension LeadStore {
    func leads() throws -> [LeadRow] {
        try reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT external_id, email, phone, first_name, last_name, company, source, status, value, created_at
                FROM leads ORDER BY id
                """).map {
                LeadRow(externalID: $0[0], email: $0[1], phone: $0[2], firstName: $0[3], lastName: $0[4],
                        company: $0[5], source: $0[6], status: $0[7], value: $0[8], createdAt: $0[9])
            }
        }
    }

    func count(_ table: String) throws -> Int {
        try reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)") ?? 0 }
    }

    func customValues(externalID: String) throws -> [String: String] {
        try reader.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT f.label, v.value FROM lead_custom_values v
                JOIN custom_fields f ON f.id = v.field_id JOIN leads l ON l.id = v.lead_id
                WHERE l.external_id = ?
                """, arguments: [externalID])
            return Dictionary(uniqueKeysWithValues: rows.map { ($0[0], $0[1]) })
        }
    }

    func tags(externalID: String) throws -> [String] {
        try reader.read { db in
            try String.fetchAll(db, sql: """
                SELECT t.tag FROM lead_tags t JOIN leads l ON l.id = t.lead_id WHERE l.external_id = ? ORDER BY t.tag
                """, arguments: [externalID])
        }
    }
}

/// A file-backed store in a temporary folder (WAL needs a file).
func makeFileStore(in directory: TemporaryDirectory) throws -> LeadStore {
    try LeadStore.open(path: directory.path("leadlens.sqlite"))
}

@discardableResult
func ingest(_ store: LeadStore, _ url: URL, options: Ingest.Options = Ingest.Options(), rejects: RejectRecorder? = nil) throws -> Ingest.FileSummary {
    try Ingester(store: store).ingest(path: url.path, options: options, rejects: rejects)
}

/// What is wrong with the event properties dictionary: rows whose reference count is not the
/// number of events naming them (a row nobody names should be gone), and events naming a row
/// that does not exist. Empty in a consistent store.
func propertySetMismatches(_ db: Database) throws -> [String] {
    let miscounted = try String.fetchAll(db, sql: """
        SELECT 'set ' || s.id || ': refs ' || s.refs || ', named by ' || coalesce(c.n, 0)
        FROM event_property_sets s
        LEFT JOIN (SELECT properties_id, count(*) AS n FROM events GROUP BY properties_id) c ON c.properties_id = s.id
        WHERE s.refs != coalesce(c.n, 0)
        """)
    let dangling = try String.fetchAll(db, sql: """
        SELECT 'event ' || id || ' names missing set ' || properties_id FROM events
        WHERE properties_id IS NOT NULL AND properties_id NOT IN (SELECT id FROM event_property_sets)
        """)
    return miscounted + dangling
}
