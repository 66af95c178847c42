import Foundation

extension Synthetic {
    /// One generated lead as values rather than file rows: the same leads, in the same order, that
    /// `generate` writes for the same options. Tests and benchmarks that need a large scored store
    /// without parsing millions of lines build it from these.
    public struct GeneratedLead: Sendable {
        public var externalID: String
        public var email: String
        public var phone: String?
        /// nil where leads.csv leaves Company Name blank.
        public var company: String?
        public var source: String
        public var status: String
        public var createdAtMillis: Int64
        public var industry: String
        public var employees: Int?
        /// The ground-truth probability its outcome was drawn from.
        public var probability: Double
        /// 1 converted, 0 lost, nil still open.
        public var label: Int?
        /// Countable events (identify excluded), oldest first: (type name as ingested, unix ms).
        public var events: [(type: String, millis: Int64)]
    }

    /// Calls `body` with every lead `generate` would write, without writing files.
    public static func forEachLead(_ options: Options, _ body: (GeneratedLead) throws -> Void) throws {
        guard options.leads >= 0 else { throw GenerationError.invalidLeadCount(options.leads) }
        let asOfSec = Int64(options.asOf.timeIntervalSince1970.rounded(.down))
        var factory = LeadFactory(seed: options.seed, asOfSec: asOfSec)
        guard options.leads > 0 else { return }
        for index in 1...options.leads {
            var rng = factory.rng(for: index)
            let lead = factory.makeLead(index: index, rng: &rng)
            let events = factory.pending
                .filter { $0.kind.rawValue < EventKind.countableCount }
                .map { (type: $0.kind.typeName, millis: $0.millis) }
            try body(GeneratedLead(
                externalID: lead.id, email: lead.email, phone: lead.phone,
                company: lead.companyShown ? lead.company : nil, source: Vocabulary.sources[lead.source],
                status: lead.status, createdAtMillis: lead.createdSec * 1000,
                industry: Vocabulary.industries[lead.industry], employees: lead.employees,
                probability: lead.probability, label: lead.label, events: events))
        }
    }
}
