import Foundation
import LeadStore

/// A keyset cursor for a list that belongs to one lead (its timeline, its duplicates): the last
/// row's place in the list's order, bound to the lead and the list, so a cursor sent to another
/// lead's list is refused rather than read as a place in it. An opaque, URL-safe token.
struct LeadSublistCursor: Equatable {
    enum List: String {
        case timeline, duplicates
    }

    let list: List
    let leadID: Int64
    /// The row's sort values: the timeline's (at, source, row id), a duplicate's id.
    let values: [Int64]

    var token: String {
        Data(([list.rawValue, String(leadID)] + values.map(String.init)).joined(separator: ".").utf8).base64URLEncodedString
    }

    init(list: List, leadID: Int64, values: [Int64]) {
        self.list = list
        self.leadID = leadID
        self.values = values
    }

    /// Nil unless the token is one this API issued for `list` of lead `leadID`.
    init?(token: String, list: List, leadID: Int64) {
        guard token.utf8.count <= 256, let data = Data(base64URLEncoded: token), let text = String(data: data, encoding: .utf8)
        else { return nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let width = list == .timeline ? 3 : 1
        guard parts.count == 2 + width, parts[0] == list.rawValue, Int64(parts[1]) == leadID else { return nil }
        let values = parts.dropFirst(2).compactMap { Int64($0) }
        guard values.count == width else { return nil }
        self.init(list: list, leadID: leadID, values: values)
    }
}
