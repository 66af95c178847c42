import Foundation

extension Ingest {
    /// Writes each rejected row as one NDJSON line: file, line, code, field, reason and the raw
    /// row, so the rows can be fixed and sent again. The file is created on the first reject only.
    public final class RejectsFile: RejectSink {
        public let url: URL
        private var handle: FileHandle?
        private var buffer = Data()
        public private(set) var count = 0

        public init(url: URL) {
            self.url = url
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
                line += ",\"raw\":"
                JSONValue.writeQuoted(raw, to: &line)
            }
            line += "}\n"
            buffer.append(contentsOf: line.utf8)
            if buffer.count > 1 << 16 { try? flush() }
        }

        public func flush() throws {
            guard !buffer.isEmpty else { return }
            if handle == nil {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                // Rejected rows are lead data: readable by the owner only.
                _ = FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600])
                handle = try FileHandle(forWritingTo: url)
                try handle?.truncate(atOffset: 0)
            }
            try handle?.write(contentsOf: buffer)
            buffer.removeAll(keepingCapacity: true)
        }

        public func close() throws {
            try flush()
            try handle?.close()
            handle = nil
        }
    }
}
