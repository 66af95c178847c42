/// application/x-www-form-urlencoded, as browsers, `URLSearchParams` and Python's `urlencode`
/// send both form bodies and query strings: "+" is a space, "%2B" a plus.
enum FormEncoding {
    /// The fields in order, repeated keys kept. Text that is not valid percent-encoding
    /// ("100%") is kept as it was sent (with "+" still a space) rather than dropped, so a filter
    /// is never silently lost.
    static func fields(_ encoded: String) -> [(key: String, value: String)] {
        encoded.split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                let spaced = String(s).replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let key = decode(parts[0])
            guard !key.isEmpty else { return nil }
            return (key, parts.count > 1 ? decode(parts[1]) : "")
        }
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
