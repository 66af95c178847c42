import Foundation
import GRDB
@testable import LeadReports
import LeadScoring
import LeadStore

/// A lead put straight into a test store (ingestion and scoring have their own tests).
struct TestLead {
    var externalID: String
    var firstName: String? = nil
    var lastName: String? = nil
    var email: String? = nil
    var company: String? = nil
    var source: String? = nil
    var status = "new"
    var createdAt: Int64
    /// nil: unscored.
    var probability: Double? = nil
}

enum TestStore {
    static let day: Int64 = 86_400_000
    /// 2026-03-15T10:00:00Z: a fixed "now", so periods and ids don't depend on the clock.
    static let now = Date(timeIntervalSince1970: 1_773_568_800)
    static var nowMillis: Int64 { Int64(now.timeIntervalSince1970 * 1000) }

    static let modelsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models")

    /// A file store in a fresh temporary folder, holding `leads`, with the shipped default model
    /// registered and active (scored leads carry its version).
    static func make(_ leads: [TestLead], in directory: URL) throws -> LeadStore {
        let store = try LeadStore.open(path: directory.appendingPathComponent("store.sqlite").path)
        let model = try ModelRegistry.activeOrDefault(store.writer, defaultURL: modelsDirectory.appendingPathComponent("default.json"))
        try store.writer.write { db in
            let insert = try db.makeStatement(sql: """
                INSERT INTO leads (external_id, first_name, last_name, email, company, source, status, created_at, updated_at,
                                   score, probability, model_version, scored_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for lead in leads {
                try insert.execute(arguments: [
                    lead.externalID, lead.firstName, lead.lastName, lead.email, lead.company, lead.source, lead.status,
                    lead.createdAt, lead.createdAt, lead.probability.map { LeadScorer.score(probability: $0) }, lead.probability,
                    lead.probability == nil ? nil : model?.version, lead.probability == nil ? nil : lead.createdAt,
                ])
            }
        }
        return store
    }

    /// `count` leads over the 60 days before `now`, with awkward values mixed in: markup, CSV
    /// metacharacters, formulas, non-ASCII, unusual statuses, no source, unscored leads.
    static func leads(count: Int, seed: UInt64) -> [TestLead] {
        var random = SplitMix(state: seed)
        let sources: [String?] = ["google_ads", "organic", "referral", nil, "<b>bold</b> & co", "=HYPERLINK(\"x\")", "webinar"]
        let statuses = ["new", "contacted", "qualified", "converted", "lost", "disqualified", "on hold"]
        let names = ["Ana", "<script>alert(1)</script>", "Zoë", "O'Brien", "\"Quoted\"", "Comma, Inc", "Line\nBreak", "José"]
        return (0..<count).map { index in
            let probability = random.below(10) == 0 ? nil : random.uniform()
            let status = statuses[random.below(statuses.count)]
            return TestLead(
                externalID: "L\(index)", firstName: names[random.below(names.count)], lastName: random.below(3) == 0 ? nil : "Smith",
                email: "lead\(index)@example.com", company: random.below(4) == 0 ? "Acme, \"Widgets\"\r\nLtd" : "Company \(index % 17)",
                source: sources[random.below(sources.count)], status: status,
                createdAt: nowMillis - Int64(random.below(60 * 24 * 60)) * 60_000 - 1, probability: probability)
        }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-reports-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A strict RFC 4180 reader, written independently of the writer: CRLF or LF record ends,
/// quoted fields with doubled quotes. Fails on anything malformed.
enum CSVReader {
    struct Malformed: Error { var reason: String }

    static func parse(_ text: String) throws -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var inQuotes = false
        var fieldWasQuoted = false
        var iterator = Array(text.unicodeScalars)[...]
        while let c = iterator.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if iterator.first == "\"" { iterator.removeFirst(); field.unicodeScalars.append("\"") } else { inQuotes = false }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard field.isEmpty, !fieldWasQuoted else { throw Malformed(reason: "quote inside an unquoted field") }
                inQuotes = true
                fieldWasQuoted = true
            case ",":
                record.append(field); field = ""; fieldWasQuoted = false
            case "\r":
                guard iterator.first == "\n" else { throw Malformed(reason: "bare CR") }
            case "\n":
                record.append(field); field = ""; fieldWasQuoted = false
                records.append(record); record = []
            default:
                guard !fieldWasQuoted else { throw Malformed(reason: "text after a closing quote") }
                field.unicodeScalars.append(c)
            }
        }
        guard !inQuotes else { throw Malformed(reason: "unterminated quoted field") }
        guard record.isEmpty && field.isEmpty else { throw Malformed(reason: "last record has no line end") }
        return records
    }

    /// Header → value dictionaries, checking every record has the header's width.
    static func table(_ url: URL) throws -> (header: [String], rows: [[String: String]]) {
        let records = try parse(String(contentsOf: url, encoding: .utf8))
        guard let header = records.first else { throw Malformed(reason: "no header") }
        let rows = try records.dropFirst().map { record -> [String: String] in
            guard record.count == header.count else { throw Malformed(reason: "a record of \(record.count) fields, header has \(header.count)") }
            return Dictionary(uniqueKeysWithValues: zip(header, record))
        }
        return (header, rows)
    }
}

/// Just enough HTML reading for the checks: tags in order, with void and self-closed elements
/// told apart, and the text of entities decoded.
enum HTMLCheck {
    static let voidElements: Set<String> = ["meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"]

    /// Problems with tag balance; empty when every opened element is closed in order.
    static func balanceProblems(_ html: String) -> [String] {
        var stack: [String] = []
        var problems: [String] = []
        let scalars = Array(html.unicodeScalars)
        var i = 0
        func text(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(scalars[range])) }
        while i < scalars.count {
            guard scalars[i] == "<" else { i += 1; continue }
            if text(i..<min(i + 4, scalars.count)) == "<!--" {
                while i + 2 < scalars.count && text(i..<i + 3) != "-->" { i += 1 }
                i += 3
                continue
            }
            guard let close = scalars[i...].firstIndex(of: ">") else { problems.append("unterminated tag"); break }
            let tag = text(i + 1..<close)
            i = close + 1
            if tag.hasPrefix("!") { continue }  // doctype
            let isEnd = tag.hasPrefix("/")
            let name = String(tag.dropFirst(isEnd ? 1 : 0).prefix { $0.isLetter || $0.isNumber }).lowercased()
            guard !name.isEmpty else { problems.append("bad tag <\(tag)>"); continue }
            if isEnd {
                if stack.last == name { stack.removeLast() } else { problems.append("</\(name)> closes <\(stack.last ?? "nothing")>") }
            } else if !voidElements.contains(name) && !tag.hasSuffix("/") {
                stack.append(name)
                // Raw text elements: skip to their end tag.
                if name == "style" || name == "script" {
                    if let end = html.range(of: "</\(name)>", range: String.Index(utf16Offset: 0, in: html)..<html.endIndex) {
                        let offset = html.unicodeScalars.distance(from: html.unicodeScalars.startIndex, to: end.lowerBound)
                        if offset > i { i = offset }
                    }
                }
            }
        }
        problems += stack.map { "<\($0)> never closed" }
        return problems
    }

    static func decodeEntities(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    /// Every match's capture groups.
    static func captures(_ pattern: String, in text: String) throws -> [[String]] {
        let regex = try NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { match in
            (1..<match.numberOfRanges).map { ns.substring(with: match.range(at: $0)) }
        }
    }
}
