/// Splits a top-level JSON array into its elements without loading the whole document, so a
/// `--format json` file of a million messages streams like NDJSON.
struct JSONArrayScanner {
    enum Item {
        case element([UInt8], line: Int)
        case failure(IngestError)
    }

    static let maxElementBytes = 16 << 20

    private let reader: ByteReader
    private var line = 1
    private var started = false
    private var finished = false
    /// After a structural failure the rest of the document cannot be split reliably.
    private(set) var isBroken = false

    init(reader: ByteReader) {
        self.reader = reader
    }

    mutating func nextElement() throws -> Item? {
        guard !finished else { return nil }
        if !started {
            started = true
            guard try skipWhitespace() == UInt8(ascii: "[") else { return fail("expected a JSON array") }
        }
        var bytes: [UInt8] = []
        var depth = 0
        var inString = false
        var escaped = false
        var startLine = line
        while let byte = try reader.nextByte() {
            if byte == 0x0A { line += 1 }
            if bytes.isEmpty && !inString {
                if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { continue }
                if byte == UInt8(ascii: "]") && depth == 0 {
                    finished = true
                    return nil
                }
                startLine = line
            }
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 {
                        // The array's closing bracket right after an element.
                        finished = true
                        return .element(bytes, line: startLine)
                    }
                    depth -= 1
                case UInt8(ascii: ","):
                    if depth == 0 { return .element(bytes, line: startLine) }
                default: break
                }
            }
            bytes.append(byte)
            if bytes.count > Self.maxElementBytes {
                return fail("array element longer than 16 MiB", line: startLine, code: .valueTooLarge)
            }
        }
        if bytes.isEmpty { return fail("the JSON array never closes") }
        return fail("the JSON array never closes", line: startLine)
    }

    private mutating func skipWhitespace() throws -> UInt8? {
        while let byte = try reader.nextByte() {
            if byte == 0x0A { line += 1 }
            if byte != 0x20, byte != 0x0A, byte != 0x0D, byte != 0x09 { return byte }
        }
        return nil
    }

    private mutating func fail(_ reason: String, line failedLine: Int? = nil, code: IngestError.Code = .malformedJSON) -> Item {
        isBroken = true
        finished = true
        return .failure(IngestError(code, line: failedLine ?? line, reason: reason))
    }
}
