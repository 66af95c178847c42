import Crypto
import LeadStore

/// Maps Segment-spec messages (identify, track, page, screen, group, alias, and `{"batch": [...]}`)
/// to ingest records. https://segment.com/docs/connections/spec/
struct SegmentMapper {
    /// The bytes the message was parsed from, so `properties` can be kept as received.
    let source: UnsafeBufferPointer<UInt8>
    let line: Int
    /// Used for a message with no timestamp at all; kept out of the content hash.
    let receivedAt: Int64
    /// The input was parsed without the 64 KiB string limit (it held a longer string): each
    /// message is checked on its own, so only the one holding it is rejected, not its batch.
    var checksStringLengths = false
    /// A batch's own `context`: it applies to every message of the batch, under the message's
    /// own context (Segment's batch API).
    var batchContext: JSONObject?

    /// Every record a top-level JSON value holds: one message, or each message of a batch.
    /// Messages in a batch fail one by one: a bad one does not cost its neighbours.
    func records(from value: JSONValue, into records: inout [Ingest.Record], rejects: inout [IngestError]) {
        if case .object(let envelope) = value, let batch = envelope["batch"] {
            guard case .array(let messages) = batch else {
                rejects.append(IngestError(.wrongType, line: line, field: "batch", reason: "expected an array"))
                return
            }
            var mapper = self
            do {
                mapper.batchContext = try validatedBatchContext(envelope)
            } catch {
                rejects.append(error)
                return
            }
            for (index, message) in messages.enumerated() {
                do {
                    records.append(try mapper.record(from: message))
                } catch {
                    // The line holds many messages: the reject names which one, as the API's do.
                    var error = error
                    error.field = "batch[\(index)]" + (error.field.map { "." + $0 } ?? "")
                    rejects.append(error)
                }
            }
            return
        }
        do {
            records.append(try record(from: value))
        } catch {
            rejects.append(error)
        }
    }

    /// A batch's `context`, checked once: a bad value in it is the batch's error, named under
    /// `context`, not one blamed on every message it would reach.
    func validatedBatchContext(_ envelope: JSONObject) throws(IngestError) -> JSONObject? {
        guard let context = try object(envelope, "context") else { return nil }
        try named("context") { () throws(IngestError) in
            if checksStringLengths, let path = JSONValue.object(context).firstString(longerThan: JSONParser.maxStringBytes) {
                throw IngestError(.valueTooLarge, line: line, field: path.isEmpty ? nil : path, reason: "value longer than 64 KiB")
            }
            _ = try campaignSource(context)
            var scratch = LeadPatchBuilder(line: line)
            scratch.replacesRepeatedLabels = true
            try applyTraits(of: context, to: &scratch, identifying: false)
            // Counted as stored: a company object's members are custom fields of their own.
            if scratch.patch.custom.count + scratch.patch.fields.count + scratch.patch.tags.count > Self.maxBatchContextTraits {
                throw IngestError(.valueTooLarge, line: line, field: "traits",
                                  reason: "a batch context holds more than \(Self.maxBatchContextTraits) traits")
            }
        }
        return context
    }

    /// Traits a batch context may hold: each is copied to every message of the batch, up to
    /// 5,000 of them, so a few hundred would make a single request store millions of values.
    static let maxBatchContextTraits = 100

    /// Runs `body`, naming a field it rejects under `prefix`: "value" under "traits" is
    /// "traits.value", as a property's is "properties.value".
    private func named<T>(_ prefix: String, _ body: () throws(IngestError) -> T) throws(IngestError) -> T {
        do {
            return try body()
        } catch {
            var error = error
            error.field = prefix + (error.field.map { "." + $0 } ?? "")
            throw error
        }
    }

    /// A context's `campaign.source` (its utm_source), trimmed; nil when blank or absent.
    private func campaignSource(_ context: JSONObject) throws(IngestError) -> String? {
        guard let campaign = try object(context, "campaign"),
              let source = try named("campaign", { () throws(IngestError) in try string(campaign, "source") })?.trimmingWhitespace(),
              !source.isEmpty else { return nil }
        return source
    }

    func record(from value: JSONValue) throws(IngestError) -> Ingest.Record {
        if checksStringLengths, let path = value.firstString(longerThan: JSONParser.maxStringBytes) {
            throw IngestError(.valueTooLarge, line: line, field: path.isEmpty ? nil : path, reason: "value longer than 64 KiB")
        }
        guard case .object(let message) = value else {
            throw IngestError(.wrongType, line: line, reason: "expected a JSON object")
        }
        let type = try string(message, "type").map(Self.lowercasedASCII) ?? (message["event"] != nil ? "track" : nil)
        guard let type else { throw IngestError(.unsupported, line: line, field: "type", reason: "missing message type") }

        var lead = LeadPatchBuilder(line: line)
        lead.replacesRepeatedLabels = true
        if let userID = try identifier(message, "userId") { lead.patch.identity.externalID = userID }
        if let anonymousID = try identifier(message, "anonymousId") { lead.patch.identity.anonymousID = anonymousID }
        let context = try object(message, "context")
        // The message's own campaign source, else its batch's.
        var utmSource: String?
        if let context { utmSource = try named("context") { () throws(IngestError) in try campaignSource(context) } }
        if utmSource == nil, let batchContext { utmSource = try campaignSource(batchContext) }
        if let utmSource { lead.patch.sourceFallback = utmSource }

        if type == "identify" || type == "group" || type == "alias" {
            // No event to date the lead by: the message's own time. An unreadable one is rejected,
            // as a track's is: read as "undated", a stale identify would overwrite newer traits.
            lead.patch.sentAt = try messageTime(message)
        }
        switch type {
        case "identify":
            // The most specific wins: the batch's context traits, the message's, then its traits.
            try applyContextTraits(context, to: &lead)
            try applyTraits(of: message, to: &lead)
            return try finish(lead, event: nil)
        case "group":
            // A group's traits describe the account: its name is the lead's company, the rest
            // custom fields named as a company object's members are ("company.industry").
            if let groupID = try identifier(message, "groupId") { try lead.setCustom(label: "company.id", json: .string(groupID)) }
            if let traits = try object(message, "traits") {
                for member in traits.members {
                    if member.key == "name" {
                        guard let name = try string(traits, "name") else { continue }
                        try lead.set(.company, text: name.trimmingWhitespace(), key: "traits.name")
                    } else {
                        try lead.setCustom(label: "company.\(member.key)", json: member.value)
                    }
                }
            }
            return try finish(lead, event: nil)
        case "alias":
            // alias links a previous (usually anonymous) id to the user id; the spec requires both.
            guard let previous = try identifier(message, "previousId") else {
                throw IngestError(.wrongType, line: line, field: "previousId", reason: "an alias needs a previousId")
            }
            guard let user = lead.patch.identity.externalID else {
                throw IngestError(.wrongType, line: line, field: "userId", reason: "an alias needs a userId")
            }
            if previous != user { lead.patch.identity.anonymousID = previous }
            return try finish(lead, event: nil)
        case "track", "page", "screen":
            try applyContextTraits(context, to: &lead)
            let properties = try object(message, "properties")
            if lead.patch.identity.email == nil, let properties, let email = try string(properties, "email") {
                lead.patch.identity.email = Ingest.Identity.normalizeEmail(email)
            }
            let typeName = try eventName(type: type, message: message, properties: properties)
            let event = try makeEvent(typeName: typeName, message: message, properties: properties, identity: lead.patch.identity)
            if hasTraits(context) {
                // Context traits are the person as of the event: dated like an identify, an
                // older event's only fill blanks and a newer one's move the lead's traits time.
                // (Most events carry none, and skip reading the lead's row.)
                lead.patch.sentAt = try messageTime(message)
            }
            return try finish(lead, event: event)
        default:
            throw IngestError(.unsupported, line: line, field: "type", reason: "unsupported message type")
        }
    }

    private func finish(_ builder: LeadPatchBuilder, event: Ingest.Event?) throws(IngestError) -> Ingest.Record {
        let patch = builder.build()
        guard !patch.identity.isEmpty else {
            throw builder.noIdentityError(needs: "a userId or anonymousId, or an email or phone under traits, context.traits or (a track's) properties")
        }
        return Ingest.Record(line: line, lead: patch, event: event)
    }

    /// The batch's context traits, then the message's own over them. A batch's never identify:
    /// its messages may be different people, and its email or phone would make them one lead.
    private func applyContextTraits(_ context: JSONObject?, to lead: inout LeadPatchBuilder) throws(IngestError) {
        if let batchContext {
            try named("context") { () throws(IngestError) in try applyTraits(of: batchContext, to: &lead, identifying: false) }
        }
        if let context { try named("context") { () throws(IngestError) in try applyTraits(of: context, to: &lead) } }
    }

    /// Whether this message's context or its batch's holds any trait.
    private func hasTraits(_ context: JSONObject?) -> Bool {
        [context, batchContext].contains { context in
            if case .object(let traits)? = context?["traits"] { return !traits.isEmpty }
            return false
        }
    }

    /// The `traits` of a message or context, a bad one named under "traits". Without
    /// `identifying`, an email or phone among them is skipped.
    private func applyTraits(of owner: JSONObject, to lead: inout LeadPatchBuilder, identifying: Bool = true) throws(IngestError) {
        guard let traits = try object(owner, "traits") else { return }
        try named("traits") { () throws(IngestError) in try applyTraits(traits, to: &lead, identifying: identifying) }
    }

    private func applyTraits(_ traits: JSONObject, to lead: inout LeadPatchBuilder, identifying: Bool) throws(IngestError) {
        var firstKeys: [LeadField: String] = [:]
        for member in traits.members {
            // The ids come from the message itself, never from traits.
            let field = FieldName.knownField(member.key)
            if field == .externalID || field == .anonymousID { continue }
            if !identifying, field == .email || field == .phone { continue }
            try lead.set(member: member.key, json: member.value, firstKeys: &firstKeys)
        }
    }

    /// track: the event name. page and screen: "Viewed <name> Page" / "Viewed <name> Screen", as
    /// Segment's destinations name them, or "Page Viewed" / "Screen Viewed" without a name.
    private func eventName(type: String, message: JSONObject, properties: JSONObject?) throws(IngestError) -> String {
        if type == "track" {
            guard let name = try string(message, "event")?.trimmingWhitespace(), !name.isEmpty else {
                throw IngestError(.wrongType, line: line, field: "event", reason: "track needs an event name")
            }
            return name
        }
        let noun = type == "page" ? "Page" : "Screen"
        let name = try string(message, "name") ?? properties.flatMap { try? string($0, "name") }
        if let name = name?.trimmingWhitespace(), !name.isEmpty { return "Viewed \(name) \(noun)" }
        return "\(noun) Viewed"
    }

    /// The message's time: its timestamp, else originalTimestamp, sentAt or receivedAt. Nil
    /// when it has none; the first one present must be a readable time.
    private func messageTime(_ message: JSONObject) throws(IngestError) -> Int64? {
        for key in ["timestamp", "originalTimestamp", "sentAt", "receivedAt"] {
            guard let value = message[key], !value.isNull else { continue }
            let time: Int64?
            switch value {
            case .string(let text): time = Timestamp.parse(text)
            case .number(let number): time = Timestamp.fromNumber(number)
            default: throw IngestError(.wrongType, line: line, field: key, reason: "expected an ISO 8601 string or epoch seconds or milliseconds")
            }
            guard let time else { throw IngestError.unreadableTime(line: line, field: key) }
            return time
        }
        return nil
    }

    private func makeEvent(typeName: String, message: JSONObject, properties: JSONObject?, identity: Ingest.Identity) throws(IngestError) -> Ingest.Event {
        if typeName.utf8.count > 512 {
            throw IngestError(.valueTooLarge, line: line, field: "event", reason: "event name longer than 512 bytes")
        }
        let occurredAt = try messageTime(message)

        var value: Double?
        if let properties {
            for key in ["value", "revenue"] {
                switch properties[key] {
                case .number(let n)?: value = n
                case .string(let s)?:
                    guard let n = LeadPatchBuilder.parseNumber(s) else {
                        throw IngestError(.wrongType, line: line, field: "properties.\(key)", reason: "not a number")
                    }
                    value = n
                case nil, .null?: continue
                default: throw IngestError(.wrongType, line: line, field: "properties.\(key)", reason: "not a number")
                }
                break
            }
        }

        let nonEmptyProperties = properties.flatMap { $0.isEmpty ? nil : $0 }
        let rawProperties = nonEmptyProperties.map { UnsafeBufferPointer(rebasing: source[$0.span]) }
        let messageID = try identifier(message, "messageId")
        let dedupeKey: Int64
        var legacyDedupeKey: Int64?
        if let messageID {
            dedupeKey = DedupeKey.forMessageID(messageID)
        } else {
            // Hashed in canonical form, so a pipeline that re-serializes a message (another key
            // order, spacing or escaping) re-sends the same event, not a new one.
            func contentKey(_ properties: UnsafeBufferPointer<UInt8>?) -> Int64 {
                DedupeKey.forContent(typeName: typeName, identity: identity, occurredAt: occurredAt, properties: properties)
            }
            if let nonEmptyProperties, let rawProperties, var canonical = JSONValue.object(nonEmptyProperties).canonicalText {
                dedupeKey = canonical.withUTF8 { contentKey($0) }
                // Versions before this one hashed the bytes as received: an event stored then is
                // found by that key too (see `Ingest.Event.legacyDedupeKey`).
                if !rawProperties.elementsEqual(canonical.utf8) { legacyDedupeKey = contentKey(rawProperties) }
            } else {
                // No properties, or numbers only their text tells apart: the bytes as received.
                dedupeKey = contentKey(rawProperties)
            }
        }
        return Ingest.Event(
            typeName: typeName,
            occurredAt: occurredAt ?? receivedAt,
            value: value,
            dedupeKey: dedupeKey,
            legacyDedupeKey: legacyDedupeKey,
            properties: rawProperties.map { String(decoding: $0, as: UTF8.self) })
    }

    /// Message types are ASCII and almost always lowercase already: skip the Unicode-aware
    /// lowercasing then.
    private static func lowercasedASCII(_ text: String) -> String {
        text.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? text.lowercased() : text
    }

    // MARK: typed access, naming the field on a wrong type

    private func string(_ object: JSONObject, _ key: String) throws(IngestError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?:
            try LeadPatchBuilder.rejectNUL(s, field: key, line: line)
            return s
        default: throw IngestError(.wrongType, line: line, field: key, reason: "expected a string")
        }
    }

    /// Ids may arrive as strings or integers; either way they are kept as text.
    private func identifier(_ object: JSONObject, _ key: String) throws(IngestError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?:
            let trimmed = s.trimmingWhitespace()
            if trimmed.utf8.count > 1024 { throw IngestError(.valueTooLarge, line: line, field: key, reason: "id longer than 1 KiB") }
            try LeadPatchBuilder.rejectNUL(trimmed, field: key, line: line)
            return trimmed.isEmpty ? nil : trimmed
        case .number(let n)? where n == n.rounded():
            // Past 2^53 a JSON number no longer holds every integer: two ids could collapse into one.
            guard abs(n) < LeadPatchBuilder.exactIntegerLimit else {
                throw IngestError(.wrongType, line: line, field: key, reason: "id too large for a JSON number; send it as a string")
            }
            return LeadPatchBuilder.format(n)
        default: throw IngestError(.wrongType, line: line, field: key, reason: "expected a string id")
        }
    }

    private func object(_ object: JSONObject, _ key: String) throws(IngestError) -> JSONObject? {
        switch object[key] {
        case nil, .null?: return nil
        case .object(let o)?: return o
        default: throw IngestError(.wrongType, line: line, field: key, reason: "expected an object")
        }
    }
}

/// 63-bit event dedupe keys: the first 8 bytes of a SHA-256, sign bit cleared so the key is a
/// positive rowid. A collision needs ~3·10⁹ events to reach even odds; at 10⁸ events it is ~3·10⁻⁴.
enum DedupeKey {
    static func forMessageID(_ messageID: String) -> Int64 {
        var hasher = SHA256()
        hasher.update(data: [UInt8(ascii: "m")])
        hasher.update(data: Array(messageID.utf8))
        return truncate(hasher.finalize())
    }

    /// Without a messageId, an event is its content: type, identity, time and properties.
    static func forContent(typeName: String, identity: Ingest.Identity, occurredAt: Int64?, properties: UnsafeBufferPointer<UInt8>?) -> Int64 {
        var hasher = SHA256()
        var fields: [UInt8] = [UInt8(ascii: "c")]
        for part in [typeName, identity.externalID ?? "", identity.anonymousID ?? "", identity.email ?? "", occurredAt.map(String.init) ?? ""] {
            fields.append(contentsOf: part.utf8)
            fields.append(0)
        }
        hasher.update(data: fields)
        if let properties { hasher.update(bufferPointer: UnsafeRawBufferPointer(properties)) }
        return truncate(hasher.finalize())
    }

    private static func truncate(_ digest: SHA256.Digest) -> Int64 {
        digest.withUnsafeBytes { raw in
            Int64(bitPattern: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)) & 0x7FFF_FFFF_FFFF_FFFF)
        }
    }
}
