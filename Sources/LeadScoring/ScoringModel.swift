import Foundation

/// A trained model, as written to models/<name>-v<N>.json and registered in the store. Everything
/// scoring needs is here: the resolved feature spec, the standardization, the coefficients. The
/// rest documents how it was made and how well it did on leads it never saw.
public struct ScoringModel: Codable, Sendable, Equatable {
    public static let formatName = "leadlens-model/1"

    public var format: String = ScoringModel.formatName
    public var name: String
    /// "<name>-v<N>": what leads' model_version holds.
    public var version: String
    public var createdAt: Date
    public var features: FeatureSpec
    /// Column names, in matrix order; `means`, `stds` and `coefficients` follow it.
    public var columns: [String]
    /// Training means of the transformed columns: a missing numeric value is imputed with its mean.
    public var means: [Double]
    /// Population standard deviations (1 for a constant column, as scikit-learn's StandardScaler).
    public var stds: [Double]
    public var coefficients: [Coefficient]
    /// On the standardized scale: logit = intercept + Σ weight × (x − mean) / std.
    public var intercept: Double
    /// On the original scale: logit = intercept_raw + Σ weight_raw × x, for a lead with no missing value.
    public var interceptRaw: Double
    /// scikit-learn's C; nil when trained without a penalty.
    public var c: Double?
    public var solver: String
    public var iterations: Int
    public var converged: Bool
    public var training: TrainingSummary
    public var metrics: ModelMetrics
    /// "holdout", or "training" when trained with --holdout 0.
    public var metricsOn: String

    public struct Coefficient: Codable, Sendable, Equatable {
        public var feature: String
        public var weight: Double
        public var weightRaw: Double

        enum CodingKeys: String, CodingKey {
            case feature, weight
            case weightRaw = "weight_raw"
        }
    }

    public struct TrainingSummary: Codable, Sendable, Equatable {
        public var rows: Int
        public var positives: Int
        public var negatives: Int
        public var positiveRate: Double
        public var holdoutFraction: Double
        public var holdoutRows: Int
        public var unlabeled: Int
        /// The scoring time features were computed at.
        public var asOf: Date
        /// Creation times of the oldest and newest training lead.
        public var dataFrom: Date?
        public var dataTo: Date?
        /// Reading the features from the store, and the solver alone.
        public var readSeconds: Double
        public var solveSeconds: Double

        enum CodingKeys: String, CodingKey {
            case rows, positives, negatives, unlabeled
            case readSeconds = "read_seconds"
            case solveSeconds = "solve_seconds"
            case positiveRate = "positive_rate"
            case holdoutFraction = "holdout_fraction"
            case holdoutRows = "holdout_rows"
            case asOf = "as_of"
            case dataFrom = "data_from"
            case dataTo = "data_to"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, name, version, features, columns, means, stds, coefficients, intercept, solver, iterations
        case converged, training, metrics
        case createdAt = "created_at"
        case interceptRaw = "intercept_raw"
        case c = "C"
        case metricsOn = "metrics_on"
    }

    public var weights: [Double] { coefficients.map(\.weight) }

    // MARK: - Files

    public static func decode(_ data: Data) throws -> ScoringModel {
        let model = try decoder.decode(ScoringModel.self, from: data)
        guard model.format == formatName else { throw SpecError("unsupported model format \"\(model.format)\"") }
        let width = model.columns.count
        guard model.means.count == width, model.stds.count == width, model.coefficients.count == width, width > 0 else {
            throw SpecError("model \(model.version) is inconsistent: columns, means, stds and coefficients differ in length")
        }
        // Each weight names its column: a hand-edited file with them in another order would
        // otherwise score every lead with the wrong weights.
        if let index = model.columns.indices.first(where: { model.coefficients[$0].feature != model.columns[$0] }) {
            throw SpecError("model \(model.version): coefficient \(index + 1) is for \"\(model.coefficients[index].feature)\", but column \(index + 1) is \"\(model.columns[index])\"")
        }
        guard FeatureSpec.isValidName(model.name), model.version.hasPrefix(model.name + "-v"),
              Int(model.version.dropFirst(model.name.count + 2)) != nil else {
            throw SpecError("model version must be <name>-v<N>")
        }
        // Every number scoring multiplies by must be finite, and every std positive: a NaN
        // probability could not become a score.
        let numbers = model.means + model.weights + [model.intercept]
        guard numbers.allSatisfy(\.isFinite), model.stds.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw SpecError("model \(model.version) has a non-finite coefficient, mean or std")
        }
        // With every |z| at most zLimit, this bounds the logit: it can saturate but never be NaN.
        guard (model.weights.reduce(abs(model.intercept)) { $0 + abs($1) } * Standardizer.zLimit).isFinite else {
            throw SpecError("model \(model.version) has coefficients too large to score with")
        }
        return model
    }

    public static func load(from url: URL) throws -> ScoringModel {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw SpecError("cannot read model \(url.path)") }
        do {
            return try decode(data)
        } catch let error as DecodingError {
            throw SpecError("\(url.lastPathComponent): \(SpecError.describe(error))")
        }
    }

    public func encoded() throws -> Data {
        try Self.encoder.encode(self)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// The standardization a model applies: z = (x − mean) / std, a missing (NaN) value becoming 0,
/// i.e. the training mean.
struct Standardizer {
    let means: [Double]
    let stds: [Double]
    /// Columns whose mean or variance overflowed a Double.
    private(set) var overflowed: [Int] = []

    /// Column means and population standard deviations over the non-missing values.
    init(fitting values: [Double], rows: Int, width: Int) {
        var sums = [Double](repeating: 0, count: width)
        var counts = [Int](repeating: 0, count: width)
        for r in 0..<rows {
            for c in 0..<width {
                let x = values[r * width + c]
                if !x.isNaN { sums[c] += x; counts[c] += 1 }
            }
        }
        let means = (0..<width).map { counts[$0] > 0 ? sums[$0] / Double(counts[$0]) : 0 }
        var squares = [Double](repeating: 0, count: width)
        for r in 0..<rows {
            for c in 0..<width {
                let x = values[r * width + c]
                if !x.isNaN { squares[c] += (x - means[c]) * (x - means[c]) }
            }
        }
        self.means = means
        overflowed = (0..<width).filter { !means[$0].isFinite || !squares[$0].isFinite }
        self.stds = (0..<width).map { c in
            let variance = counts[c] > 0 ? squares[c] / Double(counts[c]) : 0
            let std = variance.squareRoot()
            return std > 0 && std.isFinite ? std : 1
        }
    }

    init(means: [Double], stds: [Double]) {
        self.means = means
        self.stds = stds
    }

    /// The largest standardized value a feature contributes, either sign. A row of the data the
    /// standardization was fitted on can lie at most √n standard deviations out, so this never
    /// changes a fit of under 10⁸ rows; it keeps weight × z finite for a value far outside the
    /// training data (1.7e308 in a numeric field), whose sum with another such value's would
    /// otherwise be ∞ − ∞, a NaN no score can be made of.
    static let zLimit = 1e4

    /// A value so extreme its standardized form overflows counts as missing, like NaN: a lead's
    /// score must never become NaN.
    func apply(_ values: inout [Double], rows: Int) {
        let width = means.count
        for r in 0..<rows {
            let base = r * width
            for c in 0..<width {
                let z = (values[base + c] - means[c]) / stds[c]
                values[base + c] = z.isFinite ? min(max(z, -Self.zLimit), Self.zLimit) : 0
            }
        }
    }
}
