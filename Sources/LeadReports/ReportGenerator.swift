import Dispatch
import Foundation
import GRDB
import LeadStore
import Logging
import Mustache

extension Reports {
    /// Writes reports into one folder (reports/ by default): each into its own dated subfolder,
    /// then reports/latest.json, then drops reports beyond the retention count.
    public struct Generator: Sendable {
        public struct Options: Sendable {
            public var formats: Set<Format> = [.html, .csv]
            /// Write nothing when the period has no lead.
            public var skipEmpty = false
            /// Keep this many reports, the newest; nil keeps all.
            public var keep: Int?
            /// What the report says it was made from (the store's path as given).
            public var database: String
            public var leadlensVersion: String

            public init(database: String, leadlensVersion: String) {
                self.database = database
                self.leadlensVersion = leadlensVersion
            }
        }

        public let store: LeadStore
        public let archive: Archive
        public let options: Options
        public let logger: Logger

        public init(store: LeadStore, directory: URL, options: Options, logger: Logger = Logger(label: "leadlens.reports")) {
            self.store = store
            archive = Archive(directory: directory)
            self.options = options
            self.logger = logger
        }

        /// Generates a report off the caller's thread, on a Dispatch worker: SQLite reads and
        /// file writes block, and must not hold an event loop or the cooperative pool.
        /// Returns nil when the period has no lead and `skipEmpty` is set.
        public func generateInBackground(period: Period, now: Date = Date()) async throws -> Manifest? {
            try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global(qos: .utility).async {
                    continuation.resume(with: Result { try generate(period: period, now: now) })
                }
            }
        }

        /// Generates a report now. Blocks: see ``generateInBackground(period:now:)``.
        public func generate(period: Period, now: Date = Date()) throws -> Manifest? {
            guard period.from < period.until else { throw ReportError("the period is empty: its start is not before its end") }
            try archive.prepareDirectory()
            let started = Date()
            let template = try Self.summaryTemplate()

            // One read transaction (a snapshot of a WAL store) for everything, leads.csv included,
            // so the CSV rows are exactly the leads the numbers count even while ingest runs.
            let reader: any DatabaseReader = try (store.writer as? DatabasePool)?.makeSnapshot() ?? store.reader
            let snapshot = try reader.read { db in try Reports.snapshot(period: period, generatedAt: now, in: db) }
            if snapshot.isEmpty && options.skipEmpty {
                logger.info("no lead in the period: report skipped")
                return nil
            }

            let (id, folder) = try archive.makeReportFolder(for: now)
            do {
                var files: [Manifest.File] = []
                func add(_ name: String, rows: Int?, _ description: String) throws {
                    let size = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(name).path)[.size] as? Int ?? 0
                    files.append(Manifest.File(name: name, contentType: Reports.contentType(ofFile: name), bytes: size,
                                               rows: rows, description: description))
                }
                if options.formats.contains(.html) {
                    let view = SummaryView(snapshot, reportID: id, database: options.database, leadlensVersion: options.leadlensVersion)
                    try Data(template.render(view).utf8).write(to: folder.appendingPathComponent("summary.html"))
                    try add("summary.html", rows: nil, "The summary: headline numbers, charts, sources, top open leads, model health")
                }
                if options.formats.contains(.csv) {
                    let leads = try CSVFiles.writeLeads(to: folder.appendingPathComponent("leads.csv"), period: period, reader: reader)
                    try add("leads.csv", rows: leads, "Every lead created in the period, with score, probability, status and source")
                    try add("by_source.csv", rows: try CSVFiles.writeBySource(to: folder.appendingPathComponent("by_source.csv"), stats: snapshot.stats),
                            "Leads, conversions, average score and expected conversions per source")
                    try add("by_status.csv", rows: try CSVFiles.writeByStatus(to: folder.appendingPathComponent("by_status.csv"), stats: snapshot.stats),
                            "Leads and average score per status")
                    try add("score_buckets.csv", rows: try CSVFiles.writeScoreBuckets(to: folder.appendingPathComponent("score_buckets.csv"), stats: snapshot.stats),
                            "Leads and observed conversion rate per score band of ten")
                    try add("daily.csv", rows: try CSVFiles.writeDaily(to: folder.appendingPathComponent("daily.csv"), stats: snapshot.stats),
                            "New leads per UTC day")
                }
                let manifest = Manifest(
                    id: id, generatedAt: now, leadlensVersion: options.leadlensVersion, database: options.database,
                    period: .init(from: Date(timeIntervalSince1970: TimeInterval(period.from) / 1000),
                                  until: Date(timeIntervalSince1970: TimeInterval(period.until) / 1000)),
                    modelVersion: snapshot.model?.version, leads: snapshot.stats.total, files: files)
                // index.json last: a folder without it is a report still being written.
                try Reports.jsonEncoder.encode(manifest).write(to: folder.appendingPathComponent(Archive.indexName), options: .atomic)
                try archive.updateLatest()
                if let keep = options.keep { try archive.prune(keeping: keep, logger: logger) }
                logger.info("report written", metadata: [
                    "report.id": "\(id)", "report.leads": "\(manifest.leads)",
                    "report.seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
                ])
                return manifest
            } catch {
                try? FileManager.default.removeItem(at: folder)
                throw error
            }
        }

        static func summaryTemplate() throws -> MustacheTemplate {
            guard let url = Bundle.module.url(forResource: "summary", withExtension: "mustache", subdirectory: "Templates") else {
                throw ReportError("the summary template is missing from the LeadReports resources")
            }
            return try MustacheTemplate(string: String(decoding: try Data(contentsOf: url), as: UTF8.self))
        }
    }
}
