#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file or stdin in fixed chunks, so memory stays flat whatever the input size. Input
/// that starts with the gzip magic number is decoded as it is read, whatever its name: a `.gz`
/// export, or gzip piped into stdin.
final class ByteReader {
    enum Line {
        case text(UnsafeBufferPointer<UInt8>)
        /// The line was longer than the limit; its bytes were skipped.
        case tooLong
    }

    struct OpenError: Error, CustomStringConvertible {
        var path: String
        var errno: Int32
        var description: String { "cannot read \(path): \(String(cString: strerror(errno)))" }
    }

    /// Thrown by a read from input that can stall once ``isStopRequested`` returns true.
    struct StopRequested: Error {}

    /// Thrown by a read once compressed input turns out damaged or cut short: the bytes decoded
    /// before it stand, the record being read when it happened does not.
    struct DamagedInput: Error, CustomStringConvertible {
        var kind: GzipDecoder.DataError.Kind
        var reason: String
        var description: String { reason }
    }

    private let fd: Int32
    private let ownsDescriptor: Bool
    /// A pipe, FIFO, terminal or socket: a read may wait for the writer. Regular files never do,
    /// so they skip the readiness checks and stay as fast as before.
    let canStall: Bool
    /// For input that can stall: called on the reading thread when nothing more is ready, just
    /// before waiting for it, so the parser can hand over what it has instead of holding it
    /// until the writer sends more.
    var willWait: (() -> Void)?
    /// For input that can stall: checked before each read and while waiting for input; once it
    /// returns true, reads throw ``StopRequested``. Without it a read just blocks.
    var isStopRequested: (() -> Bool)?
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Why input ended early though every byte before stands: gzip data followed by bytes that
    /// are not gzip, which `gzip -d` ignores with a warning. Read by the parser at the end.
    private(set) var endNotice: String?
    /// Bytes handed out so far (decoded, for compressed input).
    private(set) var bytesConsumed: Int64 = 0
    /// Bytes read from the file or stdin so far.
    private var bytesRead: Int64 = 0
    /// Set once the first bytes read turn out to be gzip.
    private var gzip: GzipDecoder?
    private var sniffedCompression = false
    /// The input's size on disk, when known: compressed, for compressed input.
    let totalBytes: Int64?
    /// How far into ``totalBytes`` reading has got: the progress bar's numerator. For gzip,
    /// the compressed bytes decoded so far (not those read ahead).
    var position: Int64 {
        guard let gzip else { return bytesConsumed }
        return bytesRead - Int64(gzip.bufferedInput)
    }
    private(set) var lineNumber = 0

    static let chunkSize = 1 << 20
    /// How long the input may pause before the rows parsed so far are handed over.
    static let burstPauseMilliseconds: Int32 = 20
    /// How often a wait for input looks at ``isStopRequested``.
    static let stopCheckMilliseconds: Int32 = 250

    /// `path` "-" reads standard input.
    init(path: String) throws {
        var info = stat()
        if path == "-" {
            fd = STDIN_FILENO
            ownsDescriptor = false
            totalBytes = nil
            canStall = !(fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG)
        } else {
            fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw OpenError(path: path, errno: errno) }
            ownsDescriptor = true
            if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                throw OpenError(path: path, errno: EISDIR)
            }
            let isRegular = fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
            totalBytes = isRegular ? Int64(info.st_size) : nil
            canStall = !isRegular
        }
        capacity = Self.chunkSize
        buffer = .allocate(capacity: capacity)
    }

    /// Reads an in-memory buffer (an HTTP body) as if it were a file.
    init(bytes: [UInt8]) {
        fd = -1
        ownsDescriptor = false
        canStall = false
        totalBytes = Int64(bytes.count)
        capacity = max(bytes.count, 1)
        buffer = .allocate(capacity: capacity)
        buffer.initialize(from: bytes, count: bytes.count)
        end = bytes.count
        atEOF = true
    }

    deinit {
        buffer.deallocate()
        if ownsDescriptor { close(fd) }
    }

    /// Reads more input after the unconsumed bytes. Returns false at end of input.
    private func fill() throws -> Bool {
        guard !atEOF else { return false }
        if start > 0 {
            // Slide the unconsumed tail to the front.
            let remaining = end - start
            if remaining > 0 { buffer.update(from: buffer + start, count: remaining) }
            start = 0
            end = remaining
        }
        if end == capacity {
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
            grown.update(from: buffer, count: end)
            buffer.deallocate()
            buffer = grown
            capacity *= 2
        }
        let count: Int
        do {
            count = try readInput(into: buffer + end, capacity: capacity - end)
        } catch let error as GzipDecoder.DataError where error.kind == .trailingBytes {
            // Every member's checksum held: the data ends here, its last row included.
            atEOF = true
            endNotice = error.reason
            return false
        } catch let error as GzipDecoder.DataError {
            // What was decoded before stands; the unconsumed bytes are a record cut short.
            atEOF = true
            start = end
            throw DamagedInput(kind: error.kind, reason: error.reason)
        }
        guard count > 0 else {
            atEOF = true
            return false
        }
        end += count
        return true
    }

    /// Reads decoded input: gzip is recognised by its first two bytes and decoded from there.
    private func readInput(into target: UnsafeMutablePointer<UInt8>, capacity: Int) throws -> Int {
        if let gzip { return try gzip.readDecoded(into: target, capacity: capacity) }
        var count = try readRaw(into: target, capacity: capacity)
        guard !sniffedCompression else { return count }
        sniffedCompression = true
        guard count > 0, target[0] == 0x1F else { return count }
        while count < 2 {
            let more = try readRaw(into: target + count, capacity: capacity - count)
            if more == 0 { return count }
            count += more
        }
        guard target[1] == 0x8B else { return count }
        let decoder = try GzipDecoder(prefix: UnsafeBufferPointer(start: target, count: count)) { [unowned self] pointer, count in
            try self.readRaw(into: pointer, capacity: count)
        }
        gzip = decoder
        return try decoder.readDecoded(into: target, capacity: capacity)
    }

    /// Reads bytes as stored: at least one, or 0 at end of input.
    private func readRaw(into target: UnsafeMutablePointer<UInt8>, capacity: Int) throws -> Int {
        while true {
            if canStall { try waitUntilReadable() }
            let count = read(fd, target, capacity)
            if count >= 0 {
                bytesRead += Int64(count)
                return count
            }
            if errno == EINTR { continue }
            throw OpenError(path: "input", errno: errno)
        }
    }

    /// Returns once a read would not block. Waits in bounded steps only when someone may ask
    /// it to stop; otherwise the read itself waits.
    private func waitUntilReadable() throws {
        if isStopRequested?() == true { throw StopRequested() }
        // A bursty writer pauses between writes: give it a moment before handing over a
        // part-filled batch, so batches stay large while the input flows.
        if readWouldNotBlock(waitingUpTo: Self.burstPauseMilliseconds) { return }
        willWait?()
        guard let isStopRequested else { return }
        while !readWouldNotBlock(waitingUpTo: Self.stopCheckMilliseconds) {
            if isStopRequested() { throw StopRequested() }
        }
    }

    /// Whether a read would return at once: with data, at end of input, or with an error for
    /// it to report.
    private func readWouldNotBlock(waitingUpTo milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, milliseconds)
        return ready > 0 || (ready < 0 && errno != EINTR)
    }

    /// The bytes read but not yet handed out: the start of a line still being received.
    var unconsumedBytes: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: buffer + start, count: end - start)
    }

    /// What compressed the (decoded) input when it is a format ingest does not
    /// read, by its magic number: so such a file is named for what it is, not reported as a
    /// CSV with an unreadable header.
    func unsupportedCompression() throws -> String? {
        while end - start < 6, try fill() {}
        let head = Array(UnsafeBufferPointer(start: buffer + start, count: min(6, end - start)))
        let formats: [(name: String, magic: [UInt8])] = [
            ("xz data", [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]), ("zstd data", [0x28, 0xB5, 0x2F, 0xFD]),
            ("a zip archive", [0x50, 0x4B, 0x03, 0x04]), ("gzip compressed twice", [0x1F, 0x8B]),
        ]
        if let format = formats.first(where: { head.starts(with: $0.magic) }) { return format.name }
        // "BZh", a block size digit, then the start of the first block's magic number.
        if head.count == 6, head.starts(with: [0x42, 0x5A, 0x68]), (0x31...0x39).contains(head[3]), head[4] == 0x31, head[5] == 0x41 {
            return "bzip2 data"
        }
        return nil
    }

    private var checkedByteOrderMark = false

    /// Skips a UTF-8 byte order mark at the very start of the input; later calls do nothing.
    func skipByteOrderMark() throws {
        guard !checkedByteOrderMark else { return }
        checkedByteOrderMark = true
        while end - start < 3, try fill() {}
        if end - start >= 3, buffer[start] == 0xEF, buffer[start + 1] == 0xBB, buffer[start + 2] == 0xBF {
            start += 3
            bytesConsumed += 3
        }
        // Excel's "Unicode text" and some Windows exports: every byte a row would be read by
        // is wrong, so the file as a whole is refused with what to do instead.
        if end - start >= 2, (buffer[start], buffer[start + 1]) == (0xFF, 0xFE) || (buffer[start], buffer[start + 1]) == (0xFE, 0xFF) {
            throw IngestFileError(reason: "the input is UTF-16 text (it starts with a UTF-16 byte order mark); save or convert it as UTF-8")
        }
    }

    /// The first non-whitespace byte, without consuming it: used to sniff stdin's format.
    func peekFirstSignificantByte() throws -> UInt8? {
        var offset = 0
        while true {
            while start + offset < end {
                let byte = buffer[start + offset]
                if byte != 0x20, byte != 0x0A, byte != 0x0D, byte != 0x09 { return byte }
                offset += 1
            }
            if end - start >= capacity { return nil }
            guard try fill() else { return nil }
        }
    }

    /// A copy of the first line that is not blank, without its line ending and without consuming
    /// anything, when a newline ends it within `maxLength` bytes; nil otherwise (one line holding
    /// the rest of the input, or a longer line).
    func peekFirstNonBlankLine(maxLength: Int) throws -> [UInt8]? {
        var lineStart = start
        var scanFrom = start
        while true {
            while lineStart < end, [0x20, 0x09, 0x0D, 0x0A].contains(buffer[lineStart]) { lineStart += 1 }
            scanFrom = max(scanFrom, lineStart)
            if end > scanFrom, let newline = memchr(buffer + scanFrom, 0x0A, end - scanFrom) {
                var length = buffer.distance(to: newline.assumingMemoryBound(to: UInt8.self)) - lineStart
                if length > 0, buffer[lineStart + length - 1] == 0x0D { length -= 1 }
                return length <= maxLength ? Array(UnsafeBufferPointer(start: buffer + lineStart, count: length)) : nil
            }
            if end - lineStart > maxLength { return nil }
            // fill() may slide the unconsumed bytes to the front: keep offsets relative to start.
            let (lineOffset, scanned) = (lineStart - start, end - start)
            guard try fill() else { return nil }
            lineStart = start + lineOffset
            scanFrom = start + scanned
        }
    }

    /// The next line without its terminator (LF or CRLF). The buffer is valid until the next call.
    func nextLine(maxLength: Int) throws -> Line? {
        var scanFrom = start
        var skipping = false
        while true {
            let available = end - scanFrom
            if available > 0, let newline = memchr(buffer + scanFrom, 0x0A, available) {
                let lineEnd = buffer.distance(to: newline.assumingMemoryBound(to: UInt8.self))
                lineNumber += 1
                bytesConsumed += Int64(lineEnd + 1 - start)
                defer { start = lineEnd + 1 }
                if skipping { return .tooLong }
                var length = lineEnd - start
                if length > 0, buffer[start + length - 1] == 0x0D { length -= 1 }
                if length > maxLength { return .tooLong }
                return .text(UnsafeBufferPointer(start: buffer + start, count: length))
            }
            scanFrom = end
            if end - start > maxLength {
                // Drop what we have of an overlong line and keep scanning for its end.
                bytesConsumed += Int64(end - start)
                start = end
                scanFrom = end
                skipping = true
            }
            let before = start
            guard try fill() else {
                guard end > start || skipping else { return nil }
                lineNumber += 1
                bytesConsumed += Int64(end - start)
                let length = end - start
                defer { start = end }
                if skipping { return .tooLong }
                return .text(UnsafeBufferPointer(start: buffer + start, count: length))
            }
            scanFrom -= before - start
        }
    }

    /// The rest of the input as one buffer, or nil when it is longer than `limit` bytes.
    func readToEnd(limit: Int) throws -> [UInt8]? {
        var bytes: [UInt8] = []
        while true {
            bytes.append(contentsOf: UnsafeBufferPointer(start: buffer + start, count: end - start))
            bytesConsumed += Int64(end - start)
            start = end
            if bytes.count > limit { return nil }
            guard try fill() else { return bytes }
        }
    }

    /// Hands over the rest of the input, chunk by chunk as it arrives (decoded, for gzip).
    func readRest(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        repeat {
            try body(UnsafeRawBufferPointer(start: buffer + start, count: end - start))
            bytesConsumed += Int64(end - start)
            start = end
        } while try fill()
    }

    /// The next byte, for the CSV state machine.
    @inline(__always)
    func nextByte() throws -> UInt8? {
        if start == end {
            guard try fill() else { return nil }
        }
        let byte = buffer[start]
        start += 1
        bytesConsumed += 1
        return byte
    }
}
