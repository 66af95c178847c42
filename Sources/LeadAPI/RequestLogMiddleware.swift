import Hummingbird
import Logging
import Synchronization

/// Names every request and, at `--log-level info`, logs it once answered: one line with the
/// method, the matched route's pattern, the status, the time to the last byte and the key's
/// name. The id goes back in `X-Request-ID` and rides on every other line logged for the
/// request (a 500's "request failed"), so a client quoting it finds its line.
///
/// A well-formed `X-Request-ID` sent by the client (a load balancer's, a gateway's) is kept, so
/// one id follows the request through both logs. The line never holds the path as sent or the
/// query: a search or an email there is a lead's data, and a crafted path could forge log text.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    static let header = HTTPFields.Element.Name("X-Request-ID")!
    static let maxIDLength = 128

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = request.headers[Self.header].flatMap(Self.acceptedID) ?? context.id
        context.logger[metadataKey: "hb.request.id"] = .string(id)
        let logs = context.logger.logLevel <= .info
        let attribution = RequestAttribution()
        if logs { context.attribution = attribution }
        let started = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            // Answered here rather than by the server, so even this response carries its id.
            response = try error.response(from: request, context: context)
        }
        response.headers[Self.header] = id
        guard logs else { return response }
        let logger = context.logger
        let status = response.status
        let endpointPath = context.endpointPath
        @Sendable func log() {
            logger.info("request", metadata: [
                "http.method": .string(request.method.rawValue),
                "http.route": .string(Self.route(endpointPath)),
                "http.status": .stringConvertible(status.code),
                "duration_ms": .string(Self.milliseconds(ContinuousClock.now - started)),
                "api_key": .string(attribution.keyName ?? "-"),
            ])
        }
        // A HEAD's body is swapped for an empty one after the route answers: log it now.
        if request.method == .head {
            log()
            return response
        }
        // Logged once the body is written, so a streamed export's time is its whole time
        // (Hummingbird's own post-write hook is package-internal).
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(writer)
            } catch {
                log()
                throw error
            }
            log()
        }
        return response
    }

    /// A client's id when it is one: 1–128 characters of letters, digits and `-_.:=`. Anything
    /// else is replaced, never echoed: it would go into every log line of the request.
    static func acceptedID(_ value: String) -> String? {
        guard !value.isEmpty, value.utf8.count <= maxIDLength,
              value.utf8.allSatisfy({ byte in
                  (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                      || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x3A || byte == 0x3D
              }) else { return nil }
        return value
    }

    /// The route's pattern ("/api/v1/leads/{id}"); "unmatched" for a path no route has.
    static func route(_ endpointPath: String?) -> String {
        guard let endpointPath, endpointPath != "NotFound" else { return "unmatched" }
        return endpointPath
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// What inner middleware learns about a request that its log line reports: the context is a
/// value, so a change made further in never reaches the outer middleware's copy.
final class RequestAttribution: Sendable {
    private let name = Mutex<String?>(nil)

    /// The name of the key the request presented, once authenticated.
    var keyName: String? {
        get { name.withLock { $0 } }
        set { name.withLock { $0 = newValue } }
    }
}
