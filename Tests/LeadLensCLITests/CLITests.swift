import ArgumentParser
import Foundation
import Synchronization
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
        let command = try IngestCommand.parse(arguments + ["--db", db])
        do {
            try command.run()
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        }
    }

    @Test("An ingest into an empty store builds its deferred indexes before it exits, even when a file fails")
    func bulkLoadEndsFullyIndexed() throws {
        let events = try file("events.ndjson", """
            {"type":"track","event":"Demo Requested","userId":"u1","messageId":"m1","timestamp":"2026-01-01T00:00:00Z"}
            {"type":"identify","userId":"u2","traits":{"email":"b@x.io","lastName":"Byron"}}

            """)
        #expect(try ingest([events, directory.appendingPathComponent("missing.ndjson").path]) == 2)
        // It ran as a bulk load: only a loader takes the lock (beside the store) on an empty store.
        #expect(FileManager.default.fileExists(atPath: db + "-loader.lock"))
        let store = try LeadStore.open(path: db)
        #expect(try !store.reader.read(DeferredIndexes.arePending))
        #expect(try indexDefinitions(store) == indexDefinitions(LeadStore.inMemory()))
        let lastNames = try store.reader.read { db in
            try String.fetchAll(db, sql: "SELECT last_name FROM leads INDEXED BY leads_last_name WHERE last_name IS NOT NULL")
        }
        #expect(lastNames == ["Byron"])
    }

    @Test("--rejects naming the store, one of its files or an input is refused before anything is touched")
    func rejectsMayNotOverwriteTheStoreOrAnInput() throws {
        let leads = try file("leads.csv", "id,email\nL1,a@x.io\n")
        #expect(try ingest([leads]) == 0)
        for target in [db, db + "-wal", leads, directory.appendingPathComponent("./leads.csv").path] {
            #expect(try ingest([leads, "--rejects", target]) == 2, "\(target)")
        }
        let count = try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") }
        #expect(count == 1)
        #expect(try String(contentsOfFile: leads, encoding: .utf8) == "id,email\nL1,a@x.io\n")
    }

    @Test("A rejects file made for a run that rejects nothing is removed")
    func anUnneededRejectsFileIsRemoved() throws {
        let leads = try file("leads.csv", "id,email\nL1,a@x.io\n")
        let fresh = directory.appendingPathComponent("new.rejects").path
        #expect(try ingest([leads, "--rejects", fresh]) == 0)
        #expect(!FileManager.default.fileExists(atPath: fresh))
    }

    @Test("generate into a path it cannot write is an unusable argument: exit 2")
    func generateIntoAFileExitsTwo() throws {
        let occupied = try file("taken", "x")
        let command = try GenerateCommand.parse(["--leads", "5", "--out", occupied])
        #expect(throws: ExitCode(2)) { try command.run() }
    }

    @Test("serve --max-body-size takes sizes from 1K to 1G")
    func serveBodyLimit() throws {
        #expect(try ServeCommand.parse(["--max-body-size", "20M"]).maxBodyBytes() == 20 << 20)
        #expect(try ServeCommand.parse([]).maxBodyBytes() == 10 << 20)
        for bad in ["0", "512", "2G", "ten", "1.5M"] {
            #expect(throws: (any Error).self, "\(bad)") { try ServeCommand.parse(["--max-body-size", bad]) }
        }
    }

    @Test("a live key's name is its own: a second is refused, and a name two old keys share revokes neither")
    func keyNamesAreUnique() throws {
        try KeysCommand.Create.parse(["--name", "dash", "--scopes", "read", "--db", db]).run()
        #expect(throws: ExitCode(2)) { try KeysCommand.Create.parse(["--name", "dash", "--scopes", "read", "--db", db]).run() }
        for number in ["7", "+7", "-7"] {
            #expect(throws: (any Error).self, "a number names an id") { try KeysCommand.Create.parse(["--name=\(number)", "--scopes", "read", "--db", db]) }
        }
        // A store from before names were unique may hold two live keys of one name.
        let store = try LeadStore.open(path: db)
        try store.writer.write { db in
            try db.execute(sql: """
                INSERT INTO api_keys (name, prefix, key_hash, scopes, rate_limit, rate_window, created_at)
                VALUES ('dash', 'llk_x', x'00', 'read', NULL, 3600, 0)
                """)
        }
        #expect(throws: ExitCode(2)) { try KeysCommand.Revoke.parse(["dash", "--db", db]).run() }
        func live() throws -> Int { try store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL") ?? -1 } }
        #expect(try live() == 2, "an ambiguous name revokes nothing")
        try KeysCommand.Revoke.parse(["1", "--db", db]).run()
        try KeysCommand.Revoke.parse(["dash", "--db", db]).run()
        #expect(try live() == 0)
    }

    @Test("report --from must be before --to: equal bounds are refused in words that say so")
    func reportPeriodMustNotBeEmpty() throws {
        let from = "2026-01-01T10:00:00Z"
        for to in [from, "2026-01-01T09:00:00Z"] {
            let error = #expect(throws: ValidationError.self) { try ReportArguments.range(from: from, to: to) }
            #expect(error?.message == "--from (\(from)) must be before --to (\(to)): the period would be empty.")
        }
        let error = #expect(throws: ValidationError.self) { try ReportArguments.range(from: "2199-01-01", to: nil) }
        #expect(error?.message == "--from (2199-01-01) must be before now, where --to defaults to: the period would be empty.")
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

    @Test("a rejects file is checked before ingesting; one that was there is emptied, not deleted")
    func rejectsFileUpFront() throws {
        let path = try file("leads.csv", "id,email\nL1,a@x.io\n")
        let rejects = directory.appendingPathComponent("rejects.ndjson").path
        try #"{"line":9,"stale":true}"#.write(toFile: rejects, atomically: true, encoding: .utf8)
        #expect(try ingest([path, "--rejects", rejects]) == 0)
        #expect(try String(contentsOfFile: rejects, encoding: .utf8) == "", "a previous run's rejects read as this run's")

        let unwritable = directory.appendingPathComponent("leads.csv/rejects.ndjson").path  // under a file
        #expect(try ingest([try file("more.csv", "id,email\nL2,b@x.io\n"), "--rejects", unwritable]) == 2)
        let count = try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") }
        #expect(count == 1, "rows were ingested before the rejects file was found unwritable")
    }

    @Test("checking the inputs never opens a named pipe: its writer would lose its reader and die of SIGPIPE")
    func inputCheckLeavesPipesAlone() throws {
        let fifo = directory.appendingPathComponent("events.pipe").path
        try #require(mkfifo(fifo, 0o600) == 0)
        // A writer that gets in only while someone holds the pipe open for reading.
        let readerSeen = Mutex(false)
        let done = Mutex(false)
        let writer = Thread {
            while !done.withLock({ $0 }) {
                let descriptor = open(fifo, O_WRONLY | O_NONBLOCK)
                if descriptor >= 0 {
                    readerSeen.withLock { $0 = true }
                    close(descriptor)
                    return
                }
                usleep(1_000)
            }
        }
        writer.start()
        #expect(IngestCommand.unreadableReason(fifo) == nil)
        usleep(50_000)
        done.withLock { $0 = true }
        #expect(!readerSeen.withLock { $0 }, "the check opened the pipe")
        #expect(IngestCommand.unreadableReason(directory.path) == "it is a directory")
        #expect(IngestCommand.unreadableReason(directory.appendingPathComponent("none.csv").path) != nil)
    }

    @Test func exitStatusIsTwoForAnUnreadableFile() throws {
        #expect(try ingest([directory.appendingPathComponent("missing.csv").path]) == 2)
        // A mistyped name leaves no new, empty store behind (nor a directory given as a file).
        #expect(try ingest([directory.path]) == 2)
        #expect(!FileManager.default.fileExists(atPath: db))
        // One good input among bad ones is still ingested, and the run still says 2.
        #expect(try ingest([directory.appendingPathComponent("missing.csv").path, try file("ok.csv", "id,email\nL1,a@x.io\n")]) == 2)
        #expect(try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") } == 1)
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

/// The built `leadlens` executable beside the test bundle, when `swift test` built it.
let leadlensExecutable: URL? = {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("leadlens")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory.deleteLastPathComponent()
    }
    return nil
}()

@Suite("Standard input")
struct StandardInputTests {
    /// Runs the built binary on `ingest - --format F` with `input` as its standard input, a
    /// regular file as `leadlens ingest - < file` gives it; returns its exit status.
    private func ingestFromRedirect(_ input: URL, format: String, db: String) throws -> Int32 {
        let process = Process()
        process.executableURL = try #require(leadlensExecutable)
        process.arguments = ["ingest", "-", "--format", format, "--db", db]
        process.standardInput = try FileHandle(forReadingFrom: input)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test("a damaged gzip file redirected to stdin is refused whole, as the same file named is",
          .enabled(if: leadlensExecutable != nil, "needs the built leadlens executable"))
    func damagedGzipOnRedirectedStdin() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-stdin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var csv = "id,email,notes\n"
        for index in 1...300 { csv += "L\(index),p\(index)@x.io,note \(index)\n" }
        let plain = directory.appendingPathComponent("leads.csv")
        try Data(csv.utf8).write(to: plain)
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gzip.arguments = ["gzip", "-k", "-n", plain.path]
        try gzip.run()
        gzip.waitUntilExit()
        var compressed = try [UInt8](Data(contentsOf: plain.appendingPathExtension("gz")))
        // Only the checksum is wrong: every row decodes, and none can be trusted.
        compressed[compressed.count - 6] ^= 0x01
        let damaged = directory.appendingPathComponent("damaged.gz")
        try Data(compressed).write(to: damaged)

        let db = directory.appendingPathComponent("store.sqlite").path
        #expect(try ingestFromRedirect(damaged, format: "csv", db: db) == 2)
        let leads = try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") }
        #expect(leads == 0)
        #expect(try ingestFromRedirect(plain.appendingPathExtension("gz"), format: "csv", db: db) == 0)
        let after = try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") }
        #expect(after == 300)
    }
}

@Suite("Crash safety")
struct CrashTests {
    @Test("kill -9 mid-ingest leaves a consistent store; the same command then completes it with no duplicates",
          .enabled(if: leadlensExecutable != nil, "needs the built leadlens executable"))
    func killedIngestResumes() throws {
        let executable = try #require(leadlensExecutable)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // setup: enough events that the first run is still going after its first commit
        let total = 150_000
        var text = ""
        text.reserveCapacity(total * 120)
        for i in 0..<total {
            text += #"{"type":"track","event":"E\#(i % 7)","userId":"u\#(i / 10)","messageId":"m\#(i)","timestamp":"2026-01-01T00:00:00Z"}"#
            text += "\n"
        }
        let input = directory.appendingPathComponent("events.ndjson")
        try Data(text.utf8).write(to: input)
        let db = directory.appendingPathComponent("store.sqlite").path
        func run() throws -> Process {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["ingest", input.path, "--db", db, "--batch-size", "500"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        func eventCount() -> Int {
            (try? DatabaseQueue(path: db, configuration: { var c = Configuration(); c.readonly = true; return c }())
                .read { try Int.fetchOne($0, sql: "SELECT count(*) FROM events") }) ?? 0
        }

        // act: kill -9 as soon as something has committed
        let first = try run()
        let deadline = Date().addingTimeInterval(60)
        while eventCount() == 0, first.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let killedMidway = first.isRunning
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let afterKill = eventCount()

        // check: consistent, then completed by the same command with no duplicates
        let store = try LeadStore.open(path: db)
        #expect(try store.reader.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")
        if killedMidway {
            #expect(afterKill > 0 && afterKill < total)
            // The run began on an empty store, so it was a bulk load with its query indexes deferred.
            #expect(try store.reader.read(DeferredIndexes.arePending))
        }
        let second = try run()
        second.waitUntilExit()
        #expect(second.terminationStatus == 0)
        #expect(try !store.reader.read(DeferredIndexes.arePending))
        #expect(try indexDefinitions(store) == indexDefinitions(LeadStore.inMemory()))
        let (events, distinct, maintained, recomputed) = try store.reader.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0,
             try Int.fetchOne(db, sql: "SELECT count(DISTINCT dedupe_key) FROM events") ?? 0,
             try LeadActivity.fetchAll(db).mapValues(\.normalized),
             try LeadActivity.recompute(db).mapValues(\.normalized))
        }
        #expect(events == total && distinct == total)
        #expect(maintained == recomputed)
        #expect(try store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") } == total / 10)
    }
}

/// Every index of a store by name, with the SQL that created it.
func indexDefinitions(_ store: LeadStore) throws -> [String: String] {
    try store.reader.read { db in
        Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: """
            SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
            """).map { ($0["name"] as String, $0["sql"] as String) })
    }
}
