import ArgumentParser
import Foundation
import GRDB
import LeadIngest
import LeadScoring
import LeadStore

/// Where model files live. The shipped default model, models/default.json, is what a store with
/// no active model scores with.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("models"), help: ArgumentHelp(
        "Folder of model files and the default model (default: ./models, else the models folder of the checkout or install the leadlens binary lives in).",
        valueName: "dir"))
    var given: String?

    var directory: String { given ?? Self.defaultDirectory }
    var directoryURL: URL { URL(fileURLWithPath: directory, isDirectory: true) }

    /// ./models when it holds the shipped model; otherwise the nearest models/default.json above
    /// the executable (.build/<triple>/release/leadlens in a checkout, bin/leadlens in an
    /// install), so the commands find the shipped model from any working directory.
    static let defaultDirectory: String = {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: "models/default.json") { return "models" }
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        var directory = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            directory.deleteLastPathComponent()
            let candidate = directory.appendingPathComponent("models", isDirectory: true)
            if fileManager.fileExists(atPath: candidate.appendingPathComponent("default.json").path) { return candidate.path }
        }
        return "models"
    }()
    var defaultModelURL: URL { directoryURL.appendingPathComponent("default.json") }

    /// The store's active model, installing the shipped default when it has none.
    func activeModel(_ store: LeadStore) throws -> ScoringModel? {
        try ModelRegistry.activeOrDefault(store.writer, defaultURL: defaultModelURL)
    }

    /// A scorer for the active model, or exit status 2 when there is none to be had.
    func requireScorer(_ store: LeadStore) throws -> LeadScorer {
        guard let model = try activeModel(store) else {
            Terminal.error("no active model and no \(defaultModelURL.path): run `leadlens train --activate` first")
            throw ExitCode(2)
        }
        return LeadScorer(model: model)
    }
}

/// Parses the `--as-of` dates the scoring commands take: YYYY-MM-DD or an ISO 8601 datetime.
enum DateArgument {
    static func millis(_ text: String?) throws -> Int64 {
        guard let text else { return LeadStore.nowMillis() }
        if text == "now" || text == "today" { return LeadStore.nowMillis() }
        guard let millis = Timestamp.parseISO8601(text) else {
            throw ValidationError("--as-of must be YYYY-MM-DD or an ISO 8601 datetime, got \"\(text)\".")
        }
        return millis
    }
}

extension LeadStore {
    /// Opens the store for a command, exiting with status 2 when it cannot be opened.
    /// Opens the command's store. Only `creating` commands (serve, keys) make a new one: for
    /// the others a missing file is a mistyped --db, which would otherwise report on, score or
    /// train an empty store it just created.
    static func openForCommand(_ options: StoreOptions, label: String, serving: Bool = false, creating: Bool = false) throws -> LeadStore {
        if !creating && !FileManager.default.fileExists(atPath: options.db) {
            Terminal.error("no store at \(options.db): ingest data into it first, or check --db")
            throw ExitCode(2)
        }
        do {
            return try LeadStore.open(path: options.db, logger: options.makeLogger(label: label), serving: serving)
        } catch {
            Terminal.error("cannot open the store at \(options.db): \(describeOpenFailure(error))")
            throw ExitCode(2)
        }
    }
}

/// Why a store would not open, without the SQL SQLite was running when it failed (a file that
/// is no database fails on the first PRAGMA, which the error's description quotes whole).
func describeOpenFailure(_ error: any Error) -> String {
    guard let error = error as? DatabaseError else { return "\(error)" }
    switch error.resultCode {
    case .SQLITE_NOTADB: return "it is not an SQLite database (is --db the right file?)"
    case .SQLITE_CANTOPEN: return "the file cannot be opened or created (check the path and its permissions)"
    default: return error.message ?? "SQLite error \(error.resultCode.rawValue)"
    }
}
