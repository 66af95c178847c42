import Foundation

/// The lead fields LeadLens knows by name, and the one normalization rule that maps a CSV header,
/// a Segment trait or a JSON key onto them. Ingestion, scoring specs and the API all match field
/// names through ``FieldName``, so "First Name", "first_name" and "firstName" mean the same thing
/// everywhere.
public enum LeadField: String, CaseIterable, Sendable {
    case externalID = "external_id"
    case email
    case phone
    case firstName = "first_name"
    case lastName = "last_name"
    case company
    case source
    case status
    case assignedTo = "assigned_to"
    case notes
    case value
    case createdAt = "created_at"
    case tags
    /// Not a column: a full name that is split into first and last name when those are absent.
    case fullName = "name"
    case anonymousID = "anonymous_id"
}

public enum FieldName {
    /// Case-insensitive, with spaces, underscores, dashes and dots ignored: "First Name",
    /// "first_name", "firstName" and "FIRST-NAME" all normalize to "firstname".
    public static func normalize(_ raw: some StringProtocol) -> String {
        // Keys are almost always ASCII: lowercase their bytes without Unicode property lookups.
        let ascii = raw.utf8.withContiguousStorageIfAvailable { bytes -> String? in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            return String(unsafeUninitializedCapacity: bytes.count) { out in
                var count = 0
                for byte in bytes {
                    switch byte {
                    case UInt8(ascii: " "), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "\t"): continue
                    case UInt8(ascii: "A")...UInt8(ascii: "Z"): out[count] = byte + 32
                    default: out[count] = byte
                    }
                    count += 1
                }
                return count
            }
        }
        if let ascii = ascii ?? nil { return ascii }
        var out = ""
        out.reserveCapacity(raw.utf8.count)
        for scalar in raw.unicodeScalars {
            switch scalar {
            case " ", "_", "-", ".", "\t": continue
            default: out.unicodeScalars.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// The known field a raw key names, or nil when it is a custom field.
    public static func knownField(_ raw: some StringProtocol) -> LeadField? {
        let key = normalize(raw)
        if let field = aliases[key] { return field }
        // CRM exports prefix their columns: lead_email, lead_firstname, lead_company_name.
        if key.hasPrefix("lead"), key.count > 4, let field = aliases[String(key.dropFirst(4))] {
            return field
        }
        return nil
    }

    /// Normalized key → field. Each field answers to its own name and the aliases CRM exports use.
    static let aliases: [String: LeadField] = {
        var table: [String: LeadField] = [:]
        for field in LeadField.allCases { table[normalize(field.rawValue)] = field }
        let extra: [(String, LeadField)] = [
            ("id", .externalID), ("leadid", .externalID), ("userid", .externalID), ("externalid", .externalID),
            ("anonymousid", .anonymousID),
            ("e-mail", .email), ("emailaddress", .email), ("mail", .email),
            ("mobile", .phone), ("phonenumber", .phone), ("mobilephone", .phone), ("mobilenumber", .phone),
            ("telephone", .phone), ("tel", .phone),
            ("firstname", .firstName), ("givenname", .firstName), ("fname", .firstName),
            ("lastname", .lastName), ("surname", .lastName), ("familyname", .lastName), ("lname", .lastName),
            ("fullname", .fullName), ("name", .fullName), ("contactname", .fullName),
            ("companyname", .company), ("organization", .company), ("organisation", .company),
            ("account", .company), ("accountname", .company),
            ("leadsource", .source), ("utmsource", .source),
            ("leadstatus", .status), ("stage", .status),
            ("assignee", .assignedTo), ("owner", .assignedTo), ("assigned", .assignedTo),
            ("note", .notes), ("comments", .notes), ("comment", .notes),
            ("amount", .value), ("dealvalue", .value),
            ("created", .createdAt), ("createddate", .createdAt), ("createdon", .createdAt),
            ("tag", .tags), ("labels", .tags),
        ]
        for (alias, field) in extra { table[normalize(alias)] = field }
        return table
    }()
}

/// Who a lead is assigned to.
public enum Assignee {
    /// What the list filter `assigned_to=unassigned` means: no owner. No user takes the name,
    /// or no filter could find their leads; a CRM export's "Unassigned" owner is no owner.
    public static func meansNone(_ name: String) -> Bool {
        name.trimmingCharacters(in: .whitespaces).caseInsensitiveCompare("unassigned") == .orderedSame
    }

    public static let reservedReason = "\"unassigned\" means no owner (the list filter assigned_to=unassigned); send null to unassign"
}

/// Lead statuses with a meaning of their own to the scoring engine and the API.
public enum LeadStatus {
    public static let defaultStatus = "new"
    public static let known: [String] = [
        "new", "contacted", "qualified", "unqualified", "proposal", "negotiation",
        "converted", "lost", "closed", "disqualified",
    ]
}

/// Numbers as they are written in lead data, one rule for ingest and the API.
public enum NumberText {
    /// A decimal number: digits, sign, point, exponent, and commas between digit groups
    /// (1,234,567 or, as Indian amounts are written, 12,34,567), the last group three digits.
    /// A comma that could be a decimal one ("12,5", "1.200,50") makes it no number: read as
    /// 125 or 1.2005 it would feed a wrong value to the model. Not hex ("0x10"), "nan" or
    /// "inf", which `Double(_:)` accepts.
    public static func parse(_ text: String) -> Double? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E || $0 == 0x2C || $0 == 0x65 || $0 == 0x45 }) else {
            return nil
        }
        var plain = text
        if utf8.contains(0x2C) {
            // The integer part only, after the sign: 1,234,567.89 → 1, 234, 567.
            let integer = text.prefix { $0 != "." && $0 != "e" && $0 != "E" }.drop { $0 == "+" || $0 == "-" }
            let groups = integer.split(separator: ",", omittingEmptySubsequences: false)
            guard let first = groups.first, let last = groups.last, groups.count > 1,
                  (1...3).contains(first.count), last.count == 3,
                  groups.dropFirst().dropLast().allSatisfy({ $0.count == 2 || $0.count == 3 }),
                  !text.drop(while: { $0 != "." && $0 != "e" && $0 != "E" }).contains(",") else { return nil }
            plain = text.replacingOccurrences(of: ",", with: "")
        }
        guard let value = Double(plain), value.isFinite else { return nil }
        return value
    }

    /// An amount as people write one: "1200", "1,200.50", "$1 200", "€900", "-3e2". Currency signs
    /// and spaces (no-break ones too) are dropped, then it reads as ``parse(_:)`` does. One rule
    /// for the value field and for custom fields a model reads as numbers.
    public static func parseAmount(_ text: String) -> Double? {
        if let plain = parse(text) { return plain }
        guard text.unicodeScalars.contains(where: amountNoise.contains) else { return nil }
        return parse(String(String.UnicodeScalarView(text.unicodeScalars.filter { !amountNoise.contains($0) })))
    }

    private static let amountNoise = Set("$€£¥₹₩₽₺₫₱ \u{00A0}".unicodeScalars)
}

/// The spreadsheet formula guard (CSV injection, as OWASP describes it): one rule for the CSVs
/// LeadLens writes and for the CSV it reads back, so an export ingests as the values it holds.
public enum FormulaGuard {
    /// What a spreadsheet starts a formula with.
    static let formulaStarts = Array("=+-@\t\r".utf8)

    /// Whether text needs a leading apostrophe: one starting with =, +, -, @, tab or CR would be
    /// read as a formula. A negative number ("-12.5") is left as it is, since a spreadsheet reads
    /// it as that number; anything starting with "+" is guarded, phone numbers included (Excel
    /// computes "+1-555-1234" as -5788 and shows "+14155550123" as 1.4E+10). Text whose
    /// apostrophes come before one of those gets one more, so ``removed(from:)`` is exact.
    public static func isNeeded(_ bytes: some Collection<UInt8>) -> Bool {
        guard let first = bytes.first else { return false }
        switch first {
        case UInt8(ascii: "-"): return !isNegativeNumber(bytes.dropFirst())
        case UInt8(ascii: "'"): return startsFormulaAfterApostrophes(bytes)
        default: return formulaStarts.contains(first)
        }
    }

    /// `text` with the apostrophe a guarded export put before it removed: apostrophes, then a
    /// formula character, lose the first one.
    public static func removed(from text: String) -> String {
        text.utf8.first == UInt8(ascii: "'") && startsFormulaAfterApostrophes(text.utf8) ? String(text.dropFirst()) : text
    }

    private static func startsFormulaAfterApostrophes(_ bytes: some Collection<UInt8>) -> Bool {
        guard let next = bytes.first(where: { $0 != UInt8(ascii: "'") }) else { return false }
        return formulaStarts.contains(next)
    }

    /// Digits with at most one decimal point among them: what follows the sign of a number.
    private static func isNegativeNumber(_ digits: some Collection<UInt8>) -> Bool {
        var count = 0, points = 0
        for byte in digits {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): count += 1
            case UInt8(ascii: "."): points += 1
            default: return false
            }
        }
        return count > 0 && points <= 1
    }
}

/// What may be stored as a lead's email and match leads by it: one `@` between a non-empty local
/// part and a dotted domain, no spaces. A form's "n/a", "none" or "-" is not an address: taken as
/// one, every lead sent with it matched the first, and each form overwrote that lead's name and
/// phone with its own.
public enum EmailAddress {
    public static func isPlausible(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty,
              !text.contains(where: { $0.isWhitespace || forbidden.contains($0) }) else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.count >= 2 && labels.allSatisfy { !$0.isEmpty }
    }

    /// Characters only a quoted local part may hold, which no form or CRM sends: their presence
    /// means decoration (`<a@x.io>`, `mailto:a@x.io`) or a list.
    private static let forbidden = Set("<>()[]\\,;:\"")

    /// The address a value holds, trimmed, undecorated, lowercased and in Unicode's composed
    /// form (NFC); nil when it is not one. Ingest matches leads by it, the API stores it, and
    /// migration v12 cleaned stored ones by it. SQLite compares bytes, so without NFC "café@…"
    /// typed on one keyboard and pasted from another (e + combining accent) were two leads.
    public static func normalized(_ raw: String) -> String? {
        var address = undecorated(raw.trimmingCharacters(in: .whitespacesAndNewlines))
            .trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if !address.utf8.allSatisfy({ $0 < 0x80 }) { address = address.precomposedStringWithCanonicalMapping }
        return isPlausible(address) ? address : nil
    }

    /// The address inside the decorations exports add: `mailto:a@x.io?subject=…`, `<a@x.io>`,
    /// `Ann Lee <a@x.io>`. Anything else comes back as it was: a list (`Ann <a@x.io>, Bob <b@x.io>`)
    /// is no one address.
    public static func undecorated(_ text: String) -> String {
        var text = Substring(text)
        // A quoted display name may hold commas: "Lee, Ann" <a@x.io>.
        var name = Substring("")
        if text.first == "\"", let close = text.dropFirst().firstIndex(of: "\"") { name = text[text.index(after: close)...] } else { name = text }
        if let open = name.firstIndex(of: "<"), name.hasSuffix(">"),
           !name[..<open].contains(where: { "<>,;\"".contains($0) }) {
            text = name[name.index(after: open)..<name.index(before: name.endIndex)]
        }
        if text.lowercased().hasPrefix("mailto:") {
            text = text.dropFirst("mailto:".count)
            if let query = text.firstIndex(of: "?") { text = text[..<query] }
        }
        return String(text)
    }
}

/// JSON as Foundation's JSONSerialization reads it.
public enum JSONNumbers {
    /// Whether a parsed value is `true` or `false`. Not `value is Bool`: on Linux the numbers 0
    /// and 1 pass that test too, so `"value": 1` was refused as a boolean.
    public static func isBool(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }
}
