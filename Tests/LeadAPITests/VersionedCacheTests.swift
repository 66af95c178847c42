@testable import LeadAPI
import Synchronization
import Testing

@Suite("Versioned cache")
struct VersionedCacheTests {
    final class Calls: Sendable {
        let count = Atomic<Int>(0)
    }

    /// `callers` concurrent reads of `key` at `version`, each computing slowly on a miss.
    static func concurrentReads(_ cache: VersionedCache<Int, Int>, key: Int, version: Int?, callers: Int,
                                calls: Calls) async throws -> [Int] {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    try await cache.value(for: key, version: version) {
                        let call = calls.count.add(1, ordering: .relaxed).newValue
                        try await Task.sleep(for: .milliseconds(100))
                        return call * 1000 + (version ?? -1)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test("concurrent misses of one key and version compute once and all get that value")
    func singleFlight() async throws {
        let cache = VersionedCache<Int, Int>()
        let calls = Calls()
        let values = try await Self.concurrentReads(cache, key: 1, version: 7, callers: 20, calls: calls)
        #expect(calls.count.load(ordering: .relaxed) == 1)
        #expect(Set(values) == [1007])
        // Cached now; a new version computes again, once.
        _ = try await Self.concurrentReads(cache, key: 1, version: 7, callers: 5, calls: calls)
        #expect(calls.count.load(ordering: .relaxed) == 1)
        let next = try await Self.concurrentReads(cache, key: 1, version: 8, callers: 5, calls: calls)
        #expect(calls.count.load(ordering: .relaxed) == 2)
        #expect(Set(next) == [2008])
    }

    @Test("without a version every read computes: nothing to key a shared answer by")
    func unversioned() async throws {
        let calls = Calls()
        _ = try await Self.concurrentReads(VersionedCache<Int, Int>(), key: 1, version: nil, callers: 4, calls: calls)
        #expect(calls.count.load(ordering: .relaxed) == 4)
    }

    @Test("a failed computation is not cached: the next read computes again")
    func failures() async throws {
        struct Failed: Error {}
        let cache = VersionedCache<Int, Int>()
        await #expect(throws: Failed.self) {
            try await cache.value(for: 1, version: 1) { throw Failed() }
        }
        #expect(try await cache.value(for: 1, version: 1) { 42 } == 42)
    }
}
