import Foundation
import GRDB
import LeadStore

/// Leads turned into feature rows: a row-major rows×columns matrix of transformed values, in
/// the layout's column order. A missing numeric value is NaN here; standardization imputes it.
public struct FeatureRows: Sendable {
    public var width: Int
    public var ids: [Int64] = []
    public var values: [Double] = []
    /// 1 or 0 for labeled leads, NaN for unlabeled ones.
    public var labels: [Double] = []
    public var createdAt: [Int64] = []
    /// The score stored on the lead before this read, nil when unscored.
    public var storedScores: [Int?] = []

    public var count: Int { ids.count }

    public func row(_ index: Int) -> ArraySlice<Double> {
        values[index * width..<(index + 1) * width]
    }

    mutating func append(_ other: FeatureRows, row r: Int) {
        ids.append(other.ids[r])
        values.append(contentsOf: other.row(r))
        labels.append(other.labels[r])
        createdAt.append(other.createdAt[r])
        storedScores.append(other.storedScores[r])
    }
}

/// Reads feature rows from the store, in id order a chunk at a time or for given leads. Every
/// column comes from typed columns and the activity blobs; the only text read is what
/// categorical, presence and email features need.
public struct FeatureReader: Sendable {
    public let layout: FeatureLayout
    /// The scoring time, unix ms: windows and "days since" are measured back from it.
    public let asOf: Int64

    static let millisecondsPerDay = 86_400_000.0

    public init(layout: FeatureLayout, asOf: Int64) {
        self.layout = layout
        self.asOf = asOf
    }

    /// Up to `limit` leads with id > `after`, ascending.
    public func read(_ db: Database, after: Int64, limit: Int) throws -> FeatureRows {
        var chunk = Chunk(layout: layout, asOf: asOf)
        chunk.reserve(limit)
        let leads = try RawStatement(db, sql: leadSQL(where: "id > ? ORDER BY id LIMIT ?"))
        leads.bind(1, after)
        leads.bind(2, Int64(limit))
        defer { leads.reset() }
        while try leads.step() { chunk.addLead(leads, layout: layout) }
        guard let first = chunk.ids.first, let last = chunk.ids.last else { return chunk.finish(self) }
        try chunk.readDetails(db, from: first, to: last, rows: 0..<chunk.ids.count, reader: self)
        return chunk.finish(self)
    }

    /// The given leads, in the order given; ids that no longer exist are skipped.
    public func read(_ db: Database, ids: [Int64]) throws -> FeatureRows {
        // An ingest transaction hands over ascending ids, mostly in runs (the leads it created):
        // read each run with the range queries instead of several lookups per lead. All runs
        // fill one chunk, so the per-chunk work (buffers, the category caches) is paid once for
        // a transaction's thousands of scattered leads rather than once per lead.
        if ids.count >= 16, zip(ids, ids.dropFirst()).allSatisfy({ $0 < $1 }) {
            var chunk = Chunk(layout: layout, asOf: asOf)
            chunk.reserve(ids.count)
            let leads = try RawStatement(db, sql: leadSQL(where: "id BETWEEN ? AND ? ORDER BY id"))
            var start = 0
            while start < ids.count {
                var end = start
                while end + 1 < ids.count && ids[end + 1] - ids[end] <= 8 { end += 1 }
                let firstRow = chunk.ids.count
                leads.bind(1, ids[start])
                leads.bind(2, ids[end])
                var next = start  // the run's ids are ascending, as are the rows: merge them
                while try leads.step() {
                    let id = leads.int64(0)
                    while next <= end && ids[next] < id { next += 1 }
                    if next <= end && ids[next] == id { chunk.addLead(leads, layout: layout) }
                }
                leads.reset()
                if chunk.ids.count > firstRow {
                    // Details of leads in the range that were not asked for match no row.
                    try chunk.readDetails(db, from: ids[start], to: ids[end], rows: firstRow..<chunk.ids.count, reader: self)
                }
                start = end + 1
            }
            return chunk.finish(self)
        }
        var chunk = Chunk(layout: layout, asOf: asOf)
        let leads = try RawStatement(db, sql: leadSQL(where: "id = ?"))
        for id in ids {
            leads.bind(1, id)
            if try leads.step() { chunk.addLead(leads, layout: layout) }
            leads.reset()
        }
        for (row, id) in chunk.ids.enumerated() {
            try chunk.readDetails(db, from: id, to: id, rows: row..<row + 1, reader: self)
        }
        return chunk.finish(self)
    }

    private func leadSQL(where clause: String) -> String {
        let extra = layout.leadTextColumns.map { ", \($0)" }.joined()
        return "SELECT id, created_at, status, score, value\(extra), last_activity_at FROM leads WHERE \(clause)"
    }

    /// Raw per-lead inputs gathered by the queries, before columns are computed.
    private struct Chunk {
        let layout: FeatureLayout
        let typeIndexes: [Int]            // distinct type indexes the columns use
        let typeSlot: [Int: Int]          // type index → position in typeIndexes
        var ids: [Int64] = []
        var createdAt: [Int64] = []
        var status: [String?] = []
        var scores: [Int?] = []
        var value: [Double?] = []
        var texts: [String?] = []         // rows × leadTextColumns; nil where only presence is needed
        var present: [Bool] = []          // rows × leadTextColumns: not blank
        var freeEmail: [Bool] = []        // rows
        let leadNeedsText: [Bool]
        let customNeedsText: [Bool]
        var lastAt: [Int64?] = []
        var typeCounts: [Double] = []     // rows × typeIndexes
        var typeLastAt: [Double] = []     // rows × typeIndexes
        var customText: [String?] = []    // rows × customFieldIDs
        var customNumber: [Double?] = []  // rows × customFieldIDs
        var windowCounts: [Int: [Double]] = [:]  // window days → rows × typeIndexes
        let asOf: Int64
        /// Rows whose lead has events after `asOf`: the all-time aggregate would count them.
        var activeAfterAsOf: [Bool] = []

        init(layout: FeatureLayout, asOf: Int64) {
            self.layout = layout
            self.asOf = asOf
            var indexes: [Int] = []
            for column in layout.columns {
                let used: Int?
                switch column.source {
                case .eventCount(let index), .windowCount(_, let index), .daysSince(let index): used = index
                default: used = nil
                }
                if let index = used, index >= 0, !indexes.contains(index) { indexes.append(index) }
            }
            typeIndexes = indexes
            typeSlot = Dictionary(uniqueKeysWithValues: indexes.enumerated().map { ($1, $0) })
            leadNeedsText = layout.leadSlotNeedsText
            customNeedsText = layout.customSlotNeedsText
        }

        mutating func reserve(_ count: Int) {
            let textWidth = layout.leadTextColumns.count, customWidth = layout.customFieldIDs.count
            ids.reserveCapacity(count); createdAt.reserveCapacity(count); status.reserveCapacity(count)
            scores.reserveCapacity(count); value.reserveCapacity(count); lastAt.reserveCapacity(count)
            texts.reserveCapacity(count * textWidth); present.reserveCapacity(count * textWidth)
            freeEmail.reserveCapacity(count); activeAfterAsOf.reserveCapacity(count)
            typeCounts.reserveCapacity(count * typeIndexes.count); typeLastAt.reserveCapacity(count * typeIndexes.count)
            customText.reserveCapacity(count * customWidth); customNumber.reserveCapacity(count * customWidth)
        }

        mutating func addLead(_ s: RawStatement, layout: FeatureLayout) {
            let id = s.int64(0)
            ids.append(id)
            createdAt.append(s.int64(1))
            status.append(s.text(2))
            scores.append(s.isNull(3) ? nil : Int(s.int64(3)))
            value.append(s.double(4))
            var isFree = false
            for i in layout.leadTextColumns.indices {
                let column = Int32(5 + i)
                let bytes = s.textBytes(column)
                let notBlank = bytes.map { !Self.isBlank($0) } ?? false
                present.append(notBlank)
                texts.append(leadNeedsText[i] && notBlank ? s.text(column) : nil)
                if i == layout.emailSlot, notBlank, let bytes { isFree = FreeMail.isFree(storedEmail: bytes) }
            }
            freeEmail.append(isFree)
            let lastActivity = Int32(5 + layout.leadTextColumns.count)
            activeAfterAsOf.append(!s.isNull(lastActivity) && s.int64(lastActivity) > asOf)
            lastAt.append(nil)
            typeCounts.append(contentsOf: repeatElement(0, count: typeIndexes.count))
            typeLastAt.append(contentsOf: repeatElement(0, count: typeIndexes.count))
            customText.append(contentsOf: repeatElement(nil, count: layout.customFieldIDs.count))
            customNumber.append(contentsOf: repeatElement(nil, count: layout.customFieldIDs.count))
        }

        /// The row of `id`. Detail queries return rows in lead order (custom values are read by
        /// their primary key: "+field_id" keeps SQLite off the field_id index, which would return
        /// them field by field, each through a second lookup). Look next to the last match first,
        /// and binary search if the order ever restarts.
        func row(of id: Int64, from cursor: inout Int, end: Int) -> Int? {
            if cursor < end && ids[cursor] == id { return cursor }
            if cursor + 1 < end && ids[cursor + 1] == id { cursor += 1; return cursor }
            // Out of order after all (a query plan may change): binary search the chunk.
            var low = 0, high = end
            while low < high {
                let mid = (low + high) / 2
                if ids[mid] < id { low = mid + 1 } else { high = mid }
            }
            guard low < end, ids[low] == id else { return nil }
            cursor = low
            return low
        }

        /// Reads activity, custom values and windowed counts for the rows `rows`, whose ids
        /// span `from`...`to` in ascending order.
        mutating func readDetails(_ db: Database, from: Int64, to: Int64, rows: Range<Int>, reader: FeatureReader) throws {
            let t = typeIndexes.count
            let needsActivity = t > 0 || layout.columns.contains(where: { if case .daysSince = $0.source { true } else { false } })
            // Scoring at a time some of these leads have events after (a past as-of, or events
            // stamped ahead of this clock) counts their events up to it from the events table;
            // otherwise the all-time aggregate is exact and far cheaper.
            if needsActivity && rows.contains(where: { activeAfterAsOf[$0] }) {
                let events = try RawStatement(db, sql: """
                    SELECT lead_id, type_id, count(*), max(occurred_at) FROM events
                    WHERE lead_id BETWEEN ? AND ? AND occurred_at <= ?
                    GROUP BY lead_id, type_id
                    """)
                events.bind(1, from)
                events.bind(2, to)
                events.bind(3, reader.asOf)
                defer { events.reset() }
                var cursor = rows.lowerBound
                while try events.step() {
                    guard let row = row(of: events.int64(0), from: &cursor, end: rows.upperBound) else { continue }
                    let last = events.int64(3)
                    lastAt[row] = max(lastAt[row] ?? .min, last)
                    if let slot = typeSlot[Int(events.int64(1)) - 1] {
                        typeCounts[row * t + slot] = Double(events.int64(2))
                        typeLastAt[row * t + slot] = Double(last)
                    }
                }
            } else if needsActivity {
                let activity = try RawStatement(db, sql: """
                    SELECT lead_id, last_at, type_counts, type_last_at FROM lead_activity WHERE lead_id BETWEEN ? AND ?
                    """)
                activity.bind(1, from)
                activity.bind(2, to)
                defer { activity.reset() }
                var cursor = rows.lowerBound
                while try activity.step() {
                    guard let row = row(of: activity.int64(0), from: &cursor, end: rows.upperBound) else { continue }
                    lastAt[row] = activity.int64(1)
                    let counts = activity.blob(2)
                    let last = activity.blob(3)
                    for (slot, index) in typeIndexes.enumerated() {
                        typeCounts[row * t + slot] = Float64Blob.element(counts, index)
                        typeLastAt[row * t + slot] = Float64Blob.element(last, index)
                    }
                }
            }
            let fieldIDs = layout.customFieldIDs
            if !fieldIDs.isEmpty {
                let placeholders = repeatElement("?", count: fieldIDs.count).joined(separator: ", ")
                let custom = try RawStatement(db, sql: """
                    SELECT lead_id, field_id, value, number FROM lead_custom_values
                    WHERE lead_id BETWEEN ? AND ? AND +field_id IN (\(placeholders))
                    """)
                custom.bind(1, from)
                custom.bind(2, to)
                for (i, id) in fieldIDs.enumerated() { custom.bind(Int32(3 + i), id) }
                defer { custom.reset() }
                let slotOf = Dictionary(uniqueKeysWithValues: fieldIDs.enumerated().map { ($1, $0) })
                let width = fieldIDs.count
                var cursor = rows.lowerBound
                while try custom.step() {
                    guard let row = row(of: custom.int64(0), from: &cursor, end: rows.upperBound),
                          let slot = slotOf[custom.int64(1)] else { continue }
                    if customNeedsText[slot] { customText[row * width + slot] = custom.text(2) }
                    customNumber[row * width + slot] = custom.double(3)
                }
            }
            for days in layout.windows where t > 0 {
                var counts = windowCounts[days] ?? []
                if counts.count < ids.count * t {
                    counts.append(contentsOf: repeatElement(0, count: ids.count * t - counts.count))
                }
                let events = try RawStatement(db, sql: """
                    SELECT lead_id, type_id, count(*) FROM events
                    WHERE lead_id BETWEEN ? AND ? AND occurred_at > ? AND occurred_at <= ?
                    GROUP BY lead_id, type_id
                    """)
                events.bind(1, from)
                events.bind(2, to)
                events.bind(3, reader.asOf - Int64(days) * 86_400_000)
                events.bind(4, reader.asOf)
                defer { events.reset() }
                var cursor = rows.lowerBound
                while try events.step() {
                    guard let row = row(of: events.int64(0), from: &cursor, end: rows.upperBound),
                          let slot = typeSlot[Int(events.int64(1)) - 1] else { continue }
                    counts[row * t + slot] = Double(events.int64(2))
                }
                windowCounts[days] = counts
            }
        }

        /// Empty or only spaces and tabs: a blank cell, the same as a missing one.
        static func isBlank(_ text: String) -> Bool {
            !text.utf8.contains { $0 != 0x20 && $0 != 0x09 }
        }

        static func isBlank(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            !bytes.contains { $0 != 0x20 && $0 != 0x09 }
        }

        func finish(_ reader: FeatureReader) -> FeatureRows {
            let layout = self.layout
            let width = layout.columns.count
            let t = typeIndexes.count
            let textWidth = layout.leadTextColumns.count
            let customWidth = layout.customFieldIDs.count
            let day = FeatureReader.millisecondsPerDay
            var rows = FeatureRows(width: width)
            rows.ids = ids
            rows.createdAt = createdAt
            rows.storedScores = scores
            rows.values = [Double](repeating: 0, count: ids.count * width)
            rows.labels = [Double](repeating: .nan, count: ids.count)

            // Lead texts are kept only when not blank (see addLead).
            func text(_ row: Int, _ slot: Int) -> String? { texts[row * textWidth + slot] }
            func customSlotText(_ row: Int, _ slot: Int) -> String? {
                guard slot >= 0, let raw = customText[row * customWidth + slot], !Self.isBlank(raw) else { return nil }
                return raw
            }
            // Each distinct raw value is normalized once per chunk, not once per row.
            var categoryCache = [[String: Int?]](repeating: [:], count: layout.categories.count)
            func days(since ms: Int64) -> Double { max(0, Double(reader.asOf - ms) / day) }

            let statusLabels = { () -> [String: Double] in
                guard case .status(let rule) = layout.label else { return [:] }
                var table: [String: Double] = [:]
                for won in rule.won { table[won.lowercased()] = 1 }
                for lost in rule.lost { table[lost.lowercased()] = 0 }
                return table
            }()
            for row in ids.indices {
                switch layout.label {
                case .status: rows.labels[row] = status[row].flatMap { statusLabels[$0] ?? statusLabels[$0.lowercased()] } ?? .nan
                case .leadColumn(let slot): rows.labels[row] = LabelRule.label(fieldValue: text(row, slot)) ?? .nan
                case .custom(let slot): rows.labels[row] = LabelRule.label(fieldValue: customSlotText(row, slot)) ?? .nan
                }
                let base = row * width
                for (c, column) in layout.columns.enumerated() {
                    var x: Double
                    switch column.source {
                    case .eventCount(let index):
                        x = index.flatMap { typeSlot[$0] }.map { typeCounts[row * t + $0] } ?? 0
                    case .windowCount(let window, let index):
                        x = index.flatMap { typeSlot[$0] }.map { windowCounts[window]?[row * t + $0] ?? 0 } ?? 0
                    case .daysSince(let index):
                        if let index {
                            let last = typeSlot[index].map { typeLastAt[row * t + $0] } ?? 0
                            x = last > 0 ? days(since: Int64(last)) : days(since: createdAt[row])
                        } else {
                            x = days(since: lastAt[row] ?? createdAt[row])
                        }
                    case .leadAge:
                        x = days(since: createdAt[row])
                    case .numericValue:
                        x = value[row] ?? .nan
                    case .numericCustom(let slot):
                        x = slot >= 0 ? (customNumber[row * customWidth + slot] ?? .nan) : .nan
                    case .category:
                        x = 0  // set below, by the feature's encoder
                    case .presenceLead(let slot):
                        x = present[row * textWidth + slot] ? 1 : 0
                    case .presenceValue:
                        x = value[row] == nil ? 0 : 1
                    case .presenceCustom(let slot):
                        x = customSlotText(row, slot) == nil ? 0 : 1
                    case .freeEmail:
                        x = freeEmail[row] ? 1 : 0
                    }
                    if !x.isNaN { x = column.transform.apply(x) }
                    rows.values[base + c] = x
                }
                for (e, encoder) in layout.categories.enumerated() {
                    guard let raw = encoder.isCustom ? customSlotText(row, encoder.slot) : text(row, encoder.slot) else { continue }
                    let offset: Int?
                    if let cached = categoryCache[e][raw] {
                        offset = cached
                    } else {
                        offset = encoder.offset(of: raw)
                        categoryCache[e][raw] = .some(offset)
                    }
                    if let offset { rows.values[base + encoder.firstColumn + offset] = 1 }
                }
            }
            return rows
        }
    }
}
