import Foundation
import LeadStore

/// Turns key/value pairs from any source (a CSV row, Segment traits, an intake form) into a
/// ``Ingest/LeadPatch``, with the same key normalization everywhere.
struct LeadPatchBuilder {
    var patch = Ingest.LeadPatch()
    private var fullName: String?
    let line: Int
    /// The key of an email value that was not an address (kept as a custom field instead).
    private(set) var unaddressableEmailKey: String?
    /// A later custom value for a field replaces an earlier one, rather than both going to the
    /// writer, whose fill-only mode would keep the first. Segment messages set it: their batch
    /// context, own context and traits may each name a field. A CSV row's labels are unique.
    var replacesRepeatedLabels = false
    /// A status the API does not know is refused (a client program's request) rather than
    /// kept aside as a custom field (a file's column, a CRM's own stages).
    var refusesUnknownStatus = false
    /// Where each normalized label sits in `patch.custom`, when labels replace: a lookup per
    /// value instead of a scan, which made a message with N traits cost N² (8,000 traits took 2 s).
    private var customIndexByKey: [String: Int] = [:]
    /// The tags so far, for the same reason.
    private var seenTags: Set<String> = []

    /// The rejects' reasons when a record passes a cap: callers that list every field's problem
    /// stop at these, since each later field would fail alike.
    static let tooManyCustomFields = "more than \(Ingest.maxCustomFields) custom fields in one record"
    static let tooManyTags = "more than \(Ingest.maxTags) tags in one record"

    /// Whether `error` is a record passing one of the caps: every later field would fail alike.
    static func passesCap(_ error: IngestError) -> Bool {
        error.reason == tooManyCustomFields || error.reason == tooManyTags
    }

    init(line: Int) {
        self.line = line
    }

    /// Sets one field from text. Blank values are ignored: they never overwrite.
    /// `asideLabel`: the custom field an email that is no address, or a status the API does
    /// not know, is kept under instead of `key` (a second column for the field has its own).
    mutating func set(key: String, text raw: String, asideLabel: String? = nil) throws(IngestError) {
        if raw.utf8.count > JSONParser.maxStringBytes {
            throw IngestError(.valueTooLarge, line: line, field: key, reason: "value longer than 64 KiB")
        }
        let text = raw.trimmingWhitespace()
        guard !text.isEmpty else { return }
        guard let field = FieldName.knownField(key) else { return try appendCustom(label: key, text: text) }
        try set(field, text: text, key: key, asideLabel: asideLabel)
    }

    mutating func set(_ field: LeadField, text: String, key: String, asideLabel: String? = nil) throws(IngestError) {
        try Self.rejectNUL(text, field: key, line: line)
        switch field {
        case .externalID: patch.identity.externalID = text
        case .anonymousID: patch.identity.anonymousID = text
        case .email:
            guard let email = Ingest.Identity.normalizeEmail(text) else {
                // Kept where a person can read and fix it, but it matches no one.
                unaddressableEmailKey = key
                return try appendCustom(label: asideLabel ?? key, text: text)
            }
            patch.identity.email = email
            patch.fields[.email] = email
        case .phone:
            patch.identity.phoneDigits = Ingest.Identity.phoneDigits(text)
            patch.fields[.phone] = text
        case .status:
            let status = text.lowercased()
            // A status the API would refuse (a CRM's own, "Working - Contacted") is kept where a
            // person can read it, and the lead keeps a status the API can round-trip.
            guard LeadStatus.known.contains(status) else {
                if refusesUnknownStatus {
                    throw IngestError(.wrongType, line: line, field: key, reason: "must be one of \(LeadStatus.known.joined(separator: ", "))")
                }
                return try appendCustom(label: asideLabel ?? key, text: text)
            }
            patch.fields[.status] = status
        case .value:
            guard let number = Self.parseNumber(text) else {
                throw IngestError(.wrongType, line: line, field: key, reason: "not a number")
            }
            patch.value = number
        case .createdAt:
            guard let millis = Timestamp.parse(text) else {
                throw IngestError.unreadableTime(line: line, field: key)
            }
            patch.createdAt = millis
        case .tags:
            for tag in text.split(whereSeparator: { $0 == "," || $0 == ";" }) {
                let trimmed = tag.trimmingWhitespace()
                guard !trimmed.isEmpty, seenTags.insert(trimmed).inserted else { continue }
                guard patch.tags.count < Ingest.maxTags else {
                    throw IngestError(.valueTooLarge, line: line, field: key, reason: Self.tooManyTags)
                }
                patch.tags.append(trimmed)
            }
        case .fullName: fullName = text
        case .assignedTo where Assignee.meansNone(text):
            return  // a CRM export's "Unassigned" owner: no owner, like a blank
        case .firstName, .lastName, .company, .source, .assignedTo, .notes:
            patch.fields[field] = text
        }
    }

    /// Sets one field from a JSON value (Segment traits, intake bodies).
    mutating func set(key: String, json: JSONValue) throws(IngestError) {
        switch json {
        case .null: return
        case .string(let s): try set(key: key, text: s)
        case .number(let n):
            // Ids, phones, amounts, owners, a CRM's numbered stages and year tags come as numbers
            // from many pipelines; an address never does, and as text it would match no one.
            if FieldName.knownField(key) == .email {
                throw IngestError(.wrongType, line: line, field: key, reason: "expected a string, got a number")
            }
            try set(key: key, text: Self.format(n))
        case .bool(let b):
            // No known field is a yes/no: true as an email or phone would be kept as text.
            guard FieldName.knownField(key) == nil else {
                throw IngestError(.wrongType, line: line, field: key, reason: "expected a string, got \(b)")
            }
            try set(key: key, text: b ? "true" : "false")
        case .array(let elements) where FieldName.knownField(key) == .tags:
            for element in elements {
                guard case .string(let tag) = element else {
                    throw IngestError(.wrongType, line: line, field: key, reason: "tags must be strings")
                }
                try set(.tags, text: tag, key: key)
            }
        case .object(let company) where FieldName.knownField(key) == .company:
            // Segment's company trait is an object: {name, id, industry, employee_count, plan}.
            // Its name is the company; the rest is kept as custom fields ("company.industry").
            for member in company.members {
                if member.key == "name" {
                    try set(key: key, json: member.value)
                } else {
                    try setCustom(label: "\(key).\(member.key)", json: member.value)
                }
            }
        case .array, .object:
            guard FieldName.knownField(key) == nil else {
                throw IngestError(.wrongType, line: line, field: key, reason: "expected a string or number")
            }
            try appendCustom(label: key, text: json.compactText)
        }
    }

    /// Sets one member of a JSON object (an intake body, a message's traits), as
    /// ``set(key:json:)`` does, except that another key naming a field an earlier key of the same
    /// object set ("phone", then "mobile") is kept as a custom field under its own key when the
    /// two differ, as a CSV's second column for a field is: the first wins, and neither value is
    /// lost. (The same key twice is JSON's last-wins.) `firstKeys` holds, per field, the key of
    /// this object that set it; one per object.
    mutating func set(member key: String, json: JSONValue, firstKeys: inout [LeadField: String]) throws(IngestError) {
        guard let field = FieldName.knownField(key), field != .tags else { return try set(key: key, json: json) }
        let scalar: String? = switch json {
        case .string(let text): text.trimmingWhitespace()
        case .number(let number): Self.format(number)
        default: nil
        }
        guard let first = firstKeys[field], first != key else {
            let before = text(of: field)
            try set(key: key, json: json)
            // The first key is the one that gave the field a value: it changed it, or holds the
            // value an earlier object (a message's context) gave it.
            if firstKeys[field] == nil, let after = text(of: field),
               after != before || scalar.map({ holds(field, sameAs: $0) }) == true {
                firstKeys[field] = key
            }
            return
        }
        // A second key, on its own: checked as the field's own value is (a status the API
        // refuses, a number that is none), so it is no way around a 422.
        var alone = LeadPatchBuilder(line: line)
        alone.refusesUnknownStatus = refusesUnknownStatus
        try alone.set(key: key, json: json)
        // What it keeps aside anyway (an email that is no address, a company object's plan).
        for custom in alone.patch.custom { try setCustom(label: custom.label, text: custom.value) }
        guard let value = alone.text(of: field) else { return }  // nothing to set: blank, "Unassigned"
        let text = scalar ?? value
        if holds(field, sameAs: text) { return }
        try setCustom(label: key, text: text)
    }

    /// The text a known field holds so far, or nil when no value has set it.
    func text(of field: LeadField) -> String? {
        switch field {
        case .externalID: patch.identity.externalID
        case .anonymousID: patch.identity.anonymousID
        case .value: patch.value.map(Self.format)
        case .createdAt: patch.createdAt.map { String($0) }
        case .fullName: fullName
        case .tags: nil
        default: patch.fields[field]
        }
    }

    /// Whether `value`, read as `field`, is the value the field already holds: the same phone
    /// digits, email, number or time, or the same text ignoring case. A value that does not
    /// parse as the field is different.
    func holds(_ field: LeadField, sameAs value: String) -> Bool {
        var other = LeadPatchBuilder(line: line)
        guard (try? other.set(field, text: value, key: field.rawValue)) != nil else { return false }
        switch field {
        case .phone:
            // Digits only, compared whole: too short to be an identity is still a value.
            return other.patch.fields[.phone].map(LeadMutations.phoneDigits) == patch.fields[.phone].map(LeadMutations.phoneDigits)
        case .value: return other.patch.value == patch.value
        case .createdAt: return other.patch.createdAt == patch.createdAt
        default:
            guard let mine = text(of: field), let theirs = other.text(of: field) else { return false }
            return mine.caseInsensitiveCompare(theirs) == .orderedSame
        }
    }

    /// Sets a custom field by its label from text, whatever the label would otherwise match.
    mutating func setCustom(label: String, text: String) throws(IngestError) {
        try setCustom(label: label, json: .string(text))
    }

    /// Sets a custom field by its label, whatever the label would otherwise match.
    mutating func setCustom(label: String, json: JSONValue) throws(IngestError) {
        let text: String
        switch json {
        case .null: return
        case .string(let s): text = s.trimmingWhitespace()
        case .number(let n): text = Self.format(n)
        case .bool(let b): text = b ? "true" : "false"
        case .array, .object: text = json.compactText
        }
        try appendCustom(label: label, text: text)
    }

    /// Every custom value comes through here: at most 64 KiB, no NUL in it or its label, and a
    /// blank one is no value.
    private mutating func appendCustom(label: String, text: String) throws(IngestError) {
        if text.utf8.count > JSONParser.maxStringBytes {
            throw IngestError(.valueTooLarge, line: line, field: label, reason: "value longer than 64 KiB")
        }
        try Self.rejectNUL(label, field: label, line: line)
        try Self.rejectNUL(text, field: label, line: line)
        guard !text.isEmpty else { return }
        let value = Ingest.CustomValue(label: label, value: text)
        let key = replacesRepeatedLabels ? FieldName.normalize(label) : nil
        if let key, let index = customIndexByKey[key] {
            patch.custom[index] = value
            return
        }
        guard patch.custom.count < Ingest.maxCustomFields else {
            throw IngestError(.valueTooLarge, line: line, field: label, reason: Self.tooManyCustomFields)
        }
        if let key { customIndexByKey[key] = patch.custom.count }
        patch.custom.append(value)
    }

    /// Why a record without identity has none, for its reject: `needs` lists what it lacks.
    func noIdentityReason(needs: String) -> String {
        unaddressableEmailKey.map { "no identity: \($0) is not an email address, and there is no other id or phone" }
            ?? "no identity: needs \(needs)"
    }

    /// The no-identity reject of this record: it names the email field when that held a value
    /// that is not an address.
    func noIdentityError(needs: String) -> IngestError {
        IngestError(.noIdentity, line: line, field: unaddressableEmailKey, reason: noIdentityReason(needs: needs))
    }

    /// Splits a full name into first and last when those were not given on their own.
    func build() -> Ingest.LeadPatch {
        var result = patch
        if let fullName {
            let parts = fullName.split(separator: " ", maxSplits: 1)
            if result.fields[.firstName] == nil, let first = parts.first { result.fields[.firstName] = String(first) }
            if result.fields[.lastName] == nil, parts.count > 1 { result.fields[.lastName] = parts[1].trimmingWhitespace() }
        }
        return result
    }

    /// SQLite text through GRDB ends at a NUL byte, so a value holding one would be stored cut
    /// short (an email "nul\u{0}@x.io" stored as "nul"): such a value is refused instead.
    static func rejectNUL(_ text: String, field: String, line: Int) throws(IngestError) {
        // memchr over the contiguous bytes: iterating the UTF-8 view went byte by byte.
        let hasNUL = text.utf8.withContiguousStorageIfAvailable { bytes in bytes.baseAddress.map { memchr($0, 0, bytes.count) != nil } ?? false }
            ?? text.utf8.contains(0)
        if hasNUL {
            throw IngestError(.wrongType, line: line, field: field, reason: "contains a NUL character")
        }
    }

    /// "1200", "1,200.50", "$1 200", "-3e2". Currency signs and spaces are dropped; commas only
    /// as thousands separators ("12,5" and "€1.200,50" are not numbers: read as 125 and 1.2005
    /// they would feed the model a wrong value). See ``NumberText/parseAmount(_:)``.
    static func parseNumber(_ text: String) -> Double? {
        NumberText.parseAmount(text)
    }

    /// 2^53: below it a Double holds every integer exactly.
    static let exactIntegerLimit: Double = 9_007_199_254_740_992

    /// Integers print without a fraction so "42" round-trips as an id or a custom value.
    static func format(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < exactIntegerLimit { return String(Int64(number)) }
        return String(number)
    }
}

extension JSONValue {
    /// Compact JSON text, for nested custom values.
    public var compactText: String {
        var out = ""
        write(to: &out, sortingKeys: false)
        return out
    }

    /// One text for every serialization of the same value: compact, object keys sorted by their
    /// UTF-8 bytes at every depth, strings and numbers re-encoded from their values (`1.0` and
    /// `1`, `"\u00e9"` and `"é"` agree). What JSON.stringify writes for an object whose keys
    /// are already in that order. Nil when the value holds an integer past 2^53: a Double no
    /// longer tells such numbers apart (two 17-digit order ids would read as one).
    public var canonicalText: String? {
        guard !holdsInexactInteger else { return nil }
        var out = ""
        write(to: &out, sortingKeys: true)
        return out
    }

    private var holdsInexactInteger: Bool {
        switch self {
        case .number(let n): abs(n) >= LeadPatchBuilder.exactIntegerLimit
        case .array(let elements): elements.contains { $0.holdsInexactInteger }
        case .object(let object): object.members.contains { $0.value.holdsInexactInteger }
        case .null, .bool, .string: false
        }
    }

    private func write(to out: inout String, sortingKeys: Bool) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += LeadPatchBuilder.format(n)
        case .string(let s): JSONValue.writeQuoted(s, to: &out)
        case .array(let elements):
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += "," }
                element.write(to: &out, sortingKeys: sortingKeys)
            }
            out += "]"
        case .object(let object):
            out += "{"
            let members = sortingKeys
                ? object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                : object.members
            for (i, member) in members.enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeQuoted(member.key, to: &out)
                out += ":"
                member.value.write(to: &out, sortingKeys: sortingKeys)
            }
            out += "}"
        }
    }

    static func writeQuoted(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
