import Foundation
@testable import LeadReports
import LeadStore
import Testing

@Suite("Report archive")
struct ArchiveTests {
    let directory: URL
    let reports: URL

    init() throws {
        directory = try TestStore.temporaryDirectory()
        reports = directory.appendingPathComponent("reports")
    }

    func generate(_ store: LeadStore, at date: Date, keep: Int? = nil, formats: Set<Reports.Format> = [.html, .csv]) throws -> Reports.Manifest {
        var options = Reports.Generator.Options(database: "db", leadlensVersion: "test")
        options.keep = keep
        options.formats = formats
        return try #require(try Reports.Generator(store: store, directory: reports, options: options)
            .generate(period: .last(days: 30, now: date), now: date))
    }

    @Test("Reports list newest first; latest.json names the newest; retention keeps the N newest and nothing else is touched")
    func listLatestAndRetention() throws {
        let store = try TestStore.make(TestStore.leads(count: 30, seed: 2), in: directory)
        try FileManager.default.createDirectory(at: reports.appendingPathComponent("keep-me"), withIntermediateDirectories: true)
        let times = (0..<4).map { TestStore.now.addingTimeInterval(Double($0) * 3600) }
        var manifests: [Reports.Manifest] = []
        for time in times { manifests.append(try generate(store, at: time, keep: 3, formats: [.csv])) }
        // Two in the same second get distinct ids.
        manifests.append(try generate(store, at: times[3], keep: 3, formats: [.html]))

        let archive = Reports.Archive(directory: reports)
        let listed = try archive.list().map(\.id)
        #expect(listed == manifests.suffix(3).map(\.id).reversed())
        #expect(manifests[4].id == manifests[3].id + "-2")
        #expect(archive.latest()?.id == manifests[4].id)
        #expect(archive.latest()?.path == "\(manifests[4].id)/summary.html")
        #expect(FileManager.default.fileExists(atPath: reports.appendingPathComponent("keep-me").path))
        #expect(!FileManager.default.fileExists(atPath: reports.appendingPathComponent(manifests[0].id).path))
    }

    @Test("Reports started in one second order by their number: -10 is newer than -9")
    func sameSecondOrder() throws {
        for name in ["2026-03-05-060000", "2026-03-05-060000-2", "2026-03-05-060000-9", "2026-03-05-060000-10",
                     "2026-03-05-060000-11", "2026-03-05-055959-12", "2026-03-05-060001"] {
            try FileManager.default.createDirectory(at: reports.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        #expect(try Reports.Archive(directory: reports).reportIDs() == [
            "2026-03-05-060001", "2026-03-05-060000-11", "2026-03-05-060000-10", "2026-03-05-060000-9",
            "2026-03-05-060000-2", "2026-03-05-060000", "2026-03-05-055959-12",
        ])
    }

    @Test("Reports in one second never reuse an id retention freed, and each one returned still exists")
    func sameSecondWithRetention() throws {
        let store = try TestStore.make(TestStore.leads(count: 10, seed: 3), in: directory)
        let archive = Reports.Archive(directory: reports)
        var ids: [String] = []
        for _ in 0..<4 {
            let manifest = try generate(store, at: TestStore.now, keep: 1, formats: [.csv])
            #expect(try archive.manifest(id: manifest.id) != nil, "report \(manifest.id) was pruned by its own retention")
            ids.append(manifest.id)
        }
        #expect(Set(ids).count == 4)
        #expect(try archive.list().map(\.id) == [ids[3]] && archive.latest()?.id == ids[3])
    }

    @Test("Retention leaves a report still being written, and deletes one whose writer stopped an hour ago")
    func retentionSkipsIncompleteReports() throws {
        let store = try TestStore.make(TestStore.leads(count: 10, seed: 5), in: directory)
        let archive = Reports.Archive(directory: reports)
        let old = try generate(store, at: TestStore.now, formats: [.csv])
        let writing = try archive.makeReportFolder(for: TestStore.now.addingTimeInterval(-60))
        let abandoned = try archive.makeReportFolder(for: TestStore.now.addingTimeInterval(-7200))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * Reports.Archive.abandonedAfter)],
                                              ofItemAtPath: abandoned.url.path)
        let newest = try generate(store, at: TestStore.now.addingTimeInterval(60), keep: 1, formats: [.csv])
        #expect(FileManager.default.fileExists(atPath: writing.url.path))
        #expect(!FileManager.default.fileExists(atPath: abandoned.url.path))
        #expect(try archive.list().map(\.id) == [newest.id])
        #expect(old.id != newest.id)
    }

    @Test("Files resolve with their content type; anything outside a report's listed files does not")
    func resolveIsSafe() throws {
        let store = try TestStore.make(TestStore.leads(count: 10, seed: 4), in: directory)
        let manifest = try generate(store, at: TestStore.now)
        let archive = Reports.Archive(directory: reports)

        let html = try #require(try archive.resolve(id: manifest.id, file: "summary.html"))
        #expect(html.contentType == "text/html; charset=utf-8")
        #expect(FileManager.default.contents(atPath: html.url.path) == FileManager.default.contents(
            atPath: reports.appendingPathComponent(manifest.id).appendingPathComponent("summary.html").path))
        #expect(try archive.resolve(id: manifest.id, file: "leads.csv")?.contentType.hasPrefix("text/csv") == true)
        #expect(try archive.resolve(id: manifest.id, file: "index.json")?.contentType == "application/json")

        // A secret beside the reports folder, and a symlink to it planted in the report.
        try Data("secret".utf8).write(to: directory.appendingPathComponent("secret.txt"))
        try FileManager.default.createSymbolicLink(
            at: reports.appendingPathComponent(manifest.id).appendingPathComponent("evil.csv"),
            withDestinationURL: directory.appendingPathComponent("secret.txt"))
        for (id, name) in [
            (manifest.id, "../../secret.txt"), (manifest.id, "..%2F..%2Fsecret.txt"), (manifest.id, "evil.csv"),
            (manifest.id, "../\(manifest.id)/summary.html"), (manifest.id, ""), (manifest.id, "."),
            ("..", "secret.txt"), ("../reports/\(manifest.id)", "summary.html"), ("2026-01-01-000000", "summary.html"),
            (manifest.id + "/", "summary.html"), ("/etc", "passwd"),
        ] {
            #expect(try archive.resolve(id: id, file: name) == nil, "resolved \(id)/\(name)")
        }
        #expect(Reports.Archive.isReportID("2026-03-15-100000") && Reports.Archive.isReportID("2026-03-15-100000-12"))
        #expect(!Reports.Archive.isReportID("2026-03-15-10000") && !Reports.Archive.isReportID("2026-03-15-100000-")
                && !Reports.Archive.isReportID("2026-03-15-100000/..") && !Reports.Archive.isReportID("latest.json"))
    }

    @Test("An unwritable folder is refused with a clear error before any work")
    func unwritableFolder() throws {
        let store = try TestStore.make([], in: directory)
        let blocker = directory.appendingPathComponent("a-file")
        try Data().write(to: blocker)
        let generator = Reports.Generator(
            store: store, directory: blocker.appendingPathComponent("reports"),
            options: .init(database: "db", leadlensVersion: "test"))
        #expect {
            try generator.generate(period: .last(days: 1, now: TestStore.now), now: TestStore.now)
        } throws: { error in
            (error as? Reports.ReportError)?.message.contains("cannot create the reports folder") == true
        }
    }

    @Test("Generating in the background gives the same report")
    func background() async throws {
        let store = try TestStore.make(TestStore.leads(count: 40, seed: 8), in: directory)
        var options = Reports.Generator.Options(database: "db", leadlensVersion: "test")
        options.formats = [.csv]
        let manifest = try await Reports.Generator(store: store, directory: reports, options: options)
            .generateInBackground(period: .last(days: 30, now: TestStore.now), now: TestStore.now)
        let stats = try await store.reader.read { try LeadStats.compute(Reports.Period.last(days: 30, now: TestStore.now).filter, in: $0) }
        #expect(manifest?.leads == stats.total)
        #expect(try Reports.Archive(directory: reports).list().map(\.id) == [manifest?.id])
    }
}
