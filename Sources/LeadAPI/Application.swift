import Foundation
import GRDB
import Hummingbird
import LeadScoring
import LeadStore
import Logging

/// What `leadlens serve` configures.
public struct APIConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var version: String

    public init(version: String) { self.version = version }
}

/// The request context every route sees.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var requestDecoder: JSONDecoder { APIJSON.decoder }
    public var responseEncoder: JSONEncoder { APIJSON.encoder }
}

/// The routes, without a server: tests drive it through HummingbirdTesting.
public func buildRouter(store: LeadStore, configuration: APIConfiguration) -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    router.add(middleware: APIErrorMiddleware())
    HealthController(store: store, version: configuration.version).register(on: router.group("api/v1"))
    return router
}

/// The HTTP server over one store.
public func buildApplication(
    store: LeadStore, configuration: APIConfiguration, logger: Logger = Logger(label: "leadlens.api")
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(store: store, configuration: configuration),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "LeadLens"),
        logger: logger)
}
