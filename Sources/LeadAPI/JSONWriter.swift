import Foundation
import Hummingbird
import LeadIngest
import LeadStore
import NIOCore

/// Writes JSON bytes directly, for the hot list responses. Foundation's JSONEncoder spent 40%
/// of the server's CPU on a 100-lead page (perf, measured), most of it in generic metadata
/// lookups and dynamic casts. Bytes go into an array and are copied into a ByteBuffer once:
/// ByteBuffer's per-byte writes were a fifth of a list request.
struct JSONWriter {
    private var bytes: [UInt8] = []
    private var needsComma = false

    init(capacity: Int = 16 * 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// The JSON written so far.
    var buffer: ByteBuffer { ByteBuffer(bytes: bytes) }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A key; the value written next belongs to it.
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        append(name)
        append("\":")
        needsComma = false
    }

    mutating func key(_ name: String) {
        separate()
        writeQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func null() {
        separate()
        append("null")
        needsComma = true
    }

    mutating func value(_ text: String?) {
        guard let text else { return null() }
        separate()
        writeQuoted(text)
        needsComma = true
    }

    mutating func value(_ number: Int64?) {
        guard let number else { return null() }
        separate()
        append(String(number))
        needsComma = true
    }

    mutating func value(_ number: Int?) {
        value(number.map(Int64.init))
    }

    /// Finite doubles in Swift's shortest round-trip form, which is valid JSON; NaN and
    /// infinities, which JSON cannot hold, are written as null.
    mutating func value(_ number: Double?) {
        guard let number, number.isFinite else { return null() }
        separate()
        append(number.description)
        needsComma = true
    }

    mutating func value(_ flag: Bool) {
        separate()
        append(flag ? "true" : "false")
        needsComma = true
    }

    /// Bytes that already are one JSON value.
    mutating func raw(_ json: ByteBuffer) {
        separate()
        bytes.append(contentsOf: json.readableBytesView)
        needsComma = true
    }

    /// A unix-millisecond time as ISO 8601 UTC with seconds, as every API date is written.
    mutating func date(_ millis: Int64?) {
        guard let millis else { return null() }
        separate()
        bytes.append(UInt8(ascii: "\""))
        ISODate.append(millis, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func writeQuoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        // Over contiguous UTF-8 (native strings already are): copy runs of plain bytes at once,
        // escape quotes, backslashes and control characters.
        text.withUTF8 { utf8 in
            var pending = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else { continue }
                if pending != index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[pending..<index])) }
                switch byte {
                case UInt8(ascii: "\""): append("\\\"")
                case UInt8(ascii: "\\"): append("\\\\")
                case 0x0A: append("\\n")
                case 0x0D: append("\\r")
                case 0x09: append("\\t")
                default:
                    let hex = String(byte, radix: 16)
                    append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                }
                pending = index + 1
            }
            if pending != utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[pending...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// A value the API writes as JSON. Every key is written, null when it has no value: the
/// response shapes are contracts, and Foundation's encoder would drop nil keys.
protocol JSONWritable {
    func write(to json: inout JSONWriter)
}

extension JSONWriter {
    /// The response: `application/json` with the written bytes.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        Self.response(buffer, status: status)
    }

    static func response(_ bytes: ByteBuffer, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: bytes))
    }

    /// JSON text stored as received (event properties, a timeline detail), written as a value;
    /// null when it does not parse.
    mutating func rawJSON(_ text: String?) {
        guard let text, (try? JSONParser.parse(text)) != nil else { return null() }
        raw(ByteBuffer(string: text))
    }
}
