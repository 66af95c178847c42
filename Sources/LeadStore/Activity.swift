import Foundation
import GRDB

/// A lead's activity aggregate: event counts and last-seen times per event type, plus overall
/// first and last activity. Stored in `lead_activity` as little-endian Float64 arrays indexed by
/// `event_types.id - 1`, so a scoring pass copies a blob straight into a matrix row.
public struct LeadActivity: Equatable, Sendable {
    public var eventCount: Int64
    public var firstAt: Int64
    public var lastAt: Int64
    /// counts[typeID - 1]: number of events of that type.
    public var counts: [Double]
    /// lastAtByType[typeID - 1]: unix ms of the newest event of that type, 0 when none.
    public var lastAtByType: [Double]

    public init(eventCount: Int64 = 0, firstAt: Int64 = .max, lastAt: Int64 = .min,
                counts: [Double] = [], lastAtByType: [Double] = []) {
        self.eventCount = eventCount
        self.firstAt = firstAt
        self.lastAt = lastAt
        self.counts = counts
        self.lastAtByType = lastAtByType
    }

    /// Folds one event in.
    public mutating func add(typeID: Int, at occurredAt: Int64) {
        add(typeID: typeID, count: 1, first: occurredAt, last: occurredAt)
    }

    /// Folds in `count` events of one type spanning `first`...`last`.
    public mutating func add(typeID: Int, count: Int64, first: Int64, last: Int64) {
        let index = typeID - 1
        if counts.count <= index {
            counts.append(contentsOf: repeatElement(0, count: index + 1 - counts.count))
            lastAtByType.append(contentsOf: repeatElement(0, count: index + 1 - lastAtByType.count))
        }
        counts[index] += Double(count)
        lastAtByType[index] = max(lastAtByType[index], Double(last))
        eventCount += count
        firstAt = min(firstAt, first)
        lastAt = max(lastAt, last)
    }

    /// Folds another aggregate in (the delta of a batch into the stored row).
    public mutating func merge(_ other: LeadActivity) {
        let width = max(counts.count, other.counts.count)
        counts.append(contentsOf: repeatElement(0, count: width - counts.count))
        lastAtByType.append(contentsOf: repeatElement(0, count: width - lastAtByType.count))
        for i in other.counts.indices {
            counts[i] += other.counts[i]
            lastAtByType[i] = max(lastAtByType[i], other.lastAtByType[i])
        }
        eventCount += other.eventCount
        firstAt = min(firstAt, other.firstAt)
        lastAt = max(lastAt, other.lastAt)
    }

    /// The same aggregate with trailing all-zero types trimmed, so equal activity compares equal
    /// whatever the dictionary size was when it was written.
    public var normalized: LeadActivity {
        var copy = self
        while let last = copy.counts.last, last == 0 {
            copy.counts.removeLast()
            copy.lastAtByType.removeLast()
        }
        return copy
    }
}

/// Float64 arrays ⇄ BLOB, little-endian on every platform.
public enum Float64Blob {
    public static func decode(_ data: Data) -> [Double] {
        data.withUnsafeBytes { decode($0) }
    }

    /// Element `index` of a blob; 0 past its end, since a blob written before a new event type
    /// existed is shorter than the current dictionary.
    @inline(__always)
    public static func element(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Double {
        guard (index + 1) * 8 <= bytes.count else { return 0 }
        return Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)))
    }
}

extension LeadActivity {
    public static func fetch(_ db: Database, leadID: Int64) throws -> LeadActivity? {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT event_count, first_at, last_at, type_counts, type_last_at
            FROM lead_activity WHERE lead_id = ?
            """, arguments: [leadID]) else { return nil }
        return LeadActivity(row: row)
    }

    init(row: Row) {
        self.init(
            eventCount: row[0], firstAt: row[1], lastAt: row[2],
            counts: Float64Blob.decode(row[3]), lastAtByType: Float64Blob.decode(row[4]))
    }

    /// Every lead's aggregate, by lead id.
    public static func fetchAll(_ db: Database) throws -> [Int64: LeadActivity] {
        var result: [Int64: LeadActivity] = [:]
        let rows = try Row.fetchCursor(db, sql: """
            SELECT lead_id, event_count, first_at, last_at, type_counts, type_last_at FROM lead_activity
            """)
        while let row = try rows.next() {
            result[row[0]] = LeadActivity(
                eventCount: row[1], firstAt: row[2], lastAt: row[3],
                counts: Float64Blob.decode(row[4]), lastAtByType: Float64Blob.decode(row[5]))
        }
        return result
    }

    /// Recomputes every aggregate from the events table. The maintained aggregates must always
    /// equal this; `leadlens` uses it to check and repair a store.
    public static func recompute(_ db: Database) throws -> [Int64: LeadActivity] {
        try recompute(db, only: nil)
    }

    /// One lead's aggregate recomputed from its events; nil when it has none.
    public static func recompute(_ db: Database, leadID: Int64) throws -> LeadActivity? {
        try recompute(db, only: leadID)[leadID]
    }

    private static func recompute(_ db: Database, only leadID: Int64?) throws -> [Int64: LeadActivity] {
        var result: [Int64: LeadActivity] = [:]
        let rows = try Row.fetchCursor(db, sql: """
            SELECT lead_id, type_id, count(*), min(occurred_at), max(occurred_at)
            FROM events \(leadID == nil ? "" : "WHERE lead_id = ?") GROUP BY lead_id, type_id
            """, arguments: leadID.map { [$0] } ?? [])
        while let row = try rows.next() {
            let lead: Int64 = row[0]
            result[lead, default: LeadActivity()].add(typeID: row[1], count: row[2], first: row[3], last: row[4])
        }
        return result
    }
}

extension Float64Blob {
    /// The blob's bytes, for binding without going through `Data`.
    public static func bytes(_ values: [Double]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in values.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self)
            }
        }
        return bytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> [Double] {
        (0..<bytes.count / 8).map { element(bytes, $0) }
    }
}
