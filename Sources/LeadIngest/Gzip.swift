import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Streaming gzip decoding for compressed inputs: Segment's S3 and GCS exports (gzipped NDJSON),
/// `.gz` files dropped into a watched folder, and request bodies sent with
/// `Content-Encoding: gzip`. Memory stays flat: zlib's 32 KiB window and one input chunk.
/// Concatenated gzip members decode as one stream, as gzip(1) reads them.
public final class GzipDecoder {
    /// The compressed data is damaged or cut short. The reason names the problem, never the data.
    public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
        public enum Kind: Sendable {
            /// The data stops early: everything decoded before the cut is what was compressed.
            case truncated
            /// Bytes that are not gzip follow a whole member, whose checksum held.
            case trailingBytes
            /// zlib found invalid data or a checksum that does not match: output decoded before
            /// the point where it noticed may already be wrong.
            case damaged
        }

        public let kind: Kind
        public let reason: String
        public var description: String { reason }
    }

    /// Reads up to `count` compressed bytes into the pointer; returns 0 at the end of the input.
    typealias Source = (UnsafeMutablePointer<UInt8>, Int) throws -> Int

    /// Allocated rather than a stored struct: zlib keeps a pointer back to its stream and
    /// checks it on every call, so the stream's address must never change.
    private let stream: UnsafeMutablePointer<z_stream>
    private let source: Source
    private let input: UnsafeMutablePointer<UInt8>
    private static let inputCapacity = 256 << 10
    private var inputEnded = false
    /// The last member ended: more input must be another member.
    private var memberEnded = false
    /// Damage found after some output of the same call: that output is returned first, and
    /// the next call throws this.
    private var pendingError: DataError?

    /// Compressed bytes read from the source but not yet decoded.
    var bufferedInput: Int { Int(stream.pointee.avail_in) }

    private var streamStarted = false

    /// `prefix`: compressed bytes already read from the input (the sniffed header). `rawDeflate`
    /// reads deflate data without a header; otherwise the header says gzip or zlib.
    init(prefix: UnsafeBufferPointer<UInt8>, rawDeflate: Bool = false, source: @escaping Source) throws(DataError) {
        self.source = source
        input = .allocate(capacity: max(Self.inputCapacity, prefix.count))
        if let base = prefix.baseAddress { input.update(from: base, count: prefix.count) }
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // A throw from here on still runs deinit, which frees both.
        let status = rawDeflate ? czlib_inflate_init_raw(stream) : czlib_inflate_init(stream)
        guard status == Z_OK else { throw DataError(kind: .damaged, reason: "zlib could not start (status \(status))") }
        streamStarted = true
        stream.pointee.next_in = input
        stream.pointee.avail_in = UInt32(prefix.count)
    }

    deinit {
        if streamStarted { inflateEnd(stream) }
        stream.deallocate()
        input.deallocate()
    }

    /// Decodes into `output`. Returns how many bytes it wrote, at least one, or 0 at the clean
    /// end of the input; throws on damaged or truncated data, once every byte decoded before
    /// the damage has been returned.
    func readDecoded(into output: UnsafeMutablePointer<UInt8>, capacity: Int) throws -> Int {
        precondition(capacity > 0)
        if let pendingError { throw pendingError }
        stream.pointee.next_out = output
        stream.pointee.avail_out = UInt32(clamping: capacity)
        let requested = Int(stream.pointee.avail_out)
        var produced: Int { requested - Int(stream.pointee.avail_out) }
        /// zlib can write output in the same call that finds damage: hand that over first.
        func fail(_ kind: DataError.Kind, _ reason: String) throws -> Int {
            let error = DataError(kind: kind, reason: reason)
            guard produced > 0 else { throw error }
            pendingError = error
            return produced
        }
        while produced == 0 {
            if stream.pointee.avail_in == 0 && !inputEnded {
                let count = try source(input, Self.inputCapacity)
                if count == 0 { inputEnded = true } else {
                    stream.pointee.next_in = input
                    stream.pointee.avail_in = UInt32(count)
                }
            }
            if memberEnded {
                // Some tools pad a file with zeros after its last member; anything else that
                // follows must be another member.
                while stream.pointee.avail_in > 0 && stream.pointee.next_in.pointee == 0 {
                    stream.pointee.next_in += 1
                    stream.pointee.avail_in -= 1
                }
                if stream.pointee.avail_in == 0 {
                    if inputEnded { return 0 }
                    continue
                }
                guard stream.pointee.next_in.pointee == 0x1F else {
                    throw DataError(kind: .trailingBytes, reason: "bytes after the end of the gzip data are not gzip")
                }
                inflateReset(stream)
                memberEnded = false
            }
            // With the input used up, this call still flushes what zlib holds back.
            switch inflate(stream, Z_NO_FLUSH) {
            case Z_OK:
                continue
            case Z_STREAM_END:
                memberEnded = true
            case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                if inputEnded { return try fail(.truncated, "the gzip data ends early: it is truncated") }
                continue  // wants more input: read on the next pass
            default:
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "invalid data"
                return try fail(.damaged, "the gzip data is damaged (\(detail))")
            }
        }
        return produced
    }

    /// What testing a whole gzip input found.
    enum Test {
        /// Not gzip, not a regular file (a pipe cannot be read twice), or decodes to its end.
        case clean
        case damaged(DataError)
        /// `shouldStop` turned true before the test finished.
        case stopped
    }

    /// Decodes a whole gzip file, discarding the output, as `gzip -t` tests one. `path` "-" is
    /// standard input when it is redirected from a file, tested from its current offset with
    /// pread(2), which leaves that offset where the ingest will start reading.
    static func test(fileAt path: String, shouldStop: () -> Bool) -> Test {
        let isStandardInput = path == "-"
        // A FIFO is never opened here: opening and closing its read end before the ingest
        // opens its own would leave a writer with no reader, which kills it with SIGPIPE.
        var pathInfo = stat()
        if !isStandardInput, stat(path, &pathInfo) != 0 || (pathInfo.st_mode & S_IFMT) != S_IFREG { return .clean }
        let descriptor = isStandardInput ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .clean }  // the ingest reports what it cannot open
        defer { if !isStandardInput { close(descriptor) } }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return .clean }
        var offset = isStandardInput ? lseek(descriptor, 0, SEEK_CUR) : 0
        var magic: [UInt8] = [0, 0]
        guard offset >= 0, pread(descriptor, &magic, 2, offset) == 2, magic == [0x1F, 0x8B] else { return .clean }
        do {
            let decoder = try GzipDecoder(prefix: UnsafeBufferPointer(start: nil, count: 0)) { target, capacity in
                while true {
                    let count = pread(descriptor, target, capacity, offset)
                    if count >= 0 {
                        offset += off_t(count)
                        return count
                    }
                    if errno != EINTR { throw DataError(kind: .truncated, reason: "the file could not be read to its end") }
                }
            }
            let chunk = 1 << 20
            let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
            defer { scratch.deallocate() }
            while try decoder.readDecoded(into: scratch, capacity: chunk) > 0 {
                if shouldStop() { return .stopped }
            }
            return .clean
        } catch let error as DataError {
            return .damaged(error)
        } catch {
            return .clean
        }
    }

    /// Whether `bytes` start with a zlib header (RFC 1950): deflate, a window of at most 32 KiB,
    /// and a check value that makes the first two bytes a multiple of 31.
    static func startsWithZlibHeader(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        return bytes[0] & 0x0F == 8 && bytes[0] >> 4 <= 7 && (UInt16(bytes[0]) << 8 | UInt16(bytes[1])) % 31 == 0
    }

    /// The whole of an in-memory gzip or zlib body, decoded; nil when it decodes to more than
    /// `limit` bytes, so a small body cannot expand past what the server accepts.
    /// `headerlessDeflate`: bytes that start with neither gzip's magic number nor a zlib header
    /// are read as raw deflate. HTTP's `deflate` is zlib data, but some clients send raw deflate
    /// under that name, and some send gzip.
    public static func decode(_ bytes: [UInt8], headerlessDeflate: Bool = false, limit: Int) throws(DataError) -> [UInt8]? {
        let rawDeflate = headerlessDeflate && !bytes.starts(with: [0x1F, 0x8B]) && !startsWithZlibHeader(bytes)
        do {
            return try bytes.withUnsafeBufferPointer { compressed in
                let decoder = try GzipDecoder(prefix: compressed, rawDeflate: rawDeflate, source: { _, _ in 0 })
                var output: [UInt8] = []
                let chunk = 64 << 10
                let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
                defer { buffer.deallocate() }
                while true {
                    let count = try decoder.readDecoded(into: buffer, capacity: chunk)
                    if count == 0 { return output }
                    if output.count + count > limit { return nil }
                    output.append(contentsOf: UnsafeBufferPointer(start: buffer, count: count))
                }
            }
        } catch let error as DataError {
            throw error
        } catch {
            throw DataError(kind: .damaged, reason: "the gzip data is damaged")
        }
    }
}
