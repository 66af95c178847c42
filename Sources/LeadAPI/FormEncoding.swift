/// application/x-www-form-urlencoded, as browsers, `URLSearchParams` and Python's `urlencode`
/// send both form bodies and query strings: "+" is a space, "%2B" a plus.
enum FormEncoding {
    /// The fields in order, repeated keys kept. Text that is not valid percent-encoding
    /// ("100%") is kept as it was sent (with "+" still a space) rather than dropped, so a filter
    /// is never silently lost.
    static func fields(_ encoded: String) -> [(key: String, value: String)] {
        pairs(encoded).compactMap { $0.key.text.isEmpty ? nil : ($0.key.text, $0.value.text) }
    }

    /// A form body's fields, as ``fields(_:)`` reads them, or the first key whose key or value
    /// is percent-encoded bytes that are not UTF-8: a Latin-1 page sends "Ren%E9", which is
    /// refused as raw Latin-1 would be rather than stored as "Ren%E9".
    static func formFields(_ encoded: String) -> Result<[(key: String, value: String)], NotUTF8> {
        let decoded = pairs(encoded)
        if let bad = decoded.first(where: { !$0.key.isUTF8 || !$0.value.isUTF8 }) { return .failure(NotUTF8(key: bad.key.text)) }
        return .success(decoded.compactMap { $0.key.text.isEmpty ? nil : ($0.key.text, $0.value.text) })
    }

    /// Each `key=value` pair, both decoded.
    private static func pairs(_ encoded: String) -> [(key: (text: String, isUTF8: Bool), value: (text: String, isUTF8: Bool))] {
        encoded.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : (text: "", isUTF8: true))
        }
    }

    struct NotUTF8: Error {
        var key: String
    }

    /// "+" as a space, then the percent escapes. Text that is not valid percent-encoding is kept
    /// as sent; `isUTF8` is false when the escapes are valid but make bytes that are not UTF-8.
    private static func decode(_ s: Substring) -> (text: String, isUTF8: Bool) {
        let spaced = String(s).replacingOccurrences(of: "+", with: " ")
        if let decoded = spaced.removingPercentEncoding { return (decoded, true) }
        // Foundation refuses both bad escapes and escapes of bytes that are not UTF-8: with every
        // "%" followed by two hex digits, it was the bytes.
        let utf8 = Array(spaced.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%") {
                guard index + 2 < utf8.count, isHexDigit(utf8[index + 1]), isHexDigit(utf8[index + 2]) else {
                    return (spaced, true)  // "100%": not percent-encoding, kept as sent
                }
                index += 3
            } else {
                index += 1
            }
        }
        return (spaced, false)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }

    /// Where `bytes` stop being UTF-8 (their count when they are).
    static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return offset
            case .error: return offset
            }
        }
    }
}
