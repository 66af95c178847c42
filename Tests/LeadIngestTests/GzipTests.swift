import CZlib
import Foundation
import GRDB
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
    /// Bytes that do not compress away to nothing, larger than the decoder's 256 KiB input chunk
    /// once compressed (read from a source, as a file is).
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

    @Test("Input arriving a few bytes at a time, read into small buffers, decodes the same")
    func decodesInputReadInSmallPieces() throws {
        let expected = Self.large + Array("second member\n".utf8)
        let compressed = gzip(Self.large) + gzip(Array("second member\n".utf8)) + [0, 0]
        var offset = 0
        var sizes = (1...7).makeIterator()
        let decoder = try GzipDecoder(prefix: UnsafeBufferPointer(start: nil, count: 0)) { target, capacity in
            guard offset < compressed.count else { return 0 }
            let size = sizes.next() ?? { sizes = (1...7).makeIterator(); return sizes.next()! }()
            let count = min(size, capacity, compressed.count - offset)
            for index in 0..<count { target[index] = compressed[offset + index] }
            offset += count
            return count
        }
        var output: [UInt8] = []
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
        defer { buffer.deallocate() }
        var capacity = 1
        while true {
            let count = try decoder.readDecoded(into: buffer, capacity: capacity)
            if count == 0 { break }
            output.append(contentsOf: UnsafeBufferPointer(start: buffer, count: count))
            capacity = capacity % 4096 + 511
        }
        #expect(output == expected)
    }

    @Test("A damaged gzip file is refused whole, as gzip -t would find it, before any row commits")
    func damagedFilesAreRefusedWhole() throws {
        let sample = try #require(DamagedGzip.sample)
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        #expect(throws: IngestFileError.self) { try ingest(store, try directory.write("events.gz", Data(sample.bytes))) }
        // Damage only the checksum at its end shows: every row decodes, but cannot be trusted.
        var checksum = gzip(Array(IngestTests.eventsNDJSON.utf8))
        checksum[checksum.count - 6] ^= 0x01
        #expect(throws: GzipDecoder.DataError.self) { try GzipDecoder.decode(checksum, limit: .max) }
        #expect(throws: IngestFileError.self) { try ingest(store, try directory.write("checksum.gz", Data(checksum))) }
        #expect(try store.count("events") == 0 && store.count("leads") == 0)
    }

    @Test func damagedTruncatedAndOversizedDataAreNamed() throws {
        let compressed = gzip(Self.large)
        #expect(throws: GzipDecoder.DataError(kind: .truncated, reason: "the gzip data ends early: it is truncated")) {
            try GzipDecoder.decode(Array(compressed.prefix(compressed.count / 2)), limit: .max)
        }
        var corrupt = compressed
        corrupt[corrupt.count / 2] ^= 0xFF
        corrupt[corrupt.count / 2 + 1] ^= 0xFF
        #expect(throws: GzipDecoder.DataError.self) { try GzipDecoder.decode(corrupt, limit: .max) }
        #expect(throws: GzipDecoder.DataError(kind: .trailingBytes, reason: "bytes after the end of the gzip data are not gzip")) {
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
        #expect(throws: IngestFileError.self) {
            try ingest(store, try directory.write("bad.gz", Data([0x1F, 0x8B] + Array("not deflate".utf8))))
        }
    }

    @Test("Bytes after whole gzip data keep every row, the last one too, and are reported once")
    func trailingBytesKeepTheLastRow() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let recorder = RejectRecorder()
        // No newline after the last row: it ends where the gzip data does.
        let file = gzip(Array("email,first_name\na@x.io,A\nb@x.io,B".utf8)) + Array("JUNKJUNK".utf8)
        let summary = try ingest(store, try directory.write("leads.csv.gz", Data(file)), rejects: recorder)
        #expect(try store.leads().map(\.email) == ["a@x.io", "b@x.io"])
        #expect(summary.counts.leadsCreated == 2 && summary.counts.rejected == 1)
        let reject = try #require(recorder.rejects.first).error
        #expect(reject.code == .damagedInput)
        #expect(reject.line == 3, "the bytes start on the last row's line, which has no newline")
        #expect(reject.reason.contains("not gzip"))
    }

    @Test("Formats ingest does not decode are named, not read as a CSV with a broken header")
    func otherCompressionIsNamed() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        for (name, bytes, format) in [("a.xz", [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 0x00], "xz data"),
                                      ("a.bz2", Array("BZh91AY&SY".utf8), "bzip2 data"), ("a.zip", [0x50, 0x4B, 0x03, 0x04, 0x14], "a zip archive"),
                                      ("twice.gz", gzip(gzip(Array("id\nL1\n".utf8))), "gzip compressed twice"),
                                      // Excel's "Unicode text", either byte order, whatever the name says.
                                      ("excel.csv", [0xFF, 0xFE] + Array("id\nL1\n".utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }, "UTF-16 text"),
                                      ("big.txt", [0xFE, 0xFF] + Array("id\nL1\n".utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }, "UTF-16 text"),
                                     ] as [(String, [UInt8], String)] {
            #expect {
                try ingest(store, try directory.write(name, Data(bytes)))
            } throws: { error in
                (error as? IngestFileError)?.reason.hasPrefix("the input is \(format)") == true
            }
        }
        // A CSV whose header happens to start like bzip2's magic is still a CSV.
        let csv = try ingest(store, try directory.write("bzh.csv", "BZh,email\nx,a@x.io\n"))
        #expect(csv.counts.leadsCreated == 1)
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

/// NDJSON events, gzipped, with one byte flipped where zlib reports damage it can place (not only
/// the checksum at the end), found by trying so it holds for any zlib build; and the whole lines
/// zlib decodes before it notices.
struct DamagedGzip {
    let bytes: [UInt8]
    let lines: Int
    let wholeLinesBeforeDamage: Int

    /// Made once: trying offsets costs seconds in a debug build.
    static let sample = make()

    private static func make() -> DamagedGzip? {
        let lines = (0..<20_000).map { #"{"type":"track","event":"Email Opened","userId":"u\#($0 % 500)","messageId":"m\#($0)","timestamp":"2026-01-01T00:00:00Z"}"# }
        let compressed = gzip(Array((lines.joined(separator: "\n") + "\n").utf8))
        for offset in stride(from: compressed.count / 2, to: compressed.count - 8, by: 97) {
            var candidate = compressed
            candidate[offset] ^= 0x55
            guard decodes(candidate, countingLines: false) != nil, let before = decodes(candidate, countingLines: true) else { continue }
            return DamagedGzip(bytes: candidate, lines: lines.count, wholeLinesBeforeDamage: before)
        }
        return nil
    }

    /// Whole lines decoded before damage other than a bad checksum (0 unless `countingLines`,
    /// which is slow in a debug build); nil when there is no such damage.
    private static func decodes(_ file: [UInt8], countingLines: Bool) -> Int? {
        guard let decoder = try? file.withUnsafeBufferPointer({ try GzipDecoder(prefix: $0, source: { _, _ in 0 }) }) else { return nil }
        let capacity = 64 << 10
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var wholeLines = 0
        do {
            while true {
                let count = try decoder.readDecoded(into: buffer, capacity: capacity)
                if count == 0 { return nil }
                if countingLines { wholeLines += UnsafeBufferPointer(start: buffer, count: count).count(where: { $0 == 0x0A }) }
            }
        } catch let error as GzipDecoder.DataError where !error.reason.contains("check") {
            return wholeLines
        } catch {
            return nil
        }
    }
}
