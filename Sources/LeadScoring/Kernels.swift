import CBLAS

/// The BLAS calls the scoring engine is built on. Thin wrappers, so call sites read as math and
/// the row-major/column-major bookkeeping lives in one place.
public enum Kernels {
    /// y ← X·w for a row-major rows×cols matrix X.
    public static func multiply(_ x: UnsafeBufferPointer<Double>, rows: Int, cols: Int,
                                by w: UnsafeBufferPointer<Double>, into y: UnsafeMutableBufferPointer<Double>) {
        precondition(x.count >= rows * cols && w.count >= cols && y.count >= rows, "matrix and vector sizes disagree")
        guard rows > 0, cols > 0 else { return }
        cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(cols), 1.0,
                    x.baseAddress, Int32(cols), w.baseAddress, 1, 0.0, y.baseAddress, 1)
    }

    /// Convenience over arrays: X·w.
    public static func multiply(_ x: [Double], rows: Int, cols: Int, by w: [Double]) -> [Double] {
        var y = [Double](repeating: 0, count: rows)
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { multiply(xp, rows: rows, cols: cols, by: wp, into: $0) }
            }
        }
        return y
    }
}
