import Foundation
import Hummingbird
import LeadStore
import Synchronization

/// Authenticates every request under /api/v1 except health, counts it against its key's rate
/// limit, and checks the route's scope. Every authenticated response, errors included, carries
/// the X-RateLimit headers.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    let keys: KeyCache
    let limiter: RateLimiter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Decided on the route the router matched, never on the path as sent: the router skips
        // empty segments, so "//api/v1/keys" reaches the keys route while failing a text test
        // on the path. Without a match (a 404 in the making) the path is normalized the same way.
        let route = Self.route(request, context: context)
        guard route.hasPrefix("/api/v1/"), route != "/api/v1/health" else {
            return try await next(request, context)
        }
        guard let secret = Self.presentedKey(request) else {
            throw APIError(.unauthorized, "an API key is required: send Authorization: Bearer KEY or X-API-Key: KEY (one key; both headers must agree)",
                           headers: [.wwwAuthenticate: "Bearer"])
        }
        guard let key = try await keys.lookup(secret) else {
            throw APIError(.unauthorized, "the API key is invalid or revoked", headers: [.wwwAuthenticate: "Bearer"])
        }
        context.attribution?.keyName = key.name
        let decision = limiter.take(key: key.id, limit: key.rateLimit)
        let rateHeaders = decision.headers
        guard decision.allowed else {
            var headers = rateHeaders
            headers[.retryAfter] = String(decision.retryAfter)
            throw APIError(.rateLimited, "rate limit exceeded: \(key.rateLimit) for this key", headers: headers)
        }
        do {
            let required = RequiredScope.for(method: request.method, route: route)
            guard key.scopes.contains(required) || RequiredScope.alsoAdmits(key.scopes, method: request.method, route: route) else {
                throw APIError(.forbidden, "this key lacks the \(required.rawValue) scope")
            }
            var context = context
            context.apiKey = key
            var response = try await next(request, context)
            response.headers.append(contentsOf: rateHeaders)
            return response
        } catch {
            var apiError = APIError.wrapping(error, request: request, bodyLimit: context.maxUploadSize, logger: context.logger)
            apiError.headers.append(contentsOf: rateHeaders)
            throw apiError
        }
    }

    /// The matched route's pattern ("/api/v1/leads/{id}"), or without one the request's path
    /// with empty segments dropped, as the router reads it.
    static func route(_ request: Request, context: Context) -> String {
        if let matched = context.endpointPath, matched != "NotFound" { return matched }
        return "/" + request.uri.path.split(separator: "/").joined(separator: "/")
    }

    /// The key a request presents; nil when none, or when its two headers present different
    /// ones (a gateway adding its own Bearer token would otherwise silently win).
    static func presentedKey(_ request: Request) -> String? {
        presentedKey(authorization: request.headers[.authorization],
                     apiKey: HTTPFields.Element.Name("X-API-Key").flatMap { request.headers[$0] })
    }

    /// The same from the two headers' values, for code below the router (NIO's HTTP parts).
    static func presentedKey(authorization: String?, apiKey: String?) -> String? {
        var bearer: String?
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                // Header values arrive with outer whitespace already stripped (swift-http-types).
                let token = parts[1].trimmingPrefix(while: { $0 == " " || $0 == "\t" })
                if !token.isEmpty { bearer = String(token) }
            }
        }
        let header = apiKey?.isEmpty == false ? apiKey : nil
        if let bearer, let header, bearer != header { return nil }
        return bearer ?? header
    }
}

/// The scope each route needs: admin for keys, training, rescoring and making reports; read
/// for every other GET (reading a report included); write for every other change.
enum RequiredScope {
    /// `route` is a route pattern, or a path normalized as ``AuthMiddleware/route(_:context:)`` does.
    static func `for`(method: HTTPRequest.Method, route: String) -> Scope {
        if route == "/api/v1/keys" || route.hasPrefix("/api/v1/keys/") { return .admin }
        if method == .post, ["/api/v1/models/train", "/api/v1/leads/rescore", "/api/v1/reports"].contains(route) {
            return .admin
        }
        return method == .get || method == .head ? .read : .write
    }

    /// Reads an admin key may make besides: the jobs it starts (training, rescoring), whose
    /// 202 points it there.
    static func alsoAdmits(_ scopes: Set<Scope>, method: HTTPRequest.Method, route: String) -> Bool {
        scopes.contains(.admin) && (method == .get || method == .head) && route.hasPrefix("/api/v1/jobs/")
    }
}

/// Keys by secret, cached briefly so a request costs no SQL. A key revoked through the API is
/// dropped at once; one revoked from another process stops working within `ttl`.
final class KeyCache: Sendable {
    private let store: LeadStore
    private let ttl: TimeInterval
    private let entries = Mutex<[String: (key: APIKey?, expires: Date)]>([:])

    init(store: LeadStore, ttl: TimeInterval = 5) {
        self.store = store
        self.ttl = ttl
    }

    func lookup(_ secret: String) async throws -> APIKey? {
        guard secret.utf8.count <= 256 else { return nil }
        let now = Date()
        if let cached = entries.withLock({ $0[secret] }), cached.expires > now { return cached.key }
        let key = try await store.reader.read { db in try APIKeys.find(key: secret, in: db) }
        entries.withLock { entries in
            // Bounded: unknown secrets are cached too (so a flood of bad keys costs no SQL),
            // and the whole cache is dropped when it grows past a sane size.
            if entries.count > 10_000 { entries.removeAll() }
            entries[secret] = (key, now.addingTimeInterval(ttl))
        }
        return key
    }

    func invalidate() {
        entries.withLock { $0.removeAll() }
    }
}

/// Fixed-window counters per key, in memory: each window starts on a multiple of its length.
final class RateLimiter: Sendable {
    struct Decision {
        var allowed: Bool
        var limit: Int?
        var remaining: Int
        var reset: Int64
        var retryAfter: Int64

        var headers: HTTPFields {
            guard let limit else { return [:] }
            var fields = HTTPFields()
            fields[HTTPFields.Element.Name("X-RateLimit-Limit")!] = String(limit)
            fields[HTTPFields.Element.Name("X-RateLimit-Remaining")!] = String(remaining)
            fields[HTTPFields.Element.Name("X-RateLimit-Reset")!] = String(reset)
            return fields
        }
    }

    private let windows = Mutex<[Int64: (start: Int64, count: Int)]>([:])
    private let clock: @Sendable () -> Int64

    /// `clock` returns unix seconds; tests move it.
    init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.clock = clock
    }

    func take(key: Int64, limit: RateLimit) -> Decision {
        let now = clock()
        guard let max = limit.limit else {
            return Decision(allowed: true, limit: nil, remaining: 0, reset: 0, retryAfter: 0)
        }
        let window = Int64(limit.windowSeconds)
        let start = now - now % window
        return windows.withLock { windows in
            var entry = windows[key] ?? (start, 0)
            if entry.start != start { entry = (start, 0) }
            let allowed = entry.count < max
            if allowed { entry.count += 1 }
            windows[key] = entry
            return Decision(allowed: allowed, limit: max, remaining: Swift.max(0, max - entry.count),
                            reset: start + window, retryAfter: Swift.max(1, start + window - now))
        }
    }
}
