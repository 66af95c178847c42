import Foundation
import LeadStore

/// The records parsed since the last batch was handed over. A reference, so that while the
/// source waits for a slow writer mid-batch, the reader's wait hook can hand them over.
final class ParsedRecords {
    fileprivate(set) var records: [Ingest.Record] = []
    /// Rows seen so far, good or rejected: the progress count.
    fileprivate(set) var rows = 0

    func take() -> [Ingest.Record] {
        defer { records = [] }
        return records
    }
}

/// Turns an input stream into batches of records, handing bad rows to the reject collector.
struct RecordSource {
    private enum Parser {
        case ndjson
        /// One JSON document (a message or a `{"batch": [...]}`), possibly pretty-printed.
        case jsonDocument
        case jsonArray(JSONArrayScanner)
        case csv(CSVParser, header: CSVHeader?)
        /// All input consumed (after a whole JSON document).
        case finished
    }

    private let reader: ByteReader
    private let options: Ingest.Options
    private var parser: Parser
    private let receivedAt = LeadStore.nowMillis()
    private var notedEarlyEnd = false
    /// A single (non-array) JSON document is parsed whole, so it is bounded.
    static let maxDocumentBytes = 64 << 20
    let parsed = ParsedRecords()
    var rows: Int { parsed.rows }

    /// `tabSeparated`: the input is named .tsv, so its fields are split at tabs whatever its
    /// header holds (a "City, State" column would otherwise look comma-separated).
    init(format: Ingest.Format, reader: ByteReader, options: Ingest.Options, tabSeparated: Bool = false) throws {
        self.reader = reader
        self.options = options
        try reader.skipByteOrderMark()
        switch format {
        case .csv:
            let delimiter = tabSeparated
                ? 0x09 : CSVParser.delimiter(ofHeader: try reader.peekFirstNonBlankLine(maxLength: CSVParser.maxFieldBytes) ?? [])
            parser = .csv(CSVParser(reader: reader, delimiter: delimiter), header: nil)
        case .json:
            if try reader.peekFirstSignificantByte() == UInt8(ascii: "[") {
                parser = .jsonArray(JSONArrayScanner(reader: reader))
            } else if try Self.firstLineIsWholeValue(reader, maxLength: options.maxLineBytes) {
                // NDJSON saved as .json, as pipelines often name it: one message per line, not
                // one document (which would reject the whole file at the second line).
                parser = .ndjson
            } else {
                parser = .jsonDocument
            }
        case .ndjson, .auto: parser = .ndjson
        }
    }

    /// Whether the input's first non-blank line is an object of its own, by its brackets alone
    /// (a broken message on line 1 still leaves the rest of the file line by line). A document
    /// spread over lines opens an object its first line does not close.
    private static func firstLineIsWholeValue(_ reader: ByteReader, maxLength: Int) throws -> Bool {
        guard let line = try reader.peekFirstNonBlankLine(maxLength: maxLength) else { return false }
        return line.withUnsafeBufferPointer(Self.closesItsObject)
    }

    /// Whether `bytes` open an object with `{` and close it before their end, with only
    /// whitespace after it. Brackets inside strings do not count.
    static func closesItsObject(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.first == UInt8(ascii: "{") else { return false }
        var depth = 0
        var inString = false
        var escaped = false
        for (offset, byte) in bytes.enumerated() {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 {
                    return bytes[(offset + 1)...].allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                }
            default: break
            }
        }
        return false
    }

    /// The document's non-blank lines with their numbers, when there are several and at least
    /// half hold an object of their own; nil when it does not read as NDJSON.
    private static func messageLines(_ bytes: UnsafeBufferPointer<UInt8>) -> [(Int, UnsafeBufferPointer<UInt8>)]? {
        var lines: [(Int, UnsafeBufferPointer<UInt8>)] = []
        var whole = 0
        var number = 0
        for slice in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            number += 1
            var line = UnsafeBufferPointer(rebasing: slice)
            if line.last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
            guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
            if closesItsObject(line) { whole += 1 }
            lines.append((number, line))
        }
        return lines.count > 1 && whole * 2 >= lines.count ? lines : nil
    }

    /// Up to `size` records; nil at end of input. Rejected rows are reported, never returned.
    /// Records the reader's wait hook took meanwhile are not returned again.
    mutating func nextBatch(size: Int, rejects: RejectCollector) throws -> [Ingest.Record]? {
        parsed.records.reserveCapacity(size)
        var reachedEnd = false
        while parsed.records.count < size {
            do {
                guard try nextRecords(rejects: rejects) else {
                    reachedEnd = true
                    noteEarlyEnd(rejects: rejects)
                    break
                }
            } catch is ByteReader.StopRequested {
                endAtStop(rejects: rejects)
                reachedEnd = true
                break
            } catch let damage as ByteReader.DamagedInput {
                endAtDamage(damage, rejects: rejects)
                reachedEnd = true
                break
            }
        }
        let records = parsed.take()
        if reachedEnd && records.isEmpty { return nil }
        return records
    }

    /// A stop request ends the input where reading stopped; what was parsed is still returned.
    /// An NDJSON line the writer had only partly sent is rejected with its text, so it reaches
    /// the rejects file rather than vanishing.
    private mutating func endAtStop(rejects: RejectCollector) {
        if case .ndjson = parser {
            let rest = reader.unconsumedBytes
            if !rest.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                parsed.rows += 1
                rejects.add(IngestError(.malformedJSON, line: reader.lineNumber + 1, reason: "line cut short: ingest stopped before its end arrived"),
                            raw: String(decoding: rest, as: UTF8.self))
            }
        }
        parser = .finished
    }

    /// Input whose data ended whole before its bytes did gets one reject after its last line,
    /// so the run says it (exit 1) while every row stands.
    private mutating func noteEarlyEnd(rejects: RejectCollector) {
        guard let notice = reader.endNotice, !notedEarlyEnd else { return }
        notedEarlyEnd = true
        parsed.rows += 1
        rejects.add(IngestError(.damagedInput, line: lineReadNext, reason: "\(notice); they were not read"), raw: nil)
    }

    /// The line the next row would start on: where input that ends early ends.
    private var lineReadNext: Int {
        switch parser {
        case .csv(let csv, _): csv.recordStartLine
        case .jsonArray(let scanner): scanner.line
        default: reader.lineNumber + 1
        }
    }

    /// Compressed input that is cut short (or damaged, read from a pipe) ends where it broke:
    /// the rows before it stand, and one reject names the line it broke on. The row being read
    /// there is not taken, since its end is missing (a cut CSV row would otherwise pass with a
    /// cut value).
    private mutating func endAtDamage(_ damage: ByteReader.DamagedInput, rejects: RejectCollector) {
        let line = lineReadNext
        parsed.rows += 1
        // Damage zlib noticed (not a cut) may have started before it: only a pipe gets here, a
        // file is tested whole before it is read.
        let reason = damage.kind == .damaged
            ? "\(damage.reason); nothing after this point could be read, and rows read before it may be wrong"
            : "\(damage.reason); nothing after this point could be read"
        rejects.add(IngestError(.damagedInput, line: line, reason: reason), raw: nil)
        parser = .finished
    }

    /// Parses the next line, element or row. Returns false at end of input.
    private mutating func nextRecords(rejects: RejectCollector) throws -> Bool {
        switch parser {
        case .ndjson:
            guard let line = try reader.nextLine(maxLength: options.maxLineBytes) else { return false }
            let number = reader.lineNumber
            switch line {
            case .tooLong:
                takeLine(nil, number: number, rejects: rejects)
            case .text(let bytes):
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }
                takeLine(bytes, number: number, rejects: rejects)
            }
            return true
        case .jsonDocument:
            parser = .finished
            guard let document = try reader.readToEnd(limit: Self.maxDocumentBytes) else {
                parsed.rows += 1
                rejects.add(IngestError(.valueTooLarge, line: 1, reason: "JSON document larger than \(Self.maxDocumentBytes >> 20) MiB; send NDJSON or a JSON array"), raw: nil)
                return false
            }
            if document.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return false }
            document.withUnsafeBufferPointer { bytes in
                let parsedWhole: Result<JSONValue, JSONSyntaxError> = Result { () throws(JSONSyntaxError) in try JSONParser.parse(bytes) }
                if case .failure = parsedWhole, let lines = Self.messageLines(bytes) {
                    // Not one document, but lines that hold messages of their own: NDJSON whose
                    // first line is broken. Each line stands or falls alone.
                    for (number, line) in lines {
                        takeLine(line.count > options.maxLineBytes ? nil : line, number: number, rejects: rejects)
                    }
                } else {
                    parsed.rows += 1
                    parseJSON(bytes, line: 1, parsed: parsedWhole, into: &parsed.records, rejects: rejects)
                }
            }
            return true
        case .finished:
            return false
        case .jsonArray(var scanner):
            defer { parser = .jsonArray(scanner) }
            switch try scanner.nextElement() {
            case nil: return false
            case .failure(let error)?:
                parsed.rows += 1
                rejects.add(error, raw: nil)
                return !scanner.isBroken
            case .element(let bytes, let line, let index)?:
                parsed.rows += 1
                bytes.withUnsafeBufferPointer { parseJSON($0, line: line, element: index, into: &parsed.records, rejects: rejects) }
                return true
            }
        case .csv(var csv, var header):
            defer { parser = .csv(csv, header: header) }
            guard let outcome = try csv.next() else { return false }
            switch outcome {
            case .rejected(let line, let failure):
                guard header != nil else {
                    // Without a header no row can be mapped; rejecting rows one by one would
                    // only bury that.
                    throw IngestFileError(reason: "the CSV header row (line \(line)) is unreadable")
                }
                parsed.rows += 1
                let column = { (index: Int) in header?.label(at: index) ?? "column \(index + 1)" }
                let error: IngestError
                switch failure {
                case .invalidUTF8(let field): error = IngestError(.invalidUTF8, line: line, field: column(field), reason: "invalid UTF-8")
                case .fieldTooLong(let field): error = IngestError(.valueTooLarge, line: line, field: column(field), reason: "value longer than 64 KiB")
                case .unterminatedQuote(let lastLine):
                    let span = lastLine > line ? "lines \(line)–\(lastLine), the rest of the input, were" : "the line was"
                    error = IngestError(.malformedCSV, line: line, reason: "a quote opened here never closes: \(span) read as one field and rejected")
                case .textAfterQuote(let field, let lastLine):
                    let span = lastLine > line
                        ? "; if that quote was stray, it joined lines \(line)–\(lastLine) into this one row, all rejected" : ""
                    error = IngestError(.malformedCSV, line: line, field: column(field),
                                        reason: "text follows the quote that closes this field\(span)")
                }
                rejects.add(error, raw: csv.lastRejectedRaw)
            case .record(let record):
                guard let currentHeader = header else {
                    header = CSVHeader(record.fields)
                    return true
                }
                parsed.rows += 1
                do {
                    parsed.records.append(try currentHeader.record(from: record))
                } catch {
                    rejects.add(error, raw: CSVHeader.encode(record.fields, delimiter: Character(Unicode.Scalar(csv.delimiter))))
                }
            }
            return true
        }
    }

    /// One NDJSON line, `nil` when it was longer than the limit.
    private func takeLine(_ bytes: UnsafeBufferPointer<UInt8>?, number: Int, rejects: RejectCollector) {
        parsed.rows += 1
        guard let bytes else {
            rejects.add(IngestError(.valueTooLarge, line: number, reason: "line longer than \(options.maxLineBytes >> 20) MiB"), raw: nil)
            return
        }
        parseJSON(bytes, line: number, into: &parsed.records, rejects: rejects)
    }

    /// `parsed`: the parse already made of `bytes`, when there is one.
    /// `element`: the value's index in a JSON array file, which its rejects' fields start with
    /// ("[3].userId"), as a batch's name their message ("batch[3].userId").
    private func parseJSON(_ bytes: UnsafeBufferPointer<UInt8>, line: Int, element: Int? = nil,
                           parsed: Result<JSONValue, JSONSyntaxError>? = nil,
                           into records: inout [Ingest.Record], rejects: RejectCollector) {
        func named(_ error: IngestError) -> IngestError {
            guard let element else { return error }
            var error = error
            error.field = "[\(element)]" + (error.field.map { "." + $0 } ?? "")
            return error
        }
        let value: JSONValue
        var checksStringLengths = false
        switch parsed ?? Result(catching: { () throws(JSONSyntaxError) in try JSONParser.parse(bytes) }) {
        case .success(let parsedValue):
            value = parsedValue
        case .failure(let error):
            if error.kind == .tooLong, let relaxed = try? JSONParser.parse(bytes, stringLimit: .max) {
                // A value over 64 KiB costs only the message holding it, not the rest of its batch.
                value = relaxed
                checksStringLengths = true
                break
            }
            let rejected = switch error.kind {
            case .invalidUTF8: IngestError(.invalidUTF8, line: line, reason: "invalid UTF-8")
            case .tooLong: IngestError(.valueTooLarge, line: line, reason: "value longer than 64 KiB")
            case .syntax: IngestError(.malformedJSON, line: line, reason: "broken JSON: \(error.reason) at byte \(error.offset + 1)")
            }
            rejects.add(named(rejected), raw: String(decoding: bytes, as: UTF8.self))
            return
        }
        var errors: [IngestError] = []
        SegmentMapper(source: bytes, line: line, receivedAt: receivedAt, checksStringLengths: checksStringLengths)
            .records(from: value, into: &records, rejects: &errors)
        for error in errors { rejects.add(named(error), raw: String(decoding: bytes, as: UTF8.self)) }
    }
}

/// Maps CSV columns to lead fields once, from the header row. No column's value is dropped: a
/// blank header becomes "column N", a second column for a known field (Phone and Mobile) fills
/// the field when the first is blank and is otherwise kept as a custom field, and a custom
/// label repeated (Plan, plan) keeps its column number so both values stay.
struct CSVHeader {
    enum Role: Equatable {
        /// A known field's first column, or a custom field under its own label.
        case label(String)
        /// A custom field whose header was blank or repeated, under the label made for it.
        case custom(String)
        /// A later column naming a known field an earlier column already names.
        case alternate(LeadField, label: String)
        /// Left out: a column of LeadLens's own export that the server computes.
        case skipped
        /// LeadLens's export `custom_fields`: a JSON object, one custom field per member.
        case customFieldsObject
        /// LeadLens's export `created_at`: the creation time of a lead the file creates.
        case createdAtIfNew
        /// LeadLens's export `updated_at`: when the lead last changed before the export was
        /// written, so a row of an older export cannot undo a change made since.
        case exportedUpdatedAt
    }

    /// A file with both an `id` and an `external_id` column is LeadLens's own (the API's export,
    /// a report's leads.csv), edited in a spreadsheet and ingested back to update the leads it
    /// came from: its `id` is the store's row id, which must not become the external id (every
    /// lead would be taken for a new one), and it carries what the store computes.
    /// Compared by ``FieldName/normalize(_:)``, as every header is ("ID", "External ID").
    static let exportMarkers: Set<String> = Set(["id", "external_id"].map(FieldName.normalize))
    /// In such a file, left out: the row id, what scoring computes, and the store's own times.
    /// Its created_at dates only a lead the file creates (`createdAtIfNew`): written to the
    /// second, it would otherwise move every existing lead's by a fraction.
    static let exportComputed: Set<String> = Set([
        "id", "score", "probability", "model_version", "scored_at", "last_activity_at",
    ].map(FieldName.normalize))
    static let exportCreatedAt = FieldName.normalize("created_at")
    static let exportUpdatedAt = FieldName.normalize("updated_at")
    static let exportCustomFields = FieldName.normalize("custom_fields")

    let labels: [String]
    let roles: [Role]
    /// The file is LeadLens's own export (see ``exportMarkers``).
    let isExport: Bool

    init(_ labels: [String]) {
        self.labels = labels.map { $0.trimmingWhitespace() }
        var fieldsSeen = Set<LeadField>()
        // Custom fields are stored by normalized label: each column's must be its own.
        var customKeys = Set<String>()
        // A label gets its column number only on a real collision, so the same export maps to
        // the same custom fields whatever order its columns come in.
        func unique(_ label: String, column: Int) -> String {
            var candidate = label
            var attempt = 1
            while !customKeys.insert(FieldName.normalize(candidate)).inserted {
                candidate = attempt == 1 ? "\(label) (column \(column))" : "\(label) (column \(column), \(attempt))"
                attempt += 1
            }
            return candidate
        }
        let normalized = self.labels.map(FieldName.normalize)
        let isExport = Set(normalized).isSuperset(of: Self.exportMarkers)
        self.isExport = isExport
        roles = self.labels.enumerated().map { index, label in
            if isExport && Self.exportComputed.contains(normalized[index]) { return .skipped }
            if isExport && normalized[index] == Self.exportCustomFields { return .customFieldsObject }
            if isExport && normalized[index] == Self.exportCreatedAt { return .createdAtIfNew }
            if isExport && normalized[index] == Self.exportUpdatedAt { return .exportedUpdatedAt }
            guard !label.isEmpty else { return .custom(unique("column \(index + 1)", column: index + 1)) }
            if let field = FieldName.knownField(label) {
                // Tags add up, so every tags column contributes as it is.
                if field == .tags || fieldsSeen.insert(field).inserted {
                    // The field's own header ("Phone") is not free for a second column's value.
                    customKeys.insert(FieldName.normalize(label))
                    return .label(label)
                }
                return .alternate(field, label: unique(label, column: index + 1))
            }
            let kept = unique(label, column: index + 1)
            return kept == label ? .label(label) : .custom(kept)
        }
    }

    /// An export's time column: nil when blank, a reject when unreadable.
    private func exportTime(_ value: String, line: Int, column: Int) throws(IngestError) -> Int64? {
        let text = value.trimmingWhitespace()
        guard !text.isEmpty else { return nil }
        guard let millis = Timestamp.parse(text) else { throw IngestError.unreadableTime(line: line, field: labels[column]) }
        return millis
    }

    /// A column's name in messages: its header, or the label made for a blank one.
    func label(at index: Int) -> String? {
        guard index < roles.count else { return nil }
        switch roles[index] {
        case .custom(let made): return labels[index].isEmpty ? made : labels[index]
        case .label, .alternate, .skipped, .customFieldsObject, .createdAtIfNew, .exportedUpdatedAt: return labels[index]
        }
    }

    /// Rows shorter than the header read their missing trailing fields as blank, as spreadsheet
    /// exports trim them; a longer row would lose values, so it is rejected.
    ///
    /// A short last row with no line break after it is rejected instead: that is how a file cut
    /// off mid-row ends, and its last field may be cut too ("Mil" for "Miller").
    func record(from row: CSVParser.Record) throws(IngestError) -> Ingest.Record {
        if row.fields.count > labels.count {
            throw IngestError(.malformedCSV, line: row.line,
                              reason: "row has \(row.fields.count) fields but the header has \(labels.count)")
        }
        if row.endsWithoutLineBreak && row.fields.count < labels.count {
            throw IngestError(.malformedCSV, line: row.line, reason: """
                the input ends inside this row: it has \(row.fields.count) of the header's \(labels.count) fields \
                and no line break, as a file cut off mid-row would
                """)
        }
        var builder = LeadPatchBuilder(line: row.line)
        for (index, field) in row.fields.enumerated() {
            // A spreadsheet-safe export (ours, or any following OWASP) writes '=…, '+1 555…:
            // the apostrophe is the guard, not part of the value.
            let value = FormulaGuard.removed(from: field)
            switch roles[index] {
            case .label(let label):
                try builder.set(key: label, text: value)
            case .custom(let label):
                try builder.setCustom(label: label, text: value)
            case .alternate(let field, let label):
                let text = value.trimmingWhitespace()
                guard !text.isEmpty else { continue }
                if builder.text(of: field) == nil {
                    try builder.set(key: labels[index], text: text, asideLabel: label)
                } else if !builder.holds(field, sameAs: text) {
                    try builder.setCustom(label: label, text: text)
                }
            case .skipped:
                continue
            case .customFieldsObject:
                try Self.setCustomFields(value, line: row.line, into: &builder)
            case .createdAtIfNew:
                if let millis = try exportTime(value, line: row.line, column: index) { builder.patch.createdAtIfNew = millis }
            case .exportedUpdatedAt:
                if let millis = try exportTime(value, line: row.line, column: index) { builder.patch.exportedUpdatedAt = millis }
            }
        }
        let patch = builder.build()
        guard !patch.identity.isEmpty else {
            // An export's `id` is the store's row number, which is no identity: a visitor lead
            // known only by its device cannot be matched by a row of the file.
            throw builder.noIdentityError(needs: isExport ? "an external_id, email or phone (an export's id column is the store's row number, no identity)" : "an id, email or phone")
        }
        return Ingest.Record(line: row.line, lead: patch, event: nil)
    }

    /// An export's `custom_fields` cell: blank, or a JSON object whose members are custom fields.
    private static func setCustomFields(_ text: String, line: Int, into builder: inout LeadPatchBuilder) throws(IngestError) {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { return }
        guard case .object(let object)? = try? JSONParser.parse(trimmed) else {
            throw IngestError(.wrongType, line: line, field: "custom_fields", reason: "expected a JSON object, as the export writes")
        }
        for member in object.members { try builder.setCustom(label: member.key, json: member.value) }
    }

    /// RFC 4180 encoding of one row, for the rejects file.
    /// `delimiter`: the input's own, so a fixed row can be sent back as it came.
    static func encode(_ fields: [String], delimiter: Character = ",") -> String {
        fields.map { field in
            field.contains(where: { $0 == delimiter || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
        }.joined(separator: String(delimiter))
    }
}

/// A whole input that cannot be used: nothing from it can be mapped.
public struct IngestFileError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}
