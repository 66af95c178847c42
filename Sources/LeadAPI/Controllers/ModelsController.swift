import Foundation
import GRDB
import Hummingbird
import LeadIngest
import LeadScoring
import LeadStore

/// Models, training and rescoring jobs: /api/v1/models, /models/active, /models/train,
/// /leads/rescore and /jobs/{id}.
struct ModelsController {
    let services: APIServices

    func register(on api: RouterGroup<APIRequestContext>) {
        api.get("models", use: list)
        api.get("models/active", use: active)
        api.post("models/train", use: train)
        api.post("leads/rescore", use: rescore)
        api.get("jobs/:id", use: job)
    }

    /// A registered model: its registry entry with the model file's metrics, calibration,
    /// lift and coefficients, passed through as trained.
    struct ModelJSON: JSONWritable, Sendable {
        let entry: ModelRegistry.Entry
        /// The model file as registered.
        let body: JSONValue?

        /// Every field of the model file the registry entry does not already give: with the
        /// means, stds and intercept_raw a client can reproduce a score, and metrics_on says
        /// whether the metrics are the holdout's or (with --holdout 0) the training set's.
        static let passedThrough = ["metrics", "metrics_on", "coefficients", "intercept", "intercept_raw", "columns", "means", "stds",
                                    "features", "training", "C", "solver", "iterations", "converged", "format"]

        /// The metrics re-encoded, so a model file written before undefined values were written
        /// as null (an AUC with one class, an empty bin's mean) still has every documented key.
        static func metricsWithNulls(_ value: JSONValue) -> [UInt8]? {
            guard let metrics = try? JSONDecoder().decode(ModelMetrics.self, from: Data(value.compactText.utf8)),
                  let encoded = try? JSONEncoder().encode(metrics) else { return nil }
            return Array(encoded)
        }

        func write(to json: inout JSONWriter) {
            json.beginObject()
            json.key("version"); json.value(entry.version)
            json.key("name"); json.value(entry.name)
            json.key("created_at"); json.date(entry.createdAt)
            json.key("is_active"); json.value(entry.isActive)
            json.key("activated_at"); json.date(entry.activatedAt)
            json.key("holdout_auc"); json.value(entry.holdoutAUC)
            if case .object(let object)? = body {
                for key in Self.passedThrough {
                    if key == "metrics", let value = object[key], let metrics = Self.metricsWithNulls(value) {
                        json.key(key)
                        json.raw(ByteBuffer(bytes: metrics))
                    } else if let value = object[key] {
                        json.key(key)
                        json.raw(ByteBuffer(string: value.compactText))
                    } else if key == "C" {
                        // A model file leaves C out when there was no penalty; the API says null.
                        json.key(key); json.null()
                    }
                }
            }
            json.endObject()
        }
    }

    static func models(in db: Database, activeOnly: Bool) throws -> [ModelJSON] {
        let rows = try Row.fetchAll(db, sql: """
            SELECT version, name, created_at, holdout_auc, is_active, activated_at, body FROM models
            \(activeOnly ? "WHERE is_active = 1" : "") ORDER BY created_at DESC, version DESC
            """)
        return rows.map { row in
            ModelJSON(
                entry: ModelRegistry.Entry(version: row["version"], name: row["name"], createdAt: row["created_at"],
                                           holdoutAUC: row["holdout_auc"], isActive: row["is_active"],
                                           activatedAt: row["activated_at"]),
                body: try? JSONParser.parse(row["body"] as String))
        }
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> ListResponse<ModelJSON> {
        let models = try await services.store.reader.read { db in try Self.models(in: db, activeOnly: false) }
        return ListResponse(data: models, meta: .whole(count: models.count), links: .whole(path: "/api/v1/models"))
    }

    @Sendable func active(_ request: Request, context: APIRequestContext) async throws -> WrittenData<ModelJSON> {
        guard let model = try await services.store.reader.read({ db in try Self.models(in: db, activeOnly: true).first }) else {
            throw APIError(.notFound, "no model is active; train one with POST /api/v1/models/train")
        }
        return WrittenData(data: model)
    }

    struct TrainBody: StrictBody {
        static let knownKeys: Set<String> = ["name", "C", "c", "holdout", "activate", "force"]
        var name: String?
        /// nil when not sent (C = 1); `.some(nil)` for null, which trains without a penalty.
        var c: Double??
        /// The spelling C came under ("C" or its alias "c"), which errors name.
        var cKey = "C"
        /// Both spellings were sent: neither is picked over the other.
        var bothSpellingsOfC = false
        var holdout: Double?
        var activate: Bool?
        var force: Bool?
        enum CodingKeys: String, CodingKey { case name, c = "C", cLower = "c", holdout, activate, force }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            bothSpellingsOfC = container.contains(.c) && container.contains(.cLower)
            // `decodeIfPresent` reads null as absent, which would train with C = 1.
            for key in [CodingKeys.c, .cLower] where container.contains(key) {
                c = .some(try container.decodeNil(forKey: key) ? nil : container.decode(Double.self, forKey: key))
                cKey = key.rawValue
                break
            }
            holdout = try container.decodeIfPresent(Double.self, forKey: .holdout)
            activate = try container.decodeIfPresent(Bool.self, forKey: .activate)
            force = try container.decodeIfPresent(Bool.self, forKey: .force)
        }
        init() {}
    }


    func accepted(_ job: JobRunner.Job, request: Request, context: APIRequestContext) throws -> Response {
        let url = "/api/v1/jobs/\(job.id)"
        var json = JSONWriter()
        json.beginObject()
        json.key("data")
        JobJSON(job).write(to: &json)
        json.key("links")
        json.beginObject()
        json.key("self"); json.value(url)
        json.endObject()
        json.endObject()
        var response = json.response(status: .accepted)
        response.headers[.location] = url
        return response
    }

    @Sendable func train(_ request: Request, context: APIRequestContext) async throws -> Response {
        let body = try await LeadBody.optional(request, context: context, empty: TrainBody())
        var errors: [String: [String]] = [:]
        if body.bothSpellingsOfC {
            for key in ["C", "c"] { errors[key] = ["send C or c (its alias), not both"] }
        } else if case let c?? = body.c, !(c > 0 && c.isFinite) {
            errors[body.cKey] = ["must be a positive number, or null for no penalty"]
        }
        if let holdout = body.holdout, !(0..<1).contains(holdout) { errors["holdout"] = ["must be at least 0 and below 1"] }
        if let name = body.name, !FeatureSpec.isValidName(name) { errors["name"] = ["must be letters, digits, dashes or underscores"] }
        if body.force == true && body.activate != true { errors["force"] = ["only applies with activate"] }
        let directory = URL(fileURLWithPath: services.configuration.modelsDirectory, isDirectory: true)
        var spec: FeatureSpec
        do {
            spec = try FeatureSpec.load(from: directory.appendingPathComponent("features.json"))
        } catch {
            throw APIError(.validationFailed, "the server's feature spec (models/features.json) cannot be read")
        }
        if !errors.isEmpty { throw APIError(.validationFailed, "invalid training request", errors: errors) }
        if let name = body.name { spec.name = name }
        var options = Trainer.Options()
        if let c = body.c { options.c = c }  // nil: no penalty, as `leadlens train --no-penalty`
        if let holdout = body.holdout { options.holdout = holdout }
        let store = services.store
        let (activate, force) = (body.activate ?? false, body.force ?? false)
        let finalSpec = spec
        let trainingOptions = options
        let job = try await services.jobs.start(kind: "train", parameters: [
            "name": spec.name, "C": options.c.map { $0 as Any } ?? NSNull(), "holdout": options.holdout, "activate": activate, "force": force,
        ]) { progress in
            do {
                let outcome = try TrainingRun.run(
                    spec: finalSpec, store: store, options: trainingOptions, activate: activate, force: force,
                    directory: directory, prepared: { _, _ in progress.report(0.3) })
                APIMetrics.trainingRun(outcome: "succeeded")
                let m = outcome.model.metrics
                var result: [String: Any] = [
                    "version": outcome.model.version, "rows": outcome.model.training.rows,
                    "log_loss": m.logLoss, "brier": m.brier, "iterations": outcome.model.iterations,
                ]
                result["auc"] = m.auc.map { $0 as Any } ?? NSNull()  // undefined with one class: null, as in the model
                switch outcome.decision {
                case .activate: result["activated"] = true
                case .keep(let reason):
                    result["activated"] = false
                    result["not_activated_because"] = reason
                }
                return result
            } catch let error as Trainer.Failure {
                APIMetrics.trainingRun(outcome: "refused")
                throw JobRunner.Failure(message: "refused to train: \(error)")
            } catch let error as SpecError {
                APIMetrics.trainingRun(outcome: "refused")
                throw JobRunner.Failure(message: "the feature spec does not fit this store: \(error)")
            } catch let error as LogisticRegression.FitError {
                APIMetrics.trainingRun(outcome: "refused")
                throw JobRunner.Failure(message: "refused to train: \(error)")
            } catch {
                APIMetrics.trainingRun(outcome: "failed")
                throw error
            }
        }
        return try accepted(job, request: request, context: context)
    }

    struct RescoreBody: StrictBody {
        var ids: [Int64]?
        /// A misspelt "ids" would rescore every lead.
        static let knownKeys: Set<String> = ["ids"]
    }

    @Sendable func rescore(_ request: Request, context: APIRequestContext) async throws -> Response {
        let body = try await LeadBody.optional(request, context: context, empty: RescoreBody())
        if let ids = body.ids, ids.count > 100_000 {
            throw APIError(.validationFailed, "too many ids", errors: ["ids": ["at most 100000; omit ids to rescore every lead"]])
        }
        let store = services.store
        let activeScorer = services.scorer
        let noModel = "no model is active; train and activate one first"
        guard try await store.reader.read({ db in try activeScorer.scorer(in: db) }) != nil else {
            throw APIError(.conflict, noModel)
        }
        let ids = body.ids
        let job = try await services.jobs.start(kind: "rescore", parameters: ids.map { ["ids": $0.count] } ?? ["all": true]) { progress in
            // The model active when the job runs, not when it was asked for: a training job that
            // activated a model in between would otherwise see every lead scored back with the old one.
            if let ids {
                let (scored, version) = try store.writer.write { db in
                    guard let scorer = try activeScorer.scorer(in: db) else { throw JobRunner.Failure(message: noModel) }
                    return (try scorer.rescore(ids: ids, in: db), scorer.model.version)
                }
                APIMetrics.leadsScored(scored.count)
                return ["scored": scored.count, "changed": scored.filter { $0.score != $0.previousScore }.count,
                        "model_version": version]
            }
            guard let scorer = try store.reader.read({ db in try activeScorer.scorer(in: db) }) else {
                throw JobRunner.Failure(message: noModel)
            }
            let total = max(1, try store.reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") ?? 0 })
            let summary = try scorer.scoreAll(store.writer) { summary in
                progress.report(Double(summary.scored) / Double(total))
            }
            APIMetrics.leadsScored(summary.scored)
            return ["scored": summary.scored, "changed": summary.changed, "model_version": scorer.model.version]
        }
        return try accepted(job, request: request, context: context)
    }

    @Sendable func job(_ request: Request, context: APIRequestContext) async throws -> WrittenData<JobJSON> {
        guard let raw = context.parameters.get("id"), let id = Int64(raw), let job = try await services.jobs.find(id) else {
            throw APIError(.notFound, "no such job")
        }
        return WrittenData(data: JobJSON(job))
    }
}

struct JobJSON: JSONWritable, Sendable {
    let job: JobRunner.Job

    init(_ job: JobRunner.Job) { self.job = job }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("id"); json.value(job.id)
        json.key("kind"); json.value(job.kind)
        json.key("state"); json.value(job.state)
        json.key("progress"); json.value(job.progress)
        json.key("created_at"); json.date(job.createdAt)
        json.key("started_at"); json.date(job.startedAt)
        json.key("finished_at"); json.date(job.finishedAt)
        json.key("result"); json.rawJSON(job.result)
        json.key("error"); json.value(job.error)
        json.endObject()
    }
}
