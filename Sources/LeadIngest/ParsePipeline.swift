import Foundation

/// Parses on a thread of its own while the caller writes, so JSON/CSV parsing and SQLite inserts
/// run on two cores at once. At most `capacity` parsed batches wait in between, which bounds
/// memory whatever the input size.
final class ParsePipeline: @unchecked Sendable {
    enum Item {
        /// A parsed batch, the reader's position after it, and the rows rejected so far.
        case batch([Ingest.Record], Ingest.Progress, rejectedSoFar: Int)
        /// The end of input, with the total of rows rejected.
        case end(rejected: Int)
        case failure(any Error)
    }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [Item] = []
    private var cancelled = false
    private var readingStopped = false
    private var producerDone = false
    private var terminal: Item?
    /// Batches the writer is done with, freed by the parser thread (see `recycle`).
    private var spent: [[Ingest.Record]] = []
    private let capacity: Int

    /// The source, reader and reject collector belong to the producer thread until `end`,
    /// `failure` or `finish()`; the caller may read the collector only after that.
    init(source: RecordSource, reader: ByteReader, rejects: RejectCollector, batchSize: Int, capacity: Int = 3) {
        self.capacity = capacity
        let owned = Owned(source: source, reader: reader, rejects: rejects)
        if reader.canStall {
            // A slow writer (an event pipeline on stdin) must not leave rows parsed but unwritten
            // until a whole batch has arrived: hand them over whenever the input goes quiet.
            // Taken from `parsed`, not `owned.source`, which is mid-parse when this runs.
            // Weak: the reader belongs to the parser's thread, which the pipeline owns.
            reader.willWait = { [weak self, unowned reader, parsed = source.parsed] in
                let records = parsed.take()
                guard let self, !records.isEmpty else { return }
                let progress = Ingest.Progress(bytesRead: reader.position, totalBytes: reader.totalBytes, rows: parsed.rows)
                publish(.batch(records, progress, rejectedSoFar: rejects.count))
            }
            reader.isStopRequested = { [weak self] in
                guard let self else { return true }
                condition.lock()
                defer { condition.unlock() }
                return readingStopped || cancelled
            }
        }
        let thread = Thread { [self] in
            self.produce(owned, batchSize: batchSize)
        }
        thread.name = "leadlens.parse"
        thread.stackSize = 8 << 20
        thread.start()
    }

    private final class Owned: @unchecked Sendable {
        var source: RecordSource
        let reader: ByteReader
        let rejects: RejectCollector
        init(source: RecordSource, reader: ByteReader, rejects: RejectCollector) {
            self.source = source
            self.reader = reader
            self.rejects = rejects
        }
    }

    private func produce(_ owned: Owned, batchSize: Int) {
        defer {
            condition.lock()
            producerDone = true
            condition.broadcast()
            condition.unlock()
        }
        while true {
            let item: Item
            do {
                if let batch = try owned.source.nextBatch(size: batchSize, rejects: owned.rejects) {
                    let progress = Ingest.Progress(
                        bytesRead: owned.reader.position, totalBytes: owned.reader.totalBytes, rows: owned.source.rows)
                    item = .batch(batch, progress, rejectedSoFar: owned.rejects.count)
                } else {
                    item = .end(rejected: owned.rejects.count)
                }
            } catch {
                item = .failure(error)
            }
            guard publish(item), case .batch = item else { return }
        }
    }

    /// Queues `item` for the caller once there is room. Returns false, dropping it, when the
    /// caller has stopped taking items.
    ///
    /// Runs on the parser's thread, from the loop and from a stalling reader's hand-over alike
    /// (which can go on for days without the loop coming round), so it frees the batches the
    /// writer has handed back: outside the lock, on the core that has time to spare.
    @discardableResult
    private func publish(_ item: Item) -> Bool {
        condition.lock()
        while queue.count >= capacity && !cancelled { condition.wait() }
        var written = spent
        spent.removeAll()
        let published = !cancelled
        if published {
            queue.append(item)
            condition.broadcast()
        }
        condition.unlock()
        written.removeAll()
        return published
    }

    /// Hands a written batch back, so its records are freed on the parser's thread: the writer
    /// is the slower side, and freeing a batch's records (their strings, patches and arrays)
    /// showed in its profile; moving that off took about 0.3 s off the 1M-event ingest bench.
    func recycle(_ batch: consuming [Ingest.Record]) {
        condition.lock()
        defer { condition.unlock() }
        // The parser gone, or behind (it frees at most `capacity` at a time): it goes here.
        guard !producerDone, spent.count < capacity else { return }
        spent.append(batch)
    }

    /// For input that can stall: stop reading it. The parser hands over what it has parsed,
    /// then `end`; a record the writer had only partly sent is dropped (NDJSON: rejected).
    /// Input that cannot stall reads on to its end.
    func stopReading() {
        condition.lock()
        readingStopped = true
        condition.unlock()
    }

    /// The next item, or nil when none arrives within `timeout` seconds. After the final `end`
    /// or `failure` has been taken, it returns that item again rather than waiting forever.
    func next(timeout: TimeInterval) -> Item? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty {
            if producerDone { return terminal }
            if !condition.wait(until: deadline) && queue.isEmpty { return producerDone ? terminal : nil }
        }
        let item = queue.removeFirst()
        switch item {
        case .batch: break
        case .end, .failure: terminal = item
        }
        condition.broadcast()
        return item
    }

    /// Stops the parser and waits until its thread has let go of the source, for at most
    /// `timeout` seconds when given: a stopping process should not hang on a parser stuck in a
    /// read. Returns whether the parser has finished.
    @discardableResult
    func finish(timeout: TimeInterval? = nil) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        condition.broadcast()
        // No wait(until: .distantFuture): Foundation on Linux traps converting it to a timespec.
        guard let timeout else {
            while !producerDone { condition.wait() }
            return true
        }
        let deadline = Date().addingTimeInterval(timeout)
        while !producerDone {
            if !condition.wait(until: deadline) { return producerDone }
        }
        return true
    }
}
