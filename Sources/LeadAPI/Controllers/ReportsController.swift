import Foundation
import Hummingbird
import LeadIngest
import LeadReports
import LeadStore

/// /api/v1/reports: the report archive (the folder `leadlens report` and the schedule write),
/// its files, and a report made now.
struct ReportsController {
    let services: APIServices
    var archive: Reports.Archive { Reports.Archive(directory: URL(fileURLWithPath: services.configuration.reportsDirectory, isDirectory: true)) }

    func register(on api: RouterGroup<APIRequestContext>) {
        api.get("reports", use: list)
        api.post("reports", use: create)
        api.get("reports/:id/:file", use: file)
    }

    struct ReportJSON: Encodable, Sendable {
        struct Period: Encodable, Sendable {
            let from: Date
            let to: Date
        }

        struct File: Encodable, Sendable {
            let name: String
            let contentType: String
            let bytes: Int
            let rows: Int?
            let description: String
            let url: String
            enum CodingKeys: String, CodingKey { case name, contentType = "content_type", bytes, rows, description, url }
        }

        let id: String
        let createdAt: Date
        let period: Period
        let leads: Int
        let modelVersion: String?
        let files: [File]
        enum CodingKeys: String, CodingKey { case id, createdAt = "created_at", period, leads, modelVersion = "model_version", files }

        init(_ manifest: Reports.Manifest) {
            id = manifest.id
            createdAt = manifest.generatedAt
            period = Period(from: manifest.period.from, to: manifest.period.until)
            leads = manifest.leads
            modelVersion = manifest.modelVersion
            files = manifest.files.map {
                File(name: $0.name, contentType: $0.contentType, bytes: $0.bytes, rows: $0.rows, description: $0.description,
                     url: "/api/v1/reports/\(manifest.id)/\($0.name)")
            }
        }
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> WholeList<ReportJSON> {
        let archive = self.archive
        let manifests = try await Task.detached { try archive.list() }.value
        return WholeList(manifests.map(ReportJSON.init), path: "/api/v1/reports",
                         latest: manifests.first.map { "/api/v1/reports/\($0.id)/index.json" })
    }

    @Sendable func file(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id"), let name = context.parameters.get("file"),
              let resolved = try archive.resolve(id: id, file: name) else {
            throw APIError(.notFound, "no such report file")
        }
        let body = try await FileIO(threadPool: .singleton).loadFile(path: resolved.url.path, context: context)
        var headers = HTTPFields()
        headers[.contentType] = resolved.contentType
        return Response(status: .ok, headers: headers, body: body)
    }

    struct CreateBody: StrictBody {
        var period: String?
        var from: String?
        var to: String?
        static let knownKeys: Set<String> = ["period", "from", "to"]
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let body = try await LeadBody.optional(request, context: context, empty: CreateBody())
        let now = Date()
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        let period: Reports.Period
        if body.from != nil || body.to != nil {
            guard body.period == nil else {
                throw APIError(.validationFailed, "give period or from/to, not both", errors: ["period": ["not with from/to"]])
            }
            guard body.from != nil else {
                throw APIError(.validationFailed, "from is required with to", errors: ["from": ["is required with to"]])
            }
            guard let from = body.from.flatMap(Timestamp.parseISO8601) else {
                throw APIError(.validationFailed, "invalid from", errors: ["from": ["must be a date or an ISO 8601 date-time"]])
            }
            var until = nowMillis
            if let to = body.to {
                guard let parsed = Timestamp.parseEnd(to) else {
                    throw APIError(.validationFailed, "invalid to", errors: ["to": ["must be a date or an ISO 8601 date-time"]])
                }
                until = parsed
            }
            // Equal bounds fail too: the period would be empty.
            guard from < until else {
                let reason = body.to == nil ? "must be before now, where to defaults to" : "must be before to"
                throw APIError(.validationFailed, "from \(reason): the period would be empty", errors: ["from": [reason]])
            }
            period = Reports.Period(from: from, until: until)
            guard period.isWithinLimit else {
                throw APIError(.validationFailed, "the period is too long",
                               errors: ["from": ["must be at most \(Reports.Period.maxDays) days before to"]])
            }
        } else {
            let text = body.period ?? "30d"
            guard let named = Reports.Period.named(text, now: now) else {
                throw APIError(.validationFailed, "invalid period",
                               errors: ["period": ["must be Nd (N days up to now), last-week or last-month"]])
            }
            period = named
        }
        var options = Reports.Generator.Options(database: services.store.writer.path, leadlensVersion: services.configuration.version)
        options.keep = services.configuration.reportKeep
        let generator = Reports.Generator(
            store: services.store, directory: URL(fileURLWithPath: services.configuration.reportsDirectory, isDirectory: true),
            options: options, logger: context.logger)
        let manifest: Reports.Manifest?
        do {
            manifest = try await generator.generateInBackground(period: period, now: now)
        } catch let error as Reports.ReportError {
            // The reason names server paths: for the operator's log, not the client.
            context.logger.error("report not written", metadata: ["error": "\(error.message)"])
            throw APIError(.serverError, "the report could not be written; the server's log says why")
        }
        guard let manifest else { throw APIError(.serverError, "no report was written") }
        return try EditedResponse(status: .created, response: DataResponse(data: ReportJSON(manifest)))
            .response(from: request, context: context)
    }
}
