import Foundation
import LeadStore

/// What a model is made of: the features a lead is turned into, and how leads are labeled for
/// training. Read from a JSON file (models/features.json by default) or built on the fly from
/// `--numeric` and `--categorical`. A trained model stores its spec with every data-dependent
/// choice resolved (the top-K categories it saw), so scoring rebuilds exactly the same columns.
public struct FeatureSpec: Codable, Sendable, Equatable {
    /// The model name: model files are `<name>-v<N>.json`.
    public var name: String
    public var labels: LabelRule
    public var features: [Feature]

    public init(name: String = "model", labels: LabelRule = LabelRule(), features: [Feature]) {
        self.name = name
        self.labels = labels
        self.features = features
    }

    enum CodingKeys: String, CodingKey { case name, labels, features }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, known: ["name", "labels", "features"])
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? "model"
        labels = try container.decodeIfPresent(LabelRule.self, forKey: .labels) ?? LabelRule()
        features = try container.decode([Feature].self, forKey: .features)
    }

    /// Reads a spec file. Errors name the file and, for a malformed feature, its position.
    public static func load(from url: URL) throws -> FeatureSpec {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw SpecError("cannot read feature spec \(url.path)")
        }
        do {
            let spec = try JSONDecoder().decode(FeatureSpec.self, from: data)
            try spec.validateShape()
            return spec
        } catch let error as SpecError {
            throw SpecError("\(url.lastPathComponent): \(error.message)")
        } catch let error as DecodingError {
            throw SpecError("\(url.lastPathComponent): \(SpecError.describe(error))")
        } catch {
            throw SpecError("\(url.lastPathComponent): not valid JSON")
        }
    }

    /// A spec from the `--numeric` and `--categorical` shortcuts: numeric fields as they are,
    /// categorical fields one-hot over their top 10 values plus "other".
    public static func shortcut(name: String = "model", numeric: [String], categorical: [String]) -> FeatureSpec {
        var features = numeric.map { Feature.numeric(field: $0) }
        features += categorical.map { Feature.categorical(field: $0, topK: 10) }
        return FeatureSpec(name: name, features: features)
    }

    /// Model names become file names and are stored on every lead: keep them plain.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }

    /// Most columns one spec may expand into; each costs a Hessian row and a matrix column.
    public static let maxColumns = 2_000
    /// Largest `top_k` a categorical feature may ask for.
    public static let maxTopK = 1_000

    /// Checks what can be checked without a store: each feature has the keys its kind needs.
    public func validateShape() throws {
        guard !features.isEmpty else { throw SpecError("the spec declares no features") }
        guard Self.isValidName(name) else {
            throw SpecError("name must be 1–64 ASCII letters, digits, '-' or '_', got \"\(name)\"")
        }
        for (index, feature) in features.enumerated() {
            try feature.validateShape(position: index + 1)
        }
        let both = labels.wonSet.intersection(labels.lostSet)
        if !both.isEmpty {
            throw SpecError("status \(both.sorted().map { "\"\($0)\"" }.joined(separator: ", ")) is both won and lost")
        }
        if labels.field == nil && labels.won.isEmpty { throw SpecError("the won set is empty: nothing would be positive") }
    }
}

/// How a lead's outcome is read for training. A lead whose status is in neither set (or whose
/// label field is blank) is unlabeled: it is scored, never trained on.
public struct LabelRule: Codable, Sendable, Equatable {
    public var won: [String]
    public var lost: [String]
    /// Take the label from this field instead of the status (1/0, true/false, yes/no).
    public var field: String?

    public static let defaultWon = ["converted"]
    public static let defaultLost = ["lost", "closed", "disqualified"]

    public init(won: [String] = LabelRule.defaultWon, lost: [String] = LabelRule.defaultLost, field: String? = nil) {
        self.won = won
        self.lost = lost
        self.field = field
    }

    enum CodingKeys: String, CodingKey { case won, lost, field }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, known: ["won", "lost", "field"])
        let container = try decoder.container(keyedBy: CodingKeys.self)
        won = try container.decodeIfPresent([String].self, forKey: .won) ?? Self.defaultWon
        lost = try container.decodeIfPresent([String].self, forKey: .lost) ?? Self.defaultLost
        field = try container.decodeIfPresent(String.self, forKey: .field)
    }

    /// 1, 0, or nil (unlabeled) for a status.
    public func label(status: String?) -> Double? {
        guard let status = status?.lowercased() else { return nil }
        if wonSet.contains(status) { return 1 }
        if lostSet.contains(status) { return 0 }
        return nil
    }

    /// 1, 0, or nil for a label field's text: 1/0, true/false, yes/no in any case.
    public static func label(fieldValue: String?) -> Double? {
        switch fieldValue?.trimmingCharacters(in: .whitespaces).lowercased() {
        case "1", "true", "yes", "y", "t": 1
        case "0", "false", "no", "n", "f": 0
        default: nil
        }
    }

    var wonSet: Set<String> { Set(won.map { $0.lowercased() }) }
    var lostSet: Set<String> { Set(lost.map { $0.lowercased() }) }
}

/// One declared feature. `kind` says which of the other keys apply.
public struct Feature: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Events of one type, all time or within `window_days` before the scoring time.
        case eventCount = "event_count"
        /// Days since the last event, of any type or of `event`. A lead with none counts from
        /// its creation: it has been inactive since then.
        case daysSinceActivity = "days_since_activity"
        /// A numeric lead field (value) or custom field.
        case numeric
        /// One-hot over listed `values`, or the `top_k` values seen at training plus "other".
        case categorical
        /// 1 when the field has a non-blank value.
        case presence
        /// 1 when the email domain is a free-mail provider, 0 for a company domain.
        case emailDomain = "email_domain"
        /// Days from creation to the scoring time.
        case leadAge = "lead_age"
    }

    public var kind: Kind
    public var event: String?
    public var windowDays: Int?
    public var field: String?
    public var transform: Transform?
    public var values: [String]?
    public var topK: Int?
    /// Categorical only: add an "other" column for values outside `values`.
    public var other: Bool?

    enum CodingKeys: String, CodingKey {
        case kind, event, field, transform, values, other
        case windowDays = "window_days"
        case topK = "top_k"
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, known: ["kind", "event", "window_days", "field", "transform", "values", "top_k", "other"])
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(Kind.self, forKey: .kind)
        event = try container.decodeIfPresent(String.self, forKey: .event)
        windowDays = try container.decodeIfPresent(Int.self, forKey: .windowDays)
        field = try container.decodeIfPresent(String.self, forKey: .field)
        transform = try container.decodeIfPresent(Transform.self, forKey: .transform)
        values = try container.decodeIfPresent([String].self, forKey: .values)
        topK = try container.decodeIfPresent(Int.self, forKey: .topK)
        other = try container.decodeIfPresent(Bool.self, forKey: .other)
    }

    public init(kind: Kind, event: String? = nil, windowDays: Int? = nil, field: String? = nil,
                transform: Transform? = nil, values: [String]? = nil, topK: Int? = nil, other: Bool? = nil) {
        self.kind = kind
        self.event = event
        self.windowDays = windowDays
        self.field = field
        self.transform = transform
        self.values = values
        self.topK = topK
        self.other = other
    }

    public static func eventCount(_ event: String, windowDays: Int? = nil, transform: Transform = .log1p) -> Feature {
        Feature(kind: .eventCount, event: event, windowDays: windowDays, transform: transform)
    }
    public static func numeric(field: String, transform: Transform = .none) -> Feature {
        Feature(kind: .numeric, field: field, transform: transform)
    }
    public static func categorical(field: String, values: [String]? = nil, topK: Int? = nil, other: Bool? = nil) -> Feature {
        Feature(kind: .categorical, field: field, values: values, topK: topK, other: other)
    }
    public static func presence(field: String) -> Feature { Feature(kind: .presence, field: field) }

    func validateShape(position: Int) throws {
        func fail(_ message: String) -> SpecError { SpecError("feature \(position) (\(kind.rawValue)): \(message)") }
        // A key the kind does not use is a mistake (a misplaced window_days would silently count
        // all time): refuse it rather than ignore it.
        let used: [(String, Bool, Set<Kind>)] = [
            ("event", event != nil, [.eventCount, .daysSinceActivity]),
            ("window_days", windowDays != nil, [.eventCount]),
            ("field", field != nil, [.numeric, .categorical, .presence]),
            ("transform", transform != nil, [.eventCount, .daysSinceActivity, .numeric, .leadAge]),
            ("values", values != nil, [.categorical]),
            ("top_k", topK != nil, [.categorical]),
            ("other", other != nil, [.categorical]),
        ]
        for (key, present, kinds) in used where present && !kinds.contains(kind) {
            throw fail("\"\(key)\" does not apply to \(kind.rawValue)")
        }
        switch kind {
        case .eventCount:
            guard let event, !event.isEmpty else { throw fail("needs \"event\"") }
            if let windowDays, !(1...36_500).contains(windowDays) { throw fail("window_days must be between 1 and 36500") }
        case .numeric, .presence:
            guard let field, !field.isEmpty else { throw fail("needs \"field\"") }
        case .categorical:
            guard let field, !field.isEmpty else { throw fail("needs \"field\"") }
            if values == nil && topK == nil { throw fail("needs \"values\" or \"top_k\"") }
            // A trained top_k feature whose field held no value yet lists none: its one column
            // is "other" (values != nil with top_k implies other, see below).
            if let values, (values.isEmpty && topK == nil) || values.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                throw fail("\"values\" must list non-blank values")
            }
            if let topK, !(1...FeatureSpec.maxTopK).contains(topK) { throw fail("top_k must be between 1 and \(FeatureSpec.maxTopK)") }
            // A trained model lists the top-K values it saw beside top_k; a hand-written spec gives one.
            if values != nil && topK != nil && other == nil { throw fail("give \"values\" or \"top_k\", not both") }
        case .daysSinceActivity, .emailDomain, .leadAge:
            break
        }
        if case .clip(let low, let high)? = transform, !(low <= high) {
            throw fail("clip needs low ≤ high, got [\(low), \(high)]")
        }
    }
}

/// A numeric transform applied before standardization.
public enum Transform: Codable, Sendable, Equatable {
    case none
    case log1p
    case clip(Double, Double)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let name = try? container.decode(String.self) {
            switch name {
            case "none": self = .none
            case "log1p": self = .log1p
            default:
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "unknown transform \"\(name)\" (none, log1p or {\"clip\": [a, b]})")
            }
            return
        }
        let object = try container.decode([String: [Double]].self)
        guard let bounds = object["clip"], bounds.count == 2, object.count == 1 else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a transform object is {\"clip\": [low, high]}")
        }
        self = .clip(bounds[0], bounds[1])
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .none: try container.encode("none")
        case .log1p: try container.encode("log1p")
        case .clip(let low, let high): try container.encode(["clip": [low, high]])
        }
    }

    @inline(__always)
    func apply(_ x: Double) -> Double {
        switch self {
        case .none: x
        // Negative counts cannot occur; a negative field value would give NaN, so clamp at 0.
        case .log1p: Foundation.log1p(Swift.max(x, 0))
        case .clip(let low, let high): Swift.min(Swift.max(x, low), high)
        }
    }
}

/// A spec problem, reported to the user as is.
public struct SpecError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0 + 1)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context.codingPath)
            return at.isEmpty ? "missing \"\(key.stringValue)\"" : "missing \"\(key.stringValue)\" at \(at)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let at = path(context.codingPath)
            return at.isEmpty ? context.debugDescription : "\(at): \(context.debugDescription)"
        @unknown default: return "invalid spec"
        }
    }
}

/// Throws when a JSON object has a key outside `known`, naming it: a misspelled key would
/// otherwise be ignored and change the model without a word.
func rejectUnknownKeys(_ decoder: any Decoder, known: Set<String>) throws {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    let container = try decoder.container(keyedBy: AnyKey.self)
    if let unknown = container.allKeys.map(\.stringValue).filter({ !known.contains($0) }).sorted().first {
        throw DecodingError.dataCorrupted(.init(
            codingPath: decoder.codingPath,
            debugDescription: "unknown key \"\(unknown)\" (expected one of: \(known.sorted().joined(separator: ", ")))"))
    }
}
