import Foundation

// Word lists and fixed categorical tables for the synthetic generator. Order matters: indices are
// drawn from the PRNG, so reordering or editing any list changes the output for a given seed.
extension Synthetic {
    enum Vocabulary {
        /// A display name plus its lowercase ASCII form for e-mail addresses and domains.
        struct Word: Sendable {
            let text: String
            let slug: String
            init(_ text: String) {
                self.text = text
                self.slug = Vocabulary.slug(text)
            }
        }

        // A few non-ASCII and punctuated names on purpose, to exercise UTF-8 and the slugging.
        static let firstNames: [Word] = [
            "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
            "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
            "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley",
            "Priya", "Arjun", "Wei", "Mei", "Yuki", "Hiroshi", "Fatima", "Omar", "Lucas", "Sofia", "Mateo",
            "Camila", "Noah", "Emma", "Liam", "Olivia", "Ethan", "Chloé", "José", "Zoë", "Søren", "Anne-Marie",
            "Björn", "Ingrid", "Kwame", "Amara", "Raj", "Ananya", "Pierre", "Amélie", "Hans", "Greta",
        ].map(Word.init)

        static let lastNames: [Word] = [
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
            "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
            "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
            "Patel", "Sharma", "Chen", "Wang", "Nguyen", "Kim", "Tanaka", "Sato", "Müller", "Schmidt",
            "Dubois", "Lefèvre", "O'Brien", "O'Connor", "MacDonald", "Da Silva", "Santos", "Okafor",
            "Mensah", "Kowalski", "Novak", "Johansson", "Nielsen", "Rossi", "Bianchi", "Van der Berg",
            "Singh", "Khan", "Ali", "Cohen", "Murphy", "Kelly",
        ].map(Word.init)

        static let companyAdjectives: [Word] = [
            "Acme", "Northwind", "Bluebird", "Summit", "Pinnacle", "Evergreen", "Silverline", "Redwood",
            "Brightpath", "Ironclad", "Clearwater", "Quantum", "Nimbus", "Granite", "Horizon", "Keystone",
            "Lighthouse", "Meridian", "Orbit", "Polar", "Riverbend", "Sterling", "Tidal", "Vertex", "Apex",
            "Cobalt", "Crescent", "Falcon", "Harbor", "Juniper", "Best", "Global", "United", "Prime",
        ].map(Word.init)

        static let companyNouns: [Word] = [
            "Systems", "Analytics", "Labs", "Software", "Solutions", "Health", "Capital", "Logistics",
            "Widgets", "Foods", "Manufacturing", "Networks", "Studios", "Partners", "Retail", "Learning",
            "Dynamics", "Robotics", "Energy", "Media", "Consulting", "Bank", "Clinics", "Outfitters",
        ].map(Word.init)

        static let companySuffixes = ["", "", "", " Inc.", " LLC", " Ltd", " GmbH", " Group", " Corp"]

        static let freeMailDomains = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me"]
        /// gmail dominates real free-mail traffic.
        static let freeMailWeights = WeightedTable([40, 18, 14, 10, 12, 6])

        // Baselines for the logistic ground truth are "organic" (source) and "other" (industry).
        static let sources = ["google_ads", "facebook", "linkedin", "organic", "referral", "webinar", "event", "partner"]
        static let sourceWeights = WeightedTable([22, 12, 12, 20, 10, 10, 7, 7])
        static let baselineSource = "organic"

        static let industries = ["software", "finance", "healthcare", "retail", "manufacturing", "education", "other"]
        static let industryWeights = WeightedTable([25, 12, 12, 12, 12, 10, 17])
        static let baselineIndustry = "other"

        static let countries = ["US", "GB", "DE", "FR", "CA", "AU", "IN", "BR"]
        static let countryWeights = WeightedTable([45, 12, 10, 7, 8, 6, 7, 5])
        static let countryTLDs = [".com", ".co.uk", ".de", ".fr", ".ca", ".com.au", ".in", ".com.br"]
        static let countryDialCodes = ["+1", "+44", "+49", "+33", "+1", "+61", "+91", "+55"]

        static let tags = ["vip", "newsletter", "enterprise", "trial"]

        static let notes = [
            "Met at the booth, interested in the API.",
            "Asked about SSO and audit logs.",
            "Wants a quote for 50 seats, budget approved in Q3.",
            "Said the \"enterprise\" tier looks too expensive.",
            "Referred by an existing customer; warm intro.",
            "Evaluating competitors, decision in two weeks.",
            "No budget this year, follow up next spring.",
            "Downloaded the whitepaper, then went quiet.",
            "Champion is the VP of Sales, not the buyer.",
            "Requested a trial extension, 14 days → 30 days.",
        ]
        static let multilineNotes = [
            "Called twice, no answer.\nPrefers e-mail.",
            "Notes from demo:\n- likes dashboards\n- worried about price, \"maybe later\"",
            "Left voicemail.\nAssistant said to try again Monday.",
        ]

        static let recentStatuses = ["new", "contacted", "qualified"]

        static let planInterests = ["starter", "pro", "enterprise"]
        static let planInterestWeights = WeightedTable([35, 45, 20])

        static let emailCampaigns = (1...24).map { "cmp_" + ($0 < 10 ? "00" : "0") + String($0) }
        static let webinars = ["wb_intro_to_scoring", "wb_pipeline_hygiene", "wb_revops_2026", "wb_ai_for_sdrs"]
        static let assets = ["state-of-leads-2026.pdf", "roi-calculator.xlsx", "buyers-guide.pdf", "case-study-acme.pdf"]
        static let forms = ["contact", "newsletter", "pricing_inquiry"]
        static let siteBase = "https://www.leadlens-demo.example"

        /// Lowercase ASCII letters and digits only, folding the accents used above.
        static func slug(_ text: String) -> String {
            var out = ""
            for ch in text.lowercased() {
                switch ch {
                case "a"..."z", "0"..."9": out.append(ch)
                case "é", "è", "ê", "ë": out.append("e")
                case "á", "à", "â", "ä": out.append("a")
                case "ö", "ø", "ó", "ô": out.append("o")
                case "ü", "ú", "û": out.append("u")
                case "í", "ï": out.append("i")
                case "ç": out.append("c")
                case "ñ": out.append("n")
                default: break  // spaces, apostrophes, hyphens, anything else
                }
            }
            return out
        }
    }
}
