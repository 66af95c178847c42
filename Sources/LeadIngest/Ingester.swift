import Foundation
import GRDB
import LeadStore
import Logging

extension Ingest {
    public enum Format: String, CaseIterable, Sendable {
        case auto, ndjson, csv, json
    }

    public struct Options: Sendable {
        public var format: Format = .auto
        /// Abort at the first bad row and commit nothing from that file.
        public var strict = false
        /// Records parsed and written per batch; also the granularity at which a stop request is seen.
        public var batchSize = 5_000
        /// A transaction commits once it holds this many records, or after ``commitInterval``.
        /// Large transactions amortize the pages every commit rewrites into the WAL: events for
        /// scattered leads insert at random places of the events table (keyed by lead), as leads
        /// do in their indexes (email, name, ...), so one page may hold many of a batch's rows.
        public var recordsPerTransaction = 100_000
        public var commitInterval: TimeInterval = 2
        /// NDJSON lines longer than this are rejected unread; a Segment batch is at most 500 KB.
        public var maxLineBytes = 16 << 20

        public init(format: Format = .auto, strict: Bool = false) {
            self.format = format
            self.strict = strict
        }
    }

    public struct Progress: Sendable {
        public var bytesRead: Int64
        public var totalBytes: Int64?
        public var rows: Int
    }

    /// The outcome of ingesting one input.
    public struct FileSummary: Sendable {
        public var path: String
        public var counts = Counts()
        /// The first rejects, for display; the rejects sink receives every one.
        public var sampleRejects: [IngestError] = []
        /// `--strict` stopped at a bad row and rolled the file back.
        public var abortedStrict = false
        /// Stopped early by a signal; what was committed before stays committed.
        public var interrupted = false
        public var bytes: Int64 = 0
        public var seconds: Double = 0
    }

    /// Receives every rejected row with the raw text it came from.
    public protocol RejectSink: AnyObject {
        func reject(_ error: IngestError, path: String, raw: String?)
    }
}

/// Drives one or more inputs through parsing and the batch writer.
public final class Ingester {
    public let store: LeadStore
    let logger: Logger
    private let writer: BatchWriter

    /// Runs inside every ingest transaction just before it commits, with the leads it created,
    /// changed or gave new events (ascending ids). Scoring hooks in here, so a lead's new events
    /// and the score they cause commit together; a throw rolls the transaction back.
    public typealias BeforeCommit = (Database, [Int64]) throws -> Void
    private let beforeCommit: BeforeCommit?

    /// `clock`: unix ms now; tests pass their own.
    public init(store: LeadStore, logger: Logger = Logger(label: "leadlens.ingest"), beforeCommit: BeforeCommit? = nil,
                clock: @escaping @Sendable () -> Int64 = { LeadStore.nowMillis() }) {
        self.store = store
        self.logger = logger
        self.writer = BatchWriter(clock: clock)
        self.beforeCommit = beforeCommit
    }

    /// Ingests one file (or "-" for stdin).
    ///
    /// - Parameters:
    ///   - shouldStop: polled between batches; when it turns true the current batch commits and
    ///     ingest returns with `interrupted` set. From a pipe (stdin), whose bytes cannot be read
    ///     again, reading stops instead and every row parsed so far commits first.
    public func ingest(
        path: String,
        options: Ingest.Options = Ingest.Options(),
        rejects: (any Ingest.RejectSink)? = nil,
        progress: ((Ingest.Progress) -> Void)? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> Ingest.FileSummary {
        // A strict run writes its whole input in one transaction. Read from a pipe, that
        // transaction would hold the store's write lock while the pipe is quiet, for as long as
        // its writer likes, and every other writer would time out: the input is first copied to
        // a file, and the transaction covers only reading that.
        if options.strict, case let reader = try ByteReader(path: path), reader.canStall {
            let started = Date()
            guard let spooled = try spool(reader, shouldStop: shouldStop) else {
                var summary = Ingest.FileSummary(path: path)
                summary.interrupted = true  // nothing was committed, as --strict promises
                summary.seconds = Date().timeIntervalSince(started)
                return summary
            }
            defer { try? FileManager.default.removeItem(at: spooled) }
            return try ingest(path: spooled.path, reportedAs: path, options: options, rejects: rejects, progress: progress,
                              shouldStop: shouldStop)
        }
        return try ingest(path: path, reportedAs: path, options: options, rejects: rejects, progress: progress, shouldStop: shouldStop)
    }

    /// Copies the rest of `reader`'s input to a hidden file beside the store (not in $TMPDIR,
    /// often a RAM disk: the input can be large). Nil when a stop was requested first.
    private func spool(_ reader: ByteReader, shouldStop: () -> Bool) throws -> URL? {
        let folder = store.filePath.map { URL(fileURLWithPath: $0).deletingLastPathComponent() } ?? FileManager.default.temporaryDirectory
        let url = folder.appendingPathComponent(".leadlens-input-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let output = try? FileHandle(forWritingTo: url) else {
            throw IngestFileError(reason: "cannot create a temporary file in \(folder.path) to hold the input")
        }
        defer { try? output.close() }
        var complete = false
        defer { if !complete { try? FileManager.default.removeItem(at: url) } }
        do {
            try withoutActuallyEscaping(shouldStop) { shouldStop in
                reader.isStopRequested = shouldStop
                defer { reader.isStopRequested = nil }
                try reader.readRest { try output.write(contentsOf: $0) }
            }
        } catch is ByteReader.StopRequested {
            return nil
        } catch let damage as ByteReader.DamagedInput {
            throw IngestFileError(reason: "\(damage.reason); nothing was ingested, as --strict asks")
        }
        complete = true
        return url
    }

    /// Ingests `path`, naming it `reportedAs` in the summary, the log and the rejects.
    private func ingest(
        path: String,
        reportedAs displayPath: String,
        options: Ingest.Options,
        rejects: (any Ingest.RejectSink)?,
        progress: ((Ingest.Progress) -> Void)?,
        shouldStop: () -> Bool
    ) throws -> Ingest.FileSummary {
        let started = Date()
        // zlib notices damage only some way after it, at worst at the checksum that ends a
        // member, and the rows decoded before would commit first: a damaged gzip file is
        // refused whole, tested as `gzip -t` would before any row of it is read. A truncated
        // one goes ahead: what precedes the cut is exactly what was compressed.
        var summary = Ingest.FileSummary(path: displayPath)
        switch GzipDecoder.test(fileAt: path, shouldStop: shouldStop) {
        case .damaged(let damage) where damage.kind == .damaged:
            throw IngestFileError(reason: "\(damage.reason); nothing was ingested from it, since rows decoded before the damage may be wrong")
        case .stopped:
            summary.interrupted = true
            summary.seconds = Date().timeIntervalSince(started)
            return summary
        case .clean, .damaged:
            break
        }
        let reader = try ByteReader(path: path)
        let source: RecordSource
        do {
            // Both read the first bytes, which a quiet stdin may not send for hours.
            source = try withoutActuallyEscaping(shouldStop) { shouldStop in
                reader.isStopRequested = shouldStop
                defer { reader.isStopRequested = nil }
                if let compression = try reader.unsupportedCompression() {
                    throw IngestFileError(reason: "the input is \(compression); ingest reads plain text or gzip: decompress it first")
                }
                // By the name given: a spooled pipe's copy has none.
                let format = try resolveFormat(options.format, path: displayPath, reader: reader)
                let tabSeparated = Self.pathExtension(displayPath) == "tsv"
                return try RecordSource(format: format, reader: reader, options: options, tabSeparated: tabSeparated)
            }
        } catch is ByteReader.StopRequested {
            summary.interrupted = true
            summary.seconds = Date().timeIntervalSince(started)
            return summary
        } catch let damage as ByteReader.DamagedInput {
            // Broken before a single row could be read (a damaged gzip header): the file's failure.
            throw IngestFileError(reason: damage.reason)
        }

        let sink = RejectCollector(path: displayPath, downstream: rejects)
        writer.beginFile()
        let pipeline = ParsePipeline(source: source, reader: reader, rejects: sink, batchSize: options.batchSize)
        var parserFinished = false
        defer { if !parserFinished { pipeline.finish(timeout: 2) } }

        var lastProgress = Ingest.Progress(bytesRead: 0, totalBytes: reader.totalBytes, rows: 0)
        var rejectedSoFar = 0
        /// The next parsed batch; nil at the end of input. Nil as well when nothing arrives within
        /// `timeout`, so callers can commit, or look for a stop request, instead of waiting.
        func nextBatch(timeout: TimeInterval) throws -> (records: [Ingest.Record]?, ended: Bool) {
            switch pipeline.next(timeout: timeout) {
            case .batch(let records, let progress, let rejected)?:
                lastProgress = progress
                rejectedSoFar = rejected
                return (records, false)
            case .end(let rejected)?:
                rejectedSoFar = rejected
                return (nil, true)
            case .failure(let error)?: throw error
            case nil: return (nil, false)
            }
        }
        /// What was read from a pipe cannot be read again: on a stop request the parser stops
        /// reading it, and everything it parsed commits before ingest returns. A file stops
        /// after the batch in hand; running the same command again finishes it.
        let drainsOnStop = reader.canStall
        func checkForStop() {
            guard !summary.interrupted, shouldStop() else { return }
            summary.interrupted = true
            if drainsOnStop { pipeline.stopReading() }
        }
        var stopsNow: Bool { summary.interrupted && !drainsOnStop }
        func write(_ batch: consuming [Ingest.Record], db: Database) throws {
            summary.counts += try writer.write(batch, in: db)
            pipeline.recycle(consume batch)
            progress?(lastProgress)
            checkForStop()
        }

        do {
            if options.strict {
                // One transaction for the whole file: the first bad row rolls everything back.
                try writeTransaction { db in
                    while true {
                        let (batch, ended) = try nextBatch(timeout: 0.25)
                        if ended || rejectedSoFar > 0 { break }
                        if let batch { try write(batch, db: db) } else { checkForStop() }
                        if summary.interrupted { return .rollback }
                    }
                    if rejectedSoFar > 0 {
                        summary.abortedStrict = true
                        return .rollback
                    }
                    return .commit
                }
                if summary.abortedStrict || summary.interrupted {
                    writer.discardCaches()
                    summary.counts = Ingest.Counts()
                }
            } else {
                var ended = false
                while !ended && !stopsNow {
                    // Wait for input outside any transaction: a quiet stdin must not hold the
                    // store's write lock, and a stop request must be seen while waiting.
                    var first: [Ingest.Record]?
                    (first, ended) = try nextBatch(timeout: 0.25)
                    guard first != nil else {
                        checkForStop()
                        continue
                    }
                    try writeTransaction { db in
                        let opened = Date()
                        // Taken out of the optionals, so that once written the parser holds the
                        // only reference and frees the batch (see `ParsePipeline.recycle`).
                        let firstBatch = first.take().unsafelyUnwrapped
                        var written = firstBatch.count
                        try write(consume firstBatch, db: db)
                        while !stopsNow, written < options.recordsPerTransaction,
                              Date().timeIntervalSince(opened) < options.commitInterval {
                            // Batches the parser has ready, or nearly: otherwise commit now.
                            var next: [Ingest.Record]?, endedNow = false
                            (next, endedNow) = try nextBatch(timeout: 0.1)
                            if endedNow { ended = true }
                            guard let batch = next.take() else { break }
                            written += batch.count
                            try write(consume batch, db: db)
                        }
                        return .commit
                    }
                    if !ended { Self.yieldToOtherWriters() }
                }
            }
        } catch {
            writer.discardCaches()
            throw error
        }
        if summary.interrupted {
            // A parser reading a pipe stops waiting for it within a poll interval, yet a read
            // can still block (if another process takes the bytes poll saw): wait only briefly,
            // and read the collector it may still write to only if it has finished.
            parserFinished = pipeline.finish(timeout: 2)
        } else {
            parserFinished = pipeline.finish()
        }
        summary.counts.rejected = parserFinished ? sink.count : rejectedSoFar
        summary.sampleRejects = parserFinished ? sink.sample : []
        summary.bytes = lastProgress.bytesRead
        summary.seconds = Date().timeIntervalSince(started)
        logger.info("ingested", metadata: [
            "ingest.leads_created": "\(summary.counts.leadsCreated)",
            "ingest.leads_updated": "\(summary.counts.leadsUpdated)",
            "ingest.events_added": "\(summary.counts.eventsAdded)",
            "ingest.duplicates": "\(summary.counts.duplicateEvents)",
            "ingest.rejected": "\(summary.counts.rejected)",
        ])
        return summary
    }

    /// Between two transactions, leaves the write lock free long enough for a writer of another
    /// process (the server) that is waiting for it: waiters retry every millisecond (see
    /// LeadStore's busy handler), and without a pause the next transaction began within
    /// microseconds, so the server's writes waited out their limit and failed. 3 ms per
    /// transaction of up to 2 s costs an ingest almost nothing.
    static func yieldToOtherWriters() {
        usleep(3_000)
    }

    /// Runs `body` in one transaction on the writer connection, with foreign-key checks off.
    /// The batch writer resolves every lead, event type and event id it writes inside that same
    /// transaction, so SQLite's per-row parent lookups would only re-check what it just read;
    /// they cost ~12% of ingest time. The pragma cannot change inside a transaction, hence
    /// the toggle around it; other writers are serialized on this connection and see it on.
    private func writeTransaction(_ body: (Database) throws -> Database.TransactionCompletion) throws {
        try store.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            defer { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
            try db.inTransaction(.immediate) {
                // Inside the transaction, so no other connection can commit between the check
                // and the writes that rely on the caches.
                try writer.revalidateCaches(db)
                writer.touchedInTransaction.removeAll(keepingCapacity: true)
                let completion = try body(db)
                if completion == .commit, let beforeCommit, !writer.touchedInTransaction.isEmpty {
                    try beforeCommit(db, writer.touchedInTransaction.sorted())
                }
                return completion
            }
        }
    }

    /// The extension that names the format, lowercased: "csv" for both leads.csv and
    /// leads.csv.gz (compression is recognised by content, not by name).
    static func pathExtension(_ path: String) -> String {
        var url = URL(fileURLWithPath: path)
        if url.pathExtension.lowercased() == "gz" { url.deletePathExtension() }
        return url.pathExtension.lowercased()
    }

    private func resolveFormat(_ requested: Ingest.Format, path: String, reader: ByteReader) throws -> Ingest.Format {
        if requested != .auto { return requested }
        switch Self.pathExtension(path) {
        case "csv", "tsv": return .csv
        case "ndjson", "jsonl": return .ndjson
        case "json": return .json
        default:
            // stdin or an unknown extension: sniff. JSON objects one per line is the event
            // pipeline case; a leading "[" is a JSON array; anything else is a CSV header.
            try reader.skipByteOrderMark()
            switch try reader.peekFirstSignificantByte() {
            case UInt8(ascii: "{"): return .ndjson
            case UInt8(ascii: "["): return .json
            default: return .csv
            }
        }
    }
}

/// Keeps the count and the first rejects, and forwards each one to the caller's sink.
final class RejectCollector {
    static let sampleLimit = 20
    let path: String
    let downstream: (any Ingest.RejectSink)?
    let sampleLimit: Int
    private(set) var count = 0
    private(set) var sample: [IngestError] = []

    init(path: String, downstream: (any Ingest.RejectSink)?, sampleLimit: Int = RejectCollector.sampleLimit) {
        self.path = path
        self.downstream = downstream
        self.sampleLimit = sampleLimit
    }

    func add(_ error: IngestError, raw: @autoclosure () -> String?) {
        count += 1
        if sample.count < sampleLimit { sample.append(error) }
        downstream?.reject(error, path: path, raw: raw())
    }
}
