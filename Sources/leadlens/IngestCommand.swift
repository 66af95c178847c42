import ArgumentParser
import Foundation
import GRDB
import LeadIngest
import LeadScoring
import LeadStore

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Ingest leads and events: Segment NDJSON/JSON or CSV files, stdin, or a watched folder.",
        discussion: """
            Re-ingesting the same data adds nothing: events dedupe on messageId (or a content hash), \
            leads on external id, then email, then phone. A bad row is skipped, counted and written to \
            the rejects file with its line number and reason; every good row commits.

            Examples:
              leadlens ingest leads.csv events.ndjson
              cat events.ndjson | leadlens ingest - --rejects rejects.ndjson
              leadlens ingest --watch drop/
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var models: ModelOptions

    @Argument(help: ArgumentHelp("Files to ingest; - reads standard input.", valueName: "path"))
    var paths: [String] = []

    @Option(help: "Input format: auto, ndjson, csv or json. auto goes by extension, then by content.")
    var format: Ingest.Format = .auto

    @Option(help: ArgumentHelp("Write every rejected row here, as NDJSON with line, field and reason.", valueName: "file"))
    var rejects: String?

    @Flag(help: "Abort at the first bad row and commit nothing from that file.")
    var strict = false

    @Option(help: ArgumentHelp("Keep ingesting files dropped into this folder (done/ and failed/ beside them).", valueName: "dir"))
    var watch: String?

    @Option(help: "Records parsed and written per batch. Transactions group batches up to 100000 records or 2 s.")
    var batchSize = 5_000

    @Flag(help: "Do not rescore the leads the input touches (by default they are rescored in the same commit).")
    var noScore = false

    func validate() throws {
        if paths.isEmpty && watch == nil { throw ValidationError("Give at least one path, - for stdin, or --watch DIR.") }
        if !paths.isEmpty && watch != nil { throw ValidationError("--watch takes no paths: it ingests what is dropped into DIR.") }
        if batchSize < 1 || batchSize > 1_000_000 { throw ValidationError("--batch-size must be between 1 and 1000000.") }
        if paths.filter({ $0 == "-" }).count > 1 { throw ValidationError("stdin (-) can be read only once.") }
    }

    func run() throws {
        let logger = store.makeLogger(label: "leadlens.ingest")
        // A mistyped path must not leave a new, empty store behind: when none of the inputs can
        // be opened, say so before the store is created. (With one good input the others are
        // reported as they come, and the good one is ingested.)
        if !paths.isEmpty, !paths.contains("-") {
            let problems = paths.map { ($0, Self.unreadableReason($0)) }
            if problems.allSatisfy({ $0.1 != nil }) {
                for (path, reason) in problems { Terminal.error("cannot read \(path): \(reason ?? "")") }
                throw ExitCode(2)
            }
        }
        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.ingest", creating: true)
        var options = Ingest.Options(format: format, strict: strict)
        options.batchSize = batchSize
        let stop = StopSignal()
        let rescoring = try makeRescoring(leadStore)
        // Declared first, so it stops last: after a bulk load's index builds.
        let checkpointer = BackgroundCheckpointer(store: leadStore)
        defer { checkpointer?.stop() }

        if let watch {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: watch, isDirectory: &isDirectory), isDirectory.boolValue else {
                Terminal.error("--watch \(watch): not a directory")
                throw ExitCode(2)
            }
            rescoring?.keepsCount = false
            let watcher = Ingest.Watcher(directory: URL(fileURLWithPath: watch), store: leadStore, options: options, logger: logger,
                                             beforeCommit: rescoring?.hook)
            Terminal.status("watching \(watch) (Ctrl-C to stop)")
            // One line per file, as a run over named files prints, so a log of the watcher
            // (stdout not a terminal) shows what each drop did. Written at once: print's buffer
            // would hold the lines of a watcher that runs for days until it exits.
            do {
                try watcher.run(shouldStop: { stop.isStopped }, onFile: { summary in
                    FileHandle.standardOutput.write(Data((describe(summary) + "\n").utf8))
                })
            } catch let busy as Ingest.Watcher.FolderBusy {
                Terminal.error(busy.description)
                throw ExitCode(2)
            }
            return
        }

        if let rejects, let clash = Self.rejectsClash(rejects, store: store.db, inputs: paths) {
            // Truncating it would destroy the store or an input before a row is read.
            Terminal.error("--rejects \(rejects) is \(clash); choose another file")
            throw ExitCode(2)
        }
        let rejectsFile = rejects.map { Ingest.RejectsFile(url: URL(fileURLWithPath: $0)) }
        do {
            try rejectsFile?.prepare()
        } catch {
            Terminal.error("cannot write the rejects file \(rejects ?? ""): \(error.localizedDescription)")
            throw ExitCode(2)
        }
        let ingester = Ingester(store: leadStore, logger: logger, beforeCommit: rescoring?.hook)
        // Into an empty store, files load with the query indexes built once at the end (see
        // DeferredIndexes), whether the loop ends, stops on request, or meets an unreadable file;
        // only a kill (or a second Ctrl-C) leaves them to the next ingest or serve.
        // Not from stdin: an event pipeline may keep it open for days, and the store serves
        // queries meanwhile; indexes a killed load left pending are built first instead.
        let bulkLoad: BulkLoad?
        if paths.contains("-") {
            bulkLoad = nil
            do {
                try leadStore.restoreDeferredIndexes()
            } catch {
                Terminal.status("warning: could not build the indexes a killed bulk load left: \(error)")
            }
        } else {
            do {
                bulkLoad = try leadStore.beginBulkLoad()
            } catch {
                Terminal.error("cannot prepare the store at \(store.db): \(error)")
                throw ExitCode(2)
            }
        }
        var anyRejected = false
        var unreadable = false
        defer {
            if let bulkLoad {
                Terminal.status("building indexes")
                do {
                    try bulkLoad.finish()
                } catch {
                    Terminal.error("building the indexes failed: \(error); the next ingest or serve builds them")
                }
            }
        }
        for path in paths {
            if stop.isStopped { break }
            let bar = Terminal.isInteractive ? ProgressBar(label: path == "-" ? "stdin" : (path as NSString).lastPathComponent) : nil
            do {
                let summary = try ingester.ingest(
                    path: path, options: options, rejects: rejectsFile,
                    progress: { bar?.update($0) }, shouldStop: { stop.isStopped })
                bar?.finish()
                var line = describe(summary)
                if let rescoring {
                    line += "; \(rescoring.take()) leads rescored with \(rescoring.scorer.model.version)"
                }
                print(line)
                if summary.counts.rejected > 0 {
                    anyRejected = true
                    for error in summary.sampleRejects { Terminal.status("  \(path): rejected \(error)") }
                    if summary.counts.rejected > summary.sampleRejects.count {
                        Terminal.status("  … \(summary.counts.rejected - summary.sampleRejects.count) more" + (rejects == nil ? " (use --rejects FILE to keep them all)" : ""))
                    }
                }
            } catch {
                bar?.finish()
                Terminal.error("\(path): \(error)")
                unreadable = true
            }
        }
        try rejectsFile?.close()
        if stop.isStopped { throw ExitCode(130) }
        if unreadable { throw ExitCode(2) }
        if anyRejected { throw ExitCode(1) }
    }

    /// Why `path` cannot be read as an input, or nil when it may be. Never opens it: opening and
    /// closing a named pipe would leave its writer with no reader, and SIGPIPE would kill it
    /// (ByteReader reads pipes). A missing path, a directory or one without read permission fails.
    static func unreadableReason(_ path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return String(cString: strerror(errno)) }
        // access() checks the permission without opening, so it is safe for a pipe too.
        if status.st_mode & S_IFMT == S_IFDIR { return "it is a directory" }
        return access(path, R_OK) == 0 ? nil : String(cString: strerror(errno))
    }

    /// What the rejects path would overwrite, if it names the store, one of its files, or an
    /// input; nil when it is free to use.
    static func rejectsClash(_ rejects: String, store: String, inputs: [String]) -> String? {
        if LeadStore.isStoreFile(rejects, storePath: store) { return "the store's own file" }
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path }
        if inputs.contains(where: { $0 != "-" && resolved($0) == resolved(rejects) }) { return "one of the inputs" }
        return nil
    }

    /// Incremental scoring: the leads each transaction touches are rescored before it commits.
    /// Follows the active model: a long `--watch` picks up a model activated while it runs.
    final class Rescoring {
        private(set) var scorer: LeadScorer
        /// Distinct leads, not passes: a lead touched by several transactions counts once.
        private var rescored = Set<Int64>()
        /// Off for --watch, which never reads the count: the set would grow for as long as it runs.
        var keepsCount = true
        init(scorer: LeadScorer) { self.scorer = scorer }

        var hook: Ingester.BeforeCommit {
            { [self] db, ids in
                let active = try String.fetchOne(db, sql: "SELECT version FROM models WHERE is_active = 1")
                if let active, active != scorer.model.version, let model = try ModelRegistry.active(in: db) {
                    scorer = LeadScorer(model: model)
                }
                let scored = try scorer.rescore(ids: ids, in: db)
                if keepsCount { for lead in scored { rescored.insert(lead.leadID) } }
            }
        }

        /// Leads rescored since the last call.
        func take() -> Int {
            defer { rescored.removeAll() }
            return rescored.count
        }
    }

    private func makeRescoring(_ leadStore: LeadStore) throws -> Rescoring? {
        guard !noScore else { return nil }
        do {
            guard let model = try models.activeModel(leadStore) else {
                Terminal.status("note: leads are stored unscored: the store has no active model and there is no \(models.defaultModelURL.path) (pass --models DIR, or train one)")
                return nil
            }
            return Rescoring(scorer: LeadScorer(model: model))
        } catch {
            Terminal.error("cannot load the scoring model: \(error) (use --no-score to ingest without scoring)")
            throw ExitCode(2)
        }
    }

    func describe(_ summary: Ingest.FileSummary) -> String {
        let c = summary.counts
        let name = summary.path == "-" ? "stdin" : summary.path.escapingControlCharacters
        var line = "\(name): leads \(c.leadsCreated) created, \(c.leadsUpdated) updated, \(c.leadsUnchanged) unchanged"
            + (c.leadsMerged > 0 ? ", \(c.leadsMerged) merged into another; " : "; ")
            + "events \(c.eventsAdded) added, \(c.duplicateEvents) duplicates skipped; \(c.rejected) rejected"
        let rows = c.leadsCreated + c.leadsUpdated + c.leadsUnchanged + c.eventsAdded + c.duplicateEvents + c.rejected
        if summary.seconds > 0 {
            line += String(format: " (%.2f s, %.0f rows/s)", summary.seconds, Double(rows) / summary.seconds)
        }
        if c.staleExportRows > 0 {
            line += " — \(c.staleExportRows) export row\(c.staleExportRows == 1 ? " was" : "s were") older than \(c.staleExportRows == 1 ? "its lead's" : "their leads'") "
                + "last change and held values they did not apply (only blanks were filled): export again, then edit"
        }
        // The rejects listed are those read before the stop: the whole file when it is small.
        if summary.abortedStrict { line += " — --strict: stopped at a bad row, nothing from this file committed" }
        if summary.interrupted {
            if strict {
                line += " — interrupted: --strict committed nothing from this file"
            } else if summary.path == "-" {
                // Stdin cannot be read again, so ingest committed every row it had parsed.
                line += " — interrupted: every complete row read from stdin is committed"
            } else {
                line += " — interrupted: what was committed stays; run the same command again to finish"
            }
        }
        return line
    }
}

extension Ingest.Format: ExpressibleByArgument {}
