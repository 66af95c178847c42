import Foundation

/// How LeadLens writes an instant: ISO 8601 in UTC, whole seconds ("2026-11-21T10:00:00Z"), the
/// milliseconds dropped (rounded down). The API's JSON, GET /leads/export and a report's leads.csv
/// all write this, so their values compare as text.
public enum ISODate {
    public static func string(_ millis: Int64) -> String {
        var bytes: [UInt8] = []
        append(millis, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// yyyy-MM-ddTHH:mm:ssZ, written digit by digit: formatting four dates per lead through
    /// String interpolation was a tenth of a list request.
    public static func append(_ millis: Int64, to bytes: inout [UInt8]) {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let day = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - day * 86_400
        func digits(_ value: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        let date = LeadStats.civilDate(day)
        if (0...9999).contains(date.year) {
            digits(date.year, 4); bytes.append(UInt8(ascii: "-"))
            digits(date.month, 2); bytes.append(UInt8(ascii: "-"))
            digits(date.day, 2)
        } else {
            bytes.append(contentsOf: LeadStats.dayString(day).utf8)
        }
        bytes.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3600, 2); bytes.append(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2); bytes.append(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2); bytes.append(UInt8(ascii: "Z"))
    }
}
