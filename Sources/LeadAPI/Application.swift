import Foundation
import GRDB
import Hummingbird
import LeadScoring
import LeadStore
import Logging
import NIOCore

/// What `leadlens serve` configures.
public struct APIConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var version: String
    /// Where trained models' JSON files go (POST /models/train).
    public var modelsDirectory = "models"
    /// Where reports are written and served from.
    public var reportsDirectory = "reports"
    /// Reports kept when POST /reports writes one; nil keeps all.
    public var reportKeep: Int?
    /// Request bodies over this many bytes (decoded, when compressed) get 413 PAYLOAD_TOO_LARGE.
    public var maxBodyBytes = APILimits.maxBodyBytes
    /// A connection that sends nothing for this long, while idle or part-way through a request,
    /// is closed: a client that stops mid-body would otherwise hold it open for good. A request
    /// the server is still answering never times out.
    public var idleTimeout: Duration = .seconds(60)
    /// Origins whose browser pages may call the API (`https://dash.example.com`, or `*`); none:
    /// no CORS headers, so browsers only let pages of the API's own origin read it.
    public var corsOrigins: [String] = []

    public init(version: String) { self.version = version }
}

/// The request context every route sees.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The authenticated key, once AuthMiddleware has run.
    public var apiKey: APIKey?
    /// Where AuthMiddleware leaves the key's name for the request's log line; nil when requests
    /// are not logged.
    var attribution: RequestAttribution?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var requestDecoder: JSONDecoder { APIJSON.decoder }
    public var responseEncoder: JSONEncoder { APIJSON.encoder }
    /// The server's body limit (``APIConfiguration/maxBodyBytes``), set by `BodyLimitMiddleware`.
    public var maxUploadSize = APILimits.maxBodyBytes
}

/// Gives every request the configured body limit: a context is made before any configuration
/// can reach it.
struct BodyLimitMiddleware: RouterMiddleware {
    let maxBodyBytes: Int

    func handle(_ request: Request, context: APIRequestContext,
                next: (Request, APIRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        context.maxUploadSize = maxBodyBytes
        return try await next(request, context)
    }
}

public enum APILimits {
    /// The default body limit (`leadlens serve --max-body-size`).
    public static let maxBodyBytes = 10 << 20
    public static let maxPerPage = 100
    public static let defaultPerPage = 25
    public static let maxBulkLeads = 1000
    public static let maxEventBatch = 5000
}

/// Everything the controllers share: the store, the scorer, caches and background jobs.
final class APIServices: Sendable {
    let store: LeadStore
    let configuration: APIConfiguration
    let scorer = ActiveScorer()
    let keys: KeyCache
    let limiter = RateLimiter()
    let changes: ChangeMonitor
    let counts = VersionedCache<LeadFilter, Int>()
    /// Encoded responses: a dashboard's poll costs no JSON encoding either.
    let stats = VersionedCache<StatsKey, TaggedBody>()
    /// Encoded lead-list pages by request path and query: many sales reps polling the same
    /// "scoring 80–100, newest first" view read the store once per change, not once each.
    let pages = VersionedCache<String, TaggedBody>(capacity: 128)
    let health = VersionedCache<Int, HealthSnapshot>(capacity: 1)
    let jobs: JobRunner

    struct StatsKey: Hashable, Sendable {
        let filter: LeadFilter
        let day: Int64
    }

    struct HealthSnapshot: Sendable {
        let leads: Int
        let modelVersion: String?
    }

    let writes: WriteCoalescer
    /// POST /events requests, merged per transaction.
    let events: EventBatcher

    /// Every write the API makes goes through here (or through `events`, which shares the
    /// coalescer): group-committed with the writes of concurrent requests. The coalescer notes
    /// each transaction, so cached answers see it before its requests are answered.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writes.write(body)
    }

    /// A write whose touched leads are rescored with the active model in the same transaction,
    /// together with those of the requests it commits with (see ``WriteCoalescer``).
    func write<T: Sendable>(rescoringTouched body: @escaping @Sendable (Database) throws -> (T, touched: [Int64])) async throws -> T {
        try await writes.write(rescoringTouched: body)
    }

    init(store: LeadStore, configuration: APIConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        keys = KeyCache(store: store)
        changes = ChangeMonitor(store: store)
        let changes = changes
        let scorer = scorer
        writes = WriteCoalescer(writer: store.writer, rescore: { db, ids in try scorer.rescore(ids: ids, in: db).count },
                                afterTransaction: { changes.noteWrite() }, didCommit: { APIMetrics.leadsScored($0) })
        events = EventBatcher(writes: writes, scorer: scorer)
        jobs = JobRunner(store: store, logger: logger)
    }
}

extension Logger {
    /// The API's logger at `leadlens serve`'s default level: warnings up, no line per request.
    public static var api: Logger {
        var logger = Logger(label: "leadlens.api")
        logger.logLevel = .warning
        return logger
    }
}

/// The routes, without a server: `leadlens serve` and the tests both build the app through it.
public func buildRouter(
    store: LeadStore, configuration: APIConfiguration, logger: Logger = .api
) -> Router<APIRequestContext> {
    let services = APIServices(store: store, configuration: configuration, logger: logger)
    _ = APIMetrics.registry
    // HEAD wherever GET: uptime checks and `curl -I` use it.
    let options: RouterOptions = .autoGenerateHeadEndpoints
    let router = Router(context: APIRequestContext.self, options: options)
    let routes = RouteTable()
    // First: every response, a preflight's included, carries its request id.
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: BodyLimitMiddleware(maxBodyBytes: max(1, configuration.maxBodyBytes)))
    router.add(middleware: MetricsMiddleware())
    // Outside the error and auth middleware: a preflight carries no key, and an error (a 401, a
    // 429) must reach the page with its CORS headers to be read.
    if !configuration.corsOrigins.isEmpty {
        router.add(middleware: CrossOriginMiddleware(origins: configuration.corsOrigins))
    }
    router.add(middleware: APIErrorMiddleware())
    router.add(middleware: AuthMiddleware(keys: services.keys, limiter: services.limiter))
    router.add(middleware: MethodNotAllowedMiddleware(routes: routes))
    let api = router.group("api/v1")
    HealthController(services: services).register(on: api)
    LeadsController(services: services).register(on: api)
    IntakeController(services: services).register(on: api)
    ModelsController(services: services).register(on: api)
    KeysController(services: services).register(on: api)
    ReportsController(services: services).register(on: api)
    APIMetrics.register(on: router)
    router.get("openapi.json") { _, _ in OpenAPIDocument.response() }
    routes.record(router, options: options)
    return router
}

/// The HTTP server over one store.
public func buildApplication(
    store: LeadStore, configuration: APIConfiguration, logger: Logger = .api
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(store: store, configuration: configuration, logger: logger),
        server: .leadLensHTTP1(idleTimeout: configuration.idleTimeout, maxBodyBytes: max(1, configuration.maxBodyBytes)),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "LeadLens"),
        logger: logger)
}

extension APIRequestContext {
    /// Whether the request's key may read leads: a write-only key is told what it wrote, not the lead.
    var mayReadLeads: Bool { apiKey?.scopes.contains(.read) ?? false }
}
