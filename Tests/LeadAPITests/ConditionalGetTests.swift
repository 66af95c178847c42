import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LeadAPI
import Testing

@Suite("Conditional GET of the stats and lists")
struct ConditionalGetTests {
    @Test("the stats carry an ETag; sending it back is a 304 with no body until the numbers change")
    func stats() async throws {
        let api = try TestAPI(leads: 40)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let first = try await client.call(.get, "/api/v1/leads/stats", key: api.reader)
            #expect(first.status == .ok)
            let etag = try #require(first.headers[.eTag])
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\"") && etag.count == 26)
            #expect(first.headers[.cacheControl] == "private, no-cache")
            #expect(first.data["total"] as? Int == 40)

            for sent in [etag, "W/\(etag)", "\"other\", \(etag)", "*"] {
                let again = try await client.call(.get, "/api/v1/leads/stats", key: api.reader, headers: [.ifNoneMatch: sent])
                #expect(again.status == .notModified, "If-None-Match: \(sent)")
                #expect(again.body.readableBytes == 0)
                #expect(again.headers[.eTag] == etag)
            }
            let other = try await client.call(.get, "/api/v1/leads/stats", key: api.reader, headers: [.ifNoneMatch: "\"0000\""])
            #expect(other.status == .ok && other.headers[.eTag] == etag)
            // Another filter is another answer, with a tag of its own.
            let filtered = try await client.call(.get, "/api/v1/leads/stats?status=new", key: api.reader, headers: [.ifNoneMatch: etag])
            #expect(filtered.status == .ok)
            #expect(filtered.headers[.eTag] != etag)

            // A new lead changes the numbers: the old tag no longer matches.
            let created = try await client.call(.post, "/api/v1/leads", key: api.writer, json: ["email": "new@example.com"])
            #expect(created.status == .created)
            let changed = try await client.call(.get, "/api/v1/leads/stats", key: api.reader, headers: [.ifNoneMatch: etag])
            #expect(changed.status == .ok)
            #expect(changed.data["total"] as? Int == 41)
            #expect(changed.headers[.eTag] != nil && changed.headers[.eTag] != etag)
            // Still a 401 without a key: the tag reveals nothing to a caller that cannot read.
            let anonymous = try await client.call(.get, "/api/v1/leads/stats", key: nil, headers: [.ifNoneMatch: "*"])
            #expect(anonymous.status == .unauthorized)
        }
    }

    @Test("a list page carries an ETag too, per query, and changes when a lead on it does")
    func lists() async throws {
        let api = try TestAPI(leads: 30)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let path = "/api/v1/leads?min_score=80&max_score=100&sort=created_at&direction=desc"
            let first = try await client.call(.get, path, key: api.reader)
            #expect(first.status == .ok)
            let etag = try #require(first.headers[.eTag])
            let same = try await client.call(.get, path, key: api.reader, headers: [.ifNoneMatch: etag])
            #expect(same.status == .notModified && same.body.readableBytes == 0)
            // Another query's tag is not this one's: a full answer, with its own tag, which then works.
            let page2 = try await client.call(.get, "/api/v1/leads?per_page=5&page=2", key: api.reader, headers: [.ifNoneMatch: etag])
            #expect(page2.status == .ok && page2.list.count == 5)
            let page2Tag = try #require(page2.headers[.eTag])
            let page2Again = try await client.call(.get, "/api/v1/leads?per_page=5&page=2", key: api.reader, headers: [.ifNoneMatch: page2Tag])
            #expect(page2Again.status == .notModified)
            // A 304 keeps the headers a client reads on every answer.
            #expect(page2Again.header("X-Request-ID") != nil)

            let lead = try #require(first.list.first?["id"] as? Int)
            let renamed = try await client.call(.patch, "/api/v1/leads/\(lead)", key: api.editor, json: ["company": "Renamed Ltd"])
            #expect(renamed.status == .ok)
            let after = try await client.call(.get, path, key: api.reader, headers: [.ifNoneMatch: etag])
            #expect(after.status == .ok)
            #expect(after.list.first?["company"] as? String == "Renamed Ltd")
        }
    }

    @Test("If-None-Match is read as RFC 9110 weak comparison")
    func matching() {
        let tag = "\"abc\""
        #expect(TaggedBody.matches(["\"abc\""], tag))
        #expect(TaggedBody.matches(["W/\"abc\""], tag))
        #expect(TaggedBody.matches(["\"x\",  \"abc\" "], tag))
        #expect(TaggedBody.matches(["\"x\"", "\"abc\""], tag))
        #expect(TaggedBody.matches(["*"], tag))
        #expect(!TaggedBody.matches(["\"abcd\""], tag))
        #expect(!TaggedBody.matches(["abc"], tag), "an unquoted value is not the tag")
        #expect(!TaggedBody.matches([], tag))
    }
}
