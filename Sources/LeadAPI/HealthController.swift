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

    /// Every key always present: `model_version` is null, not absent, when no model is active.
    struct Health: JSONWritable, Sendable {
        let status: String
        let version: String
        let timestamp: Date
        let leads: Int
        let modelVersion: String?

        func write(to json: inout JSONWriter) {
            json.beginObject()
            json.key("status"); json.value(status)
            json.key("version"); json.value(version)
            json.key("timestamp"); json.date(Int64(timestamp.timeIntervalSince1970 * 1000))
            json.key("leads"); json.value(leads)
            json.key("model_version"); json.value(modelVersion)
            json.endObject()
        }
    }

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("health", use: health)
    }

    @Sendable func health(_ request: Request, context: APIRequestContext) async throws -> Response {
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
        var json = JSONWriter(capacity: 256)
        Health(status: "ok", version: version, timestamp: Date(), leads: leads, modelVersion: model).write(to: &json)
        return json.response()
    }
}
