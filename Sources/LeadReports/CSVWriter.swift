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

    // MARK: - Field by field, for the leads.csv hot path

    /// A field separator before every field but a row's first.
    private var fieldsInRow = 0

    private func separate() {
        if fieldsInRow > 0 { buffer.append(UInt8(ascii: ",")) }
        fieldsInRow += 1
    }

    /// UTF-8 text from SQLite, quoted as needed; `guardFormula` as in ``text(_:)``. Empty for NULL.
    func field(utf8 bytes: UnsafeBufferPointer<UInt8>?, guardFormula: Bool) {
        separate()
        guard let bytes, !bytes.isEmpty else { return }
        let needsQuotes = bytes.contains { $0 == Self.comma || $0 == Self.quote || $0 == Self.cr || $0 == Self.lf }
        if needsQuotes { buffer.append(Self.quote) }
        if guardFormula && FormulaGuard.isNeeded(bytes) { buffer.append(UInt8(ascii: "'")) }
        if needsQuotes {
            for byte in bytes {
                if byte == Self.quote { buffer.append(byte) }
                buffer.append(byte)
            }
            buffer.append(Self.quote)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    func field(_ value: Int64?) {
        separate()
        guard var value else { return }
        if value < 0 { buffer.append(UInt8(ascii: "-")); value = -value }
        appendDigits(UInt64(value), width: 1)
    }

    func field(_ value: Double?) {
        separate()
        guard let value, value.isFinite else { return }
        var text = "\(value)"
        text.withUTF8 { buffer.append(contentsOf: $0) }
    }

    /// An instant as the API and GET /leads/export write it (``ISODate``), so a report's
    /// times match theirs.
    func field(timestamp millis: Int64?) {
        separate()
        guard let millis else { return }
        ISODate.append(millis, to: &buffer)
    }

    private func appendDigits(_ value: UInt64, width: Int) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { out in
            repeat {
                out[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0 || count < width
            for index in stride(from: count - 1, through: 0, by: -1) { buffer.append(out[index]) }
        }
    }

    func endRow() throws {
        buffer.append(Self.cr)
        buffer.append(Self.lf)
        fieldsInRow = 0
        rows += 1
        if buffer.count >= Self.flushThreshold { try flush() }
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
        value.map(Reports.spreadsheetSafe) ?? ""
    }

    /// Shortest round-trip form: a CSV number parses back to the exact Double it was computed as.
    static func number(_ value: Double?) -> String {
        guard let value else { return "" }
        return value.isFinite ? "\(value)" : ""
    }

    static func number(_ value: Int?) -> String {
        value.map(String.init) ?? ""
    }
}

extension Reports {
    /// `value` made safe to open in a spreadsheet (see ``FormulaGuard/isNeeded(_:)``).
    public static func spreadsheetSafe(_ value: String) -> String {
        FormulaGuard.isNeeded(value.utf8) ? "'" + value : value
    }

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
