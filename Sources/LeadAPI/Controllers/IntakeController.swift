import Foundation
import GRDB
import Hummingbird
import LeadIngest
import LeadScoring
import LeadStore

/// POST /api/v1/intake (a web form's lead) and POST /api/v1/events (an event pipeline's
/// Segment messages). Both write through the ingest path, so identity matching, merging and
/// deduplication are exactly those of `leadlens ingest`, and both rescore the leads they touch
/// before answering.
struct IntakeController {
    let services: APIServices

    func register(on api: RouterGroup<APIRequestContext>) {
        api.post("intake", use: intake)
        api.post("events", use: events)
    }

    /// Intake's reply is not wrapped in `data`: `{"status", "lead_id", "is_duplicate"}`, as the
    /// seed API's form clients read it. A duplicate's status says whether the submission added
    /// anything: a form re-sent as it was is "unchanged", not "updated".
    struct IntakeResult: Sendable {
        let created: Bool
        let changed: Bool
        let leadID: Int64

        var response: Response {
            var json = JSONWriter(capacity: 80)
            json.beginObject()
            json.key("status"); json.value(created ? "created" : changed ? "updated" : "unchanged")
            json.key("lead_id"); json.value(leadID)
            json.key("is_duplicate"); json.value(!created)
            json.endObject()
            return JSONWriter.response(json.buffer, status: created ? .created : .ok)
        }
    }

    @Sendable func intake(_ request: Request, context: APIRequestContext) async throws -> Response {
        let bytes = try await LeadBody.bytes(request, context: context)
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let parsed: (patch: Ingest.LeadPatch?, errors: LeadInput.FieldErrors)
        // `curl -d '{...}'` labels JSON as a form; a form body never starts with "{".
        // (A byte order mark before the "{" is JSON's too, as `curl --data-binary @file.json` sends it.)
        let unmarked = bytes.starts(with: Ingest.byteOrderMark) ? bytes.dropFirst(Ingest.byteOrderMark.count) : bytes[...]
        if contentType.hasPrefix("application/x-www-form-urlencoded"), unmarked.first(where: { !Self.isJSONWhitespace($0) }) != UInt8(ascii: "{") {
            guard let text = String(validating: bytes, as: UTF8.self) else {
                // Refused as a JSON body's would be, rather than stored as U+FFFD.
                let problem = "holds invalid UTF-8 (at byte \(FormEncoding.firstInvalidUTF8Offset(bytes) + 1))"
                throw APIError(.validationFailed, "the body \(problem)", errors: ["body": [problem]])
            }
            switch FormEncoding.formFields(text) {
            case .success(let fields): parsed = LeadInput.patch(fromForm: fields)
            case .failure(let notUTF8):
                let problem = "is percent-encoded text that is not UTF-8 (the page's form must send UTF-8)"
                throw APIError(.validationFailed, "the body's field \(notUTF8.key) \(problem)", errors: [notUTF8.key: [problem]])
            }
        } else if let object = LeadInput.object(bytes) {
            parsed = LeadInput.patch(from: object)
        } else {
            let problem = LeadInput.problem(bytes)
            throw APIError(.validationFailed, "the body \(problem) (send a JSON object or a urlencoded form)",
                           errors: ["body": [problem]])
        }
        guard let patch = parsed.patch else {
            throw APIError(.validationFailed, "invalid lead: \(parsed.errors.keys.sorted().joined(separator: ", "))",
                           errors: parsed.errors)
        }
        // Not through `services.events`: intake requests rarely share leads, and the extra hop cost
        // about 10% of intake's throughput (measured).
        let lead = try await services.write(rescoringTouched: { db in
            let result = try Ingest.RequestSession().write([Ingest.Record(line: 1, lead: patch, event: nil)], in: db)
            return (result.leads[0], result.touched)
        })
        return IntakeResult(created: lead.created, changed: lead.changed, leadID: lead.id).response
    }

    private static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }


    struct EventsResult: JSONWritable, Sendable {
        let counts: Ingest.Counts
        let rejects: [Ingest.ItemError]
        let touched: [Int64]
        let scored: [LeadScorer.Scored]
        let modelVersion: String?
        /// A key without the read scope (a pipeline's) learns the ids of the leads its events
        /// reached, never their scores: otherwise one event naming an email would read that
        /// lead's score, as a write answered with the lead would (see `LeadJSON.withheld`).
        let mayReadLeads: Bool

        func write(to json: inout JSONWriter) {
            json.beginObject()
            json.key("events_added"); json.value(counts.eventsAdded)
            json.key("duplicates"); json.value(counts.duplicateEvents)
            json.key("leads_created"); json.value(counts.leadsCreated)
            json.key("leads_updated"); json.value(counts.leadsUpdated)
            json.key("leads_unchanged"); json.value(counts.leadsUnchanged)
            json.key("leads_merged"); json.value(counts.leadsMerged)
            json.key("rejected"); json.value(rejects.count)
            json.key("rejects")
            json.rejects(rejects.map { RejectJSON(position: .index($0.index), field: $0.field, reason: $0.reason) })
            json.key("leads")
            json.beginArray()
            let byID = Dictionary(scored.map { ($0.leadID, $0) }, uniquingKeysWith: { $1 })
            for id in touched {
                let lead = byID[id]
                json.beginObject()
                json.key("lead_id"); json.value(id)
                guard mayReadLeads else {
                    json.endObject()
                    continue
                }
                json.key("score"); json.value(lead?.score)
                json.key("probability"); json.value(lead?.probability)
                json.key("previous_score"); json.value(lead?.previousScore)
                json.key("model_version"); json.value(lead == nil ? nil : modelVersion)
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
    }

    @Sendable func events(_ request: Request, context: APIRequestContext) async throws -> WrittenData<EventsResult> {
        let bytes = try await LeadBody.fileBytes(request, context: context)
        let parsed: (records: [Ingest.Record], rejects: [Ingest.ItemError])
        do {
            parsed = try Ingest.segmentMessages(bytes, maxMessages: APILimits.maxEventBatch)
        } catch {
            throw APIError(.validationFailed, error.reason, errors: [error.field ?? "body": [error.reason]])
        }
        let outcome = try await services.events.write(parsed.records)
        let result = outcome.result, scored = outcome.scored
        APIMetrics.eventsIngested(result.counts.eventsAdded)
        APIMetrics.leadsScored(scored.count)
        return WrittenData(data: EventsResult(
            counts: result.counts, rejects: parsed.rejects, touched: result.touched, scored: scored,
            modelVersion: outcome.modelVersion, mayReadLeads: context.mayReadLeads))
    }
}
