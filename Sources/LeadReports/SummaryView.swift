import Foundation
import LeadScoring
import LeadStore

/// What summary.mustache renders: every number already formatted, every chart already laid out
/// as coordinates. The template only places values; Mustache's {{ }} escapes each of them, so a
/// lead called `<script>` shows as text, in tables and in SVG labels alike.
struct SummaryView {
    struct Card { var key: String; var label: String; var value: String; var note: String }
    struct Gridline { var y: String; var label: String }
    struct Bar { var x: String; var y: String; var width: String; var height: String; var tooltip: String }
    struct AxisLabel { var x: String; var label: String }
    struct Point { var x: String; var y: String; var radius: String; var tooltip: String }

    struct DailyChart {
        var width = 760, height = 220
        var plotLeft = "48", plotRight = "748", baseline = "186", labelY = "206"
        var gridlines: [Gridline]
        var bars: [Bar]
        var xLabels: [AxisLabel]
        var caption: String
    }

    struct FunnelRow { var status: String; var count: String; var share: String; var barWidth: String; var averageScore: String; var isConverted: Bool }

    struct HistogramChart {
        var width = 560, height = 240
        var gridlines: [Gridline]
        var rateGridlines: [Gridline]
        var bars: [Bar]
        var xLabels: [AxisLabel]
        var ratePoints: [Point]
        var ratePath: String
    }

    struct SourceRow { var source: String; var isUnknown: Bool; var leads: String; var converted: String; var conversionRate: String; var averageScore: String; var expected: String }

    struct Factor { var text: String; var raises: Bool; var weight: String }
    struct LeadRow {
        var rank: Int
        var id: String
        var name: String
        var email: String
        var company: String
        var source: String
        var status: String
        var score: String
        var scoreWidth: String
        var created: String
        var factors: [Factor]
    }

    struct CalibrationChart {
        var size = 260
        var gridlines: [Gridline]
        var xLabels: [AxisLabel]
        var points: [Point]
        var path: String
    }

    struct LiftRow { var decile: Int; var leads: String; var rate: String; var lift: String; var cumulativeLift: String; var barWidth: String }

    struct ModelHealth {
        var version: String
        var trainedAt: String
        var metricsOn: String
        var evaluatedOn: String
        var auc: String
        var aucVerdict: String
        var logLoss: String
        var brier: String
        var calibration: CalibrationChart
        var lift: [LiftRow]
    }

    var title: String
    /// The name, or the dates when it has none.
    var periodLabel: String
    var periodRange: String
    /// Whether the label is a name ("last week"), so the dates are shown beside it.
    var periodIsNamed: Bool
    var generatedAt: String
    var hasData: Bool
    var cards: [Card]
    var daily: DailyChart
    var funnel: [FunnelRow]
    var histogram: HistogramChart
    var hasScores: Bool
    var sources: [SourceRow]
    var topLeads: [LeadRow]
    var hasTopLeads: Bool
    var topLeadsLede: String
    /// Under the source table: expected conversions are eventual, so while many of the period's
    /// leads are still open the converted count cannot have caught up (a week-old cohort shows 0
    /// converted against dozens expected, which read as a broken model).
    var sourcesLede: String
    var storeTotalLeads: String
    var storeHasLeads: Bool
    var model: ModelHealth?
    var database: String
    var reportID: String
    var leadlensVersion: String
    var modelVersion: String
    /// The models the period's stored scores came from; other than the active one until a rescore.
    var scoresFrom: String
    var definitions: [String]

    init(_ snapshot: Reports.Snapshot, reportID: String, database: String, leadlensVersion: String) {
        let stats = snapshot.stats
        let period = snapshot.period
        title = "Lead report"
        periodRange = Format.dateRange(period)
        periodLabel = Format.periodLabel(period)
        periodIsNamed = period.name != nil
        generatedAt = Format.dateTime(snapshot.generatedAt)
        hasData = stats.total > 0
        self.database = database
        self.reportID = reportID
        self.leadlensVersion = leadlensVersion
        modelVersion = snapshot.model?.version ?? "none"
        scoresFrom = snapshot.scoredBy.isEmpty ? "No lead in the period has a score."
            : snapshot.scoredBy.map { "\($0.version) (\(Format.count($0.leads, "lead")))" }.joined(separator: ", ")

        let convertedStatuses = LeadStats.convertedStatuses.sorted().joined(separator: ", ")
        let closed = stats.byStatus.filter { Reports.closedStatuses.contains($0.key) }.values.reduce(0, +)
        let stillOpen = max(0, stats.total - closed)
        sourcesLede = stillOpen == 0
            ? "Largest first. Expected conversions add up the model's probabilities: compare them with the converted count."
            : "Largest first. Expected conversions add up the model's probabilities of converting at all, so they run ahead of "
                + "the converted count while leads are open: \(Format.integer(stillOpen)) of the period's \(Format.count(stats.total, "lead")) "
                + "\(stillOpen == 1 ? "is" : "are") neither converted nor closed yet."
        cards = [
            Card(key: "store_total", label: "Leads in the store", value: Format.integer(snapshot.storeTotal), note: "all time"),
            Card(key: "total", label: "New in the period", value: Format.integer(stats.total), note: periodLabel),
            Card(key: "converted", label: "Converted", value: Format.integer(stats.converted),
                 note: stillOpen == 0 ? "of the new leads" : "of the new leads; \(Format.integer(stillOpen)) still open"),
            Card(key: "conversion_rate", label: "Conversion rate", value: stats.total > 0 ? Format.percent(stats.conversionRate) : "–",
                 note: "converted ÷ new"),
            Card(key: "average_score", label: "Average score", value: stats.averageScore.map { Format.decimal($0, digits: 1) } ?? "–",
                 note: stats.scored == stats.total ? "0–100" : Format.count(stats.scored, "scored lead")),
            Card(key: "expected_conversions", label: "Expected conversions", value: Format.decimal(stats.expectedConversions, digits: 1),
                 note: "sum of predicted probabilities"),
        ]
        daily = Self.dailyChart(stats.daily)
        funnel = Self.funnel(stats)
        histogram = Self.histogram(stats.scoreHistogram)
        hasScores = stats.scored > 0
        sources = stats.bySource.map { row in
            SourceRow(source: row.source ?? "(no source)", isUnknown: row.source == nil, leads: Format.integer(row.count),
                      converted: Format.integer(row.converted), conversionRate: Format.percent(row.conversionRate),
                      averageScore: row.averageScore.map { Format.decimal($0, digits: 1) } ?? "–",
                      expected: Format.decimal(row.expectedConversions, digits: 1))
        }
        topLeads = snapshot.topLeads.enumerated().map { index, top in Self.leadRow(rank: index + 1, top) }
        hasTopLeads = !topLeads.isEmpty
        let one = topLeads.count == 1
        topLeadsLede = "The period's \(Format.count(topLeads.count, "highest-scoring lead")) that \(one ? "is" : "are") neither converted "
            + "nor lost, with what moved \(one ? "its" : "their") score most"
        storeTotalLeads = Format.count(snapshot.storeTotal, "lead")
        storeHasLeads = snapshot.storeTotal > 0
        model = snapshot.model.map(Self.modelHealth)
        definitions = [
            period.hasLocalDates
                ? "A lead is in the period when it was created in it; the period's dates are \(period.timeZone.identifier)'s, other times and days UTC."
                : "A lead is in the period when it was created in it; times and days are UTC.",
            "Converted means status \(convertedStatuses); open leads are those not converted, lost, closed, disqualified or unqualified.",
            "Expected conversions add up each lead's predicted probability of converting.",
        ]
    }

    // MARK: - Charts

    /// The UTC day number of "YYYY-MM-DD".
    static func dayNumber(_ date: String) -> Int64? {
        let parts = date.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        return Civil.days(year: parts[0], month: parts[1], day: parts[2])
    }

    static func dailyChart(_ days: [LeadStats.Day]) -> DailyChart {
        // More than ~120 bars get too thin to read, on paper above all: group days into weeks,
        // or 30-day blocks past ~2 years.
        let groupSize = days.count <= 120 ? 1 : days.count <= 840 ? 7 : 30
        var starts = Array(stride(from: 0, to: days.count, by: groupSize))
        if groupSize == 7, let first = days.first.flatMap({ Self.dayNumber($0.date) }) {
            // Weeks run Monday to Sunday, as a reader counts them: a partial first week, then
            // whole ones. Day 0 (1970-01-01) was a Thursday.
            let toMonday = Int(Civil.floorMod(-(first + 3), 7))
            starts = [0] + Array(stride(from: toMonday == 0 ? 7 : toMonday, to: days.count, by: 7))
        }
        let groups: [(label: String, first: String, count: Int)] = starts.enumerated().map { index, start in
            let slice = days[start..<(index + 1 < starts.count ? starts[index + 1] : days.count)]
            let label = slice.count == 1 ? slice.first!.date : "\(slice.first!.date) – \(slice.last!.date)"
            return (label, slice.first!.date, slice.reduce(0) { $0 + $1.new })
        }
        let (left, right, top, bottom) = (48.0, 748.0, 12.0, 186.0)
        let axis = NiceAxis(maximum: Double(groups.map(\.count).max() ?? 0))
        let slot = groups.isEmpty ? 0 : (right - left) / Double(groups.count)
        let gap = slot > 6 ? max(1, slot * 0.2) : 0
        let bars = groups.enumerated().map { index, group in
            let height = axis.maximum > 0 ? Double(group.count) / axis.maximum * (bottom - top) : 0
            return Bar(x: Format.coordinate(left + Double(index) * slot + gap / 2), y: Format.coordinate(bottom - height),
                       width: Format.coordinate(max(slot - gap, 0.5)), height: Format.coordinate(height),
                       tooltip: "\(group.label): \(Format.integer(group.count)) new")
        }
        // About six date labels, on the first day of evenly spaced groups.
        let labelEvery = max(1, Int((Double(groups.count) / 6).rounded(.up)))
        let xLabels = stride(from: 0, to: groups.count, by: labelEvery).map { index in
            AxisLabel(x: Format.coordinate(left + (Double(index) + 0.5) * slot), label: Format.shortDate(groups[index].first))
        }
        let gridlines = axis.ticks.map { tick in
            Gridline(y: Format.coordinate(bottom - tick / max(axis.maximum, 1) * (bottom - top)), label: Format.integer(Int(tick)))
        }
        let caption = groupSize == 1 ? "New leads per day (UTC)" : "New leads per \(groupSize == 7 ? "week" : "30 days") (UTC)"
        return DailyChart(gridlines: gridlines, bars: bars, xLabels: xLabels, caption: caption)
    }

    static func funnel(_ stats: LeadStats) -> [FunnelRow] {
        let largest = stats.byStatus.values.max() ?? 0
        return Reports.pipelineOrder(stats.byStatus.keys).map { status in
            let count = stats.byStatus[status] ?? 0
            return FunnelRow(
                status: status, count: Format.integer(count),
                share: Format.percent(stats.total > 0 ? Double(count) / Double(stats.total) : 0),
                barWidth: Format.coordinate(largest > 0 ? 100 * Double(count) / Double(largest) : 0),
                averageScore: stats.averageScoreByStatus[status].map { Format.decimal($0, digits: 1) } ?? "–",
                isConverted: LeadStats.convertedStatuses.contains(status))
        }
    }

    static func histogram(_ buckets: [LeadStats.Bucket]) -> HistogramChart {
        let (left, right, top, bottom) = (52.0, 508.0, 12.0, 200.0)
        let axis = NiceAxis(maximum: Double(buckets.map(\.count).max() ?? 0))
        let slot = (right - left) / Double(max(buckets.count, 1))
        var bars: [Bar] = []
        var points: [Point] = []
        for (index, bucket) in buckets.enumerated() {
            let height = axis.maximum > 0 ? Double(bucket.count) / axis.maximum * (bottom - top) : 0
            let x = left + Double(index) * slot
            bars.append(Bar(x: Format.coordinate(x + 3), y: Format.coordinate(bottom - height), width: Format.coordinate(slot - 6),
                            height: Format.coordinate(height),
                            tooltip: "Score \(bucket.min)–\(bucket.max): \(Format.count(bucket.count, "lead"))"
                                + (bucket.count > 0 ? ", \(Format.percent(bucket.conversionRate)) converted" : "")))
            // No rate for an empty bucket: 0 % would be a claim the data does not make.
            if bucket.count > 0 {
                points.append(Point(x: Format.coordinate(x + slot / 2), y: Format.coordinate(bottom - bucket.conversionRate * (bottom - top)),
                                    radius: "3.5", tooltip: "Score \(bucket.min)–\(bucket.max): \(Format.percent(bucket.conversionRate)) converted"))
            }
        }
        let xLabels = buckets.enumerated().map { index, bucket in
            AxisLabel(x: Format.coordinate(left + (Double(index) + 0.5) * slot), label: "\(bucket.min)–\(bucket.max)")
        }
        let gridlines = axis.ticks.map { tick in
            Gridline(y: Format.coordinate(bottom - tick / max(axis.maximum, 1) * (bottom - top)), label: Format.integer(Int(tick)))
        }
        let rateGridlines = stride(from: 0.0, through: 1.0, by: 0.25).map { rate in
            Gridline(y: Format.coordinate(bottom - rate * (bottom - top)), label: Format.percent(rate, digits: 0))
        }
        return HistogramChart(gridlines: gridlines, rateGridlines: rateGridlines, bars: bars, xLabels: xLabels,
                              ratePoints: points, ratePath: polyline(points))
    }

    static func polyline(_ points: [Point]) -> String {
        points.enumerated().map { index, point in "\(index == 0 ? "M" : "L")\(point.x) \(point.y)" }.joined(separator: " ")
    }

    // MARK: - Leads

    static func leadRow(rank: Int, _ top: Reports.TopLead) -> LeadRow {
        let lead = top.lead
        let fullName = [lead.firstName, lead.lastName].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        let name = !fullName.isEmpty ? fullName : (lead.email ?? lead.externalID ?? "lead \(lead.id)")
        return LeadRow(
            rank: rank, id: lead.externalID ?? String(lead.id), name: name,
            email: fullName.isEmpty ? "" : (lead.email ?? ""), company: lead.company ?? "", source: lead.source ?? "–",
            status: lead.status, score: lead.score.map(String.init) ?? "–", scoreWidth: String(lead.score ?? 0),
            created: LeadStats.dayString(Civil.floorDiv(lead.createdAt, Reports.dayMillis)),
            factors: top.factors.map { factor in
                Factor(text: FactorLabel.describe(factor), raises: factor.contribution >= 0,
                       weight: (factor.contribution >= 0 ? "+" : "−") + Format.decimal(abs(factor.contribution), digits: 2))
            })
    }

    // MARK: - Model

    static func modelHealth(_ model: ScoringModel) -> ModelHealth {
        let metrics = model.metrics
        let size = 260.0, margin = 34.0
        let span = size - 2 * margin
        func position(_ value: Double) -> Double { margin + value * span }
        let points = metrics.calibration.compactMap { bin -> Point? in
            guard bin.count > 0, let predicted = bin.meanPredicted, let observed = bin.observedRate else { return nil }
            let share = Double(bin.count) / Double(max(metrics.rows, 1))
            return Point(x: Format.coordinate(position(predicted)), y: Format.coordinate(size - position(observed)),
                         radius: Format.coordinate(2.5 + 5 * share.squareRoot()),
                         tooltip: "predicted \(Format.percent(predicted)), observed \(Format.percent(observed)) (\(Format.count(bin.count, "lead")))")
        }
        let ticks = stride(from: 0.0, through: 1.0, by: 0.25)
        let largestLift = metrics.lift.map(\.lift).max() ?? 0
        let auc = metrics.auc
        return ModelHealth(
            version: model.version, trainedAt: Format.dateTime(model.createdAt),
            metricsOn: model.metricsOn,
            evaluatedOn: model.metricsOn == "holdout"
                ? "\(Format.count(metrics.rows, "held-out lead")) the model never trained on"
                : "the \(Format.integer(metrics.rows)) training leads themselves (trained without a holdout: optimistic)",
            auc: auc.map { Format.decimal($0, digits: 3) } ?? "–",
            aucVerdict: auc.map { value in
                switch value {
                case 0.9...: "excellent ranking"
                case 0.8..<0.9: "good ranking"
                case 0.7..<0.8: "fair ranking"
                case 0.6..<0.7: "weak ranking"
                default: "barely better than chance"
                }
            } ?? "not measurable",
            logLoss: Format.decimal(metrics.logLoss, digits: 3), brier: Format.decimal(metrics.brier, digits: 3),
            calibration: CalibrationChart(
                gridlines: ticks.map { Gridline(y: Format.coordinate(size - position($0)), label: Format.percent($0, digits: 0)) },
                xLabels: ticks.map { AxisLabel(x: Format.coordinate(position($0)), label: Format.percent($0, digits: 0)) },
                points: points, path: polyline(points)),
            lift: metrics.lift.map { decile in
                LiftRow(decile: decile.decile, leads: Format.integer(decile.count), rate: Format.percent(decile.rate),
                        lift: Format.decimal(decile.lift, digits: 2) + "×", cumulativeLift: Format.decimal(decile.cumulativeLift, digits: 2) + "×",
                        barWidth: Format.coordinate(largestLift > 0 ? 100 * decile.lift / largestLift : 0))
            })
    }
}

/// Round gridline steps (1, 2, 5 × 10ⁿ) for a count axis from 0.
struct NiceAxis {
    var maximum: Double
    var ticks: [Double]

    init(maximum value: Double) {
        guard value > 0 else {
            maximum = 1
            ticks = [0]
            return
        }
        let rough = value / 4
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        let step1 = max(step, 1)
        maximum = (value / step1).rounded(.up) * step1
        ticks = stride(from: 0.0, through: maximum + step1 / 2, by: step1).map { $0 }
    }
}

/// A model column and its value as a sales manager would say it.
enum FactorLabel {
    static func describe(_ factor: Explanation.Contribution) -> String {
        let name = factor.feature
        let value = factor.value
        let isZero = (value ?? 0) == 0
        func amount(_ v: Double?) -> String { v.map { Format.number($0) } ?? "unknown" }
        if name.hasPrefix("count:") {
            let event = name.dropFirst(6)
            return isZero ? "No \(event)" : "\(event) ×\(amount(value))"
        }
        if name.hasPrefix("count_"), let colon = name.firstIndex(of: ":") {
            let days = name[name.index(name.startIndex, offsetBy: 6)..<colon].dropLast()  // "30d" → "30"
            let event = name[name.index(after: colon)...]
            return isZero ? "No \(event) in \(days) days" : "\(event) ×\(amount(value)) in \(days) days"
        }
        if name == "days_since_activity" { return "Last activity \(amount(value)) days ago" }
        if name.hasPrefix("days_since:") { return "\(name.dropFirst(11)) \(amount(value)) days ago" }
        if name == "lead_age_days" { return "Lead age \(amount(value)) days" }
        if name == "free_email_domain" { return isZero ? "Business email address" : "Free email address" }
        if name.hasPrefix("has:") { return isZero ? "No \(name.dropFirst(4))" : "Has \(name.dropFirst(4))" }
        if let equals = name.firstIndex(of: "=") {
            let field = name[..<equals].capitalized
            var category = String(name[name.index(after: equals)...])
            if category == "(other)" { category = "other" }
            return isZero ? "\(field) not \(category)" : "\(field): \(category)"
        }
        return factor.imputed ? "\(name): unknown" : "\(name): \(amount(value))"
    }
}

/// Number and date formats: fixed, locale-free (a report reads the same wherever it is made).
enum Format {
    /// "1 lead", "1,200 leads".
    static func count(_ value: Int, _ noun: String) -> String {
        "\(integer(value)) \(noun)\(value == 1 ? "" : "s")"
    }

    static func integer(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return value < 0 ? "−" + out : out
    }

    static func decimal(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "–" }
        // Past 10^15 the integer arithmetic below would overflow; no count of leads gets there.
        guard abs(value) < 1e15 else { return String(format: "%.3g", value) }
        let scaled = (abs(value) * pow(10, Double(digits))).rounded()
        let whole = Int(scaled / pow(10, Double(digits)))
        let fraction = Int(scaled) - whole * Int(pow(10, Double(digits)))
        var text = integer(whole)
        if digits > 0 {
            let f = String(fraction)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return value < 0 && scaled > 0 ? "−" + text : text
    }

    static func percent(_ rate: Double, digits: Int = 1) -> String {
        decimal(rate * 100, digits: digits) + "%"
    }

    /// A count as a count, anything else with one decimal.
    static func number(_ value: Double) -> String {
        // Counts come back through expm1(log1p(n)), a few ulps off n: still a count.
        let whole = value.rounded()
        return abs(value - whole) < 1e-6 && abs(value) < 1e12 ? integer(Int(whole)) : decimal(value, digits: 1)
    }

    static func coordinate(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    static func dateTime(_ date: Date) -> String {
        let iso = Reports.isoTimestamp(millis: Reports.millis(date))
        return iso.prefix(10) + " " + iso.dropFirst(11).prefix(5) + " UTC"
    }

    static let monthAbbreviations = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// "2026-03-05" → "5 Mar".
    static func shortDate(_ day: String) -> String {
        let parts = day.split(separator: "-")
        guard parts.count == 3, let month = Int(parts[1]), let dayOfMonth = Int(parts[2]), (1...12).contains(month) else { return day }
        return "\(dayOfMonth) \(monthAbbreviations[month - 1])"
    }

    /// "1 Mar 2026 – 30 Mar 2026", the until day inclusive; "…, Asia/Tokyo" when the zone's
    /// dates are not UTC's.
    static func dateRange(_ period: Reports.Period) -> String {
        func long(_ day: Int64) -> String {
            let (y, m, d) = Civil.date(fromDays: day)
            return "\(d) \(monthAbbreviations[m - 1]) \(y)"
        }
        let (first, last) = (period.firstLocalDay, period.lastLocalDay)
        let range = first == last ? long(first) : "\(long(first)) – \(long(last))"
        return period.hasLocalDates ? "\(range), \(period.timeZone.identifier)" : range
    }

    static func periodLabel(_ period: Reports.Period) -> String {
        period.name ?? dateRange(period)
    }
}
