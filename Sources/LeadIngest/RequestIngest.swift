import GRDB
import LeadStore

extension Ingest {
    /// A rejected item of a request: its index in a batch (or the line of a CSV body).
    public struct ItemError: Error, Sendable, Equatable {
        public var index: Int
        public var field: String?
        public var reason: String

        public init(index: Int, field: String?, reason: String) {
            self.index = index
            self.field = field
            self.reason = reason
        }
    }

    /// What a request's write did, and the leads whose score it may have moved.
    public struct RequestResult: Sendable {
        public var counts = Counts()
        /// Each record's lead, in input order, whether the record created it, and whether it
        /// changed a lead that existed (its fields, custom values, tags or devices).
        public var leads: [(id: Int64, created: Bool, changed: Bool)] = []
        /// Leads created, changed or given new events: the ones to rescore (ascending).
        public var touched: [Int64] = []
        public var rejects: [ItemError] = []
    }

    /// Writes what one HTTP request carries, inside the caller's write transaction, so the
    /// caller can rescore the touched leads before the same commit. Each request gets its own
    /// session, so nothing is cached across requests (or across a rollback), except the
    /// properties rows a `PropertySetCache` names.
    public struct RequestSession {
        private let writer: BatchWriter

        /// - Parameter sharedPropertySets: rows of event properties that committed writes
        ///   stored; after this session's transaction commits, give it `createdPropertySets`.
        public init(sharedPropertySets: PropertySetCache? = nil) {
            writer = BatchWriter(sharedPropertySets: sharedPropertySets)
        }

        /// The properties rows this session stored, for the caller to add to its
        /// `PropertySetCache` once the transaction has committed (and not otherwise).
        public var createdPropertySets: [String: Int64] { writer.propertySetIDs }

        /// Writes records (leads and events).
        public func write(_ records: [Record], in db: Database) throws -> RequestResult {
            try write(groups: [records], in: db)[0]
        }

        /// Writes the records of several requests in one pass, then splits what happened back
        /// by request: each result is what writing its group alone, right after the groups
        /// before it, would have given (a lead created by an earlier group counts as updated in a
        /// later one; an event sent by two groups is added by the first). One pass means each
        /// lead's activity is folded once however many requests touched it.
        public func write(groups: [[Record]], in db: Database) throws -> [RequestResult] {
            _ = try writer.write(groups.count == 1 ? groups[0] : Array(groups.joined()), in: db)
            var results: [RequestResult] = []
            results.reserveCapacity(groups.count)
            var start = 0
            for group in groups {
                results.append(Self.result(of: writer.outcomes[start..<start + group.count]))
                start += group.count
            }
            return results
        }

        private static func result(of outcomes: ArraySlice<BatchWriter.RecordOutcome>) -> RequestResult {
            var result = RequestResult()
            var created = Set<Int64>(), updated = Set<Int64>(), unchanged = Set<Int64>()
            result.counts = BatchWriter.counts(of: outcomes, created: &created, updated: &updated, unchanged: &unchanged)
            result.leads = outcomes.map { ($0.leadID, $0.created, $0.changed) }
            result.touched = Set(outcomes.lazy.filter { $0.created || $0.changed || $0.eventAdded }.map(\.leadID)).sorted()
            return result
        }

        /// Ingests a CSV body with the rules of `leadlens ingest`: bad rows are rejected with
        /// their line, good rows are written. At most `rejectLimit` rejects are listed.
        public func writeCSV(_ bytes: [UInt8], rejectLimit: Int = 1000, in db: Database) throws -> RequestResult {
            let reader = ByteReader(bytes: bytes)
            var source = try RecordSource(format: .csv, reader: reader, options: Options(format: .csv))
            let rejects = RejectCollector(path: "body", downstream: nil, sampleLimit: rejectLimit)
            var result = RequestResult()
            writer.touchedInTransaction.removeAll()
            while let batch = try source.nextBatch(size: 5000, rejects: rejects) {
                result.counts += try writer.write(batch, in: db)
            }
            result.counts.rejected = rejects.count
            result.rejects = rejects.sample.map { ItemError(index: $0.line, field: $0.field, reason: $0.reason) }
            result.touched = writer.touchedInTransaction.sorted()
            return result
        }
    }

    /// Parses a Segment request body: one message, or `{"batch": [...]}` of at most
    /// `maxMessages`. Good messages come back as records; bad ones as errors by index.
    /// Throws when the body itself is unusable (broken JSON, a batch too large).
    public static func segmentMessages(
        _ bytes: [UInt8], maxMessages: Int, receivedAt: Int64 = LeadStore.nowMillis()
    ) throws(ItemError) -> (records: [Record], rejects: [ItemError]) {
        try bytes.withUnsafeBufferPointer { (whole) throws(ItemError) in
            let (buffer, skipped) = whole.droppingByteOrderMark()
            let value: JSONValue
            var checksStringLengths = false
            do throws(JSONSyntaxError) {
                value = try JSONParser.parse(buffer)
            } catch {
                // A value over 64 KiB costs only the message holding it, not the whole batch.
                guard error.kind == .tooLong, let relaxed = try? JSONParser.parse(buffer, stringLimit: .max) else {
                    throw ItemError(index: 0, field: nil, reason: "the body is not valid JSON: \(error.reason) at byte \(skipped + error.offset + 1)")
                }
                value = relaxed
                checksStringLengths = true
            }
            guard case .object(let object) = value else {
                // A JSON array of messages too: the batch goes in {"batch": [...]}.
                throw ItemError(index: 0, field: "body", reason: "must be a JSON object: one Segment message, or {\"batch\": [...]}")
            }
            var messages: [JSONValue] = [value]
            var batchContext: JSONObject?
            if let batch = object["batch"] {
                guard case .array(let elements) = batch else {
                    throw ItemError(index: 0, field: "batch", reason: "expected an array of messages")
                }
                guard elements.count <= maxMessages else {
                    throw ItemError(index: 0, field: "batch", reason: "at most \(maxMessages) messages per request")
                }
                do throws(IngestError) {
                    batchContext = try SegmentMapper(source: buffer, line: 1, receivedAt: receivedAt,
                                                     checksStringLengths: checksStringLengths).validatedBatchContext(object)
                } catch {
                    throw ItemError(index: 0, field: error.field, reason: error.reason)
                }
                messages = elements
            }
            var records: [Record] = []
            var rejects: [ItemError] = []
            records.reserveCapacity(messages.count)
            for (index, message) in messages.enumerated() {
                do throws(IngestError) {
                    records.append(try SegmentMapper(source: buffer, line: index + 1, receivedAt: receivedAt,
                                                     checksStringLengths: checksStringLengths, batchContext: batchContext)
                        .record(from: message))
                } catch {
                    rejects.append(ItemError(index: index, field: error.field, reason: error.reason))
                }
            }
            return (records, rejects)
        }
    }
}

/// A lead as a client sends it to the intake and bulk endpoints: a flat object whose keys are
/// matched like CSV headers, known fields first, then custom fields.
public enum LeadInput {
    /// Field → problems, for a 422.
    public typealias FieldErrors = [String: [String]]

    /// Why `bytes` is not a JSON object, for a 422 (``object(_:)`` returned nil): the parser's
    /// reason and byte offset, never the value.
    public static func problem(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { whole in
            let (buffer, skipped) = whole.droppingByteOrderMark()
            do {
                _ = try JSONParser.parse(buffer)
                return "must be a JSON object"
            } catch let error as JSONSyntaxError {
                let byte = skipped + error.offset + 1
                switch error.kind {
                case .syntax: return "is not valid JSON: \(error.reason) at byte \(byte)"
                case .tooLong: return "holds a value longer than 64 KiB (at byte \(byte))"
                case .invalidUTF8: return "holds invalid UTF-8 (at byte \(byte))"
                }
            } catch {
                return "is not valid JSON"
            }
        }
    }

    /// Parses a JSON body that must be an object; nil otherwise.
    public static func object(_ bytes: [UInt8]) -> JSONObject? {
        bytes.withUnsafeBufferPointer { whole in
            guard let value = try? JSONParser.parse(whole.droppingByteOrderMark().bytes), case .object(let object) = value else { return nil }
            return object
        }
    }

    /// A lead patch from a flat object. `note`/`notes` and the other keys that name the notes
    /// (`comments`, as contact forms call them; a string, strings, or `{text, tag}`) are added to
    /// the lead's notes rather than replacing them: a form never wipes what a rep wrote.
    public static func patch(from object: JSONObject) -> (patch: Ingest.LeadPatch?, errors: FieldErrors) {
        var builder = LeadPatchBuilder(line: 1)
        // A client program sending a status the API does not know is told so, as POST /leads
        // and PUT .../status tell it, rather than finding it kept aside as a file's would be.
        builder.refusesUnknownStatus = true
        var errors: FieldErrors = [:]
        var firstKeys: [LeadField: String] = [:]
        for member in object.members {
            let normalized = FieldName.normalize(member.key)
            if FieldName.knownField(member.key) == .notes {
                switch notes(from: member.value) {
                case .success(let notes): builder.patch.appendedNotes += notes
                case .failure(let error): errors[member.key, default: []].append(error.reason)
                }
                continue
            }
            if normalized == "customfields", case .object(let custom) = member.value {
                for field in custom.members {
                    do { try builder.setCustom(label: field.key, json: field.value) } catch {
                        // Past the cap every further field would fail alike: said once.
                        if LeadPatchBuilder.passesCap(error) {
                            errors[member.key, default: []].append(error.reason)
                            break
                        }
                        errors[member.key + "." + field.key, default: []].append(error.reason)
                    }
                }
                continue
            }
            do { try builder.set(member: member.key, json: member.value, firstKeys: &firstKeys) } catch {
                errors[error.field ?? member.key, default: []].append(error.reason)
                // Past a cap (custom fields, tags) every further key would fail alike.
                if LeadPatchBuilder.passesCap(error) { break }
            }
        }
        let patch = builder.build()
        if patch.identity.isEmpty, errors.isEmpty {
            if let key = builder.unaddressableEmailKey {
                errors[key, default: []].append("is not an email address, and the lead has no phone or external_id")
            } else {
                errors["email", default: []].append("a lead needs an email, a phone or an external_id")
            }
        }
        return (errors.isEmpty ? patch : nil, errors)
    }

    /// A lead patch from form fields (application/x-www-form-urlencoded).
    public static func patch(fromForm fields: [(key: String, value: String)]) -> (patch: Ingest.LeadPatch?, errors: FieldErrors) {
        patch(from: JSONObject(members: fields.map { JSONMember(key: $0.key, value: .string($0.value)) }, span: 0..<0))
    }

    private static func notes(from value: JSONValue) -> Result<[String], NoteError> {
        switch value {
        case .null: return .success([])
        case .string(let text):
            let trimmed = text.trimmingWhitespace()
            return .success(trimmed.isEmpty ? [] : [trimmed])
        case .array(let elements):
            var all: [String] = []
            for element in elements {
                switch notes(from: element) {
                case .success(let notes): all += notes
                case .failure(let error): return .failure(error)
                }
            }
            return .success(all)
        case .object(let object):
            guard let text = object["text"]?.stringValue?.trimmingWhitespace() else {
                return .failure(NoteError(reason: "a note object needs a text string"))
            }
            if text.isEmpty { return .success([]) }
            if let tag = object["tag"]?.stringValue?.trimmingWhitespace(), !tag.isEmpty {
                return .success(["[\(tag)] \(text)"])
            }
            return .success([text])
        case .number, .bool:
            return .failure(NoteError(reason: "expected a string, strings, or {text, tag}"))
        }
    }

    struct NoteError: Error {
        var reason: String
    }
}

extension Ingest {
    /// The UTF-8 byte order mark, which Windows tools put before JSON as before CSV.
    public static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]
}

extension UnsafeBufferPointer<UInt8> {
    /// The bytes after a UTF-8 byte order mark (the files `leadlens ingest` reads skip it too),
    /// and how many were skipped.
    func droppingByteOrderMark() -> (bytes: UnsafeBufferPointer<UInt8>, skipped: Int) {
        guard starts(with: Ingest.byteOrderMark) else { return (self, 0) }
        return (UnsafeBufferPointer(rebasing: self[Ingest.byteOrderMark.count...]), Ingest.byteOrderMark.count)
    }
}
