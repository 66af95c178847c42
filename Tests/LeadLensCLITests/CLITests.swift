import ArgumentParser
import Foundation
import GRDB
@testable import leadlens
import LeadStore
import Testing

@Suite("leadlens CLI")
struct CLITests {
    private let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    private func file(_ name: String, _ text: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    private var db: String { directory.appendingPathComponent("store.sqlite").path }

    /// Runs `leadlens ingest ARGS` in-process and returns its exit status.
    private func ingest(_ arguments: [String]) throws -> Int32 {
        var command = try IngestCommand.parse(arguments + ["--db", db])
        do {
            try command.run()
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        }
    }

    @Test func exitStatusIsZeroWhenClean() throws {
        let path = try file("leads.csv", "id,email\nL1,a@x.io\n")
        #expect(try ingest([path]) == 0)
    }

    @Test func exitStatusIsOneWhenRowsAreRejectedAndTheRejectsFileHasThem() throws {
        let path = try file("leads.csv", "id,email\nL1,a@x.io\n,\nL2,b@x.io\n")
        let rejects = directory.appendingPathComponent("rejects.ndjson").path
        #expect(try ingest([path, "--rejects", rejects]) == 1)
        let text = try String(contentsOfFile: rejects, encoding: .utf8)
        #expect(text.contains(#""line":3"#) && text.contains(#""code":"no_identity""#))
        let count = try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") }
        #expect(count == 2)
    }

    @Test func exitStatusIsTwoForAnUnreadableFile() throws {
        #expect(try ingest([directory.appendingPathComponent("missing.csv").path]) == 2)
    }

    @Test func unusableArgumentsAreValidationErrors() {
        #expect(throws: (any Error).self) { try IngestCommand.parse(["--db", "x.sqlite"]).validate() }
        #expect(throws: (any Error).self) { try IngestCommand.parse(["a.csv", "--watch", "dir"]).validate() }
        #expect(throws: (any Error).self) { try IngestCommand.parse(["a.csv", "--format", "xml"]) }
        // ArgumentParser reports these as validation failures; main maps those to status 2.
        #expect(LeadLens.exitCode(for: ValidationError("x")) == .validationFailure)
    }

    @Test("README documents every command with an example")
    func readmeListsEveryCommand() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        for command in LeadLens.configuration.subcommands {
            let name = command.configuration.commandName ?? ""
            #expect(text.contains("leadlens \(name)"), "README has no example of leadlens \(name)")
        }
    }
}
