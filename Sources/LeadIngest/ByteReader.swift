#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file or stdin in fixed chunks, so memory stays flat whatever the input size.
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

    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Bytes handed out so far: the progress bar's numerator.
    private(set) var bytesConsumed: Int64 = 0
    let totalBytes: Int64?
    private(set) var lineNumber = 0

    static let chunkSize = 1 << 20

    /// `path` "-" reads standard input.
    init(path: String) throws {
        if path == "-" {
            fd = STDIN_FILENO
            ownsDescriptor = false
            totalBytes = nil
        } else {
            fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw OpenError(path: path, errno: errno) }
            ownsDescriptor = true
            var info = stat()
            if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                throw OpenError(path: path, errno: EISDIR)
            }
            totalBytes = fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
        }
        capacity = Self.chunkSize
        buffer = .allocate(capacity: capacity)
    }

    /// Reads an in-memory buffer (an HTTP body) as if it were a file.
    init(bytes: [UInt8]) {
        fd = -1
        ownsDescriptor = false
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
        while true {
            let count = read(fd, buffer + end, capacity - end)
            if count > 0 {
                end += count
                return true
            }
            if count == 0 {
                atEOF = true
                return false
            }
            if errno == EINTR { continue }
            throw OpenError(path: "input", errno: errno)
        }
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
