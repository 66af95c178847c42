import Foundation
import Dispatch

/// L2-regularized logistic regression, the objective of scikit-learn's `LogisticRegression(C:)`:
///
///     minimize  Σᵢ log(1 + exp(−ỹᵢ (xᵢ·w + b)))  +  ‖w‖² / (2C)
///
/// with the intercept b unpenalized (C = nil: plain maximum likelihood, the smallest of its fits
/// when the design is collinear; see `vanishingRidge`). Solved by Newton's method
/// with a backtracking line search. The passes over the data are BLAS calls on blocks of rows,
/// run on every core: X·w (dgemv), Xᵀ·r (dgemv), and the Hessian XᵀWX (dsyrk over the weighted
/// rows [√w, √w·x]). The blocks are fixed and summed in order, so the result does not depend on
/// the number of cores; BLAS itself runs single-threaded inside each block.
public enum LogisticRegression {
    public struct Options: Sendable {
        /// Inverse penalty strength, as in scikit-learn; nil for no penalty.
        public var c: Double?
        /// Converged when every coordinate of the Newton step is below this (its error after the
        /// step is of the order of its square).
        public var stepTolerance: Double = 1e-9
        public var maxIterations: Int = 100

        public init(c: Double? = 1.0) { self.c = c }
    }

    public struct Iteration: Sendable {
        public let number: Int
        /// The objective, divided by the number of rows so it reads as a mean log-loss.
        public let loss: Double
        /// ‖∇‖₂ of the objective at the start of the iteration, divided by the number of rows.
        public let gradientNorm: Double
        public let stepSize: Double
    }

    public struct Fit: Sendable {
        public var weights: [Double]
        public var intercept: Double
        public var iterations: Int
        public var converged: Bool
        /// Mean objective per row at the solution.
        public var loss: Double
        public var gradientNorm: Double
    }

    public enum FitError: Error, CustomStringConvertible, Equatable {
        case empty
        case singleClass(label: Double)
        case nonFinite(row: Int, column: Int)
        case badLabel(row: Int)

        public var description: String {
            switch self {
            case .empty: "no rows to train on"
            case .singleClass(let label): "every training label is \(label == 1 ? "positive" : "negative"); a model needs both classes"
            case .nonFinite(let row, let column): "the feature matrix has a NaN or infinite value (row \(row + 1), column \(column + 1))"
            case .badLabel(let row): "label of row \(row + 1) is not 0 or 1"
            }
        }
    }

    /// Without a penalty, each weight's L2 term is this fraction of its column's Σx².
    static let vanishingRidge = 1e-9

    /// Fits on a row-major rows×cols matrix `x` (standardized by the caller) and labels `y` ∈ {0, 1}.
    public static func fit(
        x: [Double], rows: Int, cols: Int, y: [Double], options: Options = Options(),
        progress: ((Iteration) -> Void)? = nil
    ) throws -> Fit {
        try newton(x: x, rows: rows, cols: cols, y: y, options: options, progress: progress)
    }

    private static func newton(
        x: [Double], rows: Int, cols: Int, y: [Double], options: Options, progress: ((Iteration) -> Void)?
    ) throws -> Fit {
        precondition(x.count == rows * cols && y.count == rows, "matrix and labels disagree")
        guard rows > 0 else { throw FitError.empty }
        if let bad = x.firstIndex(where: { !$0.isFinite }) {
            throw FitError.nonFinite(row: bad / max(cols, 1), column: bad % max(cols, 1))
        }
        if let bad = y.firstIndex(where: { $0 != 0 && $0 != 1 }) { throw FitError.badLabel(row: bad) }
        let positives = y.reduce(0, +)
        if positives == 0 || positives == Double(rows) { throw FitError.singleClass(label: y[0]) }

        let d = cols + 1  // the intercept is coordinate 0 of β
        // The L2 term per coordinate (the intercept, coordinate 0, has none): 1/C, or without a
        // penalty a vanishing one, 1e-9 of each column's Σx², which moves no fit measurably but
        // makes a collinear design's fit unique. A categorical field that is never blank has
        // columns summing to the intercept, so plain maximum likelihood is reached along a whole
        // line of weights, and Newton steps driven by rounding wandered along it: the source
        // weights all came out negative, and explanations swapped signs. With it the fit is the
        // smallest of the equally likely ones, as gradient descent from zero finds.
        var ridge = [Double](repeating: options.c.map { 1 / $0 } ?? 0, count: d)
        ridge[0] = 0
        if options.c == nil {
            x.withUnsafeBufferPointer { xp in
                for i in 0..<rows {
                    for j in 0..<cols { ridge[j + 1] += xp[i * cols + j] * xp[i * cols + j] }
                }
            }
            for j in 1..<d { ridge[j] *= Self.vanishingRidge }
        }
        var beta = [Double](repeating: 0, count: d)
        // Start the intercept at the base rate's logit: the first step then only has to find w.
        beta[0] = log(positives / (Double(rows) - positives))

        var z = [Double](repeating: 0, count: rows)
        var p = [Double](repeating: 0, count: rows)
        var trialZ = [Double](repeating: 0, count: rows)
        var trialP = [Double](repeating: 0, count: rows)

        /// z ← X·w + b, p = σ(z) and the objective: per block of rows, one dgemv and one pass.
        func evaluate(_ beta: [Double], z: inout [Double], p: inout [Double]) -> Double {
            let b = beta[0]
            let sums = x.withUnsafeBufferPointer { xp in
                beta.withUnsafeBufferPointer { bp in
                    z.withUnsafeMutableBufferPointer { zp in
                        p.withUnsafeMutableBufferPointer { pp in
                            y.withUnsafeBufferPointer { yp in
                                RowBlocks.map(rows: rows) { range in
                                    let w = UnsafeBufferPointer(rebasing: bp[1...])
                                    Kernels.multiply(
                                        UnsafeBufferPointer(rebasing: xp[range.lowerBound * cols..<range.upperBound * cols]),
                                        rows: range.count, cols: cols, by: w,
                                        into: UnsafeMutableBufferPointer(rebasing: zp[range]))
                                    var sum = 0.0
                                    for i in range {
                                        let zi = zp[i] + b
                                        zp[i] = zi
                                        // One exp for both: e = e^−|z|.
                                        let e = exp(-abs(zi))
                                        sum += (zi > 0 ? zi : 0) + log1p(e) - yp[i] * zi
                                        pp[i] = zi >= 0 ? 1 / (1 + e) : e / (1 + e)
                                    }
                                    return sum
                                }
                            }
                        }
                    }
                }
            }
            var norm = 0.0
            for j in 1..<d { norm += ridge[j] * beta[j] * beta[j] }
            return sums.reduce(0, +) + 0.5 * norm
        }

        /// The gradient's data part [Σr, Xᵀr] and the upper triangle of [1 X]ᵀW[1 X], summed over
        /// blocks of rows. Each block builds its weighted rows [√w, √w·x] a few hundred at a time
        /// in a buffer that stays in cache and adds them in with one dsyrk, so the weighted
        /// design is never written out whole.
        func gradientAndHessian(p: [Double]) -> (gradient: [Double], hessian: [Double]) {
            let subRows = 256
            let partials = x.withUnsafeBufferPointer { xp in
                p.withUnsafeBufferPointer { pp in
                    y.withUnsafeBufferPointer { yp in
                        RowBlocks.map(rows: rows) { range -> (g: [Double], h: [Double]) in
                            var g = [Double](repeating: 0, count: d)
                            var h = [Double](repeating: 0, count: d * d)
                            var weightedRows = [Double](repeating: 0, count: subRows * d)
                            var residuals = [Double](repeating: 0, count: subRows)
                            var start = range.lowerBound
                            while start < range.upperBound {
                                let end = min(start + subRows, range.upperBound)
                                let count = end - start
                                weightedRows.withUnsafeMutableBufferPointer { wp in
                                    residuals.withUnsafeMutableBufferPointer { rp in
                                        for k in 0..<count {
                                            let i = start + k
                                            let pi = pp[i]
                                            rp[k] = pi - yp[i]
                                            let s = (pi * (1 - pi)).squareRoot()
                                            let row = k * d
                                            wp[row] = s
                                            let source = i * cols
                                            for j in 0..<cols { wp[row + 1 + j] = s * xp[source + j] }
                                        }
                                    }
                                }
                                g[0] += residuals[0..<count].reduce(0, +)
                                g.withUnsafeMutableBufferPointer { gp in
                                    residuals.withUnsafeBufferPointer { rp in
                                        Kernels.accumulateTransposed(
                                            UnsafeBufferPointer(rebasing: xp[start * cols..<end * cols]), rows: count, cols: cols,
                                            by: rp, into: UnsafeMutableBufferPointer(rebasing: gp[1...]))
                                    }
                                }
                                weightedRows.withUnsafeBufferPointer { wp in
                                    h.withUnsafeMutableBufferPointer {
                                        Kernels.accumulateGram(wp, rows: count, cols: d, into: $0)
                                    }
                                }
                                start = end
                            }
                            return (g, h)
                        }
                    }
                }
            }
            var g = [Double](repeating: 0, count: d)
            var h = [Double](repeating: 0, count: d * d)
            for partial in partials {
                for j in 0..<d { g[j] += partial.g[j] }
                for j in 0..<d * d { h[j] += partial.h[j] }
            }
            return (g, h)
        }

        var loss = evaluate(beta, z: &z, p: &p)
        var iterations = 0
        var converged = false
        var gradientNorm = Double.infinity

        while iterations < options.maxIterations {
            iterations += 1
            var (gradient, hessian) = gradientAndHessian(p: p)
            for j in 1..<d { gradient[j] += ridge[j] * beta[j] }
            gradientNorm = gradient.reduce(0) { $0 + $1 * $1 }.squareRoot()
            hessian.withUnsafeMutableBufferPointer { Kernels.mirrorUpper($0, size: d) }
            for j in 1..<d { hessian[j * d + j] += ridge[j] }
            let step = solveSymmetricPositive(hessian, gradient, size: d)

            // The Newton decrement gᵀH⁻¹g estimates twice the objective still to gain. Below the
            // objective's rounding it can gain nothing more: the step is then noise-sized too.
            let decrement = zip(gradient, step).reduce(0) { $0 + $1.0 * $1.1 }
            let largestStep = step.reduce(0) { max($0, abs($1)) }
            let scale = max(1, beta.reduce(0) { max($0, abs($1)) })
            let atPrecision = decrement <= 1e-13 * max(1, abs(loss)) || largestStep <= options.stepTolerance * scale
            // Newton converges quadratically: after a full step from a decrement this small, what
            // remains is of the order of its square, far below the objective's rounding.
            let lastStep = decrement <= 1e-10 * max(1, abs(loss))

            // Backtracking (Armijo) along the Newton direction; the full step is almost always taken.
            var t = 1.0
            var trial = beta
            var trialLoss = loss
            while true {
                for j in 0..<d { trial[j] = beta[j] - t * step[j] }
                trialLoss = evaluate(trial, z: &trialZ, p: &trialP)
                if trialLoss <= loss - 1e-4 * t * decrement || atPrecision || t < 1e-10 { break }
                t *= 0.5
            }
            progress?(Iteration(number: iterations, loss: loss / Double(rows),
                                gradientNorm: gradientNorm / Double(rows), stepSize: t))
            let accepted = trialLoss <= loss
            if accepted {
                beta = trial
                swap(&z, &trialZ)
                swap(&p, &trialP)
                loss = trialLoss
            }
            if atPrecision || (lastStep && accepted && t == 1) {
                converged = true
                break
            }
            if t < 1e-10 { break }  // no descent along the Newton direction: give up, not converged
        }
        return Fit(weights: Array(beta[1...]), intercept: beta[0], iterations: iterations,
                   converged: converged, loss: loss / Double(rows), gradientNorm: gradientNorm / Double(rows))
    }

    /// Solves H·s = g for a symmetric positive (semi)definite H by Cholesky. A singular H (an
    /// all-zero column without a penalty) gets a small ridge so the step stays finite.
    static func solveSymmetricPositive(_ h: [Double], _ g: [Double], size n: Int) -> [Double] {
        let trace = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] }
        var jitter = 0.0
        while true {
            var l = h
            if jitter > 0 { for i in 0..<n { l[i * n + i] += jitter } }
            if cholesky(&l, size: n) {
                // Forward then back substitution: L·u = g, Lᵀ·s = u.
                var s = g
                for i in 0..<n {
                    var sum = s[i]
                    for k in 0..<i { sum -= l[i * n + k] * s[k] }
                    s[i] = sum / l[i * n + i]
                }
                for i in stride(from: n - 1, through: 0, by: -1) {
                    var sum = s[i]
                    for k in (i + 1)..<n { sum -= l[k * n + i] * s[k] }
                    s[i] = sum / l[i * n + i]
                }
                return s
            }
            jitter = jitter == 0 ? max(trace / Double(n), 1) * 1e-12 : jitter * 100
        }
    }

    /// In-place lower Cholesky factor of a row-major n×n matrix; false when it is not positive definite.
    static func cholesky(_ a: inout [Double], size n: Int) -> Bool {
        for j in 0..<n {
            var diagonal = a[j * n + j]
            for k in 0..<j { diagonal -= a[j * n + k] * a[j * n + k] }
            guard diagonal > 0, diagonal.isFinite else { return false }
            let root = diagonal.squareRoot()
            a[j * n + j] = root
            for i in (j + 1)..<n {
                var sum = a[i * n + j]
                for k in 0..<j { sum -= a[i * n + k] * a[j * n + k] }
                a[i * n + j] = sum / root
            }
        }
        return true
    }
}

/// Splits per-row work into fixed blocks of rows run on every core. The blocks do not depend on
/// the core count and their results come back in block order, so a sum over them is the same
/// on every machine.
enum RowBlocks {
    static let size = 32_768

    /// `body` runs concurrently on disjoint row ranges; callers write only to their range's rows.
    static func map<T>(rows: Int, _ body: (Range<Int>) -> T) -> [T] {
        let count = (rows + size - 1) / size
        guard count > 1 else { return [body(0..<rows)] }
        var results = [T?](repeating: nil, count: count)
        withoutActuallyEscaping(body) { body in
            results.withUnsafeMutableBufferPointer { out in
                let shared = Unchecked((body: body, out: out))
                DispatchQueue.concurrentPerform(iterations: count) { block in
                    shared.value.out[block] = shared.value.body(block * size..<min(rows, (block + 1) * size))
                }
            }
        }
        return results.map { $0! }
    }

    /// Hands the block closure and the result buffer to Dispatch's workers: each block touches
    /// only its own slot and its own rows, which is what makes sharing them sound.
    private struct Unchecked<Value>: @unchecked Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }
}

/// 1 / (1 + e⁻ᶻ) without overflow.
@inline(__always)
public func sigmoid(_ z: Double) -> Double {
    if z >= 0 { return 1 / (1 + exp(-z)) }
    let e = exp(z)
    return e / (1 + e)
}
