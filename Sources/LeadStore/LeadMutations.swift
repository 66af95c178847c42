import Foundation
import GRDB

/// Changes to one lead that do not come from ingestion: edits, status and assignment, tags,
/// deletion and merging. Each runs inside the caller's write transaction and records what a
/// person would want in the lead's timeline.
public enum LeadMutations {
    public enum Failure: Error, Equatable {
        /// Another lead already holds this external id, email or phone.
        case conflict(field: String)
        case notFound
        /// The change would leave the lead with no external id, email or phone: nothing could
        /// match it again, and no lead can be created that way. `fields`: the ones it clears.
        case noIdentity(fields: [String])
    }

    /// Column values to set; `nil` clears a column.
    public struct Changes: Sendable, Equatable {
        public var columns: [LeadField: String?] = [:]
        public var value: Double??
        /// Replaces the lead's tags.
        public var tags: [String]?
        /// Label → value; `nil` removes the field.
        public var customFields: [String: String?] = [:]

        public init() {}

        public var isEmpty: Bool { columns.isEmpty && value == nil && tags == nil && customFields.isEmpty }
    }

    static let columnNames: [LeadField: String] = [
        .externalID: "external_id", .email: "email", .phone: "phone", .firstName: "first_name",
        .lastName: "last_name", .company: "company", .source: "source", .status: "status",
        .assignedTo: "assigned_to", .notes: "notes",
    ]

    /// Applies `changes`. Throws `.notFound` or `.conflict`; returns whether anything changed.
    @discardableResult
    public static func update(_ id: Int64, _ changes: Changes, now: Int64 = LeadStore.nowMillis(), in db: Database) throws -> Bool {
        guard let current = try LeadRecord.fetch(id: id, in: db) else { throw Failure.notFound }
        // Only a change that clears one can take the last identity away; a lead ingest made
        // from an anonymous id alone keeps that id and stays editable.
        let identityFields = [LeadField.externalID, .email, .phone]
        let cleared = identityFields.filter { field in
            guard let change = changes.columns[field], current.identityValue(field) != nil else { return false }
            return change?.trimmingCharacters(in: .whitespaces).isEmpty ?? true
        }
        if !cleared.isEmpty {
            let remaining = identityFields.contains { field in
                guard let after = changes.columns[field].map({ $0?.trimmingCharacters(in: .whitespaces) }) ?? current.identityValue(field),
                      !after.isEmpty else { return false }
                return field != .phone || identityPhoneDigits(after) != nil
            }
            let anonymous = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM lead_anonymous_ids WHERE lead_id = ?)",
                                              arguments: [id]) ?? false
            if !remaining && !anonymous { throw Failure.noIdentity(fields: cleared.map(\.rawValue)) }
        }
        var assignments: [String] = []
        var arguments = StatementArguments()
        for (field, newValue) in changes.columns.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            guard let column = columnNames[field] else { continue }
            var value = newValue
            if field == .email { value = newValue.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } }
            if field == .status { value = newValue.map { $0.lowercased() } }
            if field == .source, let source = newValue, !source.isEmpty { value = try SourceSpellings.canonical(source, in: db) }
            // An unchanged value is not checked: it is the lead's already.
            if let value, [.externalID, .email, .phone].contains(field), value != current.identityValue(field) {
                try ensureUnique(field, value, except: id, in: db)
            }
            assignments.append("\(column) = ?")
            arguments += [value]
            if field == .phone {
                assignments.append("phone_digits = ?")
                arguments += [value.flatMap(identityPhoneDigits)]
            }
        }
        if let value = changes.value {
            assignments.append("value = ?")
            arguments += [value]
        }
        if let status = changes.columns[.status], let status, status.lowercased() != current.status {
            try recordTimeline(id, kind: "status_changed", old: current.status, new: status.lowercased(), at: now, in: db)
        }
        if let assigned = changes.columns[.assignedTo], assigned != current.assignedTo {
            try recordTimeline(id, kind: "assigned", old: current.assignedTo, new: assigned, at: now, in: db)
        }
        if let tags = changes.tags {
            try db.execute(sql: "DELETE FROM lead_tags WHERE lead_id = ?", arguments: [id])
            for tag in tags { try addTagRow(id, tag, in: db) }
        }
        for (label, value) in changes.customFields {
            try setCustomField(id, label: label, value: value, in: db)
        }
        guard !changes.isEmpty else { return false }
        assignments.append("updated_at = ?")
        arguments += [now, id]
        try db.execute(sql: "UPDATE leads SET \(assignments.joined(separator: ", ")) WHERE id = ?", arguments: arguments)
        return true
    }

    /// Creates a lead from `changes` (strict create: the caller checked for conflicts).
    public static func insert(_ changes: Changes, now: Int64 = LeadStore.nowMillis(), in db: Database) throws -> Int64 {
        var status = LeadStatus.defaultStatus
        if case let value?? = changes.columns[.status] { status = value.lowercased() }
        try db.execute(sql: "INSERT INTO leads (status, created_at, updated_at) VALUES (?, ?, ?)", arguments: [status, now, now])
        let id = db.lastInsertedRowID
        var rest = changes
        rest.columns[.status] = nil
        if !rest.isEmpty { try update(id, rest, now: now, in: db) }
        return id
    }

    /// Throws `.conflict` when a lead already has this external id, email or phone.
    public static func ensureAbsent(_ field: LeadField, _ value: String, in db: Database) throws {
        try ensureUnique(field, field == .email ? value.trimmingCharacters(in: .whitespaces).lowercased() : value, except: 0, in: db)
    }

    public static func delete(_ id: Int64, in db: Database) throws -> Bool {
        try db.execute(sql: "DELETE FROM leads WHERE id = ?", arguments: [id])
        return db.changesCount > 0
    }

    public static func addTag(_ id: Int64, _ tag: String, now: Int64 = LeadStore.nowMillis(), in db: Database) throws {
        try addTagRow(id, tag, in: db)
        try db.execute(sql: "UPDATE leads SET updated_at = ? WHERE id = ?", arguments: [now, id])
    }

    /// Returns whether the lead had the tag (tags compare case-insensitively).
    public static func removeTag(_ id: Int64, _ tag: String, now: Int64 = LeadStore.nowMillis(), in db: Database) throws -> Bool {
        try db.execute(sql: "DELETE FROM lead_tags WHERE lead_id = ? AND tag = ?", arguments: [id, tag])
        let removed = db.changesCount > 0
        if removed { try db.execute(sql: "UPDATE leads SET updated_at = ? WHERE id = ?", arguments: [now, id]) }
        return removed
    }

    static func addTagRow(_ id: Int64, _ tag: String, in db: Database) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO lead_tags (lead_id, tag) VALUES (?, ?)", arguments: [id, tag])
    }

    static func setCustomField(_ id: Int64, label: String, value: String?, in db: Database) throws {
        let key = FieldName.normalize(label)
        guard let value else {
            try db.execute(sql: """
                DELETE FROM lead_custom_values WHERE lead_id = ? AND field_id = (SELECT id FROM custom_fields WHERE key = ?)
                """, arguments: [id, key])
            return
        }
        try db.execute(sql: "INSERT OR IGNORE INTO custom_fields (key, label) VALUES (?, ?)", arguments: [key, label])
        let number = NumberText.parseAmount(value)
        try db.execute(sql: """
            INSERT OR REPLACE INTO lead_custom_values (lead_id, field_id, value, number)
            VALUES (?, (SELECT id FROM custom_fields WHERE key = ?), ?, ?)
            """, arguments: [id, key, value, number])
    }

    /// A lead holds one email and one phone. The other ones it was given (by a merge, a newer
    /// identify replacing one, or an older one that arrived late) are kept, sorted, in the
    /// custom fields "Other email" and "Other phone", so no address is dropped and the
    /// duplicates endpoint can match on them.
    public enum OtherContact: CaseIterable, Sendable {
        case email, phone

        var label: String { self == .email ? "Other email" : "Other phone" }

        /// Phones are one number when their digits are (555-0100 and (555) 0100); text without
        /// digits (n/a, ask reception) is compared as written.
        func same(_ a: String, _ b: String) -> Bool {
            guard self == .phone else { return a == b }
            let (x, y) = (phoneDigits(a), phoneDigits(b))
            return x.isEmpty || y.isEmpty ? a == b : x == y
        }
    }

    static let otherEmailLabel = OtherContact.email.label

    /// Adds `values` to the lead's other emails or phones, leaving out `current` (the one the
    /// lead holds). Returns whether the stored list changed.
    @discardableResult
    public static func keepOthers(_ kind: OtherContact, _ values: [String], current: String?, lead: Int64, in db: Database) throws -> Bool {
        let held = try customValue(lead, label: kind.label, in: db)
        var others: [String] = []
        for value in (held?.components(separatedBy: "; ") ?? []) + values where !value.isEmpty {
            if !others.contains(where: { kind.same($0, value) }) { others.append(value) }
        }
        if let current { others.removeAll { kind.same($0, current) } }
        let list = others.isEmpty ? nil : others.sorted().joined(separator: "; ")
        guard list != held else { return false }
        try setCustomField(lead, label: kind.label, value: list, in: db)
        return true
    }

    static func customValue(_ id: Int64, label: String, in db: Database) throws -> String? {
        try String.fetchOne(db, sql: """
            SELECT value FROM lead_custom_values WHERE lead_id = ? AND field_id = (SELECT id FROM custom_fields WHERE key = ?)
            """, arguments: [id, FieldName.normalize(label)])
    }

    static func ensureUnique(_ field: LeadField, _ value: String, except id: Int64, in db: Database) throws {
        let sql = switch field {
        case .externalID: "SELECT 1 FROM leads WHERE external_id = ? AND id != ? LIMIT 1"
        case .email: "SELECT 1 FROM leads WHERE email = ? AND id != ? LIMIT 1"
        default: "SELECT 1 FROM leads WHERE phone_digits = ? AND id != ? LIMIT 1"
        }
        guard let key = field == .phone ? identityPhoneDigits(value) : value else { return }
        if try Bool.fetchOne(db, sql: sql, arguments: [key, id]) != nil {
            throw Failure.conflict(field: field.rawValue)
        }
        // One a merge kept for another lead finds that lead: a second holder would take its data.
        let kind: IdentityColumn = field == .externalID ? .externalID : field == .email ? .email : .phoneDigits
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM lead_merged_identities WHERE kind = ? AND value = ? AND lead_id != ? LIMIT 1",
                             arguments: [kind.rawValue, key, id]) != nil {
            throw Failure.conflict(field: field.rawValue)
        }
    }

    public static func phoneDigits(_ raw: String) -> String {
        String(raw.unicodeScalars.filter { $0.properties.numericType == .decimal && $0.isASCII }.map(Character.init))
    }

    /// The digits a phone number matches leads by, or nil when they cannot tell people apart:
    /// fewer than five, or one digit repeated after a country code of up to three digits
    /// (000-000-0000, +1 000 000 0000, +44 0000 000000: the placeholders forms demand).
    public static func identityPhoneDigits(_ raw: String) -> String? {
        let digits = Array(phoneDigits(raw).utf8)
        guard digits.count >= 5 else { return nil }
        for prefix in 0...min(3, max(0, digits.count - 7)) {
            let rest = digits[prefix...]
            if let first = rest.first, rest.allSatisfy({ $0 == first }) { return nil }
        }
        return String(decoding: digits, as: UTF8.self)
    }

    public static func recordTimeline(
        _ id: Int64, kind: String, old: String?, new: String?, detail: String? = nil, at: Int64, in db: Database
    ) throws {
        try db.cachedStatement(sql: """
            INSERT INTO lead_timeline (lead_id, at, kind, old_value, new_value, detail) VALUES (?, ?, ?, ?, ?, ?)
            """).execute(arguments: [id, at, kind, old, new, detail])
    }

    // MARK: Duplicates and merging

    public enum Match: String, Sendable, CaseIterable {
        case email, phone
        case nameAndCompany = "name_company"
        /// A user signed in on a device whose visitor lead someone had worked, so ingest left
        /// the two apart (see ``recordSameDevice(_:_:at:in:)``).
        case device
    }

    /// Notes on both leads' timelines that they were seen on one device, once per pair: a user
    /// signed in where a visitor lead sales had already worked was browsing. Ingest merges such
    /// a visitor only while nobody has worked it; this is how the pair reaches
    /// ``duplicates(of:limit:in:)`` for a person to decide.
    public static func recordSameDevice(_ lead: Int64, _ other: Int64, at now: Int64, in db: Database) throws {
        for (id, peer) in [(lead, other), (other, lead)] {
            try db.cachedStatement(sql: """
                INSERT INTO lead_timeline (lead_id, at, kind, new_value)
                SELECT ?1, ?2, 'same_device', ?3
                WHERE NOT EXISTS (SELECT 1 FROM lead_timeline WHERE lead_id = ?1 AND kind = 'same_device' AND new_value = ?3)
                """).execute(arguments: [id, now, String(peer)])
        }
    }

    /// Other leads that look like the same person: the same email, the same phone digits, or
    /// the same first name, last name and company (case-insensitive). At most `limit`.
    /// The most duplicates one lead lists: a shared address (info@…) can match thousands.
    public static let duplicateCandidateLimit = 1000

    public static func duplicates(of id: Int64, limit: Int = 50, in db: Database) throws -> [(id: Int64, matches: [Match])] {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT email, phone_digits, first_name, last_name, company FROM leads WHERE id = ?
            """, arguments: [id]) else { throw Failure.notFound }
        var matches: [Int64: [Match]] = [:]
        if let email: String = row["email"] {
            for other in try Int64.fetchAll(db, sql: "SELECT id FROM leads WHERE email = ? AND id != ? LIMIT ?",
                                            arguments: [email, id, limit]) {
                matches[other, default: []].append(.email)
            }
            // Leads that keep this address as another of theirs, from an earlier merge.
            for other in try Int64.fetchAll(db, sql: """
                SELECT lead_id FROM lead_custom_values
                WHERE field_id = (SELECT id FROM custom_fields WHERE key = ?) AND lead_id != ?
                  AND instr('; ' || lower(value) || '; ', '; ' || ? || '; ') > 0
                LIMIT ?
                """, arguments: [FieldName.normalize(otherEmailLabel), id, email, limit]) where matches[other]?.contains(.email) != true {
                matches[other, default: []].append(.email)
            }
        }
        // The addresses this lead keeps as others: the leads that have one of them.
        if let others = try customValue(id, label: otherEmailLabel, in: db) {
            for address in others.components(separatedBy: "; ") where !address.isEmpty {
                for other in try Int64.fetchAll(db, sql: "SELECT id FROM leads WHERE email = ? AND id != ? LIMIT ?",
                                                arguments: [EmailAddress.normalized(address) ?? address.lowercased(), id, limit])
                where matches[other]?.contains(.email) != true {
                    matches[other, default: []].append(.email)
                }
            }
        }
        // identityPhoneDigits: rows stored before placeholders were refused still hold 0000000000.
        if let digits: String = row["phone_digits"], digits.count >= 6, identityPhoneDigits(digits) != nil {
            for other in try Int64.fetchAll(db, sql: "SELECT id FROM leads WHERE phone_digits = ? AND id != ? LIMIT ?",
                                            arguments: [digits, id, limit]) {
                matches[other, default: []].append(.phone)
            }
        }
        for other in try Int64.fetchAll(db, sql: """
            SELECT DISTINCT leads.id FROM lead_timeline JOIN leads ON leads.id = CAST(lead_timeline.new_value AS INTEGER)
            WHERE lead_timeline.lead_id = ? AND kind = 'same_device' AND leads.id != ? LIMIT ?
            """, arguments: [id, id, limit]) {
            matches[other, default: []].append(.device)
        }
        if let first: String = row["first_name"], let last: String = row["last_name"], let company: String = row["company"] {
            // The last_name index narrows to exact spellings; case is compared here.
            for other in try Row.fetchAll(db, sql: """
                SELECT id, first_name, company FROM leads
                WHERE last_name = ? AND id != ? AND first_name IS NOT NULL AND company IS NOT NULL LIMIT ?
                """, arguments: [last, id, max(limit, 1000)])
            where (other["first_name"] as String).lowercased() == first.lowercased()
                && (other["company"] as String).lowercased() == company.lowercased() {
                matches[other["id"], default: []].append(.nameAndCompany)
            }
        }
        return matches.sorted { $0.key < $1.key }.prefix(limit).map { ($0.key, $0.value) }
    }

    /// Merges `duplicate` into `primary`: events, tags, notes, custom fields and timeline move
    /// over, blank fields of the primary are filled from the duplicate, the duplicate is
    /// deleted, and the merge is recorded on the primary's timeline. An email or phone the
    /// primary already has another of is kept as the custom field "Other email" or "Other phone".
    ///
    /// `newerTraitsWin` (ingest's merges of a visitor into its user): when the duplicate's
    /// newest identify is newer than the primary's (`traits_at`), its email, phone, names,
    /// company, value and custom fields replace the primary's, as that identify would have had
    /// it been sent to the user (the replaced email and phone are kept as others); otherwise a
    /// replay of the same input later would apply it, and the store would change on re-ingest.
    /// Source only fills a blank: a merged lead's may be a utm fallback, which never replaces.
    public static func merge(primary: Int64, duplicate: Int64, now: Int64 = LeadStore.nowMillis(),
                             newerTraitsWin: Bool = false, in db: Database) throws {
        guard let kept = try LeadRecord.fetch(id: primary, in: db),
              let merged = try LeadRecord.fetch(id: duplicate, in: db) else { throw Failure.notFound }
        // The columns LeadRecord does not carry.
        let hidden = try Row.fetchOne(db, sql: """
            SELECT (SELECT traits_at FROM leads WHERE id = ?1), traits_at, phone_digits FROM leads WHERE id = ?2
            """, arguments: [primary, duplicate])
        let keptTraitsAt: Int64? = hidden?[0], mergedTraitsAt: Int64? = hidden?[1], mergedPhoneDigits: String? = hidden?[2]
        let duplicateWins = newerTraitsWin && (mergedTraitsAt ?? .min) > (keptTraitsAt ?? .min)

        // Dedupe keys are unique per lead: an event both leads received (one message, resolved to
        // each before they were known to be one person) is kept once, on the primary.
        try db.execute(sql: "UPDATE OR IGNORE events SET lead_id = ? WHERE lead_id = ?", arguments: [primary, duplicate])
        // The duplicate's rows are deleted explicitly, not through ON DELETE CASCADE: ingest
        // merges with foreign-key enforcement off (see Ingester), where cascades do not run.
        try db.execute(sql: "DELETE FROM events WHERE lead_id = ?", arguments: [duplicate])
        let droppedSharedEvents = db.changesCount > 0
        // Same-device notes come in pairs, so the duplicate's own name the leads whose notes
        // name it: those now name the lead it became (found through the timeline's lead index).
        for peer in try String.fetchAll(db, sql: "SELECT new_value FROM lead_timeline WHERE lead_id = ? AND kind = 'same_device'",
                                        arguments: [duplicate]) {
            try db.execute(sql: "UPDATE lead_timeline SET new_value = ? WHERE lead_id = ? AND kind = 'same_device' AND new_value = ?",
                           arguments: [String(primary), Int64(peer), String(duplicate)])
        }
        try db.execute(sql: "UPDATE lead_timeline SET lead_id = ? WHERE lead_id = ?", arguments: [primary, duplicate])
        // Notes that the two shared a device are settled by this merge.
        try db.execute(sql: """
            DELETE FROM lead_timeline WHERE lead_id = ? AND kind = 'same_device' AND new_value IN (?, ?)
            """, arguments: [primary, String(primary), String(duplicate)])
        try db.execute(sql: "INSERT OR IGNORE INTO lead_tags (lead_id, tag) SELECT ?, tag FROM lead_tags WHERE lead_id = ?",
                       arguments: [primary, duplicate])
        // Every device the duplicate was seen on is the primary's now.
        try db.execute(sql: "UPDATE lead_anonymous_ids SET lead_id = ? WHERE lead_id = ?", arguments: [primary, duplicate])
        // Read before the custom values merge, which keeps only one side's.
        let heldOthers = try OtherContact.allCases.map { kind in
            try [primary, duplicate].flatMap { lead in try customValue(lead, label: kind.label, in: db)?.components(separatedBy: "; ") ?? [] }
        }
        // The primary's own value wins where both have a field, unless the duplicate's is newer.
        try db.execute(sql: """
            INSERT OR \(duplicateWins ? "REPLACE" : "IGNORE") INTO lead_custom_values (lead_id, field_id, value, number)
            SELECT ?, field_id, value, number FROM lead_custom_values WHERE lead_id = ?
            """, arguments: [primary, duplicate])
        var activity = try LeadActivity.fetch(db, leadID: primary)
        if droppedSharedEvents {
            activity = try LeadActivity.recompute(db, leadID: primary)
        } else if let other = try LeadActivity.fetch(db, leadID: duplicate) {
            if activity == nil { activity = other } else { activity!.merge(other) }
        }

        // Identities the duplicate kept from its own merges now name the primary (merges chain).
        try db.execute(sql: "UPDATE lead_merged_identities SET lead_id = ? WHERE lead_id = ?", arguments: [primary, duplicate])
        // Delete first: the duplicate's external id, email and phone may then move over.
        for table in ["lead_tags", "lead_custom_values", "lead_activity"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE lead_id = ?", arguments: [duplicate])
        }
        try db.execute(sql: "DELETE FROM leads WHERE id = ?", arguments: [duplicate])
        if let activity {
            try db.execute(sql: """
                INSERT OR REPLACE INTO lead_activity (lead_id, event_count, first_at, last_at, type_counts, type_last_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [primary, activity.eventCount, activity.firstAt, activity.lastAt,
                                 Data(Float64Blob.bytes(activity.counts)), Data(Float64Blob.bytes(activity.lastAtByType))])
        }
        var notes = kept.notes
        if let other = merged.notes, !(notes?.contains(other) ?? false) { notes = notes.map { $0 + "\n" + other } ?? other }
        // A phone and its digits move together: a newer duplicate's replaces the primary's (its
        // digits may be NULL, a placeholder), otherwise it only fills a blank.
        let takesPhone = duplicateWins && merged.phone != nil
        // Profile fields: the duplicate's fill the primary's blanks, or replace them when newer.
        func profile(_ column: String) -> String {
            duplicateWins ? "\(column) = coalesce(?, \(column))" : "\(column) = coalesce(\(column), ?)"
        }
        try db.execute(sql: """
            UPDATE leads SET
                external_id = coalesce(external_id, ?), \(profile("email")),
                phone = \(takesPhone ? "?" : "coalesce(phone, ?)"), phone_digits = \(takesPhone ? "?" : "coalesce(phone_digits, ?)"),
                \(profile("first_name")), \(profile("last_name")),
                \(profile("company")), source = coalesce(source, ?),
                assigned_to = coalesce(assigned_to, ?), \(profile("value")), notes = ?,
                created_at = min(created_at, ?),
                last_activity_at = max(coalesce(last_activity_at, 0), coalesce(?, 0)),
                traits_at = CASE WHEN traits_at IS NULL OR ? > traits_at THEN ? ELSE traits_at END,
                updated_at = ?
            WHERE id = ?
            """, arguments: [
                merged.externalID, merged.email, merged.phone, mergedPhoneDigits, merged.firstName, merged.lastName, merged.company,
                merged.source, merged.assignedTo, merged.value, notes, merged.createdAt, merged.lastActivityAt,
                mergedTraitsAt, mergedTraitsAt, now, primary,
            ])
        // A lead with no activity at all keeps a NULL last activity.
        try db.execute(sql: "UPDATE leads SET last_activity_at = NULL WHERE id = ? AND last_activity_at = 0", arguments: [primary])
        // A lead holds one email and one phone: the duplicate's other ones stay readable, with
        // those both leads kept from earlier merges.
        let primaryHolds = try Row.fetchOne(db, sql: "SELECT email, phone, external_id, phone_digits FROM leads WHERE id = ?",
                                            arguments: [primary])
        for (index, kind) in OtherContact.allCases.enumerated() {
            let both = kind == .email ? [merged.email, kept.email] : [merged.phone, kept.phone]
            try keepOthers(kind, heldOthers[index] + both.compactMap { $0 }, current: primaryHolds?[index] as String?, lead: primary, in: db)
        }
        try keepMergedIdentities(of: [.externalID: merged.externalID, .email: merged.email, .phoneDigits: mergedPhoneDigits],
                                 primary: primary,
                                 holding: [.externalID: primaryHolds?[2], .email: primaryHolds?[0], .phoneDigits: primaryHolds?[3]],
                                 in: db)
        let detail = try String(data: JSONSerialization.data(withJSONObject: [
            "duplicate_id": duplicate, "external_id": merged.externalID as Any,
        ].compactMapValues { $0 is NSNull ? nil : $0 }, options: [.sortedKeys]), encoding: .utf8)
        try recordTimeline(primary, kind: "merged", old: String(duplicate), new: String(primary), detail: detail, at: now, in: db)
    }

    /// The leads columns identity matching reads, as `lead_merged_identities.kind` names them.
    public enum IdentityColumn: String, Sendable, CaseIterable {
        case externalID = "external_id"
        case email
        case phoneDigits = "phone_digits"
    }

    /// Keeps the duplicate's external id, email and phone digits that the primary does not hold
    /// as identities of the primary (`lead_merged_identities`), so that data sent again for the
    /// duplicate finds the primary rather than making the duplicate anew. A value another merge
    /// kept for some other lead is the latest merge's now. One the primary holds itself again
    /// (a chain that ends where it began) is dropped: its own columns match it first.
    static func keepMergedIdentities(of duplicate: [IdentityColumn: String?], primary: Int64,
                                     holding held: [IdentityColumn: String?], in db: Database) throws {
        for kind in IdentityColumn.allCases {
            if let value = held[kind] ?? nil {
                try db.cachedStatement(sql: "DELETE FROM lead_merged_identities WHERE kind = ? AND value = ? AND lead_id = ?")
                    .execute(arguments: [kind.rawValue, value, primary])
            }
            guard let value = duplicate[kind] ?? nil, value != held[kind] ?? nil else { continue }
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO lead_merged_identities (kind, value, lead_id) VALUES (?, ?, ?)")
                .execute(arguments: [kind.rawValue, value, primary])
        }
    }

    /// Whether `value` is an identity `lead` kept from a lead merged into it.
    public static func keepsMergedIdentity(_ kind: IdentityColumn, _ value: String, lead: Int64, in db: Database) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM lead_merged_identities WHERE kind = ? AND value = ? AND lead_id = ?)"),
                          arguments: [kind.rawValue, value, lead]) ?? false
    }

    // MARK: Timeline

    public struct TimelineEntry: Sendable, Equatable {
        /// "event", or the lead_timeline kind.
        public var kind: String
        public var at: Int64
        public var type: String?
        public var value: Double?
        /// The event's properties as received (JSON text).
        public var properties: String?
        public var oldValue: String?
        public var newValue: String?
        public var detail: String?
        /// Where the entry sits in the timeline, for a keyset page after it.
        public var position: TimelinePosition
    }

    /// A place in a lead's timeline, whose order (newest first) is: time, then recorded changes
    /// before events of the same millisecond, then the later row first. Every entry has its own.
    public struct TimelinePosition: Sendable, Hashable {
        public var at: Int64
        /// 1 for a recorded change (lead_timeline), 0 for an event.
        public var source: Int64
        public var rowID: Int64

        public init(at: Int64, source: Int64, rowID: Int64) {
            self.at = at
            self.source = source
            self.rowID = rowID
        }
    }

    /// The lead's events and recorded changes, newest first: `limit` of them from `offset`, or,
    /// given `after`, the `limit` that follow that position (entries added meanwhile, being
    /// newer, never shift a keyset page). `total` counts them all.
    public static func timeline(_ id: Int64, after position: TimelinePosition? = nil, offset: Int = 0, limit: Int,
                                in db: Database) throws -> (entries: [TimelineEntry], total: Int) {
        let total = try Int.fetchOne(db, sql: """
            SELECT (SELECT count(*) FROM events WHERE lead_id = ?) + (SELECT count(*) FROM lead_timeline WHERE lead_id = ?)
            """, arguments: [id, id]) ?? 0
        var eventsAfter = "", changesAfter = ""
        var arguments: StatementArguments = [id]
        if let position {
            // The plain bound on the time lets lead_timeline's (lead_id, at) index stop the scan.
            eventsAfter = " AND e.occurred_at <= ? AND (e.occurred_at, 0, e.id) < (?, ?, ?)"
            changesAfter = " AND at <= ? AND (at, 1, id) < (?, ?, ?)"
            arguments += [position.at, position.at, position.source, position.rowID,
                          id, position.at, position.at, position.source, position.rowID]
        } else {
            arguments += [id]
        }
        arguments += [limit, offset]
        let rows = try Row.fetchAll(db, sql: """
            SELECT 'event' AS kind, e.occurred_at AS at, 0 AS source, e.id AS rid, t.name, e.value, s.properties,
                   NULL, NULL, NULL
            FROM events e JOIN event_types t ON t.id = e.type_id LEFT JOIN event_property_sets s ON s.id = e.properties_id
            WHERE e.lead_id = ?\(eventsAfter)
            UNION ALL
            SELECT kind, at, 1, id, NULL, NULL, NULL, old_value, new_value, detail FROM lead_timeline WHERE lead_id = ?\(changesAfter)
            ORDER BY at DESC, source DESC, rid DESC
            LIMIT ? OFFSET ?
            """, arguments: arguments)
        let entries = rows.map { row in
            TimelineEntry(kind: row[0], at: row[1], type: row[4], value: row[5], properties: row[6],
                          oldValue: row[7], newValue: row[8], detail: row[9],
                          position: TimelinePosition(at: row[1], source: row[2], rowID: row[3]))
        }
        return (entries, total)
    }
}

extension LeadRecord {
    /// The stored external id, email or phone, for comparing an update with it.
    func identityValue(_ field: LeadField) -> String? {
        switch field {
        case .externalID: externalID
        case .email: email
        case .phone: phone
        default: nil
        }
    }
}
