import Crypto
import Hummingbird

/// An encoded JSON answer and its entity tag, cached together, so a dashboard polling the stats
/// or a rep polling a list is answered `304 Not Modified`, no body, until the data it shows
/// changes. The tag is a digest of the bytes, not of the store's version: a write elsewhere that
/// leaves this answer as it was keeps its tag, and so does a restart.
struct TaggedBody: Sendable {
    let bytes: ByteBuffer
    /// A strong tag: `"` + 24 hex digits of the body's SHA-256 + `"`.
    let etag: String

    init(_ bytes: ByteBuffer) {
        self.bytes = bytes
        let digest = bytes.withUnsafeReadableBytes { SHA256.hash(data: $0) }
        etag = "\"" + digest.prefix(12).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "\""
    }

    /// 200 with the body, or 304 when the request's `If-None-Match` names this tag. Either way
    /// the tag is sent, with `Cache-Control: private, no-cache`: a browser keeps the answer and
    /// asks again each time (a key's data is never for a shared cache).
    func response(to request: Request) -> Response {
        var headers = HTTPFields()
        headers[.eTag] = etag
        headers[.cacheControl] = "private, no-cache"
        if Self.matches(request.headers[values: .ifNoneMatch], etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: bytes))
    }

    /// `If-None-Match` by weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag equal to
    /// ours once a `W/` prefix is set aside. A header may list several, comma-separated.
    static func matches(_ fields: [String], _ etag: String) -> Bool {
        for field in fields {
            for candidate in field.split(separator: ",") {
                var tag = candidate.trimmingPrefix(while: { $0 == " " || $0 == "\t" })
                while let last = tag.last, last == " " || last == "\t" { tag.removeLast() }
                if tag == "*" { return true }
                if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
                if tag == etag { return true }
            }
        }
        return false
    }
}
