import Foundation

extension Ingest {
    /// Writes each rejected row as one NDJSON line: file, line, code, field, reason and the raw
    /// row, so the rows can be fixed and sent again. The file is created on the first reject only.
    /// A line holding several rejected messages (a Segment batch) is written out once, with its
    /// first reject: repeating a multi-megabyte batch line for each of its bad messages turned a
    /// 2 MB input into a 1 GB rejects file.
    public final class RejectsFile: RejectSink {
        public let url: URL
        private var handle: FileHandle?
        private var buffer = Data()
        public private(set) var count = 0
        /// The raw text written last, with its input and line: the rejects that follow with the
        /// same text (other messages of one batch line) point to it instead of repeating it.
        private var lastRaw: (path: String, line: Int, text: String)?
        /// Set by ``prepare()`` when it created the file: an empty rejects file it made is removed
        /// at close. One that was there before is left, emptied, rather than deleted.
        private var createdByPrepare = false

        public init(url: URL) {
            self.url = url
        }

        /// Opens the file before any input is read, so an unwritable path fails the command up
        /// front rather than after rows committed, and empties it, so rejects a previous run left
        /// are not taken for this run's (a file it created is removed at close if this run
        /// rejects nothing).
        public func prepare() throws {
            let existed = FileManager.default.fileExists(atPath: url.path)
            try open()
            createdByPrepare = !existed
        }

        deinit {
            try? close()
        }

        public func reject(_ error: IngestError, path: String, raw: String?) {
            count += 1
            var line = "{\"file\":"
            JSONValue.writeQuoted(path, to: &line)
            line += ",\"line\":\(error.line),\"code\":\"\(error.code)\""
            if let field = error.field {
                line += ",\"field\":"
                JSONValue.writeQuoted(field, to: &line)
            }
            line += ",\"reason\":"
            JSONValue.writeQuoted(error.reason, to: &line)
            if let raw {
                // Same line and same text: elements of a one-line JSON array share a line
                // number but each carries its own text, which must be kept.
                if let last = lastRaw, last.path == path, last.line == error.line, last.text == raw {
                    line += ",\"raw\":null,\"raw_with_line\":true"
                } else {
                    line += ",\"raw\":"
                    JSONValue.writeQuoted(raw, to: &line)
                    lastRaw = (path, error.line, raw)
                }
            }
            line += "}\n"
            buffer.append(contentsOf: line.utf8)
            if buffer.count > 1 << 16 { try? flush() }
        }

        private func open() throws {
            guard handle == nil else { return }
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            // Rejected rows are lead data: readable by the owner only.
            _ = FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600])
            handle = try FileHandle(forWritingTo: url)
            try handle?.truncate(atOffset: 0)
        }

        public func flush() throws {
            guard !buffer.isEmpty else { return }
            try open()
            try handle?.write(contentsOf: buffer)
            buffer.removeAll(keepingCapacity: true)
        }

        public func close() throws {
            try flush()
            try handle?.close()
            handle = nil
            if createdByPrepare && count == 0 {
                try? FileManager.default.removeItem(at: url)
                createdByPrepare = false
            }
        }
    }
}
