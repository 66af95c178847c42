import Foundation

/// Deterministic synthetic CRM export + Segment event stream whose outcomes are drawn from a known
/// logistic model, for demos, benchmarks and checking that the scorer recovers a known signal.
///
/// Everything is a pure function of (seed, as-of, lead count): each lead draws from its own PRNG stream
/// keyed by (seed, index), and the three files are streamed lead by lead, so memory stays bounded.
public enum Synthetic {
    public struct Options: Sendable {
        public var leads: Int
        public var seed: UInt64
        /// Reference "now"; fixed by default so the output depends only on the seed.
        public var asOf: Date

        public init(leads: Int, seed: UInt64 = 42, asOf: Date = Synthetic.defaultAsOf) {
            self.leads = leads
            self.seed = seed
            self.asOf = asOf
        }
    }

    /// 2026-11-01T00:00:00Z.
    public static let defaultAsOf = Date(timeIntervalSince1970: 1_793_491_200)

    public struct Summary: Sendable {
        public var leads: Int
        public var events: Int
        public var converted: Int
        /// Negative labels: status "lost" or "disqualified".
        public var lost: Int
        public var open: Int
        public var files: [URL]
    }

    public enum GenerationError: Error, CustomStringConvertible, Sendable {
        case invalidLeadCount(Int)
        case invalidAsOf(Date)
        case cannotCreateDirectory(path: String, reason: String)
        case cannotWrite(path: String, reason: String)

        public var description: String {
            switch self {
            case .invalidLeadCount(let n): "lead count must be zero or positive, got \(n)"
            case .invalidAsOf(let d): "as-of date \(d) is out of range (must leave a year of history after 1970 and be before 2200)"
            case .cannotCreateDirectory(let path, let reason): "cannot create output directory \(path): \(reason)"
            case .cannotWrite(let path, let reason): "cannot write \(path): \(reason)"
            }
        }
    }

    /// Leads created more than this many days before as-of have a final outcome (the label rule).
    static let labelAgeDays = 45
    /// Engagement window after creation; events past as-of are never emitted.
    static let eventWindowDays = 60
    /// Leads are created uniformly over this many days before as-of.
    static let historyDays = 365

    static let csvHeader = "Lead ID,First Name,Last Name,E-mail,Phone Number,Company Name,Lead Source,Status,Created At,Value,Industry,Employees,Country,Tags,Notes"

    /// Writes `leads.csv`, `events.ndjson` and `ground_truth.json` into `directory` (created if needed,
    /// existing files overwritten). Leads created more than 45 days before `asOf` carry an outcome drawn
    /// from the ground-truth probability; younger ones are open. Throws `GenerationError`.
    public static func generate(_ options: Options, into directory: URL) throws -> Summary {
        guard options.leads >= 0 else { throw GenerationError.invalidLeadCount(options.leads) }
        let t = options.asOf.timeIntervalSince1970
        // Ingest takes times before 2200 only: the dataset must be one it can read.
        guard t.isFinite, t >= Double((historyDays + 1) * 86_400), t < Timestamp.latestEpochSeconds else {
            throw GenerationError.invalidAsOf(options.asOf)
        }
        let asOfSec = Int64(t.rounded(.down))

        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw GenerationError.cannotCreateDirectory(path: directory.path, reason: error.localizedDescription)
        }

        let urls = ["leads.csv", "events.ndjson", "ground_truth.json"].map { directory.appendingPathComponent($0) }
        var csv = try ByteSink(url: urls[0])
        var events = try ByteSink(url: urls[1])
        var truth = try ByteSink(url: urls[2])

        csv.raw(csvHeader)
        csv.byte(0x0A)
        writeTruthHeader(&truth, seed: options.seed, asOfSec: asOfSec)

        var factory = LeadFactory(seed: options.seed, asOfSec: asOfSec)
        var summary = Summary(leads: options.leads, events: 0, converted: 0, lost: 0, open: 0, files: urls)
        if options.leads > 0 {
            for index in 1...options.leads {
                var rng = factory.rng(for: index)
                let lead = factory.makeLead(index: index, rng: &rng)
                switch lead.label {
                case 1: summary.converted += 1
                case 0: summary.lost += 1
                default: summary.open += 1
                }
                writeCSVRow(lead, &csv)
                summary.events += factory.writeEvents(of: lead, to: &events, rng: &rng)
                writeTruthRow(lead, &truth, first: index == 1)
                try csv.flushIfNeeded()
                try events.flushIfNeeded()
                try truth.flushIfNeeded()
            }
        }
        truth.literal("\n]}\n")

        try csv.close()
        try events.close()
        try truth.close()
        return summary
    }

    // MARK: - leads.csv

    private static func writeCSVRow(_ lead: Lead, _ out: inout ByteSink) {
        out.raw(lead.id); out.byte(UInt8(ascii: ","))
        out.csvField(lead.firstName.text); out.byte(UInt8(ascii: ","))
        out.csvField(lead.lastName.text); out.byte(UInt8(ascii: ","))
        out.csvField(lead.email); out.byte(UInt8(ascii: ","))
        out.csvField(lead.phone ?? ""); out.byte(UInt8(ascii: ","))
        out.csvField(lead.companyShown ? lead.company : ""); out.byte(UInt8(ascii: ","))
        out.raw(Vocabulary.sources[lead.source]); out.byte(UInt8(ascii: ","))
        out.raw(lead.status); out.byte(UInt8(ascii: ","))
        out.isoTimestamp(epochMillis: lead.createdSec * 1000, milliseconds: false); out.byte(UInt8(ascii: ","))
        out.raw(lead.value ?? ""); out.byte(UInt8(ascii: ","))
        out.raw(Vocabulary.industries[lead.industry]); out.byte(UInt8(ascii: ","))
        if let e = lead.employees { out.int(e) }
        out.byte(UInt8(ascii: ","))
        out.raw(Vocabulary.countries[lead.country]); out.byte(UInt8(ascii: ","))
        out.csvField(lead.tags); out.byte(UInt8(ascii: ","))
        out.csvField(lead.notes)
        out.byte(0x0A)
    }

    // MARK: - ground_truth.json

    private static func writeTruthHeader(_ out: inout ByteSink, seed: UInt64, asOfSec: Int64) {
        out.byte(UInt8(ascii: "{"))
        out.key("seed"); out.raw(String(seed)); out.byte(UInt8(ascii: ","))
        out.key("as_of"); out.byte(UInt8(ascii: "\""))
        out.isoTimestamp(epochMillis: asOfSec * 1000, milliseconds: false)
        out.byte(UInt8(ascii: "\"")); out.byte(UInt8(ascii: ","))
        out.key("label_rule")
        out.literal(#"{"positive":["converted"],"negative":["lost","disqualified"],"labeled_if_older_than_days":"#)
        out.int(labelAgeDays); out.literal("},")
        out.key("baselines")
        out.literal("{\"source\":"); out.jsonString(Vocabulary.baselineSource)
        out.literal(",\"industry\":"); out.jsonString(Vocabulary.baselineIndustry); out.literal("},")
        out.key("free_email_domains"); out.byte(UInt8(ascii: "["))
        for (i, d) in Vocabulary.freeMailDomains.enumerated() {
            if i > 0 { out.byte(UInt8(ascii: ",")) }
            out.jsonString(d)
        }
        out.literal("],")
        out.key("intercept"); out.double(TruthModel.intercept); out.byte(UInt8(ascii: ","))
        out.key("coefficients"); out.byte(UInt8(ascii: "["))
        for (i, c) in TruthModel.coefficients.enumerated() {
            out.literal(i == 0 ? "\n" : ",\n")
            out.byte(UInt8(ascii: "{"))
            out.key("feature"); out.jsonString(TruthModel.featureName(c.term)); out.byte(UInt8(ascii: ","))
            out.key("transform"); out.jsonString(TruthModel.transformName(c.term)); out.byte(UInt8(ascii: ","))
            if case .employees = c.term {
                out.key("missing_value"); out.int(TruthModel.employeesMissingValue); out.byte(UInt8(ascii: ","))
            }
            out.key("weight"); out.double(c.weight)
            out.byte(UInt8(ascii: "}"))
        }
        out.literal("\n],")
        out.key("leads"); out.byte(UInt8(ascii: "["))
    }

    private static func writeTruthRow(_ lead: Lead, _ out: inout ByteSink, first: Bool) {
        out.literal(first ? "\n" : ",\n")
        out.literal("{\"external_id\":\""); out.raw(lead.id)
        out.literal("\",\"probability\":"); out.double(lead.probability)
        out.literal(",\"label\":")
        if let label = lead.label { out.int(label) } else { out.literal("null") }
        out.byte(UInt8(ascii: "}"))
    }
}

// MARK: - Lead model

extension Synthetic {
    struct Lead {
        var index: Int
        var id: String
        var firstName: Vocabulary.Word
        var lastName: Vocabulary.Word
        var email: String
        var phone: String?
        var company: String      // always generated (the e-mail domain derives from it) ...
        var companyShown: Bool   // ... but left blank in the CSV for ~20% of leads
        var source: Int
        var industry: Int
        var country: Int
        var employees: Int?
        var value: String?
        var tags: String
        var notes: String
        var createdSec: Int64
        var freeEmail: Bool
        var status: String
        var probability: Double
        var label: Int?
    }

    /// One not-yet-written event of the current lead.
    struct PendingEvent {
        var millis: Int64
        var kind: EventKind
    }

    /// Engagement tiers: cold / warm / hot. The tier sets the expected event count and the mix of types;
    /// the outcome only sees the resulting counts, never the tier itself.
    enum Engagement {
        static let meanEvents: [Double] = [3, 12, 30]
        static let unsubscribeChance: [Double] = [0.10, 0.06, 0.03]
        /// Tier probabilities per lead source (Vocabulary.sources order).
        static let tierBySource: [WeightedTable] = [
            [55, 33, 12], [65, 27, 8], [50, 35, 15], [50, 35, 15], [35, 40, 25], [35, 42, 23], [40, 40, 20], [38, 40, 22],
        ].map(WeightedTable.init)
        /// Event-type mix per tier over the countable kinds (Unsubscribed is drawn separately).
        static let mixes: [[Double]] = [
            [0.45, 0.07, 0.03, 0.005, 0.02, 0.05, 0, 0.20, 0.03, 0.11, 0.02, 0.015],
            [0.30, 0.12, 0.06, 0.020, 0.05, 0.08, 0, 0.12, 0.08, 0.09, 0.05, 0.030],
            [0.20, 0.12, 0.08, 0.060, 0.06, 0.07, 0, 0.08, 0.15, 0.05, 0.08, 0.050],
        ]
        static let mixTables = mixes.map(WeightedTable.init)
        /// Leads who came from a webinar keep attending them.
        static let webinarMixTables: [WeightedTable] = mixes.map { mix in
            var m = mix
            m[EventKind.webinarAttended.rawValue] *= 3
            return WeightedTable(m)
        }
    }

    struct LeadFactory {
        let seed: UInt64
        let asOfSec: Int64
        private let streamKey: UInt64
        private(set) var pending: [PendingEvent] = []
        private var counts = [Int](repeating: 0, count: EventKind.countableCount)

        init(seed: UInt64, asOfSec: Int64) {
            self.seed = seed
            self.asOfSec = asOfSec
            self.streamKey = SplitMix64.mix(seed ^ 0x6C65_6164_6C65_6E73)  // "leadlens"
            pending.reserveCapacity(256)
        }

        /// An independent stream per lead, so any lead can be regenerated without the ones before it.
        func rng(for index: Int) -> Xoshiro256StarStar {
            Xoshiro256StarStar(seed: streamKey &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        }

        mutating func makeLead(index: Int, rng: inout Xoshiro256StarStar) -> Lead {
            let digits = String(index)
            let id = "L" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits

            let first = rng.pick(Vocabulary.firstNames)
            let last = rng.pick(Vocabulary.lastNames)
            let source = rng.pick(Vocabulary.sourceWeights)
            let industry = rng.pick(Vocabulary.industryWeights)
            let country = rng.pick(Vocabulary.countryWeights)

            let (company, companyDomainStem) = Self.company(rng: &rng)
            let companyShown = rng.chance(0.80)
            let freeEmail = rng.chance(0.40)
            let domain: String
            if freeEmail {
                domain = Vocabulary.freeMailDomains[rng.pick(Vocabulary.freeMailWeights)]
            } else {
                let tld = country != 0 && rng.chance(0.6) ? Vocabulary.countryTLDs[country] : ".com"
                domain = companyDomainStem + tld
            }
            let email = "\(first.slug).\(last.slug)+\(index)@\(domain)"
            let phone = rng.chance(0.70) ? Self.phone(country: country, rng: &rng) : nil

            let employees: Int? = rng.chance(0.85)
                ? min(250_000, max(1, Int(exp(3.4 + 1.5 * rng.normal()).rounded()))) : nil
            let value: String? = rng.chance(0.70) ? Self.dealValue(rng: &rng) : nil
            let tags = Self.tags(rng: &rng)
            let notes = Self.notes(rng: &rng)

            let createdSec = asOfSec - 1 - Int64(rng.below(Synthetic.historyDays * 86_400))
            drawEvents(source: source, createdSec: createdSec, rng: &rng)

            let p = TruthModel.sigmoid(TruthModel.logit(TruthModel.Inputs(
                counts: counts, source: source, hasPhone: phone != nil, freeEmail: freeEmail,
                employees: employees, industry: industry)))

            let ageSec = asOfSec - createdSec
            let status: String
            let label: Int?
            if ageSec > Int64(Synthetic.labelAgeDays * 86_400) {
                if rng.chance(p) {
                    status = "converted"; label = 1
                } else {
                    status = rng.chance(0.85) ? "lost" : "disqualified"; label = 0
                }
            } else {
                // Younger leads are mostly untouched; older ones have had time to be worked.
                let weights = ageSec < 7 * 86_400 ? Self.freshStatus : Self.workedStatus
                status = Vocabulary.recentStatuses[rng.pick(weights)]; label = nil
            }

            return Lead(index: index, id: id, firstName: first, lastName: last, email: email, phone: phone,
                        company: company, companyShown: companyShown, source: source, industry: industry,
                        country: country, employees: employees, value: value, tags: tags, notes: notes,
                        createdSec: createdSec, freeEmail: freeEmail, status: status, probability: p, label: label)
        }

        private static let formValues = [0, 10, 25, 50, 100]
        private static let freshStatus = WeightedTable([70, 25, 5])
        private static let workedStatus = WeightedTable([30, 45, 25])

        /// Fills `pending` (time-ordered, strictly increasing, all within the window) and `counts`.
        private mutating func drawEvents(source: Int, createdSec: Int64, rng: inout Xoshiro256StarStar) {
            pending.removeAll(keepingCapacity: true)
            for i in counts.indices { counts[i] = 0 }

            let createdMs = createdSec * 1000
            let windowMs = Int64(Synthetic.eventWindowDays) * 86_400_000
            let endMs = min(asOfSec * 1000, createdMs + windowMs)  // exclusive

            let tier = rng.pick(Engagement.tierBySource[source])
            // Mean-preserving lognormal jitter so leads within a tier differ too.
            let lambda = Engagement.meanEvents[tier] * exp(0.6 * rng.normal() - 0.18)
            let mix = source == 5 ? Engagement.webinarMixTables[tier] : Engagement.mixTables[tier]
            let n = rng.poisson(lambda)
            for _ in 0..<n {
                let kind = EventKind(rawValue: rng.pick(mix)) ?? .emailOpened
                // Front-loaded: interest is highest right after the lead appears.
                let offset = Int64(pow(rng.uniform(), 1.6) * Double(windowMs))
                pending.append(PendingEvent(millis: createdMs + offset, kind: kind))
            }
            if rng.chance(Engagement.unsubscribeChance[tier]) {
                pending.append(PendingEvent(millis: createdMs + Int64(rng.uniform() * Double(windowMs)), kind: .unsubscribed))
            }
            if rng.chance(0.30) {
                pending.append(PendingEvent(millis: createdMs + Int64(rng.uniform() * 7 * 86_400_000), kind: .identify))
            }

            pending.removeAll { $0.millis >= endMs }
            pending.sort { $0.millis < $1.millis }
            // Strictly increasing timestamps: no two messages of a lead can ever be content-identical,
            // so content-hash dedup of messageId-less events never merges distinct events.
            for i in pending.indices.dropFirst() where pending[i].millis <= pending[i - 1].millis {
                pending[i].millis = pending[i - 1].millis + 1
            }
            while let lastEvent = pending.last, lastEvent.millis >= endMs { pending.removeLast() }

            for e in pending where e.kind.rawValue < EventKind.countableCount { counts[e.kind.rawValue] += 1 }
        }

        /// Returns the number of messages written.
        func writeEvents(of lead: Lead, to out: inout ByteSink, rng: inout Xoshiro256StarStar) -> Int {
            for (ordinal, e) in pending.enumerated() {
                out.literal("{\"type\":")
                switch e.kind {
                case .identify:
                    out.literal("\"identify\"")
                case let k where k.isPage:
                    out.literal("\"page\",\"name\":"); out.jsonString(k.pageName)
                default:
                    out.literal("\"track\",\"event\":"); out.jsonString(e.kind.typeName)
                }
                out.literal(",\"userId\":\""); out.raw(lead.id); out.byte(UInt8(ascii: "\""))
                if !rng.chance(0.05) {
                    out.literal(",\"messageId\":\"")
                    writeMessageId(lead: lead.index, ordinal: ordinal, &out)
                    out.byte(UInt8(ascii: "\""))
                }
                out.literal(",\"timestamp\":\"")
                out.isoTimestamp(epochMillis: e.millis, milliseconds: true)
                out.byte(UInt8(ascii: "\""))
                writePayload(e.kind, lead: lead, &out, rng: &rng)
                if rng.chance(0.10) {
                    let (src, medium) = Self.campaign(source: lead.source)
                    out.literal(",\"context\":{\"campaign\":{\"source\":\""); out.raw(src)
                    out.literal("\",\"medium\":\""); out.raw(medium)
                    out.literal("\"}}")
                }
                out.literal("}\n")
            }
            return pending.count
        }

        /// UUID-shaped and unique: the low 64 bits are a bijective mix of (lead, ordinal), the high bits
        /// fold in the seed so different seeds give different ids.
        private func writeMessageId(lead: Int, ordinal: Int, _ out: inout ByteSink) {
            let lo = SplitMix64.mix(UInt64(lead) << 24 | UInt64(ordinal & 0xFF_FFFF))
            let hi = SplitMix64.mix(lo ^ streamKey)
            out.hex(hi >> 32, digits: 8); out.byte(UInt8(ascii: "-"))
            out.hex(hi >> 16, digits: 4); out.byte(UInt8(ascii: "-"))
            out.hex(hi, digits: 4); out.byte(UInt8(ascii: "-"))
            out.hex(lo >> 48, digits: 4); out.byte(UInt8(ascii: "-"))
            out.hex(lo, digits: 12)
        }

        private func writePayload(_ kind: EventKind, lead: Lead, _ out: inout ByteSink, rng: inout Xoshiro256StarStar) {
            switch kind {
            case .identify:
                out.literal(",\"traits\":{\"email\":"); out.jsonString(lead.email)
                out.literal(",\"firstName\":"); out.jsonString(lead.firstName.text)
                out.literal(",\"lastName\":"); out.jsonString(lead.lastName.text)
                if lead.companyShown { out.literal(",\"company\":"); out.jsonString(lead.company) }
                out.literal(",\"plan_interest\":\"")
                out.raw(Vocabulary.planInterests[rng.pick(Vocabulary.planInterestWeights)])
                out.literal("\"}")
                return
            case let k where k.isPage:
                out.literal(",\"properties\":{\"path\":\""); out.raw(k.pagePath)
                out.literal("\",\"url\":\""); out.raw(Vocabulary.siteBase); out.raw(k.pagePath)
                out.literal("\"}")
                return
            default:
                break
            }
            out.literal(",\"properties\":{")
            switch kind {
            case .emailOpened:
                out.literal("\"campaign_id\":\""); out.raw(rng.pick(Vocabulary.emailCampaigns)); out.literal("\"")
            case .emailClicked:
                out.literal("\"campaign_id\":\""); out.raw(rng.pick(Vocabulary.emailCampaigns))
                out.literal("\",\"link_url\":\""); out.raw(Vocabulary.siteBase)
                out.raw(rng.chance(0.5) ? "/pricing" : "/blog"); out.literal("\"")
            case .formSubmitted:
                out.literal("\"form_id\":\""); out.raw(rng.pick(Vocabulary.forms))
                out.literal("\",\"value\":"); out.int(rng.pick(Self.formValues))
            case .demoRequested:
                out.literal("\"form_id\":\"demo\",\"seats\":"); out.int(rng.between(1, 200))
            case .webinarAttended:
                out.literal("\"webinar_id\":\""); out.raw(rng.pick(Vocabulary.webinars))
                out.literal("\",\"duration_minutes\":"); out.int(rng.between(5, 60))
            case .contentDownloaded:
                out.literal("\"asset\":\""); out.raw(rng.pick(Vocabulary.assets))
                out.literal("\",\"value\":"); out.double(Double(rng.between(1, 40)) * 2.5)
            case .unsubscribed:
                out.literal("\"list\":\""); out.raw(rng.chance(0.7) ? "newsletter" : "product_updates"); out.literal("\"")
            default:
                break
            }
            out.byte(UInt8(ascii: "}"))
        }

        private static func campaign(source: Int) -> (String, String) {
            switch Vocabulary.sources[source] {
            case "google_ads": ("google", "cpc")
            case "facebook": ("facebook", "paid_social")
            case "linkedin": ("linkedin", "paid_social")
            case "partner", "referral": ("partner", "referral")
            default: ("newsletter", "email")
            }
        }

        // MARK: CSV field generators

        /// (display name, domain stem). Some names need CSV quoting: commas, embedded quotes.
        private static func company(rng: inout Xoshiro256StarStar) -> (String, String) {
            let r = rng.uniform()
            if r < 0.06 {
                let a = rng.pick(Vocabulary.lastNames), b = rng.pick(Vocabulary.lastNames)
                return ("\(a.text), \(b.text) & Co", a.slug + b.slug)
            }
            let noun = rng.pick(Vocabulary.companyNouns)
            if r < 0.09 {
                let adj = rng.pick(Vocabulary.companyAdjectives)
                return ("\"\(adj.text)\" \(noun.text)", adj.slug + noun.slug)
            }
            let head = r < 0.25 ? rng.pick(Vocabulary.lastNames) : rng.pick(Vocabulary.companyAdjectives)
            return (head.text + " " + noun.text + rng.pick(Vocabulary.companySuffixes), head.slug + noun.slug)
        }

        private static func phone(country: Int, rng: inout Xoshiro256StarStar) -> String {
            if country != 0 && country != 4 && rng.chance(0.5) {
                return "\(Vocabulary.countryDialCodes[country]) \(rng.between(10, 99)) \(rng.between(1000, 9999)) \(rng.between(1000, 9999))"
            }
            let area = rng.between(201, 989), exchange = rng.between(200, 999), line = rng.between(1000, 9999)
            switch rng.below(4) {
            case 0: return "+1 (\(area)) \(exchange)-\(line)"
            case 1: return "\(area).\(exchange).\(line)"
            case 2: return "\(area)\(exchange)\(line)"
            default: return "(\(area)) \(exchange)-\(line)"
            }
        }

        private static func dealValue(rng: inout Xoshiro256StarStar) -> String {
            let amount = exp(8.5 + rng.normal())  // median ≈ 4,900
            if rng.chance(0.5) { return String(Int((amount / 100).rounded()) * 100) }
            let cents = Int((amount * 100).rounded())
            let c = cents % 100
            return "\(cents / 100).\(c < 10 ? "0" : "")\(c)"
        }

        private static func tags(rng: inout Xoshiro256StarStar) -> String {
            let r = rng.uniform()
            if r < 0.5 { return "" }
            let a = rng.below(Vocabulary.tags.count)
            if r < 0.85 { return Vocabulary.tags[a] }
            let b = (a + 1 + rng.below(Vocabulary.tags.count - 1)) % Vocabulary.tags.count
            // Occasionally a comma list, which forces CSV quoting.
            let separator = rng.chance(0.15) ? "," : ";"
            return Vocabulary.tags[a] + separator + Vocabulary.tags[b]
        }

        private static func notes(rng: inout Xoshiro256StarStar) -> String {
            let r = rng.uniform()
            if r < 0.85 { return "" }
            if r < 0.99 { return rng.pick(Vocabulary.notes) }
            return rng.pick(Vocabulary.multilineNotes)
        }
    }
}
