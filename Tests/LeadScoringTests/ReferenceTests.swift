import Foundation
@testable import LeadScoring
import Testing

/// Fixtures computed once by Fixtures/make_fixtures.py with scikit-learn and statsmodels.
enum Fixture {
    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"))
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    struct SklearnCases: Decodable {
        struct Case: Decodable {
            let name: String
            let C: Double
            let x: [[Double]]
            let y: [Double]
            let coef: [Double]
            let intercept: Double
            let log_loss: Double
        }
        let cases: [Case]
    }

    struct PublishedCases: Decodable {
        struct Dataset: Decodable {
            let name: String
            let columns: [String]
            let x: [[Double]]
            let y: [Double]
            let params: [String: Double]
        }
        let datasets: [Dataset]
    }

    struct MetricCases: Decodable {
        struct Case: Decodable {
            let name: String
            let y: [Double]
            let p: [Double]
            let auc: Double
            let log_loss: Double
            let brier: Double
        }
        let cases: [Case]
    }
}

@Suite("Against reference implementations")
struct ReferenceTests {
    @Test("coefficients equal scikit-learn's LogisticRegression(C) to 1e-4 relative",
          arguments: ["c1_correlated", "c005_strong_penalty", "c1_imbalanced", "c1_onehot"])
    func matchesScikitLearn(name: String) throws {
        let all = try Fixture.load("sklearn_logistic", as: Fixture.SklearnCases.self)
        let fixture = try #require(all.cases.first { $0.name == name })
        let cols = fixture.x[0].count
        let fit = try LogisticRegression.fit(
            x: fixture.x.flatMap { $0 }, rows: fixture.x.count, cols: cols, y: fixture.y,
            options: LogisticRegression.Options(c: fixture.C))
        #expect(fit.converged)
        for (ours, theirs) in zip(fit.weights, fixture.coef) {
            #expect(abs(ours - theirs) <= 1e-4 * abs(theirs) + 1e-9, "\(name): \(ours) vs \(theirs)")
        }
        #expect(abs(fit.intercept - fixture.intercept) <= 1e-4 * abs(fixture.intercept) + 1e-9)
        let p = Trainer.predict(fixture.x.flatMap { $0 }, rows: fixture.x.count, width: cols,
                                weights: fit.weights, intercept: fit.intercept)
        #expect(abs(Metrics.logLoss(probabilities: p, labels: fixture.y) - fixture.log_loss) < 1e-9)
    }

    @Test("without a penalty a collinear design (a never-blank categorical's columns sum to the intercept) gets the smallest fit, not a wandering one")
    func collinearUnpenalizedFitIsTheSmallest() throws {
        // Three sources, one per lead, effects −0.5, 0, +0.7, and one numeric feature.
        let rows = 6000, cols = 4
        var generator = SplitMix(state: 11)
        var x = [Double](), y = [Double]()
        for _ in 0..<rows {
            let source = Int(generator.next() % 3), numeric = generator.uniform() * 4 - 2
            let logit: Double = [-0.5, 0, 0.7][source] + 0.8 * numeric
            x += [source == 0 ? 1.0 : 0, source == 1 ? 1.0 : 0, source == 2 ? 1.0 : 0, numeric]
            y.append(generator.uniform() < 1 / (1 + exp(-logit)) ? 1 : 0)
        }
        let standardizer = Standardizer(fitting: x, rows: rows, width: cols)
        standardizer.apply(&x, rows: rows)
        let fit = try LogisticRegression.fit(x: x, rows: rows, cols: cols, y: y, options: LogisticRegression.Options(c: nil))
        #expect(fit.converged)
        // Standardized, the three columns satisfy Σ σⱼ zⱼ = 0: moving weight along (σ₀, σ₁, σ₂)
        // changes no probability. The smallest fit has no component along it.
        let sigma = Array(standardizer.stds[0..<3])
        let along = zip(sigma, fit.weights[0..<3]).reduce(0) { $0 + $1.0 * $1.1 } / sigma.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(abs(along) < 1e-4, "component along the null direction: \(along)")
        // So the raw source weights are centred on zero, in the effects' order, and their
        // differences are the effects' (what maximum likelihood does identify).
        let raw = Trainer.rawScale(weights: fit.weights, intercept: fit.intercept, means: standardizer.means, stds: standardizer.stds)
        #expect(raw.weights[0] < 0 && raw.weights[2] > 0 && raw.weights[0] < raw.weights[1] && raw.weights[1] < raw.weights[2])
        #expect(abs((raw.weights[2] - raw.weights[0]) - 1.2) < 0.2)
        #expect(abs(raw.weights[3] - 0.8) < 0.1)
        // Its likelihood is the maximum: a weak penalty's fit is no better.
        let nearlyFree = try LogisticRegression.fit(x: x, rows: rows, cols: cols, y: y, options: LogisticRegression.Options(c: 1e6))
        #expect(fit.loss <= nearlyFree.loss + 1e-9)
    }

    @Test("the unpenalized fit reproduces statsmodels' Logit on published data to 4 decimals",
          arguments: ["spector", "fair"])
    func matchesStatsmodels(name: String) throws {
        let all = try Fixture.load("published_logit", as: Fixture.PublishedCases.self)
        let data = try #require(all.datasets.first { $0.name == name })
        let rows = data.x.count, cols = data.columns.count
        // As training does: standardize, fit, then map the coefficients back to the raw scale.
        var x = data.x.flatMap { $0 }
        let standardizer = Standardizer(fitting: x, rows: rows, width: cols)
        standardizer.apply(&x, rows: rows)
        let fit = try LogisticRegression.fit(x: x, rows: rows, cols: cols, y: data.y,
                                             options: LogisticRegression.Options(c: nil))
        #expect(fit.converged)
        // The mapping the model file's weight_raw and intercept_raw come from.
        let raw = Trainer.rawScale(weights: fit.weights, intercept: fit.intercept,
                                   means: standardizer.means, stds: standardizer.stds)
        for (j, column) in data.columns.enumerated() {
            let expected = try #require(data.params[column])
            #expect(abs(raw.weights[j] - expected) < 5e-5, "\(name).\(column): \(raw.weights[j]) vs \(expected)")
        }
        #expect(abs(raw.intercept - data.params["const"]!) < 5e-5)
    }

    @Test("AUC, log-loss and Brier equal scikit-learn's, ties and clipping included",
          arguments: ["continuous", "ties_rounded", "all_tied", "extremes", "imbalanced"])
    func metricsMatchScikitLearn(name: String) throws {
        let all = try Fixture.load("metrics", as: Fixture.MetricCases.self)
        let c = try #require(all.cases.first { $0.name == name })
        let auc = try #require(Metrics.auc(scores: c.p, labels: c.y))
        #expect(abs(auc - c.auc) < 1e-12)
        #expect(abs(Metrics.logLoss(probabilities: c.p, labels: c.y) - c.log_loss) < 1e-10)
        #expect(abs(Metrics.brier(probabilities: c.p, labels: c.y) - c.brier) < 1e-12)
    }
}

@Suite("Metrics")
struct MetricsTests {
    @Test("AUC is nil with one class; calibration bins and lift deciles add up")
    func shapes() {
        #expect(Metrics.auc(scores: [0.1, 0.9], labels: [1, 1]) == nil)
        var rng = SplitMix(state: 3)
        let p = (0..<1003).map { _ in rng.uniform() }
        let y = p.map { $0 > 0.7 ? 1.0 : 0.0 }
        let bins = Metrics.calibration(probabilities: p, labels: y)
        #expect(bins.count == 10)
        #expect(bins.reduce(0) { $0 + $1.count } == 1003)
        for bin in bins where bin.count > 0 {
            #expect(bin.meanPredicted! >= bin.lower && bin.meanPredicted! <= bin.upper)
        }
        let lift = Metrics.lift(probabilities: p, labels: y)
        #expect(lift.count == 10)
        #expect(lift.reduce(0) { $0 + $1.count } == 1003)
        #expect(lift.reduce(0) { $0 + $1.positives } == Int(y.reduce(0, +)))
        // A perfect ranking: the top three deciles hold every positive.
        #expect(lift[0].rate == 1 && lift[9].positives == 0)
        #expect(abs(lift[9].cumulativeLift - 1) < 1e-12)
        // Under ten leads the best one is still in decile 1.
        let few = Metrics.lift(probabilities: [0.9, 0.2, 0.1, 0.3, 0.05, 0.4, 0.15], labels: [1, 0, 0, 0, 0, 0, 0])
        #expect(few[0].count == 1 && few[0].positives == 1 && few[0].lift == 7)
        #expect(few.reduce(0) { $0 + $1.count } == 7)
    }

    @Test("an undefined AUC and an empty bin's mean and rate are written as null, not left out")
    func undefinedValuesAreNull() throws {
        // One class, all probabilities below 0.2: AUC is undefined and eight bins are empty.
        let metrics = ModelMetrics(probabilities: [0.05, 0.12, 0.15], labels: [0, 0, 0])
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any])
        #expect(json["auc"] is NSNull)
        let bins = try #require(json["calibration"] as? [[String: Any]])
        #expect(bins.count == 10)
        #expect(bins[9]["mean_predicted"] is NSNull && bins[9]["observed_rate"] is NSNull)
        #expect(bins[0]["mean_predicted"] as? Double == 0.05)
        #expect(try JSONDecoder().decode(ModelMetrics.self, from: JSONEncoder().encode(metrics)) == metrics)
    }
}

@Suite("BLAS kernels")
struct KernelTests {
    @Test("dgemv, transposed dgemv and dsyrk through CBLAS equal plain loops", arguments: [(1, 1), (3, 2), (257, 33)])
    func kernelsMatchNaive(rows: Int, cols: Int) {
        let x = (0..<rows * cols).map { Double(($0 * 7919) % 113) / 17 - 3 }
        let w = (0..<cols).map { Double(($0 * 31) % 11) / 5 - 1 }
        let r = (0..<rows).map { Double(($0 * 17) % 7) / 3 - 1 }
        let y = Kernels.multiply(x, rows: rows, cols: cols, by: w)
        for i in 0..<rows {
            let expected = (0..<cols).reduce(0.0) { $0 + x[i * cols + $1] * w[$1] }
            #expect(abs(y[i] - expected) <= 1e-12 * max(1, abs(expected)))
        }
        let g = Kernels.multiplyTransposed(x, rows: rows, cols: cols, by: r)
        for j in 0..<cols {
            let expected = (0..<rows).reduce(0.0) { $0 + x[$1 * cols + j] * r[$1] }
            #expect(abs(g[j] - expected) <= 1e-10 * max(1, abs(expected)))
        }
        let c = Kernels.gram(x, rows: rows, cols: cols)
        for a in 0..<cols {
            for b in 0..<cols {
                let expected = (0..<rows).reduce(0.0) { $0 + x[$1 * cols + a] * x[$1 * cols + b] }
                #expect(abs(c[a * cols + b] - expected) <= 1e-10 * max(1, abs(expected)))
            }
        }
    }
}
