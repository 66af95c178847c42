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
