import LeadStore

/// Namespace for ingestion: parsers, identity, the batch writer and the driver that ties them.
public enum Ingest {
    /// Custom values one record or lead body may carry. A 10 MiB body holds about 800,000 small
    /// traits, each a stored row and a dictionary label; no CRM export needs more than this.
    public static let maxCustomFields = 1_000
    /// Tags one record may carry, for the same reason.
    public static let maxTags = 1_000
}

extension Ingest {
    /// The keys a record can be matched to a lead by, in the order they are tried.
    public struct Identity: Hashable, Sendable {
        public var externalID: String?
        public var email: String?
        public var phoneDigits: String?
        public var anonymousID: String?

        public init(externalID: String? = nil, email: String? = nil, phoneDigits: String? = nil, anonymousID: String? = nil) {
            self.externalID = externalID
            self.email = email
            self.phoneDigits = phoneDigits
            self.anonymousID = anonymousID
        }

        public var isEmpty: Bool { externalID == nil && email == nil && phoneDigits == nil && anonymousID == nil }

        /// Emails match trimmed and case-insensitively; nil for text that is not an address
        /// (``EmailAddress/isPlausible(_:)``), which identifies nobody.
        public static func normalizeEmail(_ raw: String) -> String? {
            EmailAddress.normalized(raw)
        }

        /// Phones match on their digits; fewer than five digits identify nobody.
        /// See ``LeadMutations/identityPhoneDigits(_:)``: one rule for ingest and the API.
        public static func phoneDigits(_ raw: String) -> String? {
            LeadMutations.identityPhoneDigits(raw)
        }
    }

    public struct CustomValue: Sendable, Equatable {
        /// The key or header as received; kept as the field's label.
        public var label: String
        public var value: String
    }

    /// What a record says about a lead. Blank values are never set, so they never overwrite.
    public struct LeadPatch: Sendable {
        public var identity = Identity()
        /// Known fields, trimmed and non-empty. `.email` and `.phone` are as given.
        public var fields: [LeadField: String] = [:]
        public var value: Double?
        public var createdAt: Int64?
        public var custom: [CustomValue] = []
        public var tags: [String] = []
        /// Notes added to the lead's notes (each once) rather than replacing them: what an
        /// intake form's "note" means.
        public var appendedNotes: [String] = []
        /// utm source from context.campaign: sets the lead's source only when it has none.
        public var sourceFallback: String?
        /// When the identify, group or alias carrying it was sent. It dates a lead it creates
        /// without a `createdAt` of its own (a backfill of old identifies must not date every
        /// lead to the day it ran; an event's time serves the same way), and it orders field
        /// updates: a message no newer than the newest one applied to the lead (`traits_at`) only
        /// fills blanks, so replaying an old identify does not undo a newer one.
        public var sentAt: Int64?
        /// A creation time to use only if this patch creates the lead: an export's created_at,
        /// written to the second, must not move an existing lead's (a re-import would move
        /// every one) but must date the lead it makes in another store.
        public var createdAtIfNew: Int64?
        /// From a row of LeadLens's own export: the lead's `updated_at` when the export was
        /// written (to the second). A lead changed since then is only filled in by the row, so
        /// re-ingesting an old export or report cannot undo a status set since.
        public var exportedUpdatedAt: Int64?

        /// Whether the message says something about the person, not only who they are: an alias
        /// or a bare identify linking a device moves no `traits_at`, or a late-arriving identify
        /// with older traits would count as no newer than a link that carried none.
        var carriesTraits: Bool {
            !fields.isEmpty || !custom.isEmpty || value != nil || createdAt != nil || !tags.isEmpty || !appendedNotes.isEmpty
        }

        public init() {}
    }

    /// One activity event, already reduced to the hot columns.
    public struct Event: Sendable {
        public var typeName: String
        public var occurredAt: Int64
        public var value: Double?
        public var dedupeKey: Int64
        /// The content key this event had before content keys were canonical, when it differs:
        /// the properties' bytes as received were hashed then. Re-sending an event stored back
        /// then finds it by this key.
        public var legacyDedupeKey: Int64?
        /// Free-form properties as the raw JSON received, when non-empty.
        public var properties: String?
    }

    /// One accepted input row or message.
    public struct Record: Sendable {
        public var line: Int
        public var lead: LeadPatch
        public var event: Event?

        public init(line: Int, lead: LeadPatch, event: Event?) {
            self.line = line
            self.lead = lead
            self.event = event
        }
    }
}

/// A rejected row: its line, the field at fault when there is one, and why. The description never
/// carries the row's values, which are lead PII.
public struct IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case malformedJSON = "malformed_json"
            case invalidUTF8 = "invalid_utf8"
            case noIdentity = "no_identity"
            case wrongType = "wrong_type"
            case badTimestamp = "bad_timestamp"
            case valueTooLarge = "value_too_large"
            case malformedCSV = "malformed_csv"
            case unsupported = "unsupported"
            case damagedInput = "damaged_input"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let malformedJSON = Code(.malformedJSON)
        public static let invalidUTF8 = Code(.invalidUTF8)
        public static let noIdentity = Code(.noIdentity)
        public static let wrongType = Code(.wrongType)
        public static let badTimestamp = Code(.badTimestamp)
        public static let valueTooLarge = Code(.valueTooLarge)
        public static let malformedCSV = Code(.malformedCSV)
        public static let unsupported = Code(.unsupported)
        /// Compressed input that is damaged or cut short: nothing after the point could be read.
        public static let damagedInput = Code(.damagedInput)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var line: Int
    public var field: String?
    public var reason: String

    public init(_ code: Code, line: Int, field: String? = nil, reason: String) {
        self.code = code
        self.line = line
        self.field = field
        self.reason = reason
    }

    public var description: String {
        if let field { return "line \(line): \(field): \(reason)" }
        return "line \(line): \(reason)"
    }
}

extension String {
    /// Trims Unicode whitespace at both ends. Concrete on String (not StringProtocol) so the hot
    /// path is specialized: a generic version went through runtime metadata lookups per call.
    func trimmingWhitespace() -> String {
        var copy = self
        // Fast path for the common case, both ends printable ASCII: no Unicode property lookups.
        let isTrimmed = copy.withUTF8 { bytes -> Bool in
            guard let first = bytes.first, let last = bytes.last else { return true }
            return first > 0x20 && first < 0x7F && last > 0x20 && last < 0x7F
        }
        if isTrimmed { return self }
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[start...end])
    }
}

extension Substring {
    func trimmingWhitespace() -> String { String(self).trimmingWhitespace() }
}

extension IngestError {
    /// A time that does not parse, or falls outside the years ingest takes.
    static func unreadableTime(line: Int, field: String?) -> IngestError {
        IngestError(.badTimestamp, line: line, field: field, reason: "unparsable timestamp, or one outside 1900–2199 (epoch numbers: 1970–2199)")
    }
}

extension String {
    /// The text with control characters (line breaks, escapes) written as `\u{…}`: a file name
    /// shown in a log or a summary line cannot forge another line or repaint a terminal.
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return self }
        var out = ""
        for scalar in unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
