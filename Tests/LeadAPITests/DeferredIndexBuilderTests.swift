import Foundation
import GRDB
@testable import LeadAPI
import LeadStore
import Logging
import Testing

@Suite("Deferred index builder")
struct DeferredIndexBuilderTests {
    private func pending(_ store: LeadStore) throws -> Bool {
        try store.reader.read { try DeferredIndexes.arePending($0) }
    }

    @Test("a serving process builds a bulk load's indexes once the loader dies, and never while it runs")
    func buildsOnceTheLoaderIsGone() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("store.sqlite").path
        // Two opens of one file stand for two processes: flock(2) locks conflict between them.
        let loaderProcess = try LeadStore.open(path: path)
        let server = try LeadStore.open(path: path, serving: true)
        var load = try loaderProcess.beginBulkLoad()
        #expect(load != nil)

        let builder = DeferredIndexBuilder(store: server, interval: .milliseconds(10), logger: Logger(label: "test"))
        let running = Task { try await builder.run() }
        // Many checks while the load runs: none may build its indexes under it.
        try await Task.sleep(for: .milliseconds(300))
        #expect(try pending(server), "indexes were built in the middle of a running load")

        load = nil  // the loader dies without building them: the kernel releases its lock
        let deadline = ContinuousClock.now + .seconds(20)
        while try pending(server), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try !pending(server))
        let built = try await server.reader.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'leads_score_created')")
        }
        #expect(built == true)
        running.cancel()
        try await running.value  // returns, without an error, once cancelled
    }
}
