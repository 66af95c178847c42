import LeadScoring
import Testing

@Suite("BLAS kernels")
struct KernelTests {
    @Test("dgemv through CBLAS equals a plain loop", arguments: [(1, 1), (3, 2), (257, 33)])
    func multiplyMatchesNaive(rows: Int, cols: Int) {
        let x = (0..<rows * cols).map { Double(($0 * 7919) % 113) / 17 - 3 }
        let w = (0..<cols).map { Double(($0 * 31) % 11) / 5 - 1 }
        let y = Kernels.multiply(x, rows: rows, cols: cols, by: w)
        for r in 0..<rows {
            let expected = (0..<cols).reduce(0.0) { $0 + x[r * cols + $1] * w[$1] }
            #expect(abs(y[r] - expected) <= 1e-12 * max(1, abs(expected)))
        }
    }
}
