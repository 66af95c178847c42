import CZlib

/// Streaming gzip decoding for compressed inputs: Segment's S3 and GCS exports (gzipped NDJSON),
/// `.gz` files dropped into a watched folder, and request bodies sent with
/// `Content-Encoding: gzip`. Memory stays flat: zlib's 32 KiB window and one input chunk.
/// Concatenated gzip members decode as one stream, as gzip(1) reads them.
public final class GzipDecoder {
    /// The compressed data is damaged or cut short. The reason names the problem, never the data.
    public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
        public let reason: String
        public var description: String { reason }
    }

    /// Reads up to `count` compressed bytes into the pointer; returns 0 at the end of the input.
    typealias Source = (UnsafeMutablePointer<UInt8>, Int) throws -> Int

    /// Whether `bytes` begin with the gzip magic number.
    public static func isGzip(_ bytes: some Collection<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        return iterator.next() == 0x1F && iterator.next() == 0x8B
    }

    private var stream = z_stream()
    private let source: Source
    private let input: UnsafeMutablePointer<UInt8>
    private static let inputCapacity = 256 << 10
    private var inputEnded = false
    /// The last member ended: more input must be another member.
    private var memberEnded = false

    /// `prefix`: compressed bytes already read from the input (the sniffed header).
    init(prefix: UnsafeBufferPointer<UInt8>, source: @escaping Source) throws(DataError) {
        self.source = source
        input = .allocate(capacity: max(Self.inputCapacity, prefix.count))
        if let base = prefix.baseAddress { input.update(from: base, count: prefix.count) }
        let status = czlib_inflate_init(&stream)
        guard status == Z_OK else {
            input.deallocate()
            throw DataError(reason: "zlib could not start (status \(status))")
        }
        stream.next_in = input
        stream.avail_in = UInt32(prefix.count)
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    /// Decodes into `output`. Returns how many bytes it wrote, at least one, or 0 at the clean
    /// end of the input; throws on damaged or truncated data.
    func read(into output: UnsafeMutablePointer<UInt8>, capacity: Int) throws -> Int {
        precondition(capacity > 0)
        stream.next_out = output
        stream.avail_out = UInt32(clamping: capacity)
        let requested = Int(stream.avail_out)
        while Int(stream.avail_out) == requested {
            if stream.avail_in == 0 && !inputEnded {
                let count = try source(input, Self.inputCapacity)
                if count == 0 { inputEnded = true } else {
                    stream.next_in = input
                    stream.avail_in = UInt32(count)
                }
            }
            if memberEnded {
                // Some tools pad a file with zeros after its last member; anything else that
                // follows must be another member.
                while stream.avail_in > 0 && stream.next_in.pointee == 0 {
                    stream.next_in += 1
                    stream.avail_in -= 1
                }
                if stream.avail_in == 0 {
                    if inputEnded { return 0 }
                    continue
                }
                guard stream.next_in.pointee == 0x1F else {
                    throw DataError(reason: "bytes after the end of the gzip data are not gzip")
                }
                inflateReset(&stream)
                memberEnded = false
            }
            if stream.avail_in == 0 && inputEnded {
                throw DataError(reason: "the gzip data ends early: the file is truncated")
            }
            switch inflate(&stream, Z_NO_FLUSH) {
            case Z_OK:
                continue
            case Z_STREAM_END:
                memberEnded = true
            case Z_BUF_ERROR:
                continue  // wants more input: read on the next pass, or report the truncation
            default:
                let detail = stream.msg.map { String(cString: $0) } ?? "invalid data"
                throw DataError(reason: "the gzip data is damaged (\(detail))")
            }
        }
        return requested - Int(stream.avail_out)
    }

    /// The whole of an in-memory gzip or zlib body, decoded; nil when it decodes to more than
    /// `limit` bytes, so a small body cannot expand past what the server accepts.
    public static func decode(_ bytes: [UInt8], limit: Int) throws(DataError) -> [UInt8]? {
        do {
            return try bytes.withUnsafeBufferPointer { compressed in
                let decoder = try GzipDecoder(prefix: compressed, source: { _, _ in 0 })
                var output: [UInt8] = []
                let chunk = 64 << 10
                let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
                defer { buffer.deallocate() }
                while true {
                    let count = try decoder.read(into: buffer, capacity: chunk)
                    if count == 0 { return output }
                    if output.count + count > limit { return nil }
                    output.append(contentsOf: UnsafeBufferPointer(start: buffer, count: count))
                }
            }
        } catch let error as DataError {
            throw error
        } catch {
            throw DataError(reason: "the gzip data is damaged")
        }
    }
}
