import Foundation
import GRDB
import LeadStore

/// Trains a model from the store: read every lead's features in one snapshot, split labeled
/// leads into training and holdout by a hash of their id, standardize, fit, and measure on the
/// holdout. Nothing is written here; the caller saves and registers the model it returns.
public enum Trainer {
    public struct Options: Sendable {
        public var c: Double? = 1.0
        /// Fraction of labeled leads held out for the metrics; 0 trains on all of them.
        public var holdout = 0.2
        public var minimumLabeled = 50
        /// Scoring time for time-relative features, unix ms.
        public var asOf: Int64
        public var chunkSize = 50_000

        public init(asOf: Int64 = LeadStore.nowMillis()) { self.asOf = asOf }
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case tooFewLabeled(found: Int, minimum: Int)
        case singleClass(positives: Int, negatives: Int)
        case nonFinite(column: String)
        case overflow(column: String)
        case badHoldout(Double)

        public var description: String {
            switch self {
            case .tooFewLabeled(let found, let minimum):
                "only \(found) labeled lead\(found == 1 ? "" : "s") (won or lost); at least \(minimum) are needed"
            case .singleClass(let positives, let negatives):
                positives == 0
                    ? "none of the \(negatives) training leads is won; a model needs both outcomes"
                    : "none of the \(positives) training leads is lost; a model needs both outcomes"
            case .nonFinite(let column): "column \"\(column)\" has an infinite or NaN value after its transform"
            case .overflow(let column):
                "column \"\(column)\" has values too large to standardize (their variance overflows a Double); clip or log1p it"
            case .badHoldout(let value): "holdout must be in [0, 1), got \(value)"
            }
        }
    }

    /// Labeled leads as standardized matrices, ready to fit.
    public struct Dataset: Sendable {
        public var layout: FeatureLayout
        public var standardizer: (means: [Double], stds: [Double])
        public var train: (x: [Double], y: [Double], rows: Int)
        public var holdout: (x: [Double], y: [Double], rows: Int)
        /// The held-out leads, in row order: another model is compared on exactly these.
        public var holdoutIDs: [Int64]
        public var unlabeled: Int
        public var dataFrom: Int64?
        public var dataTo: Int64?
        public var width: Int { layout.columns.count }
    }

    /// True for the leads held out of training: a fixed hash of the id, so a lead stays on the
    /// same side of the split across runs.
    public static func isHoldout(_ leadID: Int64, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        var z = UInt64(bitPattern: leadID) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53) < fraction
    }

    /// Reads and prepares the training data.
    public static func prepare(_ spec: FeatureSpec, from reader: any DatabaseReader, options: Options) throws -> Dataset {
        guard options.holdout >= 0, options.holdout < 1 else { throw Failure.badHoldout(options.holdout) }
        return try reader.read { db in
            let layout = try FeatureLayout.resolve(spec, in: db, training: true)
            let featureReader = FeatureReader(layout: layout, asOf: options.asOf)
            let width = layout.columns.count
            var trainX: [Double] = [], trainY: [Double] = []
            var holdX: [Double] = [], holdY: [Double] = []
            var holdIDs: [Int64] = []
            var unlabeled = 0
            var dataFrom: Int64?, dataTo: Int64?
            var after: Int64 = .min
            while true {
                let chunk = try featureReader.read(db, after: after, limit: options.chunkSize)
                guard let last = chunk.ids.last else { break }
                after = last
                for r in 0..<chunk.count {
                    // A lead created after the scoring time did not exist then.
                    if chunk.createdAt[r] > options.asOf { continue }
                    let label = chunk.labels[r]
                    if label.isNaN { unlabeled += 1; continue }
                    let row = chunk.values[r * width..<(r + 1) * width]
                    if isHoldout(chunk.ids[r], fraction: options.holdout) {
                        holdX.append(contentsOf: row); holdY.append(label); holdIDs.append(chunk.ids[r])
                    } else {
                        trainX.append(contentsOf: row); trainY.append(label)
                        dataFrom = min(dataFrom ?? .max, chunk.createdAt[r])
                        dataTo = max(dataTo ?? .min, chunk.createdAt[r])
                    }
                }
            }
            let labeled = trainY.count + holdY.count
            guard labeled >= options.minimumLabeled else {
                throw Failure.tooFewLabeled(found: labeled, minimum: options.minimumLabeled)
            }
            let positives = Int(trainY.reduce(0, +))
            guard positives > 0, positives < trainY.count else {
                throw Failure.singleClass(positives: positives, negatives: trainY.count - positives)
            }
            if let bad = trainX.firstIndex(where: { $0.isInfinite }) ?? holdX.firstIndex(where: { $0.isInfinite }) {
                throw Failure.nonFinite(column: layout.columns[bad % width].name)
            }
            let standardizer = Standardizer(fitting: trainX, rows: trainY.count, width: width)
            standardizer.apply(&trainX, rows: trainY.count)
            standardizer.apply(&holdX, rows: holdY.count)
            if let bad = trainX.firstIndex(where: { !$0.isFinite }) ?? holdX.firstIndex(where: { !$0.isFinite }) {
                throw Failure.nonFinite(column: layout.columns[bad % width].name)
            }
            // A finite value so large its column's variance overflows is as unusable as infinity.
            if let bad = standardizer.overflowed.first {
                throw Failure.overflow(column: layout.columns[bad].name)
            }
            return Dataset(
                layout: layout, standardizer: (standardizer.means, standardizer.stds),
                train: (trainX, trainY, trainY.count), holdout: (holdX, holdY, holdY.count),
                holdoutIDs: holdIDs, unlabeled: unlabeled, dataFrom: dataFrom, dataTo: dataTo)
        }
    }

    /// Fits the prepared data and measures the result.
    public static func fit(
        _ data: Dataset, name: String, version: String, options: Options, readSeconds: Double = 0,
        progress: ((LogisticRegression.Iteration) -> Void)? = nil
    ) throws -> ScoringModel {
        let started = Date()
        var solver = LogisticRegression.Options(c: options.c)
        solver.maxIterations = 100
        let fit = try LogisticRegression.fit(
            x: data.train.x, rows: data.train.rows, cols: data.width, y: data.train.y,
            options: solver, progress: progress)
        let solveSeconds = Date().timeIntervalSince(started)

        let evaluated = data.holdout.rows > 0 ? data.holdout : data.train
        let probabilities = predict(evaluated.x, rows: evaluated.rows, width: data.width,
                                    weights: fit.weights, intercept: fit.intercept)
        let metrics = ModelMetrics(probabilities: probabilities, labels: evaluated.y)

        let (means, stds) = data.standardizer
        let (weightsRaw, interceptRaw) = rawScale(weights: fit.weights, intercept: fit.intercept, means: means, stds: stds)
        let coefficients = data.layout.columns.indices.map { j in
            ScoringModel.Coefficient(feature: data.layout.columns[j].name, weight: fit.weights[j], weightRaw: weightsRaw[j])
        }
        let positives = Int(data.train.y.reduce(0, +))
        // Whole seconds: the model file stores ISO 8601 dates without fractions.
        func date(_ ms: Int64?) -> Date? { ms.map { Date(timeIntervalSince1970: Double($0 / 1000)) } }
        var spec = data.layout.spec
        spec.name = name
        return ScoringModel(
            name: name, version: version, createdAt: date(LeadStore.nowMillis())!, features: spec,
            columns: data.layout.columnNames, means: means, stds: stds, coefficients: coefficients,
            intercept: fit.intercept, interceptRaw: interceptRaw, c: options.c, solver: "newton",
            iterations: fit.iterations, converged: fit.converged,
            training: ScoringModel.TrainingSummary(
                rows: data.train.rows, positives: positives, negatives: data.train.rows - positives,
                positiveRate: Double(positives) / Double(data.train.rows), holdoutFraction: options.holdout,
                holdoutRows: data.holdout.rows, unlabeled: data.unlabeled,
                asOf: date(options.asOf)!,
                dataFrom: date(data.dataFrom), dataTo: date(data.dataTo), readSeconds: readSeconds,
                solveSeconds: solveSeconds),
            metrics: metrics, metricsOn: data.holdout.rows > 0 ? "holdout" : "training")
    }

    /// Coefficients on the original feature scale: w/σ, and b − Σ w·μ/σ.
    public static func rawScale(weights: [Double], intercept: Double, means: [Double], stds: [Double])
        -> (weights: [Double], intercept: Double) {
        let raw = weights.indices.map { weights[$0] / stds[$0] }
        return (raw, intercept - weights.indices.reduce(0.0) { $0 + weights[$1] * means[$1] / stds[$1] })
    }

    /// σ(X·w + b) over a standardized row-major matrix, one dgemv.
    ///
    /// The matrix is padded with zero rows to a multiple of ``Kernels/rowBlock``: OpenBLAS runs
    /// rows through its kernel in blocks, and rows left over at the end of a call take a tail path
    /// that rounds differently. Padded, every row takes the block path, so a lead's probability
    /// is bit-identical whichever chunk it is scored in.
    public static func predict(_ x: [Double], rows: Int, width: Int, weights: [Double], intercept: Double) -> [Double] {
        var matrix = x
        return predict(consuming: &matrix, rows: rows, width: width, weights: weights, intercept: intercept)
    }

    /// The same, padding `x` in place instead of copying it.
    static func predict(consuming x: inout [Double], rows: Int, width: Int, weights: [Double], intercept: Double) -> [Double] {
        guard rows > 0 else { return [] }
        let padded = (rows + Kernels.rowBlock - 1) / Kernels.rowBlock * Kernels.rowBlock
        x.append(contentsOf: repeatElement(0, count: (padded - rows) * width))
        var logits = Kernels.multiply(x, rows: padded, cols: width, by: weights)
        logits.removeLast(padded - rows)
        for i in 0..<rows { logits[i] = sigmoid(logits[i] + intercept) }
        return logits
    }
}
