/// Splits a top-level JSON array into its elements without loading the whole document, so a
/// `--format json` file of a million messages streams like NDJSON.
struct JSONArrayScanner {
    enum Item {
        /// `index`: the element's position in the array, from 0; rejects name it, since a
        /// one-line array puts every element on line 1.
        case element([UInt8], line: Int, index: Int)
        case failure(IngestError)
    }

    static let maxElementBytes = 16 << 20
    /// Open brackets past this depth are counted, not typed: JSONParser rejects anything deeper
    /// than 64 levels anyway, so there only finding the element's end matters.
    static let maxTrackedDepth = 256

    private let reader: ByteReader
    private(set) var line = 1
    /// Elements handed out so far.
    private var elements = 0
    private var started = false
    private var finished = false
    /// A byte read ahead while deciding whether a "]" ends the array.
    private var pushedBack: UInt8?
    /// After a structural failure the rest of the document cannot be split reliably.
    private(set) var isBroken = false

    init(reader: ByteReader) {
        self.reader = reader
    }

    /// The next piece between top-level commas. A piece with a stray or mismatched bracket is
    /// still split off at the next top-level comma and handed on whole, so JSONParser rejects it
    /// and the elements after it are kept.
    mutating func nextElement() throws -> Item? {
        guard !finished else { return nil }
        if !started {
            started = true
            guard try skipWhitespace() == UInt8(ascii: "[") else { return fail("expected a JSON array") }
        }
        var bytes: [UInt8] = []
        /// The closers the element's open brackets expect, innermost last.
        var expectedClosers: [UInt8] = []
        var untrackedDepth = 0
        var inString = false
        var escaped = false
        var startLine = line
        while let byte = try nextByte() {
            if bytes.isEmpty && !inString {
                if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { continue }
                startLine = line
            }
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    if expectedClosers.count < Self.maxTrackedDepth {
                        expectedClosers.append(byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]"))
                    } else {
                        untrackedDepth += 1
                    }
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if untrackedDepth > 0 {
                        untrackedDepth -= 1
                    } else if let opener = expectedClosers.lastIndex(of: byte) {
                        // A mismatched closer also closes the brackets opened after its own.
                        expectedClosers.removeSubrange(opener...)
                    } else if !expectedClosers.isEmpty {
                        // It closes nothing open: the element is broken, so resync at the next
                        // top-level comma rather than swallow the elements after it.
                        expectedClosers.removeAll()
                    } else if byte == UInt8(ascii: "]"), try onlyWhitespaceRemains() {
                        finished = true
                        return bytes.isEmpty ? nil : element(bytes, line: startLine)
                    }
                    // Otherwise a stray closer at the top level: it stays in the piece, which
                    // then fails to parse, instead of being taken for the array's end.
                case UInt8(ascii: ","):
                    if expectedClosers.isEmpty { return element(bytes, line: startLine) }
                default: break
                }
            }
            bytes.append(byte)
            if bytes.count > Self.maxElementBytes {
                return fail("array element \(elements) longer than 16 MiB", line: startLine, code: .valueTooLarge)
            }
        }
        if bytes.isEmpty { return fail("the JSON array never closes") }
        return fail("the JSON array never closes", line: startLine)
    }

    private mutating func element(_ bytes: [UInt8], line: Int) -> Item {
        defer { elements += 1 }
        return .element(bytes, line: line, index: elements)
    }

    private mutating func nextByte() throws -> UInt8? {
        if let byte = pushedBack {
            pushedBack = nil
            return byte
        }
        let byte = try reader.nextByte()
        if byte == 0x0A { line += 1 }
        return byte
    }

    private mutating func skipWhitespace() throws -> UInt8? {
        while let byte = try nextByte() {
            if byte != 0x20, byte != 0x0A, byte != 0x0D, byte != 0x09 { return byte }
        }
        return nil
    }

    /// Whether only whitespace is left; if not, the next byte is kept for the next read. A "]"
    /// at the top level ends the array only then: one followed by more input is stray.
    private mutating func onlyWhitespaceRemains() throws -> Bool {
        guard let byte = try skipWhitespace() else { return true }
        pushedBack = byte
        return false
    }

    private mutating func fail(_ reason: String, line failedLine: Int? = nil, code: IngestError.Code = .malformedJSON) -> Item {
        isBroken = true
        finished = true
        return .failure(IngestError(code, line: failedLine ?? line, reason: reason))
    }
}
