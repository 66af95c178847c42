import CZlib
import Foundation
@testable import LeadIngest
import LeadStore
import Testing

/// gzip-compresses `bytes` as gzip(1) would (one member).
func gzip(_ bytes: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    precondition(czlib_deflate_init_gzip(&stream, 6) == Z_OK)
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
    var input = bytes
    let written = input.withUnsafeMutableBufferPointer { source in
        output.withUnsafeMutableBufferPointer { target in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            stream.next_out = target.baseAddress
            stream.avail_out = UInt32(target.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return target.count - Int(stream.avail_out)
        }
    }
    return Array(output.prefix(written))
}

func gzip(_ text: String) -> Data { Data(gzip(Array(text.utf8))) }

@Suite("gzip inputs")
struct GzipTests {
    /// Bytes that do not compress away to nothing, larger than the decoder's input chunk.
    static let large: [UInt8] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<700_000).map { index in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return index % 3 == 0 ? UInt8(truncatingIfNeeded: state >> 33) : UInt8(ascii: "a") + UInt8(index % 7)
        }
    }()

    @Test func decodesLargeInputsAndConcatenatedMembers() throws {
        #expect(try GzipDecoder.decode(gzip(Self.large), limit: .max) == Self.large)
        let two = gzip(Array("first\n".utf8)) + gzip(Array("second\n".utf8))
        #expect(try GzipDecoder.decode(two, limit: .max) == Array("first\nsecond\n".utf8))
        // Zero padding after the last member, as some tools write, is not data.
        #expect(try GzipDecoder.decode(gzip(Array("x".utf8)) + [0, 0, 0, 0], limit: .max) == Array("x".utf8))
    }

    @Test func damagedTruncatedAndOversizedDataAreNamed() throws {
        let compressed = gzip(Self.large)
        #expect(throws: GzipDecoder.DataError(reason: "the gzip data ends early: the file is truncated")) {
            try GzipDecoder.decode(Array(compressed.prefix(compressed.count / 2)), limit: .max)
        }
        var corrupt = compressed
        corrupt[corrupt.count / 2] ^= 0xFF
        corrupt[corrupt.count / 2 + 1] ^= 0xFF
        #expect(throws: GzipDecoder.DataError.self) { try GzipDecoder.decode(corrupt, limit: .max) }
        #expect(throws: GzipDecoder.DataError(reason: "bytes after the end of the gzip data are not gzip")) {
            try GzipDecoder.decode(gzip(Array("x".utf8)) + Array("trailing".utf8), limit: .max)
        }
        #expect(try GzipDecoder.decode(compressed, limit: Self.large.count - 1) == nil)
        #expect(try GzipDecoder.decode(compressed, limit: Self.large.count) == Self.large)
    }

    @Test("A gzipped file ingests as its plain text does, whatever its name")
    func gzippedFilesIngestLikePlainOnes() throws {
        let directory = try TemporaryDirectory()
        let plain = try LeadStore.inMemory()
        let zipped = try LeadStore.inMemory()
        let plainEvents = try ingest(plain, try directory.write("events.ndjson", IngestTests.eventsNDJSON))
        // Segment's bucket exports are gzipped NDJSON with no format in their names.
        let zippedEvents = try ingest(zipped, try directory.write("1767225600000.a1b2c3.gz", gzip(IngestTests.eventsNDJSON)))
        #expect(zippedEvents.counts == plainEvents.counts)
        #expect(zippedEvents.counts.eventsAdded == 5)
        let zippedLeads = try ingest(zipped, try directory.write("leads.csv.gz", gzip(IngestTests.leadsCSV)))
        _ = try ingest(plain, try directory.write("leads.csv", IngestTests.leadsCSV))
        #expect(zippedLeads.counts.rejected == 0)
        // An identify without a timestamp dates its lead by the clock: compare the rest.
        func undated(_ store: LeadStore) throws -> [LeadRow] { try store.leads().map { var row = $0; row.createdAt = 0; return row } }
        #expect(try undated(zipped) == undated(plain))
        #expect(try zipped.leads().count == 4)
        #expect(try zipped.count("events") == plain.count("events"))
        // Progress runs over the compressed bytes, the size the file has on disk.
        #expect(zippedLeads.bytes == Int64(gzip(IngestTests.leadsCSV).count))
    }

    @Test("A truncated archive keeps every whole row before the cut and rejects the row it cut")
    func truncatedArchivesKeepTheRowsBeforeTheCut() throws {
        let directory = try TemporaryDirectory()
        var csv = "id,email,notes\n"
        for index in 1...3000 { csv += "L\(index),p\(index)@x.io,\(String(repeating: "note \(index) ", count: 20))\n" }
        let compressed = gzip(Array(csv.utf8))
        let cut = Data(compressed.prefix(compressed.count / 2))
        let store = try LeadStore.inMemory()
        let recorder = RejectRecorder()
        let summary = try ingest(store, try directory.write("leads.csv.gz", cut), rejects: recorder)
        #expect(summary.counts.rejected == 1)
        let reject = try #require(recorder.rejects.first).error
        #expect(reject.code == .damagedInput)
        #expect(reject.reason.contains("truncated"))
        let kept = try store.leads()
        #expect(summary.counts.leadsCreated == kept.count && kept.count > 100)
        // Rows are whole: the one the cut went through was not stored with a cut value. The
        // reject names the line after the last row kept (the header is line 1).
        #expect(reject.line == kept.count + 2)
        let notes = try store.reader.read { db in try String.fetchAll(db, sql: "SELECT notes FROM leads ORDER BY id") }
        for (index, note) in notes.enumerated() {
            #expect(note == String(repeating: "note \(index + 1) ", count: 20).trimmingCharacters(in: .whitespaces))
        }
        // A damaged header is the file's failure, not a row's.
        #expect(throws: ByteReader.DamagedInput.self) {
            try ingest(store, try directory.write("bad.gz", Data([0x1F, 0x8B] + Array("not deflate".utf8))))
        }
    }

    @Test func watchedFoldersTakeGzippedDrops() throws {
        let directory = try TemporaryDirectory()
        let store = try makeFileStore(in: directory)
        let drop = directory.url.appendingPathComponent("drop", isDirectory: true)
        try FileManager.default.createDirectory(at: drop, withIntermediateDirectories: true)
        try gzip(IngestTests.eventsNDJSON).write(to: drop.appendingPathComponent("part-0001.gz"))
        let watcher = Ingest.Watcher(directory: drop, store: store)
        let summaries = try watcher.scan(requireStableSize: false)
        #expect(summaries.map(\.counts.eventsAdded) == [5])
        #expect(try FileManager.default.contentsOfDirectory(atPath: watcher.doneDirectory.path) == ["part-0001.gz"])
    }
}
