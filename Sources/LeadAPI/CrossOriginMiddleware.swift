import Hummingbird

/// Cross-origin access for dashboards served from another origin (`serve --cors-origin`):
/// browsers send their preflight OPTIONS without the API key, and read a cross-origin response
/// only when it names their origin. Hummingbird's `CORSMiddleware` answers both; this picks the
/// one for the request's origin, so each allowed origin is named back exactly and any other
/// origin gets no CORS headers (its browser then refuses the response). Off when none is given.
struct CrossOriginMiddleware<Context: RequestContext>: RouterMiddleware {
    private let byOrigin: [String: CORSMiddleware<Context>]
    /// `*`: every origin. The key still has to be sent; nothing rides on cookies.
    private let anyOrigin: CORSMiddleware<Context>?

    /// The headers a dashboard reads: the rate limit, where a background job is followed, the
    /// id to quote when reporting a failed request, and the stats' and lists' tag to send back.
    static var exposedHeaders: [String] {
        ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "Location", "X-Request-ID", "ETag"]
    }

    init(origins: [String]) {
        func middleware(_ allowOrigin: CORSMiddleware<Context>.AllowOriginExtended) -> CORSMiddleware<Context> {
            CORSMiddleware(
                allowOrigin: allowOrigin,
                allowHeaders: [.authorization, .contentType, .contentEncoding, .accept, HTTPFields.Element.Name("X-API-Key")!,
                               RequestLogMiddleware.header, .ifNoneMatch],
                allowMethods: [.get, .head, .post, .put, .patch, .delete, .options],
                exposedHeaders: Self.exposedHeaders,
                maxAge: .seconds(600))
        }
        anyOrigin = origins.contains("*") ? middleware(.all) : nil
        byOrigin = Dictionary(origins.filter { $0 != "*" }.map { ($0, middleware(.custom($0))) }, uniquingKeysWith: { first, _ in first })
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], let cors = anyOrigin ?? byOrigin[origin] else {
            var response = try await next(request, context)
            // The answer depends on the origin: a shared cache must not give this one to a dashboard.
            if anyOrigin == nil { response.headers[values: .vary].append("Origin") }
            return response
        }
        var response: Response
        do {
            response = try await cors.handle(request, context: context, next: next)
        } catch let error as any HTTPResponseError {
            // An error (a 401, a 429) is answered here, so its rate headers are exposed too.
            response = try error.response(from: request, context: context)
        }
        // The spec reads Access-Control-Expose-Headers on the response itself, where
        // CORSMiddleware leaves it out (it sends it on the preflight only).
        if request.method != .options {
            response.headers[.accessControlExposeHeaders] = Self.exposedHeaders.joined(separator: ", ")
        }
        return response
    }
}

/// The origins `serve --cors-origin` takes.
public enum CrossOrigin {
    /// An origin as browsers send it: scheme://host[:port], no path; `*` for any. Nil otherwise.
    public static func normalized(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "*" { return trimmed }
        let origin = trimmed.hasSuffix("/") ? String(trimmed.dropLast()) : trimmed
        guard let schemeEnd = origin.range(of: "://"),
              ["http", "https"].contains(origin[..<schemeEnd.lowerBound].lowercased()) else { return nil }
        let scheme = origin[..<schemeEnd.lowerBound].lowercased()
        var host = origin[schemeEnd.upperBound...].lowercased()
        // A host name or address and an optional port, as a browser's Origin header has them:
        // no path, user, wildcard or space, which no Origin header could ever match.
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-:[]")
        guard !host.isEmpty, host.allSatisfy(allowed.contains) else { return nil }
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") {
            guard let port = Int(host[host.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
            // Browsers leave the scheme's own port out.
            if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) { host = String(host[..<colon]) }
        }
        guard !host.isEmpty, !host.hasPrefix(":") else { return nil }
        return scheme + "://" + host
    }
}
