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

    /// A store opened for serving in a folder of its own.
    private struct ServingStore {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leadlens-\(UUID().uuidString)")
        var path: String { directory.appendingPathComponent("store.sqlite").path }
        let store: LeadStore

        init() throws {
            store = try LeadStore.open(path: directory.appendingPathComponent("store.sqlite").path, serving: true)
        }

        func cleanUp() { try? FileManager.default.removeItem(at: directory) }
    }

    @Test("a serving store's commits reach the main file through the checkpointer, not the writer")
    func checkpointsFromItsOwnConnection() async throws {
        let serving = try ServingStore()
        defer { serving.cleanUp() }
        let (store, path) = (serving.store, serving.path)
        let before = fileSize(path)
        // ~2 MB of leads: far below the writer's own 512 MiB checkpoint backstop.
        try await store.writer.write { db in
            for i in 0..<4000 {
                try db.execute(sql: "INSERT INTO leads (external_id, notes, created_at, updated_at) VALUES (?, ?, 0, 0)",
                               arguments: ["C\(i)", String(repeating: "n", count: 500)])
            }
        }
        #expect(fileSize(path) < before + 1_000_000, "the writer checkpointed by itself")
        let (backstop, cache, walLimit) = try await store.writer.writeWithoutTransaction { db in
            (try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"), try Int.fetchOne(db, sql: "PRAGMA cache_size"),
             try Int.fetchOne(db, sql: "PRAGMA journal_size_limit"))
        }
        #expect(backstop == (512 << 20) / 4096 && cache == -524_288 && walLimit == 512 << 20)

        let checkpointer = WALCheckpointer(path: path, interval: .milliseconds(10), logger: Logger(label: "test"))
        let running = Task { try await checkpointer.run() }
        let deadline = ContinuousClock.now + .seconds(10)
        while fileSize(path) < before + 2_000_000, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        // Only a checkpoint grows the main file: the leads' pages reached it from the service.
        #expect(fileSize(path) >= before + 2_000_000)
        running.cancel()
        try await running.value  // returns, without an error, once cancelled
    }

    @Test("under writes that never pause, the writer lets the WAL start over once it passes its bound")
    func walStartsOverUnderSustainedWrites() async throws {
        let serving = try ServingStore()
        defer { serving.cleanUp() }
        let (store, path) = (serving.store, serving.path)
        let checkpointer = WALCheckpointer(path: path, writer: store.writer, interval: .milliseconds(5),
                                           restartBytes: 1 << 20, logger: Logger(label: "test"))
        let running = Task { try await checkpointer.run() }
        // 40 MB in back-to-back transactions of 40 KB: a passive checkpoint beside them never
        // finds the writer between a complete copy and its next transaction, so without the
        // writer's help the WAL would hold all 40 MB.
        var largest = 0
        let note = String(repeating: "n", count: 40_000)
        for batch in 0..<1000 {
            try await store.writer.write { db in
                try db.execute(sql: "INSERT INTO leads (external_id, notes, created_at, updated_at) VALUES (?, ?, 0, 0)",
                               arguments: ["W\(batch)", note])
            }
            largest = max(largest, fileSize(path + "-wal"))
        }
        running.cancel()
        try await running.value
        // Without a restart the WAL would pass 40 MB. The bound is loose because the checkpoint
        // task shares two cores with the rest of the suite: it once reached 22 MB under load.
        #expect(largest < 28_000_000, "the WAL reached \(largest) bytes")
        let count = try await store.reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM leads") }
        #expect(count == 1000)
    }
}
