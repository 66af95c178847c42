import Foundation

/// How well a model's probabilities fit held-out outcomes. Definitions follow scikit-learn's
/// `roc_auc_score`, `log_loss` and `brier_score_loss`, so the numbers can be checked against it.
public struct ModelMetrics: Codable, Sendable, Equatable {
    public var rows: Int
    public var positives: Int
    public var auc: Double?
    public var logLoss: Double
    public var brier: Double
    public var calibration: [CalibrationBin]
    public var lift: [LiftDecile]

    enum CodingKeys: String, CodingKey {
        case rows, positives, auc, brier, calibration, lift
        case logLoss = "log_loss"
    }

    /// An undefined AUC (one class) is written as null, not left out: readers of the model file
    /// and the API find every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rows, forKey: .rows)
        try container.encode(positives, forKey: .positives)
        try container.encode(auc, forKey: .auc)
        try container.encode(logLoss, forKey: .logLoss)
        try container.encode(brier, forKey: .brier)
        try container.encode(calibration, forKey: .calibration)
        try container.encode(lift, forKey: .lift)
    }

    public init(probabilities p: [Double], labels y: [Double]) {
        rows = p.count
        positives = Int(y.reduce(0, +))
        auc = Metrics.auc(scores: p, labels: y)
        logLoss = Metrics.logLoss(probabilities: p, labels: y)
        brier = Metrics.brier(probabilities: p, labels: y)
        calibration = Metrics.calibration(probabilities: p, labels: y)
        lift = Metrics.lift(probabilities: p, labels: y)
    }
}

/// One of ten equal-width probability bins: [0, 0.1), [0.1, 0.2), … [0.9, 1.0].
public struct CalibrationBin: Codable, Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var count: Int
    public var meanPredicted: Double?
    public var observedRate: Double?

    enum CodingKeys: String, CodingKey {
        case lower, upper, count
        case meanPredicted = "mean_predicted"
        case observedRate = "observed_rate"
    }

    /// An empty bin's mean and rate are written as null, not left out.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lower, forKey: .lower)
        try container.encode(upper, forKey: .upper)
        try container.encode(count, forKey: .count)
        try container.encode(meanPredicted, forKey: .meanPredicted)
        try container.encode(observedRate, forKey: .observedRate)
    }
}

/// One tenth of the leads, ranked by predicted probability, best first.
public struct LiftDecile: Codable, Sendable, Equatable {
    public var decile: Int
    public var count: Int
    public var positives: Int
    public var rate: Double
    /// rate / overall rate: how many times better than calling at random.
    public var lift: Double
    /// The same for deciles 1…this one together.
    public var cumulativeLift: Double

    enum CodingKeys: String, CodingKey {
        case decile, count, positives, rate, lift
        case cumulativeLift = "cumulative_lift"
    }
}

public enum Metrics {
    /// scikit-learn's `log_loss` clips probabilities to [ε, 1 − ε] with ε the float64 machine epsilon.
    public static let logLossEpsilon = Double.ulpOfOne

    /// Area under the ROC curve: the probability that a random positive outranks a random
    /// negative, ties counting one half (the Mann–Whitney U statistic over average ranks).
    /// nil when only one class is present.
    public static func auc(scores: [Double], labels: [Double]) -> Double? {
        precondition(scores.count == labels.count)
        let positives = labels.reduce(0, +)
        let negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSumPositives = 0.0
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count && scores[order[end + 1]] == scores[order[start]] { end += 1 }
            // Ranks start..end (1-based start+1...end+1) share their average.
            let averageRank = Double(start + end + 2) / 2
            for k in start...end where labels[order[k]] == 1 { rankSumPositives += averageRank }
            start = end + 1
        }
        return (rankSumPositives - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// Mean negative log-likelihood.
    public static func logLoss(probabilities p: [Double], labels y: [Double]) -> Double {
        precondition(p.count == y.count)
        guard !p.isEmpty else { return .nan }
        var sum = 0.0
        for i in p.indices {
            let q = min(max(p[i], logLossEpsilon), 1 - logLossEpsilon)
            sum -= y[i] == 1 ? log(q) : log(1 - q)
        }
        return sum / Double(p.count)
    }

    /// Mean squared error of the probabilities.
    public static func brier(probabilities p: [Double], labels y: [Double]) -> Double {
        precondition(p.count == y.count)
        guard !p.isEmpty else { return .nan }
        var sum = 0.0
        for i in p.indices { sum += (p[i] - y[i]) * (p[i] - y[i]) }
        return sum / Double(p.count)
    }

    public static func calibration(probabilities p: [Double], labels y: [Double], bins: Int = 10) -> [CalibrationBin] {
        var counts = [Int](repeating: 0, count: bins)
        var predicted = [Double](repeating: 0, count: bins)
        var observed = [Double](repeating: 0, count: bins)
        for i in p.indices {
            let bin = min(max(Int(p[i] * Double(bins)), 0), bins - 1)
            counts[bin] += 1
            predicted[bin] += p[i]
            observed[bin] += y[i]
        }
        return (0..<bins).map { b in
            CalibrationBin(
                lower: Double(b) / Double(bins), upper: Double(b + 1) / Double(bins), count: counts[b],
                meanPredicted: counts[b] > 0 ? predicted[b] / Double(counts[b]) : nil,
                observedRate: counts[b] > 0 ? observed[b] / Double(counts[b]) : nil)
        }
    }

    /// Lift by decile of predicted probability, best decile first. Deciles differ in size by at
    /// most one lead, the larger ones first, so under ten leads the best lead is still in decile
    /// 1 (split by floor, it landed in a later one and the top-decile lift read 0). Ties are
    /// broken by position, so the result is deterministic.
    public static func lift(probabilities p: [Double], labels y: [Double]) -> [LiftDecile] {
        guard !p.isEmpty else { return [] }
        let order = p.indices.sorted { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }
        let baseRate = y.reduce(0, +) / Double(y.count)
        var deciles: [LiftDecile] = []
        var cumulativeCount = 0
        var cumulativePositives = 0
        for d in 0..<10 {
            let start = (d * order.count + 9) / 10
            let end = ((d + 1) * order.count + 9) / 10
            let count = end - start
            let positives = order[start..<end].reduce(0) { $0 + Int(y[$1]) }
            cumulativeCount += count
            cumulativePositives += positives
            let rate = count > 0 ? Double(positives) / Double(count) : 0
            let cumulativeRate = cumulativeCount > 0 ? Double(cumulativePositives) / Double(cumulativeCount) : 0
            deciles.append(LiftDecile(
                decile: d + 1, count: count, positives: positives, rate: rate,
                lift: baseRate > 0 ? rate / baseRate : 0,
                cumulativeLift: baseRate > 0 ? cumulativeRate / baseRate : 0))
        }
        return deciles
    }
}
