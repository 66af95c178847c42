import CBLAS

/// The BLAS calls the scoring engine is built on. Thin wrappers over row-major matrices, so call
/// sites read as math and the row-major/column-major bookkeeping lives in one place.
public enum Kernels {
    /// Row count scoring pads every dgemv to a multiple of (see `Trainer.predict`). OpenBLAS's
    /// dgemv kernels work on up to 8 rows at a time; 32 leaves room for wider kernels.
    public static let rowBlock = 32

    /// y ← X·w for a row-major rows×cols matrix X.
    public static func multiply(_ x: UnsafeBufferPointer<Double>, rows: Int, cols: Int,
                                by w: UnsafeBufferPointer<Double>, into y: UnsafeMutableBufferPointer<Double>) {
        precondition(x.count >= rows * cols && w.count >= cols && y.count >= rows, "matrix and vector sizes disagree")
        BLASThreads.pinnedToCallingThread
        guard rows > 0 else { return }
        guard cols > 0 else {
            for i in 0..<rows { y[i] = 0 }
            return
        }
        cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(cols), 1.0,
                    x.baseAddress, Int32(cols), w.baseAddress, 1, 0.0, y.baseAddress, 1)
    }

    /// g ← g + Xᵀ·r, accumulating: for summing a gradient block by block.
    public static func accumulateTransposed(_ x: UnsafeBufferPointer<Double>, rows: Int, cols: Int,
                                            by r: UnsafeBufferPointer<Double>, into g: UnsafeMutableBufferPointer<Double>) {
        precondition(x.count >= rows * cols && r.count >= rows && g.count >= cols, "matrix and vector sizes disagree")
        BLASThreads.pinnedToCallingThread
        guard rows > 0, cols > 0 else { return }
        cblas_dgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(cols), 1.0,
                    x.baseAddress, Int32(cols), r.baseAddress, 1, 1.0, g.baseAddress, 1)
    }

    /// The upper triangle of C ← C + Bᵀ·B (cols×cols, row-major), accumulating: for summing a
    /// Hessian block by block. The lower triangle is left alone; ``mirrorUpper(_:size:)`` fills it.
    public static func accumulateGram(_ b: UnsafeBufferPointer<Double>, rows: Int, cols: Int,
                                      into c: UnsafeMutableBufferPointer<Double>) {
        precondition(b.count >= rows * cols && c.count >= cols * cols, "matrix sizes disagree")
        BLASThreads.pinnedToCallingThread
        guard rows > 0, cols > 0 else { return }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(cols), Int32(rows), 1.0,
                    b.baseAddress, Int32(cols), 1.0, c.baseAddress, Int32(cols))
    }

    /// Copies the upper triangle of a row-major size×size matrix into its lower triangle.
    public static func mirrorUpper(_ c: UnsafeMutableBufferPointer<Double>, size: Int) {
        for i in 0..<size {
            for j in 0..<i { c[i * size + j] = c[j * size + i] }
        }
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

    /// Convenience over arrays: Xᵀ·r (accumulated into zeros).
    public static func multiplyTransposed(_ x: [Double], rows: Int, cols: Int, by r: [Double]) -> [Double] {
        var g = [Double](repeating: 0, count: cols)
        x.withUnsafeBufferPointer { xp in
            r.withUnsafeBufferPointer { rp in
                g.withUnsafeMutableBufferPointer { accumulateTransposed(xp, rows: rows, cols: cols, by: rp, into: $0) }
            }
        }
        return g
    }

    /// Convenience over arrays: the full symmetric Bᵀ·B (accumulated into zeros).
    public static func gram(_ b: [Double], rows: Int, cols: Int) -> [Double] {
        var c = [Double](repeating: 0, count: cols * cols)
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer {
                accumulateGram(bp, rows: rows, cols: cols, into: $0)
                mirrorUpper($0, size: cols)
            }
        }
        return c
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS runs its kernels on a thread pool whose idle workers spin (sched_yield) for a while
/// after each call. LeadLens's BLAS calls are small dgemv/dsyrk blocks between long stretches of
/// SQLite and Swift work, so the spinning workers only take a core from the threads doing that work:
/// a 1M-event ingest that rescored through the default pool took 21.7 s, against 16.5 s on one thread.
/// The setting is process-wide in OpenBLAS, so it is made once, before the first call, rather than
/// toggled around calls that may run concurrently. With reference BLAS, which has no threads, this
/// does nothing.
enum BLASThreads {
    private typealias SetThreads = @convention(c) (Int32) -> Void

    /// Evaluated once, thread-safely, by the first kernel call.
    static let pinnedToCallingThread: Void = {
        let process = dlopen(nil, RTLD_NOW)
        guard let symbol = dlsym(process, "openblas_set_num_threads") else { return }
        unsafeBitCast(symbol, to: SetThreads.self)(1)
    }()
}
