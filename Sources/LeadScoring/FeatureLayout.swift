import Foundation
import GRDB
import LeadStore

/// A feature spec bound to one store: field names resolved to lead columns or custom-field ids,
/// event names to type ids, and every declared feature expanded into its matrix columns.
public struct FeatureLayout: Sendable {
    /// The spec with data-dependent choices made (top-K categories listed), as a model stores it.
    public let spec: FeatureSpec
    public let columns: [Column]
    public var columnNames: [String] { columns.map(\.name) }

    /// Lead columns the reader selects beyond id, created_at, status and score.
    let leadTextColumns: [String]
    /// Custom fields the reader loads, by id; their position is the slot columns refer to.
    let customFieldIDs: [Int64]
    /// Distinct windows, in days, of windowed event counts.
    let windows: [Int]
    let label: LabelSource
    /// Slots of email among `leadTextColumns`, when a feature needs it.
    let emailSlot: Int?
    /// One per categorical feature.
    let categories: [CategoryEncoder]

    /// Lead text slots whose text is needed (categories, a label field); the others are only
    /// tested for presence or, for email, for a free-mail domain, straight from SQLite's bytes.
    var leadSlotNeedsText: [Bool] {
        leadTextColumns.indices.map { slot in
            categories.contains { !$0.isCustom && $0.slot == slot } || label == .leadColumn(slot: slot)
        }
    }

    /// The same for custom-field slots; numbers are always read.
    var customSlotNeedsText: [Bool] {
        customFieldIDs.indices.map { slot in
            categories.contains { $0.isCustom && $0.slot == slot } || label == .custom(slot: slot)
                || columns.contains { $0.source == .presenceCustom(slot: slot) }
        }
    }

    /// Maps a categorical field's value to its one-hot column.
    struct CategoryEncoder: Sendable {
        /// Where the value is read: a lead text column or a custom field (-1: absent from the store).
        let slot: Int
        let isCustom: Bool
        /// Normalized listed values; column `firstColumn + i` is value i, then "other" if any.
        let keys: [String]
        let hasOther: Bool
        let firstColumn: Int

        /// Offset from `firstColumn` of the column a raw value activates; nil for none.
        func offset(of raw: String) -> Int? {
            let key = FeatureLayout.categoryKey(raw)
            if let index = keys.firstIndex(of: key) { return index }
            return hasOther ? keys.count : nil
        }
    }

    /// Categories compare trimmed and case-insensitively.
    static func categoryKey(_ value: String) -> String {
        value.trimmingCharacters(in: .whitespaces).lowercased()
    }

    public struct Column: Sendable, Equatable {
        public let name: String
        let source: Source
        let transform: Transform
    }

    enum Source: Sendable, Equatable {
        /// All-time count; typeIndex nil when the type has never been seen in this store.
        case eventCount(typeIndex: Int?)
        case windowCount(window: Int, typeIndex: Int?)
        case daysSince(typeIndex: Int?)
        case leadAge
        case numericValue                       // leads.value
        case numericCustom(slot: Int)
        /// A one-hot column, set by its feature's ``CategoryEncoder``.
        case category
        case presenceLead(slot: Int)
        case presenceValue
        case presenceCustom(slot: Int)
        case freeEmail

        /// Missing numeric values are NaN in the raw matrix and imputed with the training mean.
        var isNumeric: Bool {
            switch self {
            case .numericValue, .numericCustom: true
            default: false
            }
        }
    }

    enum LabelSource: Sendable, Equatable {
        case status(LabelRule)
        case leadColumn(slot: Int)
        case custom(slot: Int)
    }

    /// Lead columns a spec may name, as SQL over `leads`. `value` is numeric; the rest are text.
    static let textColumns: [LeadField: String] = [
        .externalID: "external_id", .email: "email", .phone: "phone", .firstName: "first_name",
        .lastName: "last_name", .company: "company", .source: "source", .status: "status",
        .assignedTo: "assigned_to", .notes: "notes",
        // A lead has one per device (v11); models that test its presence read the first.
        .anonymousID: "(SELECT min(anonymous_id) FROM lead_anonymous_ids WHERE lead_id = leads.id)",
    ]

    /// Resolves `spec` against the store. With `training`, top-K categories are counted now and
    /// every named field and event type must exist; a model being applied instead tolerates an
    /// event type or custom field this store has not seen yet (its columns are then 0 or missing).
    public static func resolve(_ spec: FeatureSpec, in db: Database, training: Bool) throws -> FeatureLayout {
        try spec.validateShape()
        var builder = Builder(db: db, training: training, labelFromStatus: spec.labels.field == nil)
        try builder.loadDictionaries()
        var resolvedFeatures: [Feature] = []
        for feature in spec.features {
            resolvedFeatures.append(try builder.add(feature))
        }
        let label = try builder.resolveLabel(spec.labels)
        // A feature read from the label field would hand the model the answer.
        if let labelField = spec.labels.field {
            let labelKey = FieldName.knownField(labelField)?.rawValue ?? FieldName.normalize(labelField)
            for feature in spec.features {
                guard let field = feature.field else { continue }
                if (FieldName.knownField(field)?.rawValue ?? FieldName.normalize(field)) == labelKey {
                    builder.problems.append("\"\(field)\" is the label field; a feature on it would leak the outcome")
                }
            }
        }
        try builder.throwUnknown()
        guard !builder.columns.isEmpty else { throw SpecError("the spec yields no columns") }
        guard builder.columns.count <= FeatureSpec.maxColumns else {
            throw SpecError("the spec yields \(builder.columns.count) columns; at most \(FeatureSpec.maxColumns) are allowed")
        }
        var seen = Set<String>()
        for column in builder.columns where !seen.insert(column.name).inserted {
            throw SpecError("column \"\(column.name)\" is declared twice")
        }
        var resolved = spec
        resolved.features = resolvedFeatures
        return FeatureLayout(
            spec: resolved, columns: builder.columns, leadTextColumns: builder.leadTextColumns,
            customFieldIDs: builder.customFieldIDs, windows: builder.windows, label: label,
            emailSlot: builder.leadTextColumns.firstIndex(of: "email"), categories: builder.categories)
    }

    private struct Builder {
        let db: Database
        let training: Bool
        let labelFromStatus: Bool
        var columns: [Column] = []
        var categories: [CategoryEncoder] = []
        var leadTextColumns: [String] = []
        var customFieldIDs: [Int64] = []
        var windows: [Int] = []
        var unknownFields: [String] = []
        var unknownEvents: [String] = []
        var problems: [String] = []
        var typeIndexByName: [String: Int] = [:]
        var typeIndexByNormalizedName: [String: Int] = [:]
        var customFieldByKey: [String: Int64] = [:]

        init(db: Database, training: Bool, labelFromStatus: Bool) {
            self.db = db
            self.training = training
            self.labelFromStatus = labelFromStatus
        }

        mutating func loadDictionaries() throws {
            for row in try Row.fetchAll(db, sql: "SELECT id, name FROM event_types") {
                let id: Int = row[0]
                let name: String = row[1]
                typeIndexByName[name] = id - 1
                typeIndexByNormalizedName[FieldName.normalize(name)] = id - 1
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, key FROM custom_fields") {
                customFieldByKey[row[1]] = row[0]
            }
        }

        /// nil when unknown: recorded as an error when training.
        mutating func typeIndex(_ name: String) -> Int? {
            if let index = typeIndexByName[name] ?? typeIndexByNormalizedName[FieldName.normalize(name)] { return index }
            if training { unknownEvents.append(name) }
            return nil
        }

        enum FieldRef { case lead(slot: Int, field: LeadField), value, custom(slot: Int, id: Int64), missingCustom }

        mutating func field(_ name: String) -> FieldRef? {
            if let known = FieldName.knownField(name) {
                if known == .value { return .value }
                guard let column = FeatureLayout.textColumns[known] else {
                    problems.append("\"\(name)\" (\(known.rawValue)) cannot be a feature; use lead_age for creation time")
                    return nil
                }
                return .lead(slot: leadSlot(column), field: known)
            }
            if let id = customFieldByKey[FieldName.normalize(name)] {
                if let slot = customFieldIDs.firstIndex(of: id) { return .custom(slot: slot, id: id) }
                customFieldIDs.append(id)
                return .custom(slot: customFieldIDs.count - 1, id: id)
            }
            if training { unknownFields.append(name) }
            return .missingCustom
        }

        mutating func leadSlot(_ column: String) -> Int {
            if let slot = leadTextColumns.firstIndex(of: column) { return slot }
            leadTextColumns.append(column)
            return leadTextColumns.count - 1
        }

        mutating func add(_ feature: Feature) throws -> Feature {
            var resolved = feature
            let transform = feature.transform ?? .none
            switch feature.kind {
            case .eventCount:
                let event = feature.event!
                let index = typeIndex(event)
                if let days = feature.windowDays {
                    if !windows.contains(days) { windows.append(days) }
                    columns.append(Column(name: "count_\(days)d:\(event)", source: .windowCount(window: days, typeIndex: index), transform: transform))
                } else {
                    columns.append(Column(name: "count:\(event)", source: .eventCount(typeIndex: index), transform: transform))
                }
            case .daysSinceActivity:
                if let event = feature.event {
                    let index = typeIndex(event)
                    // A type never seen counts as "no activity of that type": days since creation.
                    columns.append(Column(name: "days_since:\(event)", source: .daysSince(typeIndex: index ?? -1), transform: transform))
                } else {
                    columns.append(Column(name: "days_since_activity", source: .daysSince(typeIndex: nil), transform: transform))
                }
            case .leadAge:
                columns.append(Column(name: "lead_age_days", source: .leadAge, transform: transform))
            case .emailDomain:
                _ = leadSlot("email")
                columns.append(Column(name: "free_email_domain", source: .freeEmail, transform: .none))
            case .numeric:
                let name = feature.field!
                switch field(name) {
                case .value: columns.append(Column(name: name, source: .numericValue, transform: transform))
                case .custom(let slot, _): columns.append(Column(name: name, source: .numericCustom(slot: slot), transform: transform))
                case .missingCustom: columns.append(Column(name: name, source: .numericCustom(slot: -1), transform: transform))
                case .lead(_, let known):
                    problems.append("\"\(name)\" (\(known.rawValue)) is text, not numeric; use it as categorical or presence")
                case nil: break
                }
            case .presence:
                let name = feature.field!
                let columnName = "has:\(name)"
                switch field(name) {
                case .value: columns.append(Column(name: columnName, source: .presenceValue, transform: .none))
                case .lead(let slot, _): columns.append(Column(name: columnName, source: .presenceLead(slot: slot), transform: .none))
                case .custom(let slot, _): columns.append(Column(name: columnName, source: .presenceCustom(slot: slot), transform: .none))
                case .missingCustom: columns.append(Column(name: columnName, source: .presenceCustom(slot: -1), transform: .none))
                case nil: break
                }
            case .categorical:
                let name = feature.field!
                let ref = field(name)
                if case .lead(_, .status)? = ref, labelFromStatus {
                    problems.append("\"\(name)\" is the training label; a feature on it would leak the outcome")
                    return resolved
                }
                var values = feature.values ?? []
                var other = feature.other ?? (feature.values == nil)
                if feature.values == nil, let k = feature.topK, training {
                    values = try topValues(ref, k: k)
                    other = true
                }
                resolved.values = values
                resolved.other = other
                let slot: Int, isCustom: Bool
                switch ref {
                case .lead(let leadSlot, _): (slot, isCustom) = (leadSlot, false)
                case .custom(let customSlot, _): (slot, isCustom) = (customSlot, true)
                case .missingCustom: (slot, isCustom) = (-1, true)
                case .value:
                    problems.append("\"\(name)\" is numeric; use it as a numeric feature")
                    return resolved
                case nil: return resolved
                }
                categories.append(CategoryEncoder(
                    slot: slot, isCustom: isCustom, keys: values.map(FeatureLayout.categoryKey),
                    hasOther: other, firstColumn: columns.count))
                for value in values {
                    columns.append(Column(name: "\(name)=\(value)", source: .category, transform: .none))
                }
                if other { columns.append(Column(name: "\(name)=(other)", source: .category, transform: .none)) }
            }
            return resolved
        }

        /// The k most frequent values in the store, most frequent first (ties by value).
        /// The `k` most frequent values of a field, as category keys. SQLite's lower() and trim()
        /// fold less than ``FeatureLayout/categoryKey(_:)`` (ASCII case only, spaces only): its
        /// groups are folded again here, so no two columns match the same key.
        func topValues(_ ref: FieldRef?, k: Int) throws -> [String] {
            var seen = Set<String>()
            return try mostFrequent(ref, k: k).map(FeatureLayout.categoryKey).filter { !$0.isEmpty && seen.insert($0).inserted }
        }

        private func mostFrequent(_ ref: FieldRef?, k: Int) throws -> [String] {
            switch ref {
            case .lead(_, let field):
                let column = FeatureLayout.textColumns[field]!
                return try String.fetchAll(db, sql: """
                    SELECT lower(trim(\(column))) AS v FROM leads WHERE v IS NOT NULL AND v <> ''
                    GROUP BY v ORDER BY count(*) DESC, v LIMIT ?
                    """, arguments: [k])
            case .custom(_, let id):
                return try String.fetchAll(db, sql: """
                    SELECT lower(trim(value)) AS v FROM lead_custom_values WHERE field_id = ? AND v <> ''
                    GROUP BY v ORDER BY count(*) DESC, v LIMIT ?
                    """, arguments: [id, k])
            default:
                return []
            }
        }

        mutating func resolveLabel(_ rule: LabelRule) throws -> LabelSource {
            guard let name = rule.field else { return .status(rule) }
            switch field(name) {
            case .lead(let slot, _): return .leadColumn(slot: slot)
            case .custom(let slot, _): return .custom(slot: slot)
            case .missingCustom: return .custom(slot: -1)
            case .value: problems.append("label field \"\(name)\" must hold 1/0, true/false or yes/no"); return .custom(slot: -1)
            case nil: return .custom(slot: -1)
            }
        }

        func throwUnknown() throws {
            var parts = problems
            if !unknownFields.isEmpty {
                parts.append("unknown field\(unknownFields.count > 1 ? "s" : ""): \(unknownFields.map { "\"\($0)\"" }.joined(separator: ", "))")
            }
            if !unknownEvents.isEmpty {
                parts.append("unknown event type\(unknownEvents.count > 1 ? "s" : ""): \(unknownEvents.map { "\"\($0)\"" }.joined(separator: ", "))")
            }
            if !parts.isEmpty { throw SpecError(parts.joined(separator: "; ")) }
        }
    }
}

/// Free-mail providers: a lead writing from one of these is a person, not (yet) a company.
enum FreeMail {
    static let domains: Set<String> = [
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.co.in", "ymail.com",
        "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com", "msn.com", "icloud.com", "me.com",
        "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
        "yandex.com", "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com", "zoho.com", "fastmail.com",
        "tutanota.com", "hey.com", "libero.it", "orange.fr", "free.fr", "t-online.de", "rediffmail.com",
    ]

    /// An email as the store keeps it (trimmed and lowercased at ingestion), as UTF-8 bytes.
    static func isFree(storedEmail email: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let at = email.lastIndex(of: UInt8(ascii: "@")) else { return false }
        let domain = UnsafeBufferPointer(rebasing: email[(at + 1)...])
        return domains.contains(String(decoding: domain, as: UTF8.self))
    }
}
