import Foundation

/// Sizes as people write them ("10MiB", "512k", "20000000") and as messages name them.
/// K, M and G are binary (KiB, MiB, GiB), as body limits usually are.
public enum ByteCount {
    /// Nil when the text is not a whole number of bytes, KiB, MiB or GiB.
    public static func parse(_ text: String) -> Int? {
        let lowered = text.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = lowered.prefix { $0 >= "0" && $0 <= "9" }
        guard let number = Int(digits) else { return nil }
        let shift: Int
        switch lowered.dropFirst(digits.count).trimmingCharacters(in: .whitespaces) {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        default: return nil
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : bytes
    }

    /// "10 MiB", "512 KiB", "1000 bytes": the largest unit that divides the count.
    public static func describe(_ bytes: Int) -> String {
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] where bytes > 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift) \(unit)"
        }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }
}
