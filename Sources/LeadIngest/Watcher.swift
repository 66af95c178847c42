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
        /// Size seen at the last scan: a file is taken only once its size holds still, so a
        /// file still being copied in is not read half-written.
        private var lastSizes: [String: Int64] = [:]

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
                let size = (try? file.resourceValues(forKeys: [.fileSizeKey]).fileSize).map(Int64.init) ?? -1
                if requireStableSize {
                    defer { lastSizes[file.path] = size }
                    guard lastSizes[file.path] == size else { continue }
                }
                if let summary = process(file, shouldStop: shouldStop) { summaries.append(summary) }
                lastSizes[file.path] = nil
            }
            return summaries
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

        private func process(_ file: URL, shouldStop: () -> Bool) -> FileSummary? {
            let name = file.lastPathComponent
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
                let committedNothing = result.counts.leadsCreated + result.counts.leadsUpdated + result.counts.leadsUnchanged
                    + result.counts.eventsAdded + result.counts.duplicateEvents == 0
                failed = result.abortedStrict || (result.counts.rejected > 0 && committedNothing)
                summary = result
            } catch let error as DatabaseError {
                // The store's trouble (busy, disk full), not the file's: leave it for the next scan.
                try? rejects.close()
                try? FileManager.default.removeItem(at: pendingRejects)
                logger.error("store error; file left to retry", metadata: ["watch.file": "\(name)", "error": "\(error.resultCode)"])
                return nil
            } catch {
                failed = true
                try? rejects.close()
                // Why the file as a whole was unusable; these reasons name lines, never values.
                failureReason = (error as? IngestFileError)?.reason
                logger.error("could not ingest file", metadata: ["watch.file": "\(name)", "error": "\(error)"])
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
                logger.error("could not move ingested file", metadata: ["watch.file": "\(name)", "error": "\(error)"])
            }
            logger.info(failed ? "file failed" : "file ingested", metadata: [
                "watch.file": "\(name)", "ingest.rejected": "\(summary?.counts.rejected ?? 0)",
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
