/// A streaming RFC 4180 reader: quoted fields, embedded delimiters and newlines, doubled quotes,
/// CRLF, LF or a lone CR (classic Mac), a UTF-8 byte order mark.
///
/// Written here rather than taken from CSV.swift because ingest must reject one bad record (invalid
/// UTF-8, an overlong field) with its line number and carry on with the next; CSV.swift decodes
/// the whole stream as one sequence of scalars and stops at the first invalid byte.
struct CSVParser {
    struct Record {
        /// The physical line the record starts on (1-based; the header is line 1).
        var line: Int
        var fields: [String]
        /// The input ended inside this record, after no line break: the last line of a file
        /// without a final newline, or of one cut off mid-row.
        var endsWithoutLineBreak = false
    }

    enum Failure {
        case invalidUTF8(field: Int)
        case fieldTooLong(field: Int)
        /// A quote opened on the record's line never closed: everything to the end of the
        /// input, up to `lastLine`, was read as that one field.
        case unterminatedQuote(lastLine: Int)
        /// Text follows the quote that closes `field` (RFC 4180 allows only a delimiter or a
        /// line break). Usually a stray quote opened the field: then every line up to
        /// `lastLine`, rows included, was read into it.
        case textAfterQuote(field: Int, lastLine: Int)
    }

    enum Outcome {
        case record(Record)
        case rejected(line: Int, Failure)
    }

    static let maxFieldBytes = 64 * 1024
    /// The most of a rejected record's text kept for the rejects file.
    static let maxRawBytes = 2 * maxFieldBytes

    private let reader: ByteReader
    private var line = 1
    /// The line the record being read starts on.
    private(set) var recordStartLine = 1
    private var field: [UInt8] = []
    /// The bytes of the record being read, up to ``maxRawBytes``: a rejected record's text.
    private var raw: [UInt8] = []
    /// The text of the record `next()` last rejected, when it was read whole within
    /// ``maxRawBytes`` and is valid UTF-8; nil otherwise.
    private(set) var lastRejectedRaw: String?
    /// The last byte read was a CR, so a LF now completes a CRLF rather than starting a line.
    private var afterCR = false

    /// The field separator: a comma, or the semicolon or tab a header shows instead.
    let delimiter: UInt8

    init(reader: ByteReader, delimiter: UInt8 = UInt8(ascii: ",")) {
        self.reader = reader
        self.delimiter = delimiter
    }

    /// The separator a header line uses: whichever of comma, semicolon (European spreadsheet
    /// exports) and tab it holds most often outside quotes; a comma when none or tied.
    static func delimiter(ofHeader line: [UInt8]) -> UInt8 {
        var counts: [UInt8: Int] = [:]
        var inQuotes = false
        for byte in line {
            if byte == UInt8(ascii: "\"") { inQuotes.toggle() }
            if !inQuotes, byte == UInt8(ascii: ",") || byte == UInt8(ascii: ";") || byte == 0x09 { counts[byte, default: 0] += 1 }
        }
        let commas = counts[UInt8(ascii: ",")] ?? 0, semicolons = counts[UInt8(ascii: ";")] ?? 0, tabs = counts[0x09] ?? 0
        if commas >= semicolons && commas >= tabs { return UInt8(ascii: ",") }
        return semicolons >= tabs ? UInt8(ascii: ";") : 0x09
    }

    /// The next record, or nil at end of input. Blank lines are skipped.
    mutating func next() throws -> Outcome? {
        while true {
            switch try nextRecordOrBlank() {
            case .blank: continue
            case .end: return nil
            case .outcome(let outcome): return outcome
            }
        }
    }

    private enum Step {
        case blank
        case end
        case outcome(Outcome)
    }

    private mutating func nextRecordOrBlank() throws -> Step {
        let startLine = line
        recordStartLine = line
        var fields: [String] = []
        var failure: Failure?
        field.removeAll(keepingCapacity: true)
        raw.removeAll(keepingCapacity: true)
        lastRejectedRaw = nil
        var inQuotes = false
        var fieldWasQuoted = false
        /// The last byte closed a quoted field: only a doubled quote, a delimiter or a line
        /// break may follow.
        var afterClosingQuote = false
        var sawAnything = false

        func endField() {
            defer {
                field.removeAll(keepingCapacity: true)
                fieldWasQuoted = false
            }
            if failure == nil {
                if field.count > Self.maxFieldBytes {
                    failure = .fieldTooLong(field: fields.count)
                } else if let text = String(validating: field, as: UTF8.self) {
                    fields.append(text)
                    return
                } else {
                    failure = .invalidUTF8(field: fields.count)
                }
            }
            fields.append("")
        }

        func rejected(_ failure: Failure) -> Step {
            if raw.count < Self.maxRawBytes { lastRejectedRaw = String(validating: raw, as: UTF8.self) }
            return .outcome(.rejected(line: startLine, failure))
        }

        var endedWithBreak = false
        while let byte = try reader.nextByte() {
            endedWithBreak = byte == 0x0A || byte == 0x0D
            let completesCRLF = afterCR && byte == 0x0A
            afterCR = byte == 0x0D
            // The CR before it already ended the record and counted the line.
            if completesCRLF && !inQuotes { continue }
            sawAnything = true
            if raw.count < Self.maxRawBytes { raw.append(byte) }
            if afterClosingQuote {
                // Spaces before the delimiter (`"a" ,b`), which spreadsheets and hand edits leave,
                // are dropped rather than refused.
                if byte == 0x20 || (byte == 0x09 && delimiter != 0x09) { continue }
                afterClosingQuote = false
                if byte != UInt8(ascii: "\""), byte != delimiter, byte != 0x0A, byte != 0x0D {
                    // Reject the record, and read no further quotes: one more would open a field
                    // and swallow the lines after it too.
                    let failure = Failure.textAfterQuote(field: fields.count, lastLine: line)
                    try skipToEndOfLine()
                    return rejected(failure)
                }
            }
            if inQuotes {
                if byte == UInt8(ascii: "\"") {
                    inQuotes = false
                    afterClosingQuote = true
                    continue
                }
                if byte == 0x0D || (byte == 0x0A && !completesCRLF) { line += 1 }
                // An overlong field is read to its closing quote, never resynced at a line
                // break: the text after one is still inside the quotes and would become rows.
                appendToField(byte)
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                if fieldWasQuoted {
                    // A doubled quote inside a quoted field: "" → ".
                    appendToField(byte)
                    inQuotes = true
                } else if field.isEmpty {
                    inQuotes = true
                    fieldWasQuoted = true
                } else {
                    // A stray quote inside an unquoted field is kept literally, as most readers do.
                    appendToField(byte)
                }
            case delimiter:
                endField()
            case 0x0A, 0x0D:
                // LF, CRLF (its LF skipped above) or a lone CR; inside quotes they are data.
                line += 1
                if fields.isEmpty && field.isEmpty && !fieldWasQuoted { return .blank }
                endField()
                if let failure { return rejected(failure) }
                return .outcome(.record(Record(line: startLine, fields: fields)))
            default:
                appendToField(byte)
            }
        }
        guard sawAnything else { return .end }
        // `line` counts the line after a final line break; the field's last line is the one before.
        if inQuotes { return rejected(.unterminatedQuote(lastLine: max(startLine, endedWithBreak ? line - 1 : line))) }
        if fields.isEmpty && field.isEmpty && !fieldWasQuoted { return .end }
        endField()
        if let failure { return rejected(failure) }
        // A record ended by a line break returned above.
        return .outcome(.record(Record(line: startLine, fields: fields, endsWithoutLineBreak: true)))
    }

    /// Reads past the next line break, keeping what it reads before it in `raw`. After a CR,
    /// `afterCR` has the next record skip the LF of a CRLF.
    private mutating func skipToEndOfLine() throws {
        while let byte = try reader.nextByte() {
            afterCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                line += 1
                return
            }
            if raw.count < Self.maxRawBytes { raw.append(byte) }
        }
    }

    /// Bytes past the limit are dropped: the record is rejected anyway, and memory stays bounded
    /// however long the field runs.
    private mutating func appendToField(_ byte: UInt8) {
        if field.count <= Self.maxFieldBytes { field.append(byte) }
    }
}
