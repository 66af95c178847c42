import Foundation
import GRDB
import Hummingbird
import LeadIngest
import LeadStore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The one error shape every response uses:
/// `{"status": "error", "message": …, "code": …, "errors": {"field": ["message", …]}}`.
/// Messages are written for the client: never a stack trace, SQL, or another lead's data.
public struct APIError: HTTPResponseError, Sendable {
    public enum Code: String, Sendable, CaseIterable {
        case unauthorized = "UNAUTHORIZED"
        case forbidden = "FORBIDDEN"
        case notFound = "NOT_FOUND"
        case methodNotAllowed = "METHOD_NOT_ALLOWED"
        case conflict = "CONFLICT"
        case payloadTooLarge = "PAYLOAD_TOO_LARGE"
        case validationFailed = "VALIDATION_FAILED"
        case rateLimited = "RATE_LIMITED"
        case serverError = "SERVER_ERROR"
        /// A request that is not valid HTTP (headers over the limit, a bad Content-Length): the
        /// connection answers it and closes, before any route sees it.
        case badRequest = "BAD_REQUEST"

        public var status: HTTPResponse.Status {
            switch self {
            case .badRequest: .badRequest
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .conflict: .conflict
            case .payloadTooLarge: .contentTooLarge
            case .validationFailed: .unprocessableContent
            case .rateLimited: .tooManyRequests
            case .serverError: .internalServerError
            }
        }
    }

    public var code: Code
    public var message: String
    /// Field name → problems with it.
    public var errors: [String: [String]]
    public var headers: HTTPFields

    public init(_ code: Code, _ message: String, errors: [String: [String]] = [:], headers: HTTPFields = [:]) {
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers
    }

    public var status: HTTPResponse.Status { code.status }

    struct Body: Encodable {
        let status = "error"
        let message: String
        let code: String
        let errors: [String: [String]]
    }

    /// The 413 for a body over `limit` bytes, however it was found to be.
    static func bodyTooLarge(limit: Int, decoded: Bool = false) -> APIError {
        APIError(.payloadTooLarge, "the \(decoded ? "decoded " : "")request body is over the limit of \(ByteCount.describe(limit))")
    }

    /// The error's JSON body.
    func body() throws -> Data {
        try APIJSON.encoder.encode(Body(message: message, code: code.rawValue, errors: errors))
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try body()
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// JSON as the API speaks it: snake_case keys (set explicitly on each type), ISO 8601 dates in UTC.
public enum APIJSON {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

extension APIError {
    /// Any error as the API shows it: Hummingbird's own (an unknown route, a body over the
    /// limit) by status, a store conflict as 409, anything else as a 500 whose details go to the
    /// log, never to the client.
    /// `bodyLimit`: the request's body limit, which a 413 names.
    static func wrapping(_ error: any Error, request: Request, bodyLimit: Int, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as HTTPError:
            let code: APIError.Code = switch error.status {
            case .notFound, .methodNotAllowed: .notFound
            case .contentTooLarge: .payloadTooLarge
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .conflict: .conflict
            case .badRequest, .unprocessableContent, .unsupportedMediaType: .validationFailed
            default: .serverError
            }
            if code == .payloadTooLarge { return .bodyTooLarge(limit: bodyLimit) }
            let message = switch code {
            case .notFound: "no such resource: \(request.method) \(request.uri.path)"
            case .validationFailed: "the request body is malformed"
            default: "the request failed"
            }
            return APIError(code, message)
        case is NIOTooManyBytesError:
            return .bodyTooLarge(limit: bodyLimit)
        case let error as HTTPParserError:
            // The body broke HTTP's framing (a chunk size that is not hex, say): the client's
            // fault, not the server's.
            return APIError(.validationFailed, "the request body is not valid HTTP: \(error)",
                            errors: ["body": ["breaks HTTP's framing: \(error)"]])
        case let error as DecodingError:
            return APIError(.validationFailed, "the request body does not match the expected shape",
                            errors: Self.fieldErrors(error))
        case let error as IngestFileError:
            // A CSV body nothing can be read from (an unreadable header row): the reason names a
            // line, never a value.
            return APIError(.validationFailed, "the body cannot be ingested: \(error.reason)", errors: ["body": [error.reason]])
        case LeadMutations.Failure.notFound:
            return APIError(.notFound, "no such lead")
        case LeadMutations.Failure.noIdentity(let fields):
            return APIError(.validationFailed, "a lead needs an email, a phone or an external_id",
                            errors: Dictionary(uniqueKeysWithValues: fields.map {
                                ($0, ["cannot be cleared: a lead needs an email, a phone or an external_id"])
                            }))
        case LeadMutations.Failure.conflict(let field):
            return APIError(.conflict, "another lead already has this \(field)", errors: [field: ["already taken by another lead"]])
        case let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED:
            // Another process held the store's write lock past the busy timeout (10 s): a
            // moment's wait usually clears it.
            logger.warning("store busy", metadata: ["sqlite.code": "\(error.resultCode)", "http.path": "\(request.uri.path)"])
            return APIError(.serverError, "the store is busy with another writer; retry shortly", headers: [.retryAfter: "1"])
        default:
            var metadata: Logger.Metadata = ["error.type": "\(type(of: error))", "http.path": "\(request.uri.path)"]
            // The result code alone (the message may quote SQL and values).
            if let error = error as? DatabaseError { metadata["sqlite.code"] = "\(error.resultCode)" }
            logger.error("request failed", metadata: metadata)
            return APIError(.serverError, "the server failed to handle the request")
        }
    }

    /// The JSON name of the type a body field should have, not Swift's ("Dictionary<String, Any>").
    static func jsonTypeName(_ type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") { return "an object" }
        if name.hasPrefix("Array") { return "an array" }
        if name.hasPrefix("Bool") { return "true or false" }
        if name.hasPrefix("Int") || name.hasPrefix("UInt") { return "an integer" }
        if name.hasPrefix("Double") || name.hasPrefix("Float") { return "a number" }
        if name.hasPrefix("String") { return "a string" }
        return "a value of another type"
    }

    /// Names the field a JSON decoding error is about, without echoing the value.
    static func fieldErrors(_ error: DecodingError) -> [String: [String]] {
        func name(_ path: [any CodingKey], _ key: (any CodingKey)? = nil) -> String {
            let all = path + (key.map { [$0] } ?? [])
            return all.isEmpty ? "body" : all.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return [name(context.codingPath, key): ["is required"]]
        case .typeMismatch(let type, let context): return [name(context.codingPath): ["expected \(jsonTypeName(type))"]]
        case .valueNotFound(_, let context): return [name(context.codingPath): ["must not be null"]]
        case .dataCorrupted(let context):
            // With a path, the JSON was read and the value there is what cannot be (a date that
            // is not ISO 8601, a number out of range).
            return context.codingPath.isEmpty ? ["body": ["is not valid JSON"]]
                : [name(context.codingPath): ["is not a valid value for this field"]]
        @unknown default: return ["body": ["is malformed"]]
        }
    }
}

/// Turns every error into the API's one shape.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            // Answered here rather than thrown on: the metrics middleware outside records an
            // error's latency only for a response (a 10 s busy-store 500 belongs in the histogram).
            return try APIError.wrapping(error, request: request, bodyLimit: context.maxUploadSize, logger: context.logger)
                .response(from: request, context: context)
        }
    }
}

/// A path the router knows under other methods answers 405 with `Allow`, not 404: the client
/// has the right resource and the wrong verb. Innermost, so authentication comes first and a
/// stranger still learns nothing of the routes.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && context.endpointPath == "NotFound" {
            // Only the router's own 404 (no route took the request), never a handler's.
            guard let route = routes.route(matching: request.uri.path) else { throw error }
            // Counted in /metrics under the route the path belongs to, not under "NotFound".
            context.coreContext.endpointPath.value = route.path
            let allow = route.methods.map(\.rawValue).joined(separator: ", ")
            throw APIError(.methodNotAllowed, "\(request.method) is not allowed here; this resource answers \(allow)",
                           headers: [.allow: allow])
        }
    }
}

/// The router's routes, for telling a wrong method from an unknown path. Filled once, after
/// every route is registered: the middleware that reads it is added before them.
final class RouteTable: Sendable {
    private let routes = Mutex<[(method: HTTPRequest.Method, path: RouterPath)]>([])

    /// `options`: the router's own, since it answers HEAD wherever GET when told to
    /// (`autoGenerateHeadEndpoints`) without registering those routes.
    func record(_ router: Router<some RequestContext>, options: RouterOptions) {
        var recorded = router.routes.map { (method: $0.method, path: $0.path) }
        if options.contains(.autoGenerateHeadEndpoints) {
            recorded += recorded.filter { $0.method == .get }.map { (method: .head, path: $0.path) }
        }
        routes.withLock { $0 = recorded }
    }

    /// The route the router resolves `path` to (its pattern, as /metrics labels it) and the
    /// methods registered for it, sorted; nil when none matches. As in the router, a literal
    /// segment wins over a capture: `/leads/stats` is the stats route, not `/leads/{id}`.
    func route(matching path: String) -> (path: String, methods: [HTTPRequest.Method])? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        let matching = routes.withLock { routes in
            routes.filter { route in
                route.path.components.count == components.count
                    && zip(route.path.components, components).allSatisfy { $0 ~= $1 }
            }
        }
        func literals(_ path: RouterPath) -> [Bool] { path.components.map { $0 == $0.description } }
        guard let best = matching.map({ literals($0.path) }).max(by: { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }) else {
            return nil
        }
        let chosen = matching.filter { literals($0.path) == best }
        let methods = Set(chosen.map(\.method)).sorted { $0.rawValue < $1.rawValue }
        return (chosen[0].path.description, methods)
    }
}
