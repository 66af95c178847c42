import Foundation
import GRDB
@testable import LeadIngest
import LeadStore
import Testing

@Suite("Watch mode")
struct WatcherTests {
    @Test func committedFilesMoveToDoneAndUnusableFilesToFailed() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        let fm = FileManager.default
        try Data("id,email\nL1,a@x.io\nL2,b@x.io,extra\n".utf8).write(to: drop.appendingPathComponent("partial.csv"))
        try Data("not json at all\n{also not\n".utf8).write(to: drop.appendingPathComponent("broken.ndjson"))
        try Data("id,email\nL3,c@x.io\n".utf8).write(to: drop.appendingPathComponent("clean.csv"))
        try Data("id,email\nL4,d@x.io\n".utf8).write(to: drop.appendingPathComponent("upload.csv.part"))

        let watcher = Ingest.Watcher(directory: drop, store: store)
        let summaries = try watcher.scan(requireStableSize: false)

        #expect(summaries.count == 3)
        let done = try fm.contentsOfDirectory(atPath: watcher.doneDirectory.path).sorted()
        let failed = try fm.contentsOfDirectory(atPath: watcher.failedDirectory.path).sorted()
        #expect(done == ["clean.csv", "partial.csv", "partial.csv.rejects"])
        #expect(failed == ["broken.ndjson", "broken.ndjson.rejects"])
        // A file still being uploaded is left alone.
        #expect(fm.fileExists(atPath: drop.appendingPathComponent("upload.csv.part").path))
        let rejects = try String(contentsOf: watcher.failedDirectory.appendingPathComponent("broken.ndjson.rejects"), encoding: .utf8)
        #expect(rejects.split(separator: "\n").count == 2)
        #expect(try store.leads().compactMap(\.externalID).sorted() == ["L1", "L3"])
    }

    @Test("A running watcher hands over each file's summary as it is ingested, for its one line per file")
    func runReportsEachFile() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        try Data("id,email\nL1,a@x.io\nL2,b@x.io\n".utf8).write(to: drop.appendingPathComponent("two.csv"))
        let watcher = Ingest.Watcher(directory: drop, store: store)
        watcher.pollInterval = 0.05
        var reported: [Ingest.FileSummary] = []
        let deadline = Date().addingTimeInterval(30)
        try watcher.run(shouldStop: { !reported.isEmpty || Date() > deadline }, onFile: { reported.append($0) })
        #expect(reported.map { ($0.path as NSString).lastPathComponent } == ["two.csv"])
        #expect(reported.first?.counts.leadsCreated == 2)
    }

    @Test("A file unusable as a whole fails with its reason in the .rejects beside it")
    func aWhollyUnusableFileSaysWhy() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        var data = Data("id,".utf8)
        data.append(contentsOf: [0xFF, 0xFE])
        data.append(Data("\nL1,a@x.io\n".utf8))
        try data.write(to: drop.appendingPathComponent("bad.csv"))
        let watcher = Ingest.Watcher(directory: drop, store: store)
        _ = try watcher.scan(requireStableSize: false)
        let note = try String(contentsOf: watcher.failedDirectory.appendingPathComponent("bad.csv.rejects"), encoding: .utf8)
        #expect(note.contains("header row (line 1) is unreadable"), "\(note)")
    }

    @Test("A store kept in the watched folder is never taken as an input")
    func theStoreInTheWatchedFolderIsLeftAlone() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)  // directory/leadlens.sqlite, with -wal and -shm
        try store.writer.write { db in try db.execute(sql: "CREATE TABLE IF NOT EXISTS probe (x)") }
        try Data("id,email\nL1,a@x.io\n".utf8).write(to: directory.url.appendingPathComponent("drop.csv"))
        let watcher = Ingest.Watcher(directory: directory.url, store: store)
        let summaries = try watcher.scan(requireStableSize: false)
        #expect(summaries.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["drop.csv"])
        #expect(FileManager.default.fileExists(atPath: directory.path("leadlens.sqlite")))
        #expect(try store.leads().compactMap(\.externalID) == ["L1"])
    }

    @Test("Watching builds the indexes a killed bulk load left pending before it takes any file")
    func buildsIndexesAKilledLoadLeft() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        #expect(try store.beginBulkLoad() != nil)  // dropped unfinished: the loader died
        #expect(try store.reader.read(DeferredIndexes.arePending))

        try Ingest.Watcher(directory: directory.url, store: store).run { true }

        #expect(try !store.reader.read(DeferredIndexes.arePending))
        let built = try store.reader.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        #expect(Set(DeferredIndexes.names).isSubset(of: built))
    }

    @Test("A second drop under the same name keeps the first in done/, and its rejects follow its new name")
    func sameNameDropsKeepEarlierFiles() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        let watcher = Ingest.Watcher(directory: drop, store: store)
        try Data("id,email\nL1,a@x.io\n".utf8).write(to: drop.appendingPathComponent("leads.csv"))
        try watcher.scan(requireStableSize: false)
        try Data("id,email\nL2,b@x.io\nL3,c@x.io,extra\n".utf8).write(to: drop.appendingPathComponent("leads.csv"))
        try watcher.scan(requireStableSize: false)

        let done = try FileManager.default.contentsOfDirectory(atPath: watcher.doneDirectory.path).sorted()
        #expect(done.count == 3 && done.contains("leads.csv"))
        let second = try #require(done.first { $0 != "leads.csv" && !$0.hasSuffix(".rejects") })
        #expect(done.contains(second + ".rejects"))
        let first = try String(contentsOf: watcher.doneDirectory.appendingPathComponent("leads.csv"), encoding: .utf8)
        #expect(first.contains("L1"))
    }

    @Test func filesAreTakenOnlyOnceTheirSizeHoldsStill() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        try Data("id,email\nL1,a@x.io\n".utf8).write(to: drop.appendingPathComponent("a.csv"))
        let watcher = Ingest.Watcher(directory: drop, store: store)
        #expect(try watcher.scan().isEmpty)  // first sighting: size not yet known to be stable
        #expect(try watcher.scan().count == 1)
        #expect(try store.count("leads") == 1)
    }

    @Test("A file that holds still mid-row is not taken until its last line ends, or it has been quiet long enough")
    func aFilePausedMidRowWaits() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        let file = drop.appendingPathComponent("slow.csv")
        try Data("id,email,notes\nL1,a@x.io,first\nL2,b@x.io,Called on".utf8).write(to: file)
        let watcher = Ingest.Watcher(directory: drop, store: store)
        #expect(try watcher.scan().isEmpty)
        #expect(try watcher.scan().isEmpty, "taken while its last row was still being written")
        #expect(try store.count("leads") == 0)

        // The writer finishes the row: the file changed, so it must hold still once more.
        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(" Monday\n".utf8))
        try handle.close()
        #expect(try watcher.scan().isEmpty)
        #expect(try watcher.scan().count == 1)
        #expect(try store.reader.read { try String.fetchOne($0, sql: "SELECT notes FROM leads WHERE external_id = 'L2'") } == "Called on Monday")

        // A finished file without a final line break is taken once it has been quiet long enough.
        let unterminated = drop.appendingPathComponent("last.csv")
        try Data("id,email\nL3,c@x.io".utf8).write(to: unterminated)
        #expect(try watcher.scan().isEmpty && watcher.scan().isEmpty)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-watcher.quietPeriod - 1)],
                                              ofItemAtPath: unterminated.path)
        #expect(try watcher.scan().isEmpty)  // its time changed: one more scan to see it hold still
        #expect(try watcher.scan().count == 1)
        #expect(try store.count("leads") == 3)
    }

    @Test("A file written to while it is ingested stays, and is ingested again whole, without duplicates")
    func aFileThatGrowsDuringIngestIsRetaken() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        let file = drop.appendingPathComponent("growing.csv")
        try Data("id,email\nL1,a@x.io\n".utf8).write(to: file)
        nonisolated(unsafe) var appended = false
        let watcher = Ingest.Watcher(directory: drop, store: store, beforeCommit: { _, _ in
            // The file's writer goes on while the first batch commits.
            guard !appended else { return }
            appended = true
            let handle = try FileHandle(forWritingTo: file)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("L2,b@x.io\n".utf8))
            try handle.close()
        })
        let first = try watcher.scan(requireStableSize: false)
        #expect(first.first?.counts.leadsCreated == 1)
        #expect(FileManager.default.fileExists(atPath: file.path), "moved to done/ while still being written")
        #expect(try FileManager.default.contentsOfDirectory(atPath: watcher.doneDirectory.path).isEmpty)
        let second = try watcher.scan(requireStableSize: false)
        #expect(second.first?.counts.leadsCreated == 1 && second.first?.counts.leadsUnchanged == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: watcher.doneDirectory.path) == ["growing.csv"])
        #expect(try store.leads().compactMap(\.externalID).sorted() == ["L1", "L2"])
    }

    @Test("A second watcher on a watched folder is refused")
    func oneWatcherPerFolder() throws {
        let directory = try TemporaryDirectory()
        let first = try Ingest.Watcher.lockFolder(directory.url)
        #expect(throws: Ingest.Watcher.FolderBusy.self) { try Ingest.Watcher.lockFolder(directory.url) }
        first.release()
        _ = try Ingest.Watcher.lockFolder(directory.url)
    }

    @Test func aStoppedScanLeavesTheFileToBeRetriedWithoutDuplicates() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = try makeDropFolder(in: directory)
        var lines = ""
        for i in 0..<50 { lines += #"{"type":"track","event":"A","userId":"u\#(i % 5)","messageId":"m\#(i)","timestamp":"2026-01-01T00:00:00Z"}"# + "\n" }
        try Data(lines.utf8).write(to: drop.appendingPathComponent("events.ndjson"))
        var options = Ingest.Options()
        options.batchSize = 10
        let watcher = Ingest.Watcher(directory: drop, store: store, options: options)
        var polls = 0
        // Stop after the first batch commits.
        let first = try watcher.scan(requireStableSize: false) { polls += 1; return polls > 1 }
        #expect(first.first?.interrupted == true)
        #expect(FileManager.default.fileExists(atPath: drop.appendingPathComponent("events.ndjson").path))
        #expect(try store.count("events") == 10)
        let second = try watcher.scan(requireStableSize: false)
        #expect(second.first?.counts.eventsAdded == 40 && second.first?.counts.duplicateEvents == 10)
        #expect(try store.count("events") == 50)
    }
}

/// The folder a watcher watches, inside the test's temporary directory.
private func makeDropFolder(in directory: TemporaryDirectory) throws -> URL {
    let drop = directory.url.appendingPathComponent("drop", isDirectory: true)
    try FileManager.default.createDirectory(at: drop, withIntermediateDirectories: true)
    return drop
}
