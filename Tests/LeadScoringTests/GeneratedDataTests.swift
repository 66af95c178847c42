import Foundation
import LeadIngest
@testable import LeadScoring
import LeadStore
import Testing

@Suite("On generated data")
struct GeneratedDataTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The shipped spec on `leadlens generate` data: the holdout AUC comes within 0.01 of what the
    /// ground-truth probabilities themselves achieve on the same leads.
    @Test("on 200K generated leads the holdout AUC is within 0.01 of the ground truth's")
    func approachesGroundTruth() throws {
        let store = try LeadStore.inMemory()
        var truth: [Double] = []
        var batch: [TestLead] = []
        func flush() throws {
            try TestStore.insert(batch, into: store, eventRows: false)
            batch.removeAll(keepingCapacity: true)
        }
        try Synthetic.forEachLead(Synthetic.Options(leads: 200_000, seed: 11)) { lead in
            truth.append(lead.probability)
            var custom = ["Industry": lead.industry]
            if let employees = lead.employees { custom["Employees"] = String(employees) }
            batch.append(TestLead(
                externalID: lead.externalID, email: lead.email, phone: lead.phone, company: lead.company,
                source: lead.source, status: lead.status, createdAt: lead.createdAtMillis, custom: custom,
                events: lead.events))
            if batch.count == 20_000 { try flush() }
        }
        try flush()

        let spec = try FeatureSpec.load(from: Self.repository.appendingPathComponent("models/features.json"))
        let asOf = Int64(Synthetic.defaultAsOf.timeIntervalSince1970 * 1000)
        let options = Trainer.Options(asOf: asOf)
        let data = try Trainer.prepare(spec, from: store.reader, options: options)
        #expect(data.width == 32)
        let model = try Trainer.fit(data, name: "default", version: "default-v1", options: options)
        #expect(model.converged)

        // The same holdout leads, scored by the truth. Lead ids are the generator's order.
        var truthScores: [Double] = []
        var labels: [Double] = []
        let statuses = try store.reader.read { try String.fetchAll($0, sql: "SELECT status FROM leads ORDER BY id") }
        for (index, status) in statuses.enumerated() {
            guard let label = LabelRule().label(status: status), Trainer.isHoldout(Int64(index + 1), fraction: 0.2) else { continue }
            truthScores.append(truth[index])
            labels.append(label)
        }
        #expect(labels.count == model.metrics.rows)
        let truthAUC = try #require(Metrics.auc(scores: truthScores, labels: labels))
        let modelAUC = try #require(model.metrics.auc)
        #expect(abs(modelAUC - truthAUC) <= 0.01, "model \(modelAUC) vs truth \(truthAUC)")
    }
}
