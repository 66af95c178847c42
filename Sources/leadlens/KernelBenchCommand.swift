import ArgumentParser
import Foundation
import LeadScoring

/// For `make bench`: times the scoring kernel (one dgemv over an in-memory matrix) so it can be
/// compared with numpy's `X @ w` on the same shape in the same run.
struct KernelBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernel",
        abstract: "Time the scoring kernel, X·w through BLAS, on a random in-memory matrix.",
        shouldDisplay: false
    )

    @Option var rows = 1_000_000
    @Option var cols = 32
    @Option var repeats = 20

    func run() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) - 0.5
        }
        let x = (0..<rows * cols).map { _ in next() }
        let w = (0..<cols).map { _ in next() }
        var y = [Double](repeating: 0, count: rows)
        var times: [Double] = []
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    Kernels.multiply(xp, rows: rows, cols: cols, by: wp, into: yp)  // warm-up
                    for _ in 0..<repeats {
                        let start = DispatchTime.now().uptimeNanoseconds
                        Kernels.multiply(xp, rows: rows, cols: cols, by: wp, into: yp)
                        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                    }
                }
            }
        }
        times.sort()
        let median = times[times.count / 2]
        print(String(format: "{\"rows\": %d, \"cols\": %d, \"median_seconds\": %.6f, \"rows_per_second\": %.0f, \"checksum\": %.6f}",
                     rows, cols, median, Double(rows) / median, y.reduce(0, +)))
    }
}

/// For `make bench`: fits the exported training matrix of `leadlens train --export-matrix`, so
/// the solver can be timed against scikit-learn on exactly the same numbers.
struct TrainBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-train",
        abstract: "Fit a standardized matrix written by train --export-matrix, and time the solve.",
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("Folder with X.f64, y.f64 and meta.json.", valueName: "dir"))
    var matrix: String

    @Option(name: .customLong("C")) var c: Double = 1.0

    func run() throws {
        let url = URL(fileURLWithPath: matrix, isDirectory: true)
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("meta.json"))) as? [String: Any]
        guard let rows = meta?["rows"] as? Int, let cols = meta?["cols"] as? Int else {
            throw ValidationError("meta.json needs rows and cols")
        }
        func load(_ name: String, _ count: Int) throws -> [Double] {
            let data = try Data(contentsOf: url.appendingPathComponent(name))
            guard data.count == count * 8 else { throw ValidationError("\(name) holds \(data.count / 8) values, expected \(count)") }
            return data.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        }
        let x = try load("X.f64", rows * cols)
        let y = try load("y.f64", rows)
        let started = DispatchTime.now().uptimeNanoseconds
        let fit = try LogisticRegression.fit(x: x, rows: rows, cols: cols, y: y, options: .init(c: c))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let p = Trainer.predict(x, rows: rows, width: cols, weights: fit.weights, intercept: fit.intercept)
        print(String(format: "{\"seconds\": %.4f, \"iterations\": %d, \"converged\": %@, \"log_loss\": %.12f}",
                     seconds, fit.iterations, fit.converged ? "true" : "false",
                     Metrics.logLoss(probabilities: p, labels: y)))
    }
}
