import Foundation

// Our own PRNG and samplers rather than the standard library's `random(in:using:)`, whose algorithms
// may change between Swift releases: the same seed must produce the same bytes everywhere.
extension Synthetic {
    /// SplitMix64; used to expand a seed into xoshiro state and as a bijective 64-bit mixer.
    struct SplitMix64 {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            return Self.mix(state)
        }

        /// The SplitMix64 finalizer. It is a bijection on UInt64, so distinct inputs give distinct outputs.
        @inline(__always)
        static func mix(_ x: UInt64) -> UInt64 {
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
    struct Xoshiro256StarStar: RandomNumberGenerator {
        private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

        init(seed: UInt64) {
            var sm = SplitMix64(state: seed)
            s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
            // The all-zero state is a fixed point; SplitMix64 essentially never yields it, but be safe.
            if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }
        }

        @inline(__always)
        private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

        @inline(__always)
        mutating func next() -> UInt64 {
            let result = Self.rotl(s1 &* 5, 7) &* 9
            let t = s1 << 17
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = Self.rotl(s3, 45)
            return result
        }

        /// Uniform in [0, 1) with 53 random bits.
        @inline(__always)
        mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

        /// Uniform integer in 0..<n (n > 0), by multiply-high; the bias is < n / 2^64, irrelevant here.
        @inline(__always)
        mutating func below(_ n: Int) -> Int {
            Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
        }

        /// Uniform integer in lo...hi.
        @inline(__always)
        mutating func between(_ lo: Int, _ hi: Int) -> Int { lo + below(hi - lo + 1) }

        @inline(__always)
        mutating func chance(_ p: Double) -> Bool { uniform() < p }

        /// Standard normal via Box–Muller (one value per call; no cached state to keep it simple).
        mutating func normal() -> Double {
            let u1 = 1.0 - uniform()  // (0, 1], so log is finite
            let u2 = uniform()
            return (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
        }

        /// Poisson(lambda): Knuth's product method for small lambda, a rounded normal above 30
        /// (plenty accurate for event counts and keeps the cost bounded).
        mutating func poisson(_ lambda: Double) -> Int {
            guard lambda > 0 else { return 0 }
            if lambda < 30 {
                let limit = exp(-lambda)
                var k = 0
                var p = uniform()
                while p > limit {
                    k += 1
                    p *= uniform()
                }
                return k
            }
            return max(0, Int((lambda + lambda.squareRoot() * normal()).rounded()))
        }

        @inline(__always)
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

        @inline(__always)
        mutating func pick(_ table: WeightedTable) -> Int { table.index(for: uniform()) }
    }

    /// A categorical distribution over 0..<weights.count, built once and sampled by linear scan
    /// (tables here are tiny, so this beats a binary search).
    struct WeightedTable: Sendable {
        private let cumulative: [Double]

        init(_ weights: [Double]) {
            let total = weights.reduce(0, +)
            var running = 0.0
            cumulative = weights.map { running += $0 / total; return running }
        }

        @inline(__always)
        func index(for u: Double) -> Int {
            for (i, c) in cumulative.enumerated() where u < c { return i }
            return cumulative.count - 1  // rounding left the last bound slightly below 1
        }
    }
}
