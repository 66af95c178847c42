import Foundation
import LeadStore

extension Synthetic {
    /// Append-only buffered file writer with hand-rolled, locale-free formatting of the few shapes we
    /// emit (integers, ISO timestamps, JSON and CSV strings). Memory stays at ~one flush chunk.
    ///
    /// A noncopyable struct over a raw buffer, passed `inout`: a class's stored properties get run-time
    /// exclusivity checks on every access, and `[UInt8].append` a uniqueness check per byte; both
    /// dominated the profile when formatting ~10M events byte by byte.
    struct ByteSink: ~Copyable {
        static let flushThreshold = 1 << 20

        let url: URL
        private let handle: FileHandle
        private var base: UnsafeMutablePointer<UInt8>
        private var capacity: Int
        private var count = 0
        private var closed = false

        init(url: URL) throws {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw GenerationError.cannotWrite(path: url.path, reason: "cannot create file")
            }
            do {
                handle = try FileHandle(forWritingTo: url)
            } catch {
                throw GenerationError.cannotWrite(path: url.path, reason: String(describing: error))
            }
            self.url = url
            // Headroom past the threshold so a typical record never triggers a reallocation.
            capacity = Self.flushThreshold + 256 * 1024
            base = .allocate(capacity: capacity)
        }

        deinit {
            if !closed { try? handle.close() }
            base.deallocate()
        }

        // MARK: Raw output

        @inline(__always) private mutating func reserve(_ n: Int) {
            if count + n > capacity { grow(to: count + n) }
        }

        private mutating func grow(to needed: Int) {
            let newCapacity = max(capacity * 2, needed)
            let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
            newBase.update(from: base, count: count)
            base.deallocate()
            base = newBase
            capacity = newCapacity
        }

        @inline(__always) mutating func byte(_ b: UInt8) {
            reserve(1)
            base[count] = b
            count += 1
        }

        @inline(__always) private mutating func bytes(_ src: UnsafeBufferPointer<UInt8>) {
            guard let p = src.baseAddress else { return }
            reserve(src.count)
            (base + count).update(from: p, count: src.count)
            count += src.count
        }

        @inline(__always) mutating func raw(_ s: String) {
            var s = s  // withUTF8 is mutating; native Swift strings are already contiguous, so no copy
            s.withUTF8 { bytes($0) }
        }

        @inline(__always) mutating func literal(_ s: StaticString) {
            s.withUTF8Buffer { bytes($0) }
        }

        /// Flush when the buffer passes the threshold; call between records.
        @inline(__always) mutating func flushIfNeeded() throws {
            if count >= Self.flushThreshold { try flush() }
        }

        mutating func flush() throws {
            guard count > 0 else { return }
            do {
                // Wrap the buffer instead of copying it into a fresh Data on every flush.
                try handle.write(contentsOf: Data(bytesNoCopy: base, count: count, deallocator: .none))
            } catch {
                throw GenerationError.cannotWrite(path: url.path, reason: String(describing: error))
            }
            count = 0
        }

        mutating func close() throws {
            try flush()
            closed = true
            do {
                try handle.close()
            } catch {
                throw GenerationError.cannotWrite(path: url.path, reason: String(describing: error))
            }
        }

        // MARK: Numbers

        mutating func int(_ value: Int) {
            reserve(20)
            if value < 0 { base[count] = UInt8(ascii: "-"); count += 1 }
            var v = value.magnitude
            var digits = 1
            var p: UInt = 10
            while digits < 20 && v >= p {
                digits += 1
                let (next, overflow) = p.multipliedReportingOverflow(by: 10)
                if overflow { break }
                p = next
            }
            var i = count + digits - 1
            repeat {
                base[i] = UInt8(truncatingIfNeeded: 48 &+ v % 10)
                v /= 10
                i -= 1
            } while v > 0
            count += digits
        }

        /// Zero-padded to at least `width` digits (non-negative values).
        mutating func padded(_ value: Int, width: Int) {
            var digits = 1
            var p = 10
            while p <= value && digits < 18 { digits += 1; p &*= 10 }
            if digits < width { for _ in digits..<width { byte(UInt8(ascii: "0")) } }
            int(value)
        }

        @inline(__always) private mutating func two(_ v: Int) {
            reserve(2)
            base[count] = UInt8(truncatingIfNeeded: 48 + v / 10)
            base[count + 1] = UInt8(truncatingIfNeeded: 48 + v % 10)
            count += 2
        }

        /// Shortest round-trip decimal: Swift's `description` is locale-independent, and valid JSON for
        /// the finite values we write.
        mutating func double(_ value: Double) { raw(value.description) }

        /// Lowercase hex, exactly `digits` digits (the low 4×digits bits of `value`).
        mutating func hex(_ value: UInt64, digits: Int) {
            reserve(digits)
            var v = value
            for i in stride(from: count + digits - 1, through: count, by: -1) {
                let d = UInt8(truncatingIfNeeded: v & 0xF)
                base[i] = d < 10 ? 48 + d : 87 + d
                v >>= 4
            }
            count += digits
        }

        // MARK: Timestamps

        /// `YYYY-MM-DDTHH:MM:SSZ`, or with `.mmm` when `milliseconds` is set, from Unix epoch milliseconds.
        mutating func isoTimestamp(epochMillis ms: Int64, milliseconds: Bool) {
            let (secs, msPart) = Self.floorDivMod(ms, 1000)
            let (days, secOfDay) = Self.floorDivMod(secs, 86_400)
            let (y, m, d) = LeadStats.civilDate(days)
            padded(Int(y), width: 4)
            byte(UInt8(ascii: "-")); two(Int(m))
            byte(UInt8(ascii: "-")); two(Int(d))
            byte(UInt8(ascii: "T")); two(Int(secOfDay / 3600))
            byte(UInt8(ascii: ":")); two(Int(secOfDay / 60 % 60))
            byte(UInt8(ascii: ":")); two(Int(secOfDay % 60))
            if milliseconds {
                byte(UInt8(ascii: "."))
                byte(UInt8(truncatingIfNeeded: 48 + msPart / 100))
                two(Int(msPart % 100))
            }
            byte(UInt8(ascii: "Z"))
        }

        @inline(__always) private static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
            let q = a / b, r = a % b
            return r < 0 ? (q - 1, r + b) : (q, r)
        }

        // MARK: Strings

        /// A JSON string literal with RFC 8259 escaping; non-ASCII UTF-8 passes through unchanged.
        mutating func jsonString(_ s: String) {
            var s = s
            s.withUTF8 { utf8 in
                byte(UInt8(ascii: "\""))
                // Fast path: nearly every string we emit needs no escaping.
                if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                    bytes(utf8)
                } else {
                    for b in utf8 {
                        switch b {
                        case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte(UInt8(ascii: "\\")); byte(b)
                        case 0x0A: byte(UInt8(ascii: "\\")); byte(UInt8(ascii: "n"))
                        case 0x0D: byte(UInt8(ascii: "\\")); byte(UInt8(ascii: "r"))
                        case 0x09: byte(UInt8(ascii: "\\")); byte(UInt8(ascii: "t"))
                        case 0..<0x20: literal("\\u00"); hex(UInt64(b), digits: 2)
                        default: byte(b)
                        }
                    }
                }
                byte(UInt8(ascii: "\""))
            }
        }

        /// `"key":` for our own ASCII keys, which need no escaping.
        @inline(__always) mutating func key(_ k: StaticString) {
            byte(UInt8(ascii: "\""))
            literal(k)
            byte(UInt8(ascii: "\""))
            byte(UInt8(ascii: ":"))
        }

        /// An RFC 4180 field: quoted (with doubled quotes) only when it contains `,`, `"`, CR or LF.
        mutating func csvField(_ s: String) {
            var s = s
            s.withUTF8 { utf8 in
                let needsQuotes = utf8.contains { (b: UInt8) -> Bool in
                    b == 0x2C || b == 0x22 || b == 0x0A || b == 0x0D
                }
                guard needsQuotes else { bytes(utf8); return }
                byte(UInt8(ascii: "\""))
                for b in utf8 {
                    if b == UInt8(ascii: "\"") { byte(b) }
                    byte(b)
                }
                byte(UInt8(ascii: "\""))
            }
        }
    }
}
