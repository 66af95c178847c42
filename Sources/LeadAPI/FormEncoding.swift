/// application/x-www-form-urlencoded, as browsers, `URLSearchParams` and Python's `urlencode`
/// send both form bodies and query strings: "+" is a space, "%2B" a plus.
enum FormEncoding {
    /// The fields in order, repeated keys kept. A pair whose key does not decode is dropped; a
    /// value that does not decode reads as empty.
    static func fields(_ encoded: String) -> [(key: String, value: String)] {
        encoded.split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let key = decode(parts[0]), !key.isEmpty else { return nil }
            return (key, parts.count > 1 ? decode(parts[1]) ?? "" : "")
        }
    }
}
