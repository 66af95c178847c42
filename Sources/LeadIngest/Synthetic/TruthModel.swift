import Foundation

extension Synthetic {
    /// What a lead can do in the event stream. The first twelve are the countable event types a scoring
    /// engine sees after ingestion (pages become "Viewed <Name> Page"); identify only carries traits.
    enum EventKind: Int, CaseIterable, Sendable {
        case emailOpened, emailClicked, formSubmitted, demoRequested, webinarAttended, contentDownloaded, unsubscribed
        case viewedHome, viewedPricing, viewedBlog, viewedDocs, viewedCaseStudies
        case identify

        static let countableCount = 12

        /// The ingested event-type name, i.e. what the feature `count:<name>` counts.
        var typeName: String {
            switch self {
            case .emailOpened: "Email Opened"
            case .emailClicked: "Email Clicked"
            case .formSubmitted: "Form Submitted"
            case .demoRequested: "Demo Requested"
            case .webinarAttended: "Webinar Attended"
            case .contentDownloaded: "Content Downloaded"
            case .unsubscribed: "Unsubscribed"
            case .viewedHome, .viewedPricing, .viewedBlog, .viewedDocs, .viewedCaseStudies: "Viewed \(pageName) Page"
            case .identify: "identify"
            }
        }

        var isPage: Bool { rawValue >= EventKind.viewedHome.rawValue && self != .identify }

        /// Segment `page` name (only meaningful for page kinds).
        var pageName: String {
            switch self {
            case .viewedHome: "Home"
            case .viewedPricing: "Pricing"
            case .viewedBlog: "Blog"
            case .viewedDocs: "Docs"
            case .viewedCaseStudies: "Case Studies"
            default: ""
            }
        }

        var pagePath: String {
            switch self {
            case .viewedHome: "/"
            case .viewedPricing: "/pricing"
            case .viewedBlog: "/blog"
            case .viewedDocs: "/docs"
            case .viewedCaseStudies: "/case-studies"
            default: ""
            }
        }
    }

    /// The known logistic model the outcomes are drawn from. Every input is computable from the ingested
    /// data (event counts per type, CSV columns), so a well-specified scoring model can approach it.
    enum TruthModel {
        enum Term: Sendable {
            case eventCount(EventKind)  // log1p(count of that event type for the lead)
            case source(Int)            // 1 if Lead Source == Vocabulary.sources[i]
            case hasPhone               // 1 if Phone Number is non-blank
            case freeEmail              // 1 if the e-mail domain is in Vocabulary.freeMailDomains
            case employees              // log1p(Employees), blank imputed as `employeesMissingValue`
            case industry(Int)          // 1 if Industry == Vocabulary.industries[i]
        }

        struct Coefficient: Sendable {
            let term: Term
            let weight: Double
        }

        /// A blank Employees cell counts as 0 employees, i.e. contributes log1p(0) = 0.
        static let employeesMissingValue = 0

        // Tuned so that ~20% of labeled leads convert and the ground truth's own AUC is ~0.84.
        static let intercept = -3.3

        static let coefficients: [Coefficient] = {
            let eventWeights: [(EventKind, Double)] = [
                (.emailOpened, 0.06), (.emailClicked, 0.20), (.formSubmitted, 0.35), (.demoRequested, 1.05),
                (.webinarAttended, 0.30), (.contentDownloaded, 0.15), (.unsubscribed, -1.20),
                (.viewedHome, 0.03), (.viewedPricing, 0.70), (.viewedBlog, 0.00), (.viewedDocs, 0.20),
                (.viewedCaseStudies, 0.30),
            ]
            // Aligned with Vocabulary.sources; the baseline ("organic") is left out.
            let sourceWeights: [String: Double] = [
                "google_ads": -0.15, "facebook": -0.40, "linkedin": 0.15, "referral": 0.60,
                "webinar": 0.25, "event": 0.20, "partner": 0.45,
            ]
            let industryWeights: [String: Double] = [
                "software": 0.25, "finance": 0.20, "healthcare": 0.05, "retail": -0.15,
                "manufacturing": 0.00, "education": -0.25,
            ]
            var list = eventWeights.map { Coefficient(term: .eventCount($0.0), weight: $0.1) }
            for (i, s) in Vocabulary.sources.enumerated() where s != Vocabulary.baselineSource {
                list.append(Coefficient(term: .source(i), weight: sourceWeights[s] ?? 0))
            }
            list.append(Coefficient(term: .hasPhone, weight: 0.35))
            list.append(Coefficient(term: .freeEmail, weight: -0.45))
            list.append(Coefficient(term: .employees, weight: 0.10))
            for (i, s) in Vocabulary.industries.enumerated() where s != Vocabulary.baselineIndustry {
                list.append(Coefficient(term: .industry(i), weight: industryWeights[s] ?? 0))
            }
            return list
        }()

        /// Feature name as written to ground_truth.json.
        static func featureName(_ term: Term) -> String {
            switch term {
            case .eventCount(let k): "count:\(k.typeName)"
            case .source(let i): "source:\(Vocabulary.sources[i])"
            case .hasPhone: "has_phone"
            case .freeEmail: "free_email_domain"
            case .employees: "employees"
            case .industry(let i): "industry:\(Vocabulary.industries[i])"
            }
        }

        static func transformName(_ term: Term) -> String {
            switch term {
            case .eventCount, .employees: "log1p"
            case .source, .hasPhone, .freeEmail, .industry: "indicator"
            }
        }

        /// The lead-level inputs of the model.
        struct Inputs {
            var counts: [Int]  // indexed by EventKind.rawValue, at least `countableCount` long
            var source: Int
            var hasPhone: Bool
            var freeEmail: Bool
            var employees: Int?
            var industry: Int
        }

        /// intercept + Σ weight × transformed feature, summed in `coefficients` order (so anyone replaying
        /// ground_truth.json in file order gets the identical double).
        static func logit(_ x: Inputs) -> Double {
            var z = intercept
            for c in coefficients {
                let value: Double
                switch c.term {
                case .eventCount(let k): value = log1p(Double(x.counts[k.rawValue]))
                case .source(let i): value = x.source == i ? 1 : 0
                case .hasPhone: value = x.hasPhone ? 1 : 0
                case .freeEmail: value = x.freeEmail ? 1 : 0
                case .employees: value = log1p(Double(x.employees ?? employeesMissingValue))
                case .industry(let i): value = x.industry == i ? 1 : 0
                }
                z += c.weight * value
            }
            return z
        }

        static func sigmoid(_ z: Double) -> Double { 1.0 / (1.0 + exp(-z)) }

        /// String-keyed convenience for tests and tooling that recompute the truth from the written files.
        /// `eventCounts` is keyed by ingested type name ("Demo Requested", "Viewed Pricing Page", ...).
        static func probability(
            eventCounts: [String: Int], source: String, hasPhone: Bool, freeEmail: Bool, employees: Int?, industry: String
        ) -> Double? {
            guard let s = Vocabulary.sources.firstIndex(of: source),
                  let ind = Vocabulary.industries.firstIndex(of: industry) else { return nil }
            var counts = [Int](repeating: 0, count: EventKind.countableCount)
            for k in EventKind.allCases where k.rawValue < EventKind.countableCount {
                counts[k.rawValue] = eventCounts[k.typeName] ?? 0
            }
            return sigmoid(logit(Inputs(counts: counts, source: s, hasPhone: hasPhone, freeEmail: freeEmail,
                                        employees: employees, industry: ind)))
        }
    }
}
