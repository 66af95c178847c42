import ArgumentParser
import Foundation
import Hummingbird
import LeadAPI
import LeadStore
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (Hummingbird) over the store.",
        discussion: """
            Example:
              leadlens serve --db data/leadlens.sqlite --port 8080
              curl http://127.0.0.1:8080/api/v1/health
            """
    )

    @OptionGroup var store: StoreOptions
    @OptionGroup var models: ModelOptions

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8080

    @Option(help: "Largest request body, decoded when compressed (bytes, or with K, M or G: 512K, 20M); larger bodies get 413.")
    var maxBodySize = "10M"

    @Option(name: .customLong("cors-origin"), help: ArgumentHelp(
        "Let browser pages of this origin call the API (a dashboard elsewhere), e.g. https://dash.example.com; repeat for more, or * for any. They still send a key.",
        valueName: "origin"))
    var corsOrigins: [String] = []

    @OptionGroup(title: "Scheduled reports") var reports: ReportScheduleOptions

    func validate() throws {
        if !(1...65_535).contains(port) { throw ValidationError("--port must be between 1 and 65535.") }
        _ = try maxBodyBytes()
        _ = try allowedOrigins()
    }

    func allowedOrigins() throws -> [String] {
        try corsOrigins.map { text in
            guard let origin = CrossOrigin.normalized(text) else {
                throw ValidationError("--cors-origin takes an origin such as https://dash.example.com (scheme, host, optional port; no path), or *.")
            }
            return origin
        }
    }

    /// At least 1 KiB, so a body can name a lead; at most 1 GiB, which the server would hold in memory.
    func maxBodyBytes() throws -> Int {
        guard let bytes = ByteCount.parse(maxBodySize), (1 << 10)...(1 << 30) ~= bytes else {
            throw ValidationError("--max-body-size must be a size from 1K to 1G, such as 512K or 20M.")
        }
        return bytes
    }

    func run() async throws {
        let leadStore = try LeadStore.openForCommand(store, label: "leadlens.serve", serving: true, creating: true)
        let logger = store.makeLogger(label: "leadlens.api")
        do {
            // An ingest killed during a bulk load leaves its query indexes unbuilt: lists and
            // stats would scan without them. A load still running builds them when it ends, or,
            // should it be killed, the DeferredIndexBuilder below does.
            if try !leadStore.restoreDeferredIndexes() {
                logger.notice("a bulk load is running; lists and stats are slower until its indexes are built")
            }
        } catch {
            logger.warning("could not build the indexes a killed bulk load left; retrying while serving",
                           metadata: ["error": "\(error)"])
        }
        // A store with no active model scores with the shipped default.
        do {
            _ = try models.activeModel(leadStore)
        } catch {
            logger.warning("no model to score with; leads stay unscored until one is trained and activated",
                           metadata: ["error": "\(error)"])
        }
        var configuration = APIConfiguration(version: LeadLens.version)
        configuration.host = host
        configuration.port = port
        configuration.modelsDirectory = models.directory
        configuration.reportsDirectory = reports.reportsDir
        configuration.reportKeep = reports.reportKeep
        configuration.maxBodyBytes = try maxBodyBytes()
        configuration.corsOrigins = try allowedOrigins()
        let app = buildApplication(store: leadStore, configuration: configuration, logger: logger)
        Terminal.status("serving \(store.db) on http://\(host):\(port)/api/v1 (Ctrl-C to stop)")
        // The report scheduler, when --report-schedule is given, runs in the server's service group.
        let schedulers = try reports.schedulers(store: leadStore, database: store.db, logger: store.makeLogger(label: "leadlens.reports"))
        // Services stop in reverse order: the checkpointer last, after the server's final commits.
        let checkpointer = WALCheckpointer(path: store.db, writer: leadStore.writer, logger: store.makeLogger(label: "leadlens.checkpoint"))
        let indexBuilder = DeferredIndexBuilder(store: leadStore, logger: logger)
        try await ServiceGroup(configuration: .init(
            services: [checkpointer as any Service, indexBuilder, app] + schedulers, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)).run()
    }
}
