import Foundation
import GRDB
import Hummingbird
import LeadIngest
import LeadScoring
import LeadStore
import NIOCore

/// /api/v1/leads: listing, reading, editing, the timeline, duplicates and merging, bulk create,
/// CSV import and export, and the stats. All SQLite work runs on GRDB's queues, off the event loop.
struct LeadsController {
    let services: APIServices
    var store: LeadStore { services.store }

    func register(on api: RouterGroup<APIRequestContext>) {
        let leads = api.group("leads")
        leads.get(use: list)
        leads.post(use: create)
        leads.post("bulk", use: bulk)
        leads.post("import", use: importCSV)
        leads.get("export", use: export)
        leads.head("export", use: exportHead)
        leads.get("stats", use: stats)
        leads.get(":id", use: show)
        leads.patch(":id", use: update)
        leads.put(":id", use: update)
        leads.delete(":id", use: delete)
        leads.put(":id/status", use: setStatus)
        leads.put(":id/notes", use: setNotes)
        leads.post(":id/tags", use: addTag)
        leads.delete(":id/tags/:tag", use: removeTag)
        leads.put(":id/assign", use: assign)
        leads.get(":id/events", use: timeline)
        leads.get(":id/duplicates", use: duplicates)
        leads.post(":id/merge", use: merge)
    }

    // MARK: Lists

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = try LeadListQuery(request)  // a bad query is a 422, never a cached page
        let path = request.uri.path
        let body = try await services.pages.value(for: request.uri.description, version: services.changes.version()) {
            TaggedBody(try await page(query, path: path).bytes)
        }
        return body.response(to: request)
    }

    private func page(_ query: LeadListQuery, path: String) async throws -> ListResponse<LeadJSON> {
        let total = try await count(query.filter)
        if let cursor = query.cursor {
            let page: (leads: [LeadRecord], next: LeadCursor?)
            do {
                page = try await store.reader.read { db in
                    try LeadQuery.page(query.filter, sort: query.sort, after: cursor, limit: query.perPage, in: db)
                }
            } catch is LeadQuery.CursorExpired {
                throw APIError(.validationFailed, "the cursor has expired",
                               errors: ["cursor": ["has expired: its lead was deleted; start again from the first page"]])
            }
            let next = page.next?.token
            return ListResponse(data: page.leads.map { LeadJSON(lead: $0) },
                                meta: .keyset(perPage: query.perPage, total: total, nextCursor: next),
                                links: .keyset(path: path, query: query.items, nextCursor: next))
        }
        let offset = (query.page - 1) * query.perPage
        let leads = try await store.reader.read { db in
            try LeadQuery.page(query.filter, sort: query.sort, offset: offset, limit: query.perPage, in: db)
        }
        // The cursor continues from this page's last row, so a client can switch to keyset paging.
        var nextCursor: String?
        if offset + leads.count < total, let last = leads.last {
            nextCursor = LeadCursor(after: last, sort: query.sort).token
        }
        let meta = ListMeta.offset(page: query.page, perPage: query.perPage, total: total, count: leads.count, nextCursor: nextCursor)
        let links = ListLinks.offset(path: path, query: query.items.filter { $0.0 != "cursor" }, page: query.page, lastPage: meta.lastPage ?? 1)
        return ListResponse(data: leads.map { LeadJSON(lead: $0) }, meta: meta, links: links)
    }

    /// Totals are cached per store version: counting a million rows per page view would cost
    /// more than the page itself.
    func count(_ filter: LeadFilter) async throws -> Int {
        try await services.counts.value(for: filter, version: services.changes.version()) {
            try await store.reader.read { db in try LeadQuery.count(filter, in: db) }
        }
    }

    @Sendable func stats(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = try LeadListQuery(request, use: .stats)
        let now = Date()
        let key = APIServices.StatsKey(filter: query.filter, day: Int64(now.timeIntervalSince1970) / 86_400)
        let body = try await services.stats.value(for: key, version: services.changes.version()) {
            let stats = try await store.reader.read { db in try LeadStats.compute(query.filter, now: now, in: db) }
            return TaggedBody(WrittenData(data: StatsJSON(stats)).bytes)
        }
        return body.response(to: request)
    }

    @Sendable func export(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = try LeadListQuery(request, use: .export)
        let store = self.store
        let body = ResponseBody { writer in
            var buffer = ByteBuffer()
            buffer.writeString(LeadCSV.header)
            var cursor: LeadCursor?
            // Keyset pages of 1000: memory stays flat whatever the store size.
            repeat {
                let after = cursor
                let page = try await store.reader.read { db in
                    try LeadQuery.page(query.filter, sort: query.sort, after: after, limit: 1000, in: db)
                }
                for lead in page.leads { LeadCSV.write(lead, to: &buffer) }
                try await writer.write(buffer)
                buffer.clear()
                cursor = page.next
            } while cursor != nil
            try await writer.finish(nil)
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"leads.csv\""
        return Response(status: .ok, headers: headers, body: body)
    }

    /// The export's status and headers, without running it. Registered rather than left to the
    /// router, whose generated HEAD answers a streamed body with `Content-Length: 0`. With no
    /// length the response is framed as the GET's is (chunked), and NIO sends a HEAD no body.
    @Sendable func exportHead(_ request: Request, context: APIRequestContext) async throws -> Response {
        var response = try await export(request, context: context)  // validates the query; its body never runs
        response.body = ResponseBody { writer in try await writer.finish(nil) }
        return response
    }

    // MARK: One lead

    static func leadID(_ context: APIRequestContext) throws -> Int64 {
        guard let raw = context.parameters.get("id"), let id = Int64(raw), id > 0 else {
            throw APIError(.notFound, "no such lead")
        }
        return id
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        let scorer = services.scorer
        // The factors explain the score shown: the model that scored the lead, as of when it did.
        // After another model is activated, and until a rescore, that is not the active one.
        let (lead, explanation) = try await store.reader.read { db -> (LeadRecord?, Explanation?) in
            guard let lead = try LeadRecord.fetch(id: id, in: db) else { return (nil, nil) }
            guard let version = lead.modelVersion, let scoredAt = lead.scoredAt else { return (lead, nil) }
            return (lead, try scorer.scorer(version: version, in: db)?.explain(leadID: id, in: db, asOf: scoredAt))
        }
        guard let lead else { throw APIError(.notFound, "no such lead") }
        let factors = explanation.map { Array($0.top(5)).map(FactorJSON.init) } ?? []
        return LeadResponse(data: LeadJSON(lead: lead, factors: factors))
    }

    /// 404 rather than a complaint about the body: an unknown lead is the first thing wrong
    /// with such a request. Asked only when the body is bad; `mutate` checks the good path.
    func requireLead(_ id: Int64) async throws {
        guard try await store.reader.read({ db in try Bool.fetchOne(db, sql: "SELECT 1 FROM leads WHERE id = ?", arguments: [id]) }) != nil else {
            throw APIError(.notFound, "no such lead")
        }
    }

    /// Writes, rescores the lead in the same transaction, and answers with the lead as it is now
    /// (its id and update time only, to a key that may not read leads).
    func mutate(_ id: Int64, for context: APIRequestContext, _ body: @escaping @Sendable (Database) throws -> Void) async throws -> LeadResponse {
        let scorer = services.scorer
        // Counted once committed: a coalesced batch that rolls back runs this body again.
        let (lead, scored) = try await services.write { db -> (LeadRecord?, Int) in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM leads WHERE id = ?", arguments: [id]) != nil else { return (nil, 0) }
            try body(db)
            let scored = try scorer.rescore(ids: [id], in: db).count
            return (try LeadRecord.fetch(id: id, in: db), scored)
        }
        APIMetrics.leadsScored(scored)
        guard let lead else { throw APIError(.notFound, "no such lead") }
        return LeadResponse(data: LeadJSON(lead: lead, withheld: !context.mayReadLeads))
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let changes = try await LeadBody.changes(request, context: context, creating: true)
        let scorer = services.scorer
        let (lead, scored) = try await services.write { db -> (LeadRecord, Int) in
            for field in [LeadField.externalID, .email, .phone] {
                if case let value?? = changes.columns[field] {
                    try LeadMutations.ensureAbsent(field, value, in: db)
                }
            }
            let id = try LeadMutations.insert(changes, in: db)
            let scored = try scorer.rescore(ids: [id], in: db).count
            return (try LeadRecord.fetch(id: id, in: db)!, scored)
        }
        APIMetrics.leadsScored(scored)
        return try EditedResponse(status: .created, response: LeadResponse(data: LeadJSON(lead: lead, withheld: !context.mayReadLeads)))
            .response(from: request, context: context)
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        // Read first: a body refused unread (413) is so whether the lead exists or not.
        let bytes = try await LeadBody.bytes(request, context: context)
        let changes: LeadMutations.Changes
        do {
            changes = try LeadBody.changes(bytes, creating: false)
        } catch {
            try await requireLead(id)  // a bad body for a lead that is not there is a 404
            throw error
        }
        return try await mutate(id, for: context) { db in try LeadMutations.update(id, changes, in: db) }
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.leadID(context)
        guard try await services.write({ db in try LeadMutations.delete(id, in: db) }) else {
            throw APIError(.notFound, "no such lead")
        }
        return Response(status: .noContent)
    }

    struct StatusBody: Decodable { let status: String }

    @Sendable func setStatus(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        let body = try await LeadBody.decode(StatusBody.self, request, context: context)
        let status = body.status.trimmingCharacters(in: .whitespaces).lowercased()
        guard LeadStatus.known.contains(status) else {
            throw APIError(.validationFailed, "unknown status",
                           errors: ["status": ["must be one of \(LeadStatus.known.joined(separator: ", "))"]])
        }
        var changes = LeadMutations.Changes()
        changes.columns[.status] = status
        let update = changes
        return try await mutate(id, for: context) { db in try LeadMutations.update(id, update, in: db) }
    }

    /// `{"notes": …}`; null or "" clears them. The key is required: a body that misspells it
    /// (`{"note": …}`) must not wipe the notes.
    struct NotesBody: Decodable {
        let notes: String?
        enum CodingKeys: String, CodingKey { case notes }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            guard c.contains(.notes) else {
                throw APIError(.validationFailed, "notes is required (null clears them)", errors: ["notes": ["is required"]])
            }
            notes = try c.decodeNil(forKey: .notes) ? nil : c.decode(String.self, forKey: .notes)
        }
    }

    @Sendable func setNotes(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        let body = try await LeadBody.decode(NotesBody.self, request, context: context)
        try LeadBody.checkLength(body.notes, field: "notes")
        var changes = LeadMutations.Changes()
        changes.columns[.notes] = .some(body.notes.flatMap { $0.isEmpty ? nil : $0 })
        let update = changes
        return try await mutate(id, for: context) { db in try LeadMutations.update(id, update, in: db) }
    }

    /// `{"name": …}`, or `{"tag": …}` as older clients send it.
    struct TagBody: Decodable {
        let name: String
        /// The key the client sent it under, which errors name.
        let key: String
        enum CodingKeys: String, CodingKey { case name, tag }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            if let name = try c.decodeIfPresent(String.self, forKey: .name) {
                (self.name, key) = (name, "name")
            } else {
                (name, key) = (try c.decode(String.self, forKey: .tag), "tag")
            }
        }
    }

    @Sendable func addTag(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.leadID(context)
        let body = try await LeadBody.decode(TagBody.self, request, context: context)
        let tag = body.name.trimmingCharacters(in: .whitespaces)
        if let problem = LeadBody.tagProblem(tag) {
            throw APIError(.validationFailed, "invalid tag", errors: [body.key: [problem]])
        }
        guard !tag.isEmpty, tag.count <= 100 else {
            throw APIError(.validationFailed, "invalid tag", errors: [body.key: ["must be 1 to 100 characters"]])
        }
        let result = try await mutate(id, for: context) { db in try LeadMutations.addTag(id, tag, in: db) }
        return try EditedResponse(status: .created, response: result).response(from: request, context: context)
    }

    @Sendable func removeTag(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        let tag = context.parameters.get("tag")?.removingPercentEncoding ?? ""
        return try await mutate(id, for: context) { db in
            guard try LeadMutations.removeTag(id, tag, in: db) else { throw APIError(.notFound, "the lead has no such tag") }
        }
    }

    /// `{"user_id": … or null}`, or `userId`.
    struct AssignBody: Decodable {
        let userID: String?
        enum CodingKeys: String, CodingKey { case userID = "user_id", userId }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            guard c.contains(.userID) || c.contains(.userId) else {
                throw APIError(.validationFailed, "user_id is required (null unassigns)", errors: ["user_id": ["is required"]])
            }
            let key: CodingKeys = c.contains(.userID) ? .userID : .userId
            if let text = try? c.decodeIfPresent(String.self, forKey: key) {
                userID = text
            } else if let number = try c.decodeIfPresent(Int64.self, forKey: key) {
                userID = String(number)
            } else {
                userID = nil
            }
        }
    }

    @Sendable func assign(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        let body = try await LeadBody.decode(AssignBody.self, request, context: context)
        var changes = LeadMutations.Changes()
        let user = body.userID?.trimmingCharacters(in: .whitespaces)
        if let user, user.utf8.count > 200 {
            throw APIError(.validationFailed, "user_id is too long", errors: ["user_id": ["must be at most 200 bytes"]])
        }
        try LeadBody.checkLength(user, field: "user_id")
        if let user, Assignee.meansNone(user) {
            throw APIError(.validationFailed, "user_id is reserved", errors: ["user_id": [Assignee.reservedReason]])
        }
        changes.columns[.assignedTo] = .some(user?.isEmpty == false ? user : nil)
        let update = changes
        return try await mutate(id, for: context) { db in try LeadMutations.update(id, update, in: db) }
    }

    @Sendable func timeline(_ request: Request, context: APIRequestContext) async throws -> ListResponse<TimelineJSON> {
        let id = try Self.leadID(context)
        let query = try LeadListQuery(request, use: .sublist)
        // Checked once the lead is known to exist: a missing lead is a 404 whatever the cursor.
        let cursor = Result { try Self.sublistCursor(query, list: .timeline, leadID: id) }
        let after = (try? cursor.get())?.map {
            LeadMutations.TimelinePosition(at: $0.values[0], source: $0.values[1], rowID: $0.values[2])
        }
        let offset = after == nil ? (query.page - 1) * query.perPage : 0
        let result = try await store.reader.read { db -> (entries: [LeadMutations.TimelineEntry], total: Int)? in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM leads WHERE id = ?", arguments: [id]) != nil else { return nil }
            _ = try cursor.get()
            // One more than the page, to know whether a page follows it.
            return try LeadMutations.timeline(id, after: after, offset: offset, limit: query.perPage + 1, in: db)
        }
        guard let result else { throw APIError(.notFound, "no such lead") }
        let entries = Array(result.entries.prefix(query.perPage))
        let next = result.entries.count > query.perPage ? entries.last.map {
            LeadSublistCursor(list: .timeline, leadID: id, values: [$0.position.at, $0.position.source, $0.position.rowID])
        } : nil
        let (meta, links) = Self.sublistPage(query, path: request.uri.path, keyset: after != nil, total: result.total,
                                             count: entries.count, next: next)
        return ListResponse(data: entries.map(TimelineJSON.init), meta: meta, links: links)
    }

    @Sendable func duplicates(_ request: Request, context: APIRequestContext) async throws -> ListResponse<LeadJSON> {
        let id = try Self.leadID(context)
        let query = try LeadListQuery(request, use: .sublist)
        // Checked once the lead is known to exist: a missing lead is a 404 whatever the cursor.
        let cursor = Result { try Self.sublistCursor(query, list: .duplicates, leadID: id) }
        let after = (try? cursor.get())?.values[0]
        let offset = (query.page - 1) * query.perPage
        let (found, total, next) = try await store.reader.read { db -> ([LeadJSON], Int, LeadSublistCursor?) in
            // In id order, which a keyset page continues.
            let matches = try LeadMutations.duplicates(of: id, limit: LeadMutations.duplicateCandidateLimit, in: db)
            _ = try cursor.get()
            let rest = after.map { after in matches.drop { $0.id <= after } } ?? matches.dropFirst(offset)
            let page = rest.prefix(query.perPage)
            let byID = Dictionary(uniqueKeysWithValues: page.map { ($0.id, $0.matches) })
            let leads = try LeadRecord.fetch(ids: page.map(\.id), in: db).map {
                LeadJSON(lead: $0, matchedOn: byID[$0.id]?.map(\.rawValue))
            }
            let next = rest.count > page.count ? page.last.map { LeadSublistCursor(list: .duplicates, leadID: id, values: [$0.id]) } : nil
            return (leads, matches.count, next)
        }
        let (meta, links) = Self.sublistPage(query, path: request.uri.path, keyset: after != nil, total: total,
                                             count: found.count, next: next)
        return ListResponse(data: found, meta: meta, links: links)
    }

    /// The `cursor` a list of one lead's rows was sent, checked to be one of that list's.
    private static func sublistCursor(_ query: LeadListQuery, list: LeadSublistCursor.List, leadID: Int64) throws -> LeadSublistCursor? {
        guard let token = query.cursorToken else { return nil }
        guard let cursor = LeadSublistCursor(token: token, list: list, leadID: leadID) else {
            throw APIError(.validationFailed, "invalid query parameters: cursor",
                           errors: ["cursor": ["is not a cursor this API issued for this lead's \(list.rawValue)"]])
        }
        return cursor
    }

    /// The meta and links of a page of one lead's rows: keyset (no page numbers) when a cursor
    /// chose it, offset otherwise; both name the cursor of the page after it.
    private static func sublistPage(_ query: LeadListQuery, path: String, keyset: Bool, total: Int, count: Int,
                                    next: LeadSublistCursor?) -> (ListMeta, ListLinks) {
        let nextToken = next?.token
        guard keyset else {
            let meta = ListMeta.offset(page: query.page, perPage: query.perPage, total: total, count: count, nextCursor: nextToken)
            let items = query.items.filter { $0.0 != "cursor" }
            return (meta, ListLinks.offset(path: path, query: items, page: query.page, lastPage: meta.lastPage ?? 1))
        }
        return (.keyset(perPage: query.perPage, total: total, nextCursor: nextToken),
                .keyset(path: path, query: query.items, nextCursor: nextToken))
    }

    struct MergeBody: Decodable {
        let duplicateID: Int64
        enum CodingKeys: String, CodingKey { case duplicateID = "duplicate_id" }
    }

    @Sendable func merge(_ request: Request, context: APIRequestContext) async throws -> LeadResponse {
        let id = try Self.leadID(context)
        let body = try await LeadBody.decode(MergeBody.self, request, context: context)
        guard body.duplicateID != id else {
            throw APIError(.validationFailed, "a lead cannot be merged into itself", errors: ["duplicate_id": ["must differ from the lead's id"]])
        }
        do {
            return try await mutate(id, for: context) { db in try LeadMutations.merge(primary: id, duplicate: body.duplicateID, in: db) }
        } catch LeadMutations.Failure.notFound {
            throw APIError(.notFound, "no such duplicate lead", errors: ["duplicate_id": ["no lead has this id"]])
        }
    }

    // MARK: Bulk and import

    @Sendable func bulk(_ request: Request, context: APIRequestContext) async throws -> BulkResponse {
        let bytes = try await LeadBody.bytes(request, context: context)
        guard let object = LeadInput.object(bytes) else {
            let problem = LeadInput.problem(bytes)
            throw APIError(.validationFailed, "the body \(problem)", errors: ["body": [problem]])
        }
        // Reading one would drop the other's leads without a word.
        if object["leads"] != nil && object["batch"] != nil {
            let reason = "send leads or batch (its alias), not both"
            throw APIError(.validationFailed, reason, errors: ["leads": [reason], "batch": [reason]])
        }
        guard case .array(let items)? = object["leads"] ?? object["batch"] else {
            let present = object["leads"] != nil || object["batch"] != nil
            throw APIError(.validationFailed, present ? "leads must be an array" : "leads is required",
                           errors: ["leads": ["must be an array of lead objects"]])
        }
        guard items.count <= APILimits.maxBulkLeads else {
            throw APIError(.validationFailed, "too many leads", errors: ["leads": ["at most \(APILimits.maxBulkLeads) per request"]])
        }
        // Trimmed, as ingest trims a source: a blank one sets nothing.
        let defaultSource = object["source"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let defaultSource, let problem = LeadBody.textProblem(defaultSource) {
            throw APIError(.validationFailed, "invalid source", errors: ["source": [problem]])
        }
        let defaultNote = object["note"]?.stringValue
        var results = [BulkItem?](repeating: nil, count: items.count)
        var records: [Ingest.Record] = []
        var recordIndexes: [Int] = []
        for (index, item) in items.enumerated() {
            guard case .object(let fields) = item else {
                results[index] = BulkItem(index: index, errors: ["lead": ["must be a JSON object"]])
                continue
            }
            let (patch, errors) = LeadInput.patch(from: fields)
            guard var patch else {
                results[index] = BulkItem(index: index, errors: errors)
                continue
            }
            if patch.fields[.source] == nil, let defaultSource, !defaultSource.isEmpty { patch.fields[.source] = defaultSource }
            if let defaultNote, !defaultNote.isEmpty { patch.appendedNotes.append(defaultNote) }
            records.append(Ingest.Record(line: index + 1, lead: patch, event: nil))
            recordIndexes.append(index)
        }
        let accepted = records
        let written = try await services.write(rescoringTouched: { db in
            let result = try Ingest.RequestSession().write(accepted, in: db)
            return (result, result.touched)
        })
        for (position, index) in recordIndexes.enumerated() {
            let lead = written.leads[position]
            results[index] = BulkItem(index: index, leadID: lead.id, email: records[position].lead.identity.email,
                                      status: lead.created ? "created" : "duplicate")
        }
        let data = results.compactMap { $0 }
        return BulkResponse(data: data, meta: .init(
            created: data.filter { $0.status == "created" }.count,
            duplicates: data.filter { $0.status == "duplicate" }.count,
            failed: data.filter { $0.errors != nil }.count))
    }

    @Sendable func importCSV(_ request: Request, context: APIRequestContext) async throws -> WrittenData<ImportJSON> {
        let bytes = try await LeadBody.fileBytes(request, context: context)
        let result = try await services.write(rescoringTouched: { db in
            let result = try Ingest.RequestSession().writeCSV(bytes, in: db)
            return (result, result.touched)
        })
        return WrittenData(data: ImportJSON(result))
    }
}
