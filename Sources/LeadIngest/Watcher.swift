import Foundation
import GRDB
import LeadStore
import Logging

extension Ingest {
    /// Pull mode: ingests every file dropped into a folder. A file whose rows committed moves to
    /// done/; a file that could not be used (unreadable, `--strict` abort, every row rejected)
    /// moves to failed/. Either way its rejects go beside it as NAME.rejects.
    ///
    /// Stopping is safe at any moment: batches commit atomically, a file moves only after its
    /// last batch committed, and a file left behind is ingested again next time with no
    /// duplicates.
    public final class Watcher {
        public let directory: URL
        public var pollInterval: TimeInterval = 1
        private let ingester: Ingester
        /// The store's own file: it, its -wal, -shm and lock files are never inputs, should the
        /// store live in the watched folder (`--watch data/` beside data/leadlens.sqlite).
        private let storePath: String
        private let options: Options
        private let logger: Logger
        /// What the last scan saw of each file: a file is taken only once its size and time
        /// hold still between two scans, so a file still being copied in is not read half-written.
        private var lastSightings: [String: Sighting] = [:]
        /// How long a file whose last line has no line break must go untouched before it is taken
        /// anyway. A writer that pauses mid-row leaves a file that holds still for a scan or two;
        /// taken then, the cut row would set a cut value, and the rest be written into done/. A
        /// finished file that simply lacks its last line break waits this long, then its last row
        /// is read as the end of a file is (see the cut-off row rule).
        public var quietPeriod: TimeInterval = 30

        /// A file's size and modification time, as a scan saw them.
        struct Sighting: Equatable {
            var size: Int64
            var modified: Date

            init?(_ file: URL) {
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: file.path),
                      let size = (attributes[.size] as? NSNumber)?.int64Value,
                      let modified = attributes[.modificationDate] as? Date else { return nil }
                self.size = size
                self.modified = modified
            }
        }

        /// Another watcher already watches the folder: two would ingest the same drops at once and
        /// move each other's files and rejects from under each other.
        public struct FolderBusy: Error, CustomStringConvertible {
            public let directory: String
            public var description: String { "another leadlens ingest --watch is already watching \(directory)" }
        }

        public var doneDirectory: URL { directory.appendingPathComponent("done", isDirectory: true) }
        public var failedDirectory: URL { directory.appendingPathComponent("failed", isDirectory: true) }

        public init(directory: URL, store: LeadStore, options: Options = Options(), logger: Logger = Logger(label: "leadlens.watch"),
                    beforeCommit: Ingester.BeforeCommit? = nil) {
            self.directory = directory
            self.storePath = store.writer.path
            self.ingester = Ingester(store: store, logger: logger, beforeCommit: beforeCommit)
            self.options = options
            self.logger = logger
        }

        /// Polls until `shouldStop` turns true, handing `onFile` the summary of each file ingested.
        public func run(shouldStop: @escaping () -> Bool, onFile: (FileSummary) -> Void = { _ in }) throws {
            let lock = try Self.lockFolder(directory)
            defer { lock.release() }
            logger.info("watching for files", metadata: ["watch.directory": "\(directory.path)"])
            // A watched folder takes small files while the store serves queries: no bulk load
            // here, and the indexes of one that was killed are built first.
            do {
                try ingester.store.restoreDeferredIndexes()
            } catch {
                logger.warning("could not build the indexes a killed bulk load left", metadata: ["error": "\(error)"])
            }
            while !shouldStop() {
                for summary in try scan(shouldStop: shouldStop) { onFile(summary) }
                let deadline = Date().addingTimeInterval(pollInterval)
                while Date() < deadline, !shouldStop() { Thread.sleep(forTimeInterval: 0.05) }
            }
        }

        /// One pass over the folder. With `requireStableSize` false (tests, a one-shot run) every
        /// file present is taken at once. Returns the summaries of the files ingested.
        @discardableResult
        public func scan(requireStableSize: Bool = true, shouldStop: () -> Bool = { false }) throws -> [FileSummary] {
            try FileManager.default.createDirectory(at: doneDirectory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: failedDirectory, withIntermediateDirectories: true)
            var summaries: [FileSummary] = []
            for file in try candidates() {
                if shouldStop() { break }
                let sighting = Sighting(file)
                if requireStableSize {
                    defer { lastSightings[file.path] = sighting }
                    guard let sighting, lastSightings[file.path] == sighting else { continue }
                    guard Self.endsWithLineBreak(file, size: sighting.size) || Date().timeIntervalSince(sighting.modified) >= quietPeriod
                    else { continue }
                }
                if let summary = process(file, taken: sighting, shouldStop: shouldStop) { summaries.append(summary) }
                lastSightings[file.path] = nil
            }
            return summaries
        }

        /// The folder's watcher lock: DIR/.leadlens-watch.lock, a hidden file scans skip.
        static func lockFolder(_ directory: URL) throws -> ExclusiveFileLock {
            guard let lock = try ExclusiveFileLock.acquire(path: directory.appendingPathComponent(".leadlens-watch.lock").path) else {
                throw FolderBusy(directory: directory.path)
            }
            return lock
        }

        /// Whether the file's last byte is a line break. A gzip file counts as ended: its decoder
        /// finds a cut stream itself. An empty file does not: its writer has not begun.
        static func endsWithLineBreak(_ file: URL, size: Int64) -> Bool {
            guard size > 0, let handle = try? FileHandle(forReadingFrom: file) else { return false }
            defer { try? handle.close() }
            guard let head = try? handle.read(upToCount: 2) else { return false }
            if head.starts(with: [0x1F, 0x8B]) { return true }
            guard (try? handle.seek(toOffset: UInt64(size - 1))) != nil, let last = try? handle.read(upToCount: 1) else { return false }
            return last.first == UInt8(ascii: "\n") || last.first == UInt8(ascii: "\r")
        }

        private func candidates() throws -> [URL] {
            let entries = try FileManager.default.contentsOfDirectory(
                at: directory, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey], options: [.skipsHiddenFiles])
            return entries.filter { url in
                let name = url.lastPathComponent
                // Writers drop files as NAME.tmp / NAME.part and rename when done.
                guard !name.hasSuffix(".tmp"), !name.hasSuffix(".part"), !name.hasSuffix(".rejects") else { return false }
                if LeadStore.isStoreFile(url.path, storePath: storePath) { return false }
                return (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true
            }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        }

        /// Ingests `file`, as it looked when `taken`, then moves it with its rejects.
        private func process(_ file: URL, taken: Sighting?, shouldStop: () -> Bool) -> FileSummary? {
            let name = file.lastPathComponent
            let shownName = name.escapingControlCharacters  // for the log: a name cannot forge a line
            let rejectsName = name + ".rejects"
            let pendingRejects = directory.appendingPathComponent(".\(rejectsName).pending")
            let rejects = RejectsFile(url: pendingRejects)
            var summary: FileSummary?
            var failed: Bool
            var failureReason: String?
            do {
                let result = try ingester.ingest(path: file.path, options: options, rejects: rejects, shouldStop: shouldStop)
                try rejects.close()
                if result.interrupted {
                    // Leave the file where it is; the next run picks it up again.
                    try? FileManager.default.removeItem(at: pendingRejects)
                    return result
                }
                if let taken, Sighting(file) != taken {
                    // Written to while it was read: moved now, the rest would land in done/ unread.
                    // It stays, and is ingested again once it holds still; what committed now are
                    // duplicates then, and a row read cut is read whole.
                    try? FileManager.default.removeItem(at: pendingRejects)
                    logger.warning("file changed while it was ingested; it is ingested again once it holds still",
                                   metadata: ["watch.file": "\(shownName)"])
                    return result
                }
                let committedNothing = result.counts.leadsCreated + result.counts.leadsUpdated + result.counts.leadsUnchanged
                    + result.counts.eventsAdded + result.counts.duplicateEvents == 0
                failed = result.abortedStrict || (result.counts.rejected > 0 && committedNothing)
                summary = result
            } catch let error as DatabaseError {
                // The store's trouble (busy, disk full), not the file's: leave it for the next scan.
                try? rejects.close()
                try? FileManager.default.removeItem(at: pendingRejects)
                logger.error("store error; file left to retry", metadata: ["watch.file": "\(shownName)", "error": "\(error.resultCode)"])
                return nil
            } catch {
                failed = true
                try? rejects.close()
                // Why the file as a whole was unusable; these reasons name lines, never values.
                failureReason = (error as? IngestFileError)?.reason
                logger.error("could not ingest file", metadata: ["watch.file": "\(shownName)", "error": "\(error)"])
            }
            let target = failed ? failedDirectory : doneDirectory
            do {
                // The rejects follow the name the file actually landed under.
                let moved = try moveKeepingEarlier(file, to: target.appendingPathComponent(name))
                let movedRejects = target.appendingPathComponent(moved.lastPathComponent + ".rejects")
                if FileManager.default.fileExists(atPath: pendingRejects.path) {
                    try FileManager.default.moveItem(at: pendingRejects, to: movedRejects)
                } else if failed {
                    // A failed file always gets its .rejects, even when it failed as a whole.
                    let reason = failureReason ?? "the file could not be read; the log of the ingest that watched it has the error"
                    let note = "{\"file\":\(quoted(name)),\"reason\":\(quoted(reason))}\n"
                    try Data(note.utf8).write(to: movedRejects)
                }
            } catch {
                logger.error("could not move ingested file", metadata: ["watch.file": "\(shownName)", "error": "\(error)"])
            }
            logger.info(failed ? "file failed" : "file ingested", metadata: [
                "watch.file": "\(shownName)", "ingest.rejected": "\(summary?.counts.rejected ?? 0)",
            ])
            return summary
        }

        private func quoted(_ text: String) -> String {
            var out = ""
            JSONValue.writeQuoted(text, to: &out)
            return out
        }

        /// Moves a file, never over an earlier one: a second drop of "leads.csv" lands in done/ as
        /// "leads-<unix ms>.csv" beside the first.
        @discardableResult
        private func moveKeepingEarlier(_ source: URL, to destination: URL) throws -> URL {
            var target = destination
            if FileManager.default.fileExists(atPath: target.path) {
                let stamp = LeadStore.nowMillis()
                let base = destination.deletingPathExtension().lastPathComponent
                let ext = destination.pathExtension
                target = destination.deletingLastPathComponent()
                    .appendingPathComponent(ext.isEmpty ? "\(base)-\(stamp)" : "\(base)-\(stamp).\(ext)")
            }
            try FileManager.default.moveItem(at: source, to: target)
            return target
        }
    }
}
