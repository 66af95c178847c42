import Foundation
import Hummingbird
import HummingbirdTesting
import LeadAPI
import LeadStore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Raw HTTP: HTTP/1.0 connections and broken framing")
struct HTTP10Tests {
    /// Sends `request` on a fresh TCP connection, reads the whole response (by its
    /// Content-Length, waiting up to 10 s: the suite runs in parallel), then waits up to
    /// `closeWithin` seconds for the server to close the connection.
    /// A blocking TCP socket connected to the server.
    private static func connected(port: Int) throws -> Int32 {
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        try #require(descriptor >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 { close(descriptor) }
        try #require(result == 0)
        return descriptor
    }

    private static func waitAtMost(_ seconds: Int, on descriptor: Int32) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func blockingExchange(port: Int, _ request: String, closeWithin: Int) throws -> (response: String, closed: Bool) {
        let descriptor = try connected(port: port)
        defer { close(descriptor) }
        func waitAtMost(_ seconds: Int) { Self.waitAtMost(seconds, on: descriptor) }
        let bytes = Array(request.utf8)
        try #require(send(descriptor, bytes, bytes.count, 0) == bytes.count)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        func complete() -> Bool {
            let text = String(decoding: received, as: UTF8.self)
            guard let split = text.range(of: "\r\n\r\n"),
                  let length = text[..<split.lowerBound].split(separator: "\r\n")
                      .first(where: { $0.lowercased().hasPrefix("content-length:") })
                      .flatMap({ Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) })
            else { return false }
            return text.utf8.count - text[..<split.upperBound].utf8.count >= length
        }
        waitAtMost(10)
        while !complete() {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { return (String(decoding: received, as: UTF8.self), count == 0) }
            received += buffer[0..<count]
        }
        waitAtMost(closeWithin)
        return (String(decoding: received, as: UTF8.self), recv(descriptor, &buffer, buffer.count, 0) == 0)
    }

    /// The socket calls block: they run on a thread of their own, never on the cooperative pool
    /// the server's request tasks need (with two cores, blocking it starved the server).
    private func exchange(port: Int, _ request: String, closeWithin: Int) async throws -> (response: String, closed: Bool) {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try Self.blockingExchange(port: port, request, closeWithin: closeWithin) }) }.start()
        }
    }

    /// A server on an in-memory store, on a free port.
    private static func liveApp() throws -> some ApplicationProtocol {
        var configuration = APIConfiguration(version: "1")
        configuration.port = 0
        return buildApplication(store: try LeadStore.inMemory(), configuration: configuration)
    }

    @Test("an HTTP/1.0 request is answered and its connection closed, unless it asked to keep it alive")
    func http10ClosesUnlessKeptAlive() async throws {
        try await Self.liveApp().test(.live) { client in
            let port = try #require(client.port)
            let plain = try await exchange(port: port, "GET /api/v1/health HTTP/1.0\r\n\r\n", closeWithin: 10)
            #expect(plain.response.hasPrefix("HTTP/1.1 200") && plain.response.contains(#""status":"ok""#))
            #expect(plain.closed, "an HTTP/1.0 client reads its response to the connection's end")
            let keptAlive = try await exchange(port: port, "GET /api/v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", closeWithin: 1)
            #expect(keptAlive.response.hasPrefix("HTTP/1.1 200") && !keptAlive.closed)
            let http11 = try await exchange(port: port, "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n", closeWithin: 1)
            #expect(http11.response.hasPrefix("HTTP/1.1 200") && !http11.closed)
        }
    }

    @Test("a body that breaks chunked framing is a 422 naming the body, in the error shape, not a 500")
    func brokenChunkedBodyIsTheClientsError() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let app = api.app { $0.port = 0 }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let reply = try await exchange(port: port, """
                POST /api/v1/intake HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(api.writer)\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n
                """, closeWithin: 1)
            #expect(reply.response.hasPrefix("HTTP/1.1 422"), "\(reply.response.prefix(200))")
            #expect(reply.response.contains(#""code":"VALIDATION_FAILED""#) && reply.response.contains(#""errors":{"body":"#))
        }
        let leads = try await api.store.reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") }
        #expect(leads == 0)
    }

    @Test("a request that is not valid HTTP gets a 400 in the error shape, then the connection closes")
    func malformedRequestsAnswerInTheErrorShape() async throws {
        try await Self.liveApp().test(.live) { client in
            let port = try #require(client.port)
            let big = String(repeating: "x", count: 100 * 1024)
            for (request, reason) in [
                ("GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: \(big)\r\n\r\n", "over the limit of 80 KiB"),
                ("POST /api/v1/intake HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n", "Content-Length"),
            ] {
                let reply = try await exchange(port: port, request, closeWithin: 10)
                #expect(reply.response.hasPrefix("HTTP/1.1 400"), "\(reply.response.prefix(120))")
                #expect(reply.response.contains(#""code":"BAD_REQUEST""#) && reply.response.contains(#""status":"error""#))
                #expect(reply.response.contains(reason), "\(reply.response.suffix(300))")
                #expect(reply.closed)
            }
            // A valid request on the next connection is untouched.
            let fine = try await exchange(port: port, "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n", closeWithin: 1)
            #expect(fine.response.hasPrefix("HTTP/1.1 200"))
        }
    }

    /// Sends a request's head with `Expect: 100-continue` and returns what arrives within 3 s,
    /// as curl waits (for a second) before sending a large body; then sends the body and returns
    /// the final response.
    private static func blockingExpectContinue(port: Int, head: String, body: String?) throws -> (interim: String, final: String) {
        let descriptor = try connected(port: port)
        defer { close(descriptor) }
        func read(until done: (String) -> Bool) -> String {
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !done(String(decoding: received, as: UTF8.self)) {
                let count = recv(descriptor, &buffer, buffer.count, 0)
                if count <= 0 { break }
                received += buffer[0..<count]
            }
            return String(decoding: received, as: UTF8.self)
        }
        let headBytes = Array(head.utf8)
        try #require(send(descriptor, headBytes, headBytes.count, 0) == headBytes.count)
        waitAtMost(3, on: descriptor)
        let interim = read { $0.contains("\r\n\r\n") }
        guard let body else { return (interim, "") }
        let bodyBytes = Array(body.utf8)
        try #require(send(descriptor, bodyBytes, bodyBytes.count, 0) == bodyBytes.count)
        waitAtMost(10, on: descriptor)
        let final = read { text in
            guard let split = text.range(of: "\r\n\r\n") else { return false }
            return text[split.upperBound...].contains("}")
        }
        return (interim, final)
    }

    @Test("Expect: 100-continue gets its interim answer at once, so a client sends its body without waiting")
    func expectContinue() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app { $0.port = 0 }.test(.live) { client in
            let port = try #require(client.port)
            let body = #"{"type":"track","userId":"u1","event":"Demo Requested","messageId":"x-1"}"#
            let head = "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(api.writer)\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n"
            let reply = try await withCheckedThrowingContinuation { continuation in
                Thread { continuation.resume(with: Result { try Self.blockingExpectContinue(port: port, head: head, body: body) }) }.start()
            }
            #expect(reply.interim.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(reply.interim.prefix(80))")
            #expect(reply.final.hasPrefix("HTTP/1.1 200"), "\(reply.final.prefix(200))")
            #expect(reply.final.contains(#""events_added":1"#))

            // A body the server refuses unread is not invited: no key (401), or one declared over
            // the body limit (413). The final answer comes first, and nothing is uploaded.
            for (refused, status) in [
                ("POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n", "401"),
                ("POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(api.writer)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(APILimits.maxBodyBytes + 1)\r\nExpect: 100-continue\r\n\r\n", "413"),
            ] {
                let answer = try await withCheckedThrowingContinuation { continuation in
                    Thread { continuation.resume(with: Result { try Self.blockingExpectContinue(port: port, head: refused, body: nil) }) }.start()
                }
                #expect(answer.interim.hasPrefix("HTTP/1.1 \(status)"), "\(answer.interim.prefix(80))")
                // Said to close, so a client that would send the body after any other answer does not.
                #expect(answer.interim.lowercased().contains("connection: close"), "\(answer.interim.prefix(300))")
            }
        }
    }

    @Test("a client that stops part-way through its body has its connection closed after the idle timeout")
    func stalledBodyTimesOut() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        let app = api.app {
            $0.port = 0
            $0.idleTimeout = .seconds(1)
        }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // 10 of the 100 bytes promised, then silence: without the timeout the server waits
            // for the rest as long as the client keeps the socket open (here 10 s, then false).
            let stalled = try await exchange(port: port, """
                POST /api/v1/intake HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(api.writer)\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email":
                """, closeWithin: 10)
            #expect(stalled.closed && stalled.response.isEmpty, "\(stalled.response.prefix(120))")
        }
    }
}
