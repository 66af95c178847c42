/// Timestamp parsing for ingest: ISO 8601 / RFC 3339 strings and unix epoch numbers, to unix
/// milliseconds. Hand-written because it runs once per event; a formatter per call would cost
/// more than the rest of the event's parsing.
public enum Timestamp {
    /// Parses "2026-03-04", "2026-03-04T12:34:56Z", "2026-03-04 12:34:56.789+02:00", and so on.
    /// A string without a zone is taken as UTC.
    public static func parseISO8601(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { bytes in
            var count = bytes.count
            while count > 0, bytes[count - 1] == 0x20 { count -= 1 }
            return parseISO8601(bytes: UnsafeBufferPointer(rebasing: bytes[0..<count]))
        }
    }

    static func parseISO8601(bytes b: UnsafeBufferPointer<UInt8>) -> Int64? {
        // A cursor struct, not local functions over a local index: perf showed that index
        // checked for exclusivity at run time (swift_beginAccess) on every digit, and this
        // function a tenth of the parser thread's time on the ingest benchmark.
        var c = Cursor(bytes: b)
        guard let year = c.digits(4), c.consume(0x2D), let month = c.digits(2), c.consume(0x2D), let day = c.digits(2),
              (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year)
        else { return nil }
        var hour = 0, minute = 0, second = 0, millis = 0, offsetSeconds = 0
        if !c.atEnd {
            guard c.consume(UInt8(ascii: "T")) || c.consume(UInt8(ascii: "t")) || c.consume(0x20) else { return nil }
            guard let h = c.digits(2), c.consume(0x3A), let m = c.digits(2), h < 24, m < 60 else { return nil }
            hour = h
            minute = m
            if c.consume(0x3A) {
                guard let s = c.digits(2), s <= 60 else { return nil }
                second = min(s, 59)  // a leap second folds into :59
                if c.consume(0x2E) || c.consume(0x2C) {
                    var scale = 100
                    var sawDigit = false
                    while let digit = c.digit() {
                        millis += digit * scale
                        scale /= 10
                        sawDigit = true
                    }
                    guard sawDigit else { return nil }
                }
            }
            if c.consume(UInt8(ascii: "+")) || c.consume(UInt8(ascii: "-")) {
                let sign = b[c.index - 1] == UInt8(ascii: "-") ? -1 : 1
                guard let oh = c.digits(2), oh <= 23 else { return nil }
                _ = c.consume(0x3A)
                let om = c.digits(2) ?? 0
                guard om < 60 else { return nil }
                offsetSeconds = sign * (oh * 3600 + om * 60)
            } else if !c.atEnd {
                guard c.consume(UInt8(ascii: "Z")) || c.consume(UInt8(ascii: "z")) else { return nil }
            }
        }
        guard c.atEnd else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        return seconds * 1000 + Int64(millis)
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        var atEnd: Bool { index == bytes.count }

        /// The next byte's value as a decimal digit, consumed; nil (nothing consumed) otherwise.
        mutating func digit() -> Int? {
            guard index < bytes.count else { return nil }
            let value = Int(bytes[index]) &- 48
            guard value >= 0, value <= 9 else { return nil }
            index += 1
            return value
        }

        /// Exactly `count` digits as a number; nil when fewer follow.
        mutating func digits(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for k in index..<index + count {
                let d = Int(bytes[k]) &- 48
                guard d >= 0, d <= 9 else { return nil }
                value = value * 10 + d
            }
            index += count
            return value
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
    }

    /// The exclusive end of a range a person wrote as "to" or "before": a bare date
    /// (YYYY-MM-DD) includes that whole UTC day, a date-time is exact.
    public static func parseEnd(_ text: String) -> Int64? {
        guard let millis = parseISO8601(text) else { return nil }
        return text.trimmingCharacters(in: .whitespaces).utf8.count == 10 ? millis + 86_400_000 : millis
    }

    /// 2200-01-01 in epoch seconds: later epoch numbers are typing errors, not times.
    static let latestEpochSeconds = 7_258_118_400.0
    static let latestMillis = Int64(latestEpochSeconds) * 1000
    /// 1900-01-01: the earliest written date ingest takes.
    static let earliestMillis: Int64 = -2_208_988_800_000

    /// Epoch numbers: values above 10^11 are taken as milliseconds (10^11 s is the year 5138).
    /// Either way they must fall before 2200.
    public static func fromEpoch(_ value: Double) -> Int64? {
        guard value.isFinite, value >= 0 else { return nil }
        if value > 1e11 {
            return value < latestEpochSeconds * 1000 ? Int64(value.rounded()) : nil
        }
        return value < latestEpochSeconds ? Int64((value * 1000).rounded()) : nil
    }

    /// A JSON number: epoch seconds or milliseconds, except an eight-digit integer, which must
    /// make a date (20260105), as a digit string does.
    public static func fromNumber(_ value: Double) -> Int64? {
        if value == value.rounded(), value >= 10_000_000, value < 100_000_000 { return compactDate(Int(value)) }
        return fromEpoch(value)
    }

    /// Either form; a string of digits is an epoch number, except eight digits, which must make
    /// a date ("20260105", as spreadsheets export it) and read as that day. A written date must
    /// fall in 1900–2199, as the other forms must: "9999-12-31" is a placeholder, and taken as
    /// an event's time it would stay every recency feature's latest activity for good.
    public static func parse(_ text: String) -> Int64? {
        if let millis = parseISO8601(text) { return (earliestMillis..<latestMillis).contains(millis) ? millis : nil }
        if !text.isEmpty, text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 0x2E }) {
            // Epoch seconds of eight digits are 1970–73: never a lead's time, and a typo'd date.
            if text.utf8.count == 8 { return Int(text).flatMap(compactDate) }
            if let value = Double(text) { return fromEpoch(value) }
        }
        return nil
    }

    /// yyyyMMdd at UTC midnight, when it names a real day of 1900–2199.
    static func compactDate(_ number: Int) -> Int64? {
        let (year, month, day) = (number / 10_000, number / 100 % 100, number % 100)
        guard (1900...2199).contains(year), (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day) else {
            return nil
        }
        return Int64(daysFromCivil(year: year, month: month, day: day)) * 86_400_000
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
