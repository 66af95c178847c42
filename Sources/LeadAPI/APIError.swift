import Foundation
import Hummingbird

/// The one error shape every response uses:
/// `{"status": "error", "message": …, "code": …, "errors": {"field": ["message", …]}}`.
/// Messages are written for the client: never a stack trace, SQL, or another lead's data.
public struct APIError: HTTPResponseError, Sendable {
    public enum Code: String, Sendable, CaseIterable {
        case unauthorized = "UNAUTHORIZED"
        case forbidden = "FORBIDDEN"
        case notFound = "NOT_FOUND"
        case conflict = "CONFLICT"
        case payloadTooLarge = "PAYLOAD_TOO_LARGE"
        case validationFailed = "VALIDATION_FAILED"
        case rateLimited = "RATE_LIMITED"
        case serverError = "SERVER_ERROR"

        public var status: HTTPResponse.Status {
            switch self {
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .notFound: .notFound
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

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try APIJSON.encoder.encode(Body(message: message, code: code.rawValue, errors: errors))
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

/// Turns every error into the API's shape: Hummingbird's own (an unknown route, a body over the
/// limit) by status, anything else into a 500 whose details go to the log, not the client.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            let code: APIError.Code = switch error.status {
            case .notFound, .methodNotAllowed: .notFound
            case .contentTooLarge: .payloadTooLarge
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .conflict: .conflict
            case .badRequest, .unprocessableContent: .validationFailed
            default: .serverError
            }
            let message = switch code {
            case .notFound: "no such resource: \(request.method) \(request.uri.path)"
            case .payloadTooLarge: "the request body is over the limit"
            default: error.body ?? "the request failed"
            }
            throw APIError(code, message)
        } catch {
            context.logger.error("request failed", metadata: ["error.type": "\(type(of: error))"])
            throw APIError(.serverError, "the server failed to handle the request")
        }
    }
}
