import Foundation
import GRDB
import Hummingbird
import LeadScoring
import LeadStore

/// GET /api/v1/health: no auth, not wrapped in `data`, as load balancers and uptime checks expect.
struct HealthController {
    let services: APIServices
    var store: LeadStore { services.store }
    var version: String { services.configuration.version }

    struct Health: ResponseEncodable {
        let status: String
        let version: String
        let timestamp: Date
        let leads: Int
        let modelVersion: String?

        enum CodingKeys: String, CodingKey {
            case status, version, timestamp, leads
            case modelVersion = "model_version"
        }

        // Null, not absent, when no model is active: the key is part of the contract.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(version, forKey: .version)
            try container.encode(timestamp, forKey: .timestamp)
            try container.encode(leads, forKey: .leads)
            try container.encode(modelVersion, forKey: .modelVersion)
        }
    }

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("health", use: health)
    }

    @Sendable func health(_ request: Request, context: APIRequestContext) async throws -> Health {
        // GRDB runs the reads on its own queues, off the event loop; the answer is cached per
        // store version, so a load balancer's probes cost no counting of a million rows.
        let snapshot = try await services.health.value(for: 0, version: services.changes.version()) {
            try await store.reader.read { db in
                APIServices.HealthSnapshot(
                    leads: try LeadQuery.count(LeadFilter(), in: db),
                    modelVersion: try String.fetchOne(db, sql: "SELECT version FROM models WHERE is_active = 1"))
            }
        }
        let (leads, model) = (snapshot.leads, snapshot.modelVersion)
        return Health(status: "ok", version: version, timestamp: Date(), leads: leads, modelVersion: model)
    }
}
