import Foundation
import GRDB
import HummingbirdTesting
import LeadAPI
import LeadScoring
import LeadStore
import Testing

@Suite("Lead factors")
struct ExplanationTests {
    @Test("a lead's factors come from the model that scored it, not one activated since")
    func factorsFollowTheScoringModel() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try LeadRoutesTests.activateDefaultModel(api.store)
        try await api.app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                                json: ["email": "factors@example.com", "source": "referral", "phone": "+1 555 0100"])
            let id = try #require(created.json["lead_id"] as? Int)

            // Another model, its weights negated, becomes active; the lead is not rescored.
            var other = try ScoringModel.load(from: LeadRoutesTests.repository.appendingPathComponent("models/default.json"))
            let scoredBy = Dictionary(uniqueKeysWithValues: other.coefficients.map { ($0.feature, $0.weight) })
            other.name = "other"
            other.version = "other-v1"
            for i in other.coefficients.indices { other.coefficients[i].weight.negate() }
            try await api.store.writer.write { [other] db in
                try ModelRegistry.register(other, in: db)
                try ModelRegistry.activate(version: other.version, in: db)
            }

            let lead = try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader).data
            #expect(lead["model_version"] as? String == "default-v0")
            let factors = try #require(lead["factors"] as? [[String: Any]])
            #expect(!factors.isEmpty)
            for factor in factors {
                let feature = try #require(factor["feature"] as? String)
                let weight = try #require(factor["weight"] as? Double), expected = try #require(scoredBy[feature])
                #expect(abs(weight - expected) <= 1e-12 * abs(expected), "\(feature): \(weight), scored with \(expected)")
            }
        }
    }
}
