import Foundation
import Logging

extension Reports {
    /// The reports folder: one subfolder per report, named by its id, plus latest.json. What the
    /// API lists and serves files from.
    public struct Archive: Sendable {
        public let directory: URL

        static let indexName = "index.json"
        static let latestName = "latest.json"

        public init(directory: URL) {
            self.directory = directory.standardizedFileURL
        }

        /// reports/latest.json: names the newest complete report.
        public struct Latest: Codable, Sendable, Equatable {
            public var id: String
            public var generatedAt: Date
            /// The report's summary or, without one, its index, relative to the reports folder.
            public var path: String

            enum CodingKeys: String, CodingKey {
                case id, path
                case generatedAt = "generated_at"
            }
        }

        /// A file to serve.
        public struct ResolvedFile: Sendable, Equatable {
            public var url: URL
            public var contentType: String
        }

        /// Whether `id` has the form of a report id: yyyy-MM-dd-HHmmss, optionally -N. Anything
        /// else (a path, "..", a name with a slash) is never a report.
        public static func isReportID(_ id: String) -> Bool {
            let bytes = Array(id.utf8)
            guard bytes.count >= 17, bytes.count <= 24 else { return false }
            let digit = { (b: UInt8) in b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
            for (index, byte) in bytes.prefix(17).enumerated() {
                let isDash = index == 4 || index == 7 || index == 10
                if isDash ? byte != UInt8(ascii: "-") : !digit(byte) { return false }
            }
            guard bytes.count > 17 else { return true }
            return bytes[17] == UInt8(ascii: "-") && bytes.count > 18 && bytes[18...].allSatisfy(digit)
        }

        /// The complete reports, newest first. A folder without a readable index.json (being
        /// written, or broken) is left out.
        public func list() throws -> [Manifest] {
            try reportIDs().compactMap(manifest(id:))
        }

        /// One report's manifest; nil when there is no such complete report.
        public func manifest(id: String) throws -> Manifest? {
            guard Self.isReportID(id) else { return nil }
            let url = directory.appendingPathComponent(id, isDirectory: true).appendingPathComponent(Self.indexName)
            guard let data = try? Data(contentsOf: url) else { return nil }
            return try? Reports.jsonDecoder.decode(Manifest.self, from: data)
        }

        /// The file `name` of report `id`, when the report's index lists it and it is a regular
        /// file inside the report's folder; nil otherwise. Both parts come from a URL, so neither
        /// is trusted: only names the manifest lists are served, and the resolved path must stay
        /// inside the folder.
        public func resolve(id: String, file name: String) throws -> ResolvedFile? {
            guard let manifest = try manifest(id: id) else { return nil }
            guard name == Self.indexName || manifest.files.contains(where: { $0.name == name }),
                  !name.contains("/"), !name.hasPrefix(".") else { return nil }
            let folder = directory.appendingPathComponent(id, isDirectory: true)
            let url = folder.appendingPathComponent(name).resolvingSymlinksInPath()
            guard url.path.hasPrefix(folder.resolvingSymlinksInPath().path + "/") else { return nil }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
            return ResolvedFile(url: url, contentType: Reports.contentType(ofFile: name))
        }

        public func latest() -> Latest? {
            guard let data = try? Data(contentsOf: directory.appendingPathComponent(Self.latestName)) else { return nil }
            return try? Reports.jsonDecoder.decode(Latest.self, from: data)
        }

        // MARK: - Writing

        /// Report folder names, newest first: by time, then by the "-N" of reports started in
        /// the same second (numerically: "-10" is newer than "-9").
        func reportIDs() throws -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.filter(Self.isReportID).sorted { Self.order($0) > Self.order($1) }
        }

        /// yyyy-MM-dd-HHmmss[-N] as (the time, N), the base counting as 1.
        static func order(_ id: String) -> (String, Int) {
            let time = String(id.prefix(17))
            return (time, id.count > 18 ? Int(id.dropFirst(18)) ?? 1 : 1)
        }

        /// Creates the reports folder, or says clearly why it cannot be written.
        func prepareDirectory() throws {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw ReportError("cannot create the reports folder \(directory.path): \(Self.reason(error))")
            }
            guard FileManager.default.isWritableFile(atPath: directory.path) else {
                throw ReportError("the reports folder \(directory.path) is not writable")
            }
        }

        /// Creates the folder of a new report; mkdir is atomic, so two reports started within the
        /// same second get different ids. Its number is past every report of that second still
        /// here: a number retention has freed would sort as the oldest report, and the new report's
        /// own pruning would delete it, or a later report would take its id.
        func makeReportFolder(for date: Date) throws -> (id: String, url: URL) {
            let base = Self.id(for: date)
            let highest = try reportIDs().lazy.map(Self.order).filter { $0.0 == base }.map(\.1).max() ?? 0
            for number in (highest + 1)...(highest + 100) {
                let id = number == 1 ? base : "\(base)-\(number)"
                let url = directory.appendingPathComponent(id, isDirectory: true)
                if mkdir(url.path, 0o755) == 0 { return (id, url) }
                guard errno == EEXIST else {
                    throw ReportError("cannot create \(url.path): \(String(cString: strerror(errno)))")
                }
            }
            throw ReportError("too many reports started at \(base)")
        }

        /// yyyy-MM-dd-HHmmss, UTC.
        static func id(for date: Date) -> String {
            let iso = Reports.isoTimestamp(millis: Reports.millis(date))
            // 2026-03-05T06:00:00.000Z → 2026-03-05-060000
            let time = iso.dropFirst(11).prefix(8).replacingOccurrences(of: ":", with: "")
            return iso.prefix(10) + "-" + time
        }

        /// Points latest.json at the newest complete report (written whole, then renamed), so two
        /// reports finishing out of order still leave it naming the newest.
        func updateLatest() throws {
            guard let newest = try list().first else { return }
            let path = newest.files.contains { $0.name == "summary.html" } ? "\(newest.id)/summary.html" : "\(newest.id)/\(Self.indexName)"
            let latest = Latest(id: newest.id, generatedAt: newest.generatedAt, path: path)
            try Reports.jsonEncoder.encode(latest).write(to: directory.appendingPathComponent(Self.latestName), options: .atomic)
        }

        /// Deletes all but the `keep` newest complete reports. A folder without its index is a
        /// report still being written, by this process or another: it is left alone, unless
        /// nothing has written into it for ``abandonedAfter`` (its writer died). Only folders named
        /// like report ids are touched, so nothing else a user keeps in the folder is ever deleted.
        func prune(keeping keep: Int, now: Date = Date(), logger: Logger) throws {
            var kept = 0
            for id in try reportIDs() {
                let folder = directory.appendingPathComponent(id, isDirectory: true)
                if try manifest(id: id) != nil {
                    kept += 1
                    if kept <= max(keep, 1) { continue }
                } else {
                    let modified = (try? FileManager.default.attributesOfItem(atPath: folder.path)[.modificationDate]) as? Date
                    guard let modified, now.timeIntervalSince(modified) > Self.abandonedAfter else { continue }
                }
                do {
                    try FileManager.default.removeItem(at: folder)
                    logger.info("old report deleted", metadata: ["report.id": "\(id)"])
                } catch {
                    logger.warning("cannot delete an old report", metadata: ["report.id": "\(id)", "error": "\(Self.reason(error))"])
                }
            }
        }

        /// How long an incomplete report folder may go unwritten before pruning takes it for a
        /// dead writer's. Writing a report touches its folder every few seconds at most.
        static let abandonedAfter: TimeInterval = 3600

        static func reason(_ error: any Error) -> String {
            (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
        }
    }
}
