import Foundation
import Hummingbird
import LeadIngest
import LeadStore
import NIOCore

/// Request bodies of the strict lead endpoints (POST /leads, PATCH and PUT /leads/{id}): the
/// lead object's own snake_case keys, `null` to clear a field, and custom data under
/// `custom_fields`. Read-only keys of the lead object (id, score, timestamps) are ignored so a
/// client can send back what it read.
enum LeadBody {
    static let readOnly: Set<String> = [
        "id", "score", "probability", "model_version", "scored_at", "created_at", "updated_at",
        "last_activity_at", "factors", "matched_on",
    ]
    static let maxTextBytes = 64 * 1024

    static func bytes(_ request: Request, context: APIRequestContext) async throws -> [UInt8] {
        // A declared length over the limit is refused at once, not after waiting for bytes
        // that may never come (the client gave up, then the wait ended as a 500).
        // Every way over the limit is the same 413.
        let tooLarge = APIError.bodyTooLarge(limit: context.maxUploadSize)
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > context.maxUploadSize {
            throw tooLarge
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            throw tooLarge  // sent without a length, or longer than it said
        }
        return try decoded(Array(buffer.readableBytesView), encoding: request.headers[.contentEncoding], limit: context.maxUploadSize)
    }

    /// ``bytes(_:context:)``, and decoded when they are a gzip file sent as is
    /// (`curl --data-binary @leads.csv.gz`, no Content-Encoding): `leadlens ingest` reads such a
    /// file by its magic number, and the endpoints that take its formats do the same. Neither CSV
    /// nor JSON text can start with those two bytes.
    static func fileBytes(_ request: Request, context: APIRequestContext) async throws -> [UInt8] {
        let bytes = try await bytes(request, context: context)
        guard bytes.starts(with: [0x1F, 0x8B]) else { return bytes }
        return try decoded(bytes, encoding: "gzip", limit: context.maxUploadSize)
    }

    /// The body as sent, or decoded when its Content-Encoding is gzip or deflate, as event
    /// pipelines send it. The limit holds for the decoded bytes too, so a small compressed body
    /// cannot expand past what the server accepts.
    static func decoded(_ bytes: [UInt8], encoding: String?, limit: Int) throws -> [UInt8] {
        let codings = (encoding ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        guard !codings.isEmpty else { return bytes }
        guard codings.count == 1, ["gzip", "x-gzip", "deflate"].contains(codings[0]) else {
            let reason = "supported encodings are gzip and deflate"
            throw APIError(.validationFailed, "Content-Encoding: \(reason)", errors: ["Content-Encoding": [reason]],
                           headers: [.acceptEncoding: "gzip, deflate"])
        }
        let decoded: [UInt8]?
        do {
            decoded = try GzipDecoder.decode(bytes, headerlessDeflate: codings[0] == "deflate", limit: limit)
        } catch {
            throw APIError(.validationFailed, "the body cannot be decoded: \(error.reason)", errors: ["body": [error.reason]])
        }
        guard let decoded else {
            throw APIError.bodyTooLarge(limit: limit, decoded: true)
        }
        return decoded
    }

    /// A JSON body of a fixed shape. Decoded here rather than by `request.decode`, which turns
    /// a decoding error into a bare 400: the error shape names the field (see APIError.fieldErrors).
    static func decode<Body: Decodable>(_ type: Body.Type, _ request: Request, context: APIRequestContext) async throws -> Body {
        let bytes = try await bytes(request, context: context)
        try rejectUnknownKeys(Body.self, bytes)
        return try decodeJSON(Body.self, bytes)
    }

    /// Foundation reports a number it cannot convert (6.5 or 2^63 for an id) as corrupt data
    /// with no key, which read as "not valid JSON"; the body parses, so a value is at fault.
    private static func decodeJSON<Body: Decodable>(_ type: Body.Type, _ bytes: [UInt8]) throws -> Body {
        do {
            return try APIJSON.decoder.decode(Body.self, from: Data(bytes))
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty && LeadInput.object(bytes) != nil {
            let reason = "holds a value that does not fit its field: a fraction or an out-of-range number where a whole number belongs, say"
            throw APIError(.validationFailed, "a value in the body does not fit its field", errors: ["body": [reason]])
        }
    }

    /// A JSON body a client may leave out: `empty` when it sends no bytes (or only whitespace).
    static func optional<Body: Decodable>(_ request: Request, context: APIRequestContext, empty: Body) async throws -> Body {
        let bytes = try await bytes(request, context: context)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return empty }
        try rejectUnknownKeys(Body.self, bytes)
        return try decodeJSON(Body.self, bytes)
    }

    /// A 422 naming the keys a ``StrictBody`` does not know; other bodies pass.
    private static func rejectUnknownKeys<Body>(_: Body.Type, _ bytes: [UInt8]) throws {
        guard let strict = Body.self as? any StrictBody.Type,
              let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return }
        let unknown = object.keys.filter { !strict.knownKeys.contains($0) }.sorted().prefix(20)
        guard !unknown.isEmpty else { return }
        throw APIError(.validationFailed, "unknown field\(unknown.count == 1 ? "" : "s"): \(unknown.joined(separator: ", "))",
                       errors: Dictionary(uniqueKeysWithValues: unknown.map { ($0, ["is not a field of this request"]) }))
    }

    /// What is wrong with a text a client sends to be stored, or nil: over 64 KiB, or holding a
    /// NUL, which SQLite text through GRDB would end at (stored cut short).
    static func textProblem(_ text: String) -> String? {
        if text.utf8.count > maxTextBytes { return "must be at most 64 KiB" }
        if text.utf8.contains(0) { return "must not contain a NUL character" }
        return nil
    }

    /// What is wrong with a tag, if anything. Imports and exports separate tags with commas and
    /// semicolons, so a tag holding one would come back from a round trip as two.
    static func tagProblem(_ tag: String) -> String? {
        if let problem = textProblem(tag) { return problem }
        if tag.contains(where: { $0 == "," || $0 == ";" }) { return "a tag must not contain a comma or a semicolon" }
        return nil
    }

    /// ``textProblem(_:)`` as a 422 naming `field`, for the routes that store one text.
    static func checkLength(_ text: String?, field: String) throws {
        if let text, let problem = textProblem(text) {
            throw APIError(.validationFailed, "invalid \(field)", errors: [field: [problem]])
        }
    }

    static func changes(_ request: Request, context: APIRequestContext, creating: Bool) async throws -> LeadMutations.Changes {
        try changes(try await bytes(request, context: context), creating: creating)
    }

    static func changes(_ bytes: [UInt8], creating: Bool) throws -> LeadMutations.Changes {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            // Broken JSON is told apart from JSON that is not an object, as intake tells them.
            let problem = LeadInput.problem(bytes)
            throw APIError(.validationFailed, "the body \(problem)", errors: ["body": [problem]])
        }
        var changes = LeadMutations.Changes()
        var errors: [String: [String]] = [:]
        func fail(_ field: String, _ message: String) { errors[field, default: []].append(message) }

        for (key, raw) in object.sorted(by: { $0.key < $1.key }) {
            if readOnly.contains(key) { continue }
            let isNull = raw is NSNull
            if key == "custom_fields" {
                guard let custom = raw as? [String: Any] else {
                    if !isNull { fail(key, "must be an object") }
                    continue
                }
                guard custom.count <= Ingest.maxCustomFields else {
                    fail(key, "must hold at most \(Ingest.maxCustomFields) fields")
                    continue
                }
                for (label, value) in custom {
                    switch value {
                    case _ where label.utf8.count > 200 || label.utf8.contains(0):
                        fail("custom_fields", "a custom field's name must be at most 200 bytes, with no NUL character")
                    case is NSNull: changes.customFields[label] = .some(nil)
                    case _ where JSONNumbers.isBool(value): changes.customFields[label] = (value as? NSNumber)?.boolValue == true ? "true" : "false"
                    case let text as String:
                        if let problem = textProblem(text) {
                            fail("custom_fields.\(label)", problem)
                        } else {
                            changes.customFields[label] = text
                        }
                    case let number as NSNumber: changes.customFields[label] = number.stringValue
                    default: fail("custom_fields.\(label)", "must be a string, a number, true, false or null")
                    }
                }
                continue
            }
            guard let field = LeadBody.field(key) else {
                fail(key, "is not a lead field; put custom data in custom_fields")
                continue
            }
            switch field {
            case .value:
                if isNull { changes.value = .some(nil) } else if let number = raw as? NSNumber, !JSONNumbers.isBool(raw), number.doubleValue.isFinite {
                    changes.value = number.doubleValue
                } else {
                    fail(key, "must be a number or null")
                }
            case .tags:
                guard let tags = raw as? [String] else {
                    if isNull { changes.tags = [] } else { fail(key, "must be an array of strings") }
                    continue
                }
                if let problem = tags.lazy.compactMap(tagProblem).first { fail(key, problem); continue }
                changes.tags = tags.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            default:
                if isNull {
                    if field == .status { fail(key, "must not be null") } else { changes.columns[field] = .some(nil) }
                    continue
                }
                guard var text = (raw as? String) ?? (raw as? NSNumber).flatMap({ JSONNumbers.isBool(raw) ? nil : $0.stringValue }) else {
                    fail(key, "must be a string")
                    continue
                }
                text = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if let problem = textProblem(text) { fail(key, problem); continue }
                switch field {
                case .status:
                    text = text.lowercased()
                    if !LeadStatus.known.contains(text) {
                        fail(key, "must be one of \(LeadStatus.known.joined(separator: ", "))")
                        continue
                    }
                case .email:
                    guard let address = EmailAddress.normalized(text) else {
                        fail(key, "must be an email address")
                        continue
                    }
                    text = address
                case .assignedTo where Assignee.meansNone(text):
                    fail(key, Assignee.reservedReason)
                    continue
                case .phone:
                    if LeadMutations.identityPhoneDigits(text) == nil {
                        fail(key, "must hold at least 5 digits, not one digit repeated")
                        continue
                    }
                default: break
                }
                changes.columns[field] = .some(text.isEmpty ? nil : text)
            }
        }
        if creating {
            let identity = [LeadField.externalID, .email, .phone].contains { changes.columns[$0] != nil && changes.columns[$0]! != nil }
            if !identity, errors.isEmpty { fail("email", "a lead needs an email, a phone or an external_id") }
        } else if changes.isEmpty, errors.isEmpty {
            fail("body", "names no field to change")
        }
        if !errors.isEmpty {
            throw APIError(.validationFailed, "invalid lead: \(errors.keys.sorted().joined(separator: ", "))", errors: errors)
        }
        return changes
    }

    /// The lead field a body key names: the lead object's own key, or an alias ("firstName").
    static func field(_ key: String) -> LeadField? {
        if key == "external_id" { return .externalID }
        guard let field = FieldName.knownField(key) else { return nil }
        switch field {
        case .fullName, .anonymousID, .createdAt: return nil
        default: return field
        }
    }
}

/// A request body whose keys are all optional settings: a misspelt one ("perod", "ratee") would
/// fall back to its default without a word, so every key must be one of `knownKeys`.
protocol StrictBody: Decodable {
    static var knownKeys: Set<String> { get }
}
