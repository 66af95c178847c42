import Foundation
import GRDB
@testable import LeadIngest
import LeadStore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A live event pipeline, as `producer | leadlens ingest -` sees it: the ingester reads a FIFO
/// (no extension, so its format is sniffed as stdin's is) on a thread of its own, while the test
/// writes into it and keeps it open.
@Suite("Ingest from a pipe")
struct StdinTests {
    static func eventLine(_ index: Int) -> String {
        #"{"type":"track","event":"Page Viewed","userId":"u\#(index % 3)","messageId":"m\#(index)","timestamp":"2026-01-01T00:00:00Z"}"#
            + "\n"
    }

    @Test("Rows trickling into a pipe that stays open commit without waiting for a full batch")
    func tricklingRowsCommit() throws {
        let directory = try TemporaryDirectory()
        let pipe = try PipeIngest(directory: directory)
        defer { pipe.finish() }

        pipe.send((0..<10).map(Self.eventLine).joined())
        #expect(eventually(within: 3) { pipe.committedEvents() == 10 }, "rows still uncommitted: \(pipe.committedEvents())")

        pipe.send((10..<15).map(Self.eventLine).joined())
        #expect(eventually(within: 3) { pipe.committedEvents() == 15 })
        pipe.closeWriteEnd()
        let summary = try #require(pipe.summary(within: 3))
        #expect(!summary.interrupted)
        #expect(summary.counts.eventsAdded == 15 && summary.counts.duplicateEvents == 0 && summary.counts.rejected == 0)
        #expect(pipe.committedEvents() == 15 && pipe.distinctEvents() == 15)
    }

    @Test("A strict ingest of a pipe holds no write lock while the pipe is quiet, and commits all or nothing when it ends")
    func strictPipe() throws {
        var options = Ingest.Options()
        options.strict = true
        for broken in [false, true] {
            let directory = try TemporaryDirectory()
            let pipe = try PipeIngest(directory: directory, options: options)
            defer { pipe.finish() }
            pipe.send((0..<5).map(Self.eventLine).joined())
            Thread.sleep(forTimeInterval: 0.5)  // the parser has the rows; the pipe stays open
            // Without a busy timeout this writer fails at once if the ingest holds the lock.
            #expect(pipe.anotherWriterCommits(), "another writer was locked out by the quiet pipe's transaction")
            #expect(pipe.committedEvents() == 0, "a strict run committed before its input ended")
            pipe.send(broken ? "{not json\n" : Self.eventLine(5))
            pipe.closeWriteEnd()
            let summary = try #require(pipe.summary(within: 5))
            #expect(summary.abortedStrict == broken)
            #expect(pipe.committedEvents() == (broken ? 0 : 6))
        }
    }

    @Test("gzip through a pipe is decoded as it arrives, and rows commit before the rest comes")
    func gzipThroughAPipe() throws {
        let directory = try TemporaryDirectory()
        let pipe = try PipeIngest(directory: directory)
        defer { pipe.finish() }
        let compressed = gzip(Array((0..<2000).map(Self.eventLine).joined().utf8))
        let half = compressed.count / 2
        pipe.send(bytes: Array(compressed[..<half]))
        #expect(eventually(within: 3) { pipe.committedEvents() > 0 }, "nothing from the first half committed")
        #expect(pipe.committedEvents() < 2000)
        pipe.send(bytes: Array(compressed[half...]))
        pipe.closeWriteEnd()
        let summary = try #require(pipe.summary(within: 5))
        #expect(summary.counts.eventsAdded == 2000 && summary.counts.rejected == 0)
        #expect(pipe.distinctEvents() == 2000)
    }

    @Test("Damage found mid-stream in a pipe keeps every row decoded before it, and says they may be wrong")
    func damagedGzipThroughAPipe() throws {
        let sample = try #require(DamagedGzip.sample)
        let directory = try TemporaryDirectory()
        let pipe = try PipeIngest(directory: directory)
        defer { pipe.finish() }
        pipe.send(bytes: sample.bytes)
        pipe.closeWriteEnd()
        let summary = try #require(pipe.summary(within: 10))
        // However the reader's buffers fall, every whole line zlib decoded before it noticed is
        // read: kept, or rejected where the damage garbled it before zlib could tell.
        #expect(sample.wholeLinesBeforeDamage > sample.lines / 3 && sample.wholeLinesBeforeDamage < sample.lines)
        #expect(summary.counts.eventsAdded + summary.counts.rejected - 1 == sample.wholeLinesBeforeDamage)
        #expect(summary.counts.eventsAdded > sample.wholeLinesBeforeDamage - 20)
        let reject = try #require(summary.sampleRejects.last)
        #expect(reject.code == .damagedInput)
        #expect(reject.line == sample.wholeLinesBeforeDamage + 1)
        #expect(reject.reason.contains("may be wrong"))
    }

    @Test("A stop request while the pipe has sent nothing ends the ingest promptly")
    func stopWhileWaitingForFirstBytes() throws {
        let directory = try TemporaryDirectory()
        let pipe = try PipeIngest(directory: directory)
        defer { pipe.finish() }

        Thread.sleep(forTimeInterval: 0.3)
        pipe.requestStop()
        let summary = pipe.summary(within: 1.5)
        #expect(summary?.interrupted == true, "still running 1.5 s after the stop request")
        #expect(summary?.counts.eventsAdded == 0)
    }

    @Test("A stop request commits every complete row read so far and reports a line cut short")
    func stopCommitsWhatWasRead() throws {
        let directory = try TemporaryDirectory()
        let pipe = try PipeIngest(directory: directory)
        defer { pipe.finish() }

        pipe.send((0..<4).map(Self.eventLine).joined() + #"{"type":"track","event":"Pag"#)
        // Long enough for the parser to have read all of it; the pipe stays open.
        Thread.sleep(forTimeInterval: 0.3)
        pipe.requestStop()
        let summary = pipe.summary(within: 1.5)
        #expect(summary?.interrupted == true, "still running 1.5 s after the stop request")
        #expect(summary?.counts.eventsAdded == 4)
        #expect(summary?.counts.rejected == 1)
        #expect(summary?.sampleRejects.first?.line == 5)
        #expect(pipe.committedEvents() == 4)
    }
}

/// Polls `condition` until it holds or `seconds` pass.
private func eventually(within seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() >= deadline { return false }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return true
}

/// An ingest of a FIFO on a background thread, with the write end held by the test.
private final class PipeIngest: @unchecked Sendable {
    private let databasePath: String
    private let ingester: Ingester
    private let lock = NSLock()
    // Guarded by `lock`.
    private var outcome: Result<Ingest.FileSummary, any Error>?
    private var stopRequested = false
    private var writeEnd: Int32 = -1

    init(directory: TemporaryDirectory, options: Ingest.Options = Ingest.Options()) throws {
        // A write with no reader left then fails this test with EPIPE instead of killing the
        // whole test process (the ingest once opened and closed the FIFO before reading it).
        signal(SIGPIPE, SIG_IGN)
        let fifo = directory.path("stdin")
        guard mkfifo(fifo, 0o600) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        databasePath = directory.path("leadlens.sqlite")
        let store = try LeadStore.open(path: databasePath)
        ingester = Ingester(store: store)
        let thread = Thread { [self] in
            let result = Result { try ingester.ingest(path: fifo, options: options, shouldStop: { self.lock.withLock { self.stopRequested } }) }
            lock.withLock { outcome = result }
        }
        thread.start()
        // Blocks until the ingester opens the read end, as a shell pipeline's writer would.
        let descriptor = open(fifo, O_WRONLY)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        lock.withLock { writeEnd = descriptor }
    }

    func send(_ text: String) {
        send(bytes: Array(text.utf8))
    }

    func send(bytes: [UInt8]) {
        let descriptor = lock.withLock { writeEnd }
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        #expect(written == bytes.count, "short write to the FIFO (errno \(errno): no reader left?)")
    }

    func closeWriteEnd() {
        let descriptor = lock.withLock { () -> Int32 in
            defer { writeEnd = -1 }
            return writeEnd
        }
        if descriptor >= 0 { close(descriptor) }
    }

    /// Ends the input and lets the ingest return before the test's folder goes.
    func finish() {
        closeWriteEnd()
        _ = summary(within: 3)
    }

    func requestStop() {
        lock.withLock { stopRequested = true }
    }

    /// The ingest's summary once it returns within `seconds`; nil while it still runs.
    func summary(within seconds: TimeInterval) -> Ingest.FileSummary? {
        guard eventually(within: seconds, { lock.withLock { outcome != nil } }) else { return nil }
        return try? lock.withLock { outcome }?.get()
    }

    /// Another writer's transaction, as a server's would be, through a connection of its own with
    /// no busy timeout: true once it committed, false at once while another holds the lock.
    func anotherWriterCommits() -> Bool {
        guard let queue = try? DatabaseQueue(path: databasePath) else { return false }
        return (try? queue.write { db in try db.execute(sql: "CREATE TABLE IF NOT EXISTS probe (x)") }) != nil
    }

    /// Read through a connection of its own, as a query served meanwhile would.
    func committedEvents() -> Int { count("SELECT count(*) FROM events") }
    func distinctEvents() -> Int { count("SELECT count(DISTINCT dedupe_key) FROM events") }

    private func count(_ sql: String) -> Int {
        var configuration = Configuration()
        configuration.readonly = true
        return (try? DatabaseQueue(path: databasePath, configuration: configuration).read { try Int.fetchOne($0, sql: sql) }) ?? 0
    }
}
