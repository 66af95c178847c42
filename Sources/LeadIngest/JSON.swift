/// A strict JSON value, as parsed from one NDJSON line or one array element.
///
/// Ingest parses its own JSON rather than going through Foundation: a Segment line must be
/// rejected with a precise reason (broken JSON, invalid UTF-8, a value over 64 KiB) without
/// costing the lines around it, and Foundation's parsers measured 2–5× slower than Python's
/// json.loads on a typical track line, which would sink the ingest benchmark.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Where the first string (a member's name included) longer than `limit` UTF-8 bytes sits,
    /// as a dotted path ("properties.desc", "" for the value itself); nil when there is none.
    func firstString(longerThan limit: Int) -> String? {
        guard let steps = stepsToString(longerThan: limit) else { return nil }
        var path = ""
        for step in steps.reversed() {
            if step.hasPrefix("[") || path.isEmpty { path += step } else { path += "." + step }
        }
        return path
    }

    /// The steps to such a string, innermost first. Built only on a hit: a path made for every
    /// node would copy long member names at each of millions of nodes.
    private func stepsToString(longerThan limit: Int) -> [String]? {
        switch self {
        case .string(let text): return text.utf8.count > limit ? [] : nil
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if var steps = element.stepsToString(longerThan: limit) {
                    steps.append("[\(index)]")
                    return steps
                }
            }
            return nil
        case .object(let object):
            for member in object.members {
                if member.key.utf8.count > limit { return [] }
                if var steps = member.value.stepsToString(longerThan: limit) {
                    steps.append(member.key)
                    return steps
                }
            }
            return nil
        case .null, .bool, .number: return nil
        }
    }
}

public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue
}

public struct JSONObject: Sendable, Equatable {
    public var members: [JSONMember]
    /// The object's bytes in the parsed input, so free-form properties can be stored as received.
    public var span: Range<Int>

    public subscript(key: String) -> JSONValue? {
        // Lengths first, which both strings store: most members passed over differ in length,
        // and String's own comparison showed up in perf. Keys of different UTF-8 lengths never
        // match, even where Unicode calls them equivalent: a JSON key is exact text.
        let length = key.utf8.count
        for member in members where member.key.utf8.count == length && member.key == key { return member.value }
        return nil
    }

    public var isEmpty: Bool { members.isEmpty }
}

public struct JSONSyntaxError: Error, Sendable, Equatable {
    public enum Kind: Sendable { case syntax, invalidUTF8, tooLong }
    public var offset: Int
    public var reason: String
    public var kind: Kind = .syntax
}

/// Recursive-descent parser over UTF-8 bytes. Rejects trailing garbage, invalid UTF-8 in
/// strings, control characters, and nesting deeper than ``maxDepth``.
public struct JSONParser {
    public static let maxDepth = 64
    /// No single string may exceed this: a Segment value over 64 KiB is rejected as malformed.
    public static let maxStringBytes = 64 * 1024

    private let bytes: UnsafeBufferPointer<UInt8>
    /// The longest string this parse takes: ``maxStringBytes`` unless a caller that checks
    /// lengths value by value asks for more.
    private let stringLimit: Int
    private var index = 0
    private var depth = 0
    private var scratch: [UInt8] = []

    private init(_ bytes: UnsafeBufferPointer<UInt8>, stringLimit: Int) {
        self.bytes = bytes
        self.stringLimit = stringLimit
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, stringLimit: Int = maxStringBytes) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes, stringLimit: stringLimit)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        if parser.index != bytes.count { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        var copy = text
        do {
            return try copy.withUTF8 { buffer in try parse(buffer) }
        } catch let error as JSONSyntaxError {
            throw error
        } catch {
            throw JSONSyntaxError(offset: 0, reason: "\(error)")
        }
    }

    private func error(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: index, reason: reason)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws(JSONSyntaxError) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of JSON") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return .object(try parseObject())
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of JSON") }
        let start = literal.utf8Start
        for offset in 0..<count where bytes[index + offset] != start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONObject {
        let start = index
        try enter()
        index += 1
        var members: [JSONMember] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return JSONObject(members: members, span: start..<index)
        }
        // Room for a Segment message's members at once, rather than growing 1, 2, 4, 8.
        members.reserveCapacity(8)
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            members.append(JSONMember(key: key, value: try parseValue()))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; break }
            throw error("expected ',' or '}'")
        }
        depth -= 1
        return JSONObject(members: members, span: start..<index)
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; break }
            throw error("expected ',' or ']'")
        }
        depth -= 1
        return .array(elements)
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes. Scan to the closing quote, then validate the slice once.
        var highBits: UInt8 = 0
        while index < bytes.count {
            let byte = bytes[index]
            highBits |= byte
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return try makeString(slice, at: start, isASCII: highBits < 0x80)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in string") }
            index += 1
        }
        guard index < bytes.count else { throw error("unterminated string") }
        // Slow path: unescape into scratch.
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                let result = scratch.withUnsafeBufferPointer { buffer in String(validating: buffer, as: UTF8.self) }
                guard let result else { throw JSONSyntaxError(offset: start, reason: "invalid UTF-8 in string", kind: .invalidUTF8) }
                if scratch.count > stringLimit { throw JSONSyntaxError(offset: start, reason: "string longer than 64 KiB", kind: .tooLong) }
                return result
            }
            if byte < 0x20 { throw error("control character in string") }
            if byte != UInt8(ascii: "\\") {
                scratch.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { throw error("unterminated escape") }
            let escaped = bytes[index]
            index += 1
            switch escaped {
            case UInt8(ascii: "\""): scratch.append(0x22)
            case UInt8(ascii: "\\"): scratch.append(0x5C)
            case UInt8(ascii: "/"): scratch.append(0x2F)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate")
                    }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                scratch.append(contentsOf: UTF8.encode(unicode)!)
            default:
                throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    private func makeString(_ slice: UnsafeBufferPointer<UInt8>, at start: Int, isASCII: Bool) throws(JSONSyntaxError) -> String {
        if slice.count > stringLimit { throw JSONSyntaxError(offset: start, reason: "string longer than 64 KiB", kind: .tooLong) }
        // ASCII is valid UTF-8 and nearly every string is ASCII; the generic validating
        // initializer cost a third of the parse thread's time on track events.
        if isASCII { return String(decoding: slice, as: UTF8.self) }
        guard let string = String(validating: slice, as: UTF8.self) else {
            throw JSONSyntaxError(offset: start, reason: "invalid UTF-8 in string", kind: .invalidUTF8)
        }
        return string
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> Double {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[index]) {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        } else {
            throw error("invalid number")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            if index == digits { throw error("invalid number") }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            if index == digits { throw error("invalid number") }
        }
        let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
        // Integers of up to 15 digits are exact in a Double: skip the general parser for them.
        if isInteger, slice.count <= 16 {
            var value: Int64 = 0
            var negative = false
            for byte in slice {
                if byte == UInt8(ascii: "-") { negative = true; continue }
                value = value &* 10 &+ Int64(byte - UInt8(ascii: "0"))
            }
            return Double(negative ? -value : value)
        }
        guard let value = Double(String(decoding: slice, as: UTF8.self)), value.isFinite else {
            throw error("number out of range")
        }
        return value
    }
}
