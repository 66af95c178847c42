import ArgumentParser
import Foundation
import Logging

@main
struct LeadLens: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "leadlens",
        abstract: "Lead scoring and lead analytics on one SQLite file.",
        discussion: """
            Data flows one way: ingest → store → score → serve/report. Every command that opens a \
            store takes --db PATH (default \(StoreOptions.defaultPath)); only ingest, serve and keys \
            create one that does not exist.

            Exit status: 0 success, 1 some input rows rejected, 2 unusable arguments or an unreadable file.
            """,
        version: version,
        subcommands: [IngestCommand.self, GenerateCommand.self, TrainCommand.self, ScoreCommand.self, ExplainCommand.self, ModelsCommand.self, ReportCommand.self, ServeCommand.self, KeysCommand.self, KernelBenchCommand.self, TrainBenchCommand.self]
    )

    /// Usage errors exit with status 2, as the exit-status contract above says, instead of
    /// ArgumentParser's EX_USAGE (64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Options every command that opens a store shares.
struct StoreOptions: ParsableArguments {
    static let defaultPath = "data/leadlens.sqlite"

    @Option(name: .long, help: ArgumentHelp("The SQLite store.", valueName: "path"))
    var db: String = StoreOptions.defaultPath

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    func makeLogger(label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum Terminal {
    static var isInteractive: Bool { isatty(STDERR_FILENO) == 1 }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    }

    static func status(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
