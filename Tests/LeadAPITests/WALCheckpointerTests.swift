import Foundation
import GRDB
@testable import LeadAPI
import LeadStore
import Logging
import Testing

@Suite("WAL checkpoints")
struct WALCheckpointerTests {
    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    @Test("a serving store's commits reach the main file through the checkpointer, not the writer")
    func checkpointsFromItsOwnConnection() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("store.sqlite").path
        let store = try LeadStore.open(path: path)
        try store.prepareForServing()
        let before = fileSize(path)
        // ~2 MB of leads: far below the writer's own 512 MiB checkpoint backstop.
        try await store.writer.write { db in
            for i in 0..<4000 {
                try db.execute(sql: "INSERT INTO leads (external_id, notes, created_at, updated_at) VALUES (?, ?, 0, 0)",
                               arguments: ["C\(i)", String(repeating: "n", count: 500)])
            }
        }
        #expect(fileSize(path) < before + 1_000_000, "the writer checkpointed by itself")

        let checkpointer = WALCheckpointer(path: path, interval: .milliseconds(10), logger: Logger(label: "test"))
        let running = Task { try await checkpointer.run() }
        let deadline = ContinuousClock.now + .seconds(10)
        while fileSize(path) < before + 2_000_000, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        running.cancel()
        try await running.value  // returns once cancelled
        #expect(fileSize(path) >= before + 2_000_000)

        // The main file alone now holds the leads: a copy of it without the WAL has them all.
        let copy = directory.appendingPathComponent("main-only.sqlite").path
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        let mainOnly = try DatabaseQueue(path: copy)
        #expect(try await mainOnly.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") } == 4000)
    }
}
