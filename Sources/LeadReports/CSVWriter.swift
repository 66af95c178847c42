import Foundation
import LeadStore

/// Writes RFC 4180 CSV in UTF-8: CRLF line ends, a field quoted when it holds a comma, a quote,
/// CR or LF, its quotes doubled. Output is buffered and flushed in 256 KiB writes, so a file of
/// a million rows never sits in memory.
final class CSVWriter {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private static let flushThreshold = 256 * 1024
    private(set) var rows = 0

    /// Creates (or truncates) the file at `url`.
    init(url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw Reports.ReportError("cannot create \(url.path)")
        }
        handle = try FileHandle(forWritingTo: url)
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    func writeHeader(_ fields: [String]) throws {
        try write(fields)
        rows = 0
    }

    func write(_ fields: [String]) throws {
        for (index, field) in fields.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            append(field)
        }
        buffer.append(13)
        buffer.append(10)
        rows += 1
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    private static let comma = UInt8(ascii: ","), quote = UInt8(ascii: "\""), cr: UInt8 = 13, lf: UInt8 = 10

    private func append(_ field: String) {
        let needsQuotes = field.utf8.contains { byte in
            byte == Self.comma || byte == Self.quote || byte == Self.cr || byte == Self.lf
        }
        guard needsQuotes else {
            buffer.append(contentsOf: field.utf8)
            return
        }
        buffer.append(UInt8(ascii: "\""))
        for byte in field.utf8 {
            if byte == UInt8(ascii: "\"") { buffer.append(byte) }
            buffer.append(byte)
        }
        buffer.append(UInt8(ascii: "\""))
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        try handle.close()
    }

    /// A text value from a lead (a name, a company, a source) made safe to open in a spreadsheet:
    /// one starting with =, +, -, @, tab or CR would be read as a formula, so it gets a leading
    /// apostrophe, as OWASP recommends for CSV injection. Numbers the report computes never pass
    /// through here.
    static func text(_ value: String?) -> String {
        guard let value, let first = value.unicodeScalars.first else { return "" }
        return "=+-@\t\r".unicodeScalars.contains(first) ? "'" + value : value
    }

    /// Shortest round-trip form: a CSV number parses back to the exact Double it was computed as.
    static func number(_ value: Double?) -> String {
        guard let value else { return "" }
        return value.isFinite ? "\(value)" : ""
    }

    static func number(_ value: Int?) -> String {
        value.map(String.init) ?? ""
    }

    /// ISO 8601 UTC with milliseconds, from unix ms.
    static func timestamp(_ millis: Int64?) -> String {
        guard let millis else { return "" }
        return Reports.isoTimestamp(millis: millis)
    }
}

extension Reports {
    /// yyyy-MM-ddTHH:mm:ss.SSSZ of unix ms, without a formatter per call.
    static func isoTimestamp(millis: Int64) -> String {
        let day = Civil.floorDiv(millis, dayMillis)
        let msOfDay = millis - day * dayMillis
        let (hour, minute, second, ms) = (msOfDay / 3_600_000, msOfDay / 60_000 % 60, msOfDay / 1000 % 60, msOfDay % 1000)
        return LeadStats.dayString(day) + "T" + pad(hour, 2) + ":" + pad(minute, 2) + ":" + pad(second, 2) + "." + pad(ms, 3) + "Z"
    }

    static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
