import Foundation
import Hummingbird
import LeadIngest
import NIOCore

/// Writes JSON straight into a ByteBuffer, for the hot list responses. Foundation's JSONEncoder
/// spent 40% of the server's CPU on a 100-lead page (perf, measured), most of it in generic
/// metadata lookups and dynamic casts; this writes the same bytes directly.
struct JSONWriter {
    private(set) var buffer: ByteBuffer
    private var needsComma = false

    init(capacity: Int = 16 * 1024) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    mutating func beginObject() {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        buffer.writeInteger(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        buffer.writeInteger(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        buffer.writeInteger(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A key; the value written next belongs to it.
    mutating func key(_ name: StaticString) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":")
        needsComma = false
    }

    mutating func key(_ name: String) {
        separate()
        writeQuoted(name)
        buffer.writeInteger(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func null() {
        separate()
        buffer.writeStaticString("null")
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
        buffer.writeString(String(number))
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
        buffer.writeString(number.description)
        needsComma = true
    }

    mutating func value(_ flag: Bool) {
        separate()
        buffer.writeStaticString(flag ? "true" : "false")
        needsComma = true
    }

    /// Bytes that already are one JSON value.
    mutating func raw(_ json: ByteBuffer) {
        separate()
        var json = json
        buffer.writeBuffer(&json)
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
    }

    private mutating func writeQuoted(_ text: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var text = text
        // Over contiguous UTF-8 (native strings already are): copy runs of plain bytes at once,
        // escape quotes, backslashes and control characters.
        text.withUTF8 { bytes in
            var pending = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else { continue }
                if pending != index { buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[pending..<index]))) }
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                default:
                    let hex = String(byte, radix: 16)
                    buffer.writeString("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                }
                pending = index + 1
            }
            if pending != bytes.count { buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[pending...]))) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
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
