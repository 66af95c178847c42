import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import LeadAPI
import LeadIngest
import LeadScoring
import LeadStore
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("Lead routes")
struct LeadRoutesTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Registers and activates the shipped default model, so writes are rescored.
    static func activateDefaultModel(_ store: LeadStore) throws {
        let model = try ScoringModel.load(from: repository.appendingPathComponent("models/default.json"))
        try store.writer.write { db in
            try ModelRegistry.register(model, in: db)
            try ModelRegistry.activate(version: model.version, in: db)
        }
    }

    @Test("create, read, update, status, notes, tags, assign, delete")
    func crud() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/leads", key: api.editor, json: [
                "email": "Grace@Example.com", "first_name": "Grace", "company": "Navy", "value": 1200,
                "tags": ["vip"], "custom_fields": ["Budget": "50k"],
            ])
            #expect(created.status == .created)
            let id = try #require(created.data["id"] as? Int)
            #expect(created.data["email"] as? String == "grace@example.com")
            #expect(created.data["status"] as? String == "new")
            #expect(created.data["tags"] as? [String] == ["vip"])
            #expect((created.data["custom_fields"] as? [String: String])?["Budget"] == "50k")
            // An amount as a rep types one is a number to a model reading the field, as in ingest.
            let budget = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["custom_fields": ["Budget": "$2,500"]])
            #expect(budget.status == .ok)
            let number = try await api.store.reader.read { db in
                try Double.fetchOne(db, sql: "SELECT number FROM lead_custom_values WHERE lead_id = ?", arguments: [id])
            }
            #expect(number == 2500)
            #expect(try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["custom_fields": ["Budget": "50k"]]).status == .ok)
            for key in ["score", "probability", "model_version", "scored_at", "assigned_to", "last_activity_at"] {
                #expect(created.data.keys.contains(key), "the lead object always has \(key)")
            }

            let conflict = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["email": "grace@example.com"])
            #expect(conflict.status == .conflict)
            #expect(conflict.errorCode == "CONFLICT")
            let invalid = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["email": "not-an-email", "status": "winning", "shoe_size": 9])
            #expect(invalid.status == .unprocessableContent)
            #expect(Set(invalid.fieldErrors.keys) == ["email", "status", "shoe_size"])
            let anonymous = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["first_name": "Nobody"])
            #expect(anonymous.status == .unprocessableContent)

            let shown = try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader)
            #expect(shown.status == .ok)
            #expect(shown.data["factors"] is [Any])

            let patched = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["company": "US Navy", "value": NSNull()])
            #expect(patched.status == .ok)
            #expect(patched.data["company"] as? String == "US Navy")
            #expect(patched.data["value"] is NSNull)
            #expect(patched.data["first_name"] as? String == "Grace", "a partial update leaves other fields")
            let put = try await client.call(.put, "/api/v1/leads/\(id)", key: api.editor, json: ["last_name": "Hopper"])
            #expect(put.data["last_name"] as? String == "Hopper")
            // The lead's own email sent back is no conflict; clearing its only identity is refused.
            #expect(try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["email": "grace@example.com"]).status == .ok)
            let bare = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["email": NSNull(), "phone": NSNull()])
            #expect(bare.status == .unprocessableContent && bare.fieldErrors["email"] != nil)
            #expect(try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader).data["email"] as? String == "grace@example.com")
            // An export's decorations come off: the address inside is stored.
            let decorated = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["email": "Ann Lee <Ann.Lee@Example.com>"])
            #expect(decorated.status == .created && decorated.data["email"] as? String == "ann.lee@example.com", "\(decorated.json)")
            #expect(try await client.call(.delete, "/api/v1/leads/\(try #require(decorated.data["id"] as? Int))", key: api.editor).status == .noContent)
            // The error names the field the request clears.
            let external = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["external_id": "X-1"])
            let externalID = try #require(external.data["id"] as? Int)
            let unnamed = try await client.call(.patch, "/api/v1/leads/\(externalID)", key: api.editor, json: ["external_id": NSNull()])
            #expect(unnamed.status == .unprocessableContent && unnamed.fieldErrors.keys.sorted() == ["external_id"], "\(unnamed.json)")
            #expect(try await client.call(.delete, "/api/v1/leads/\(externalID)", key: api.editor).status == .noContent)
            let two = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["external_id": "X-2", "email": "x2@example.com"])
            let twoID = try #require(two.data["id"] as? Int)
            let both = try await client.call(.patch, "/api/v1/leads/\(twoID)", key: api.editor, json: ["external_id": NSNull(), "email": NSNull()])
            #expect(both.fieldErrors.keys.sorted() == ["email", "external_id"], "each field cleared is named: \(both.json)")
            #expect(try await client.call(.delete, "/api/v1/leads/\(twoID)", key: api.editor).status == .noContent)
            // A NUL would cut the stored text short: refused, naming the field, on every way in.
            let nul = try await client.call(.post, "/api/v1/leads", key: api.editor, json: ["email": "nul\u{0}@example.com"])
            #expect(nul.status == .unprocessableContent && nul.fieldErrors["email"] != nil)
            let nulIntake = try await client.call(.post, "/api/v1/intake", key: api.editor, json: ["email": "n@example.com", "first_name": "A\u{0}B"])
            #expect(nulIntake.status == .unprocessableContent && nulIntake.fieldErrors["first_name"] != nil)
            let nulCustom = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["custom_fields": ["Plan": "a\u{0}b"]])
            #expect(nulCustom.status == .unprocessableContent && nulCustom.fieldErrors["custom_fields.Plan"] != nil)
            for (method, path, body, field) in [(HTTPRequest.Method.put, "notes", ["notes": "a\u{0}b"], "notes"),
                                                (.post, "tags", ["name": "t\u{0}x"], "name"),
                                                (.put, "assign", ["user_id": "bo\u{0}b"], "user_id")] {
                let reply = try await client.call(method, "/api/v1/leads/\(id)/\(path)", key: api.editor, json: body)
                #expect(reply.status == .unprocessableContent && reply.fieldErrors[field] != nil, "\(path)")
            }
            // Exports and imports separate tags with commas and semicolons: a tag holding one is
            // refused where it would come back from a round trip as two.
            let commaTag = try await client.call(.post, "/api/v1/leads/\(id)/tags", key: api.editor, json: ["name": "a,b"])
            #expect(commaTag.status == .unprocessableContent && commaTag.fieldErrors["name"]?.first?.contains("comma") == true)
            let semicolonTags = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["tags": ["ok", "x;y"]])
            #expect(semicolonTags.status == .unprocessableContent && semicolonTags.fieldErrors["tags"] != nil)
            let manyFields = Dictionary(uniqueKeysWithValues: (0...Ingest.maxCustomFields).map { ("f\($0)", "v") })
            let tooMany = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["custom_fields": manyFields])
            #expect(tooMany.status == .unprocessableContent && tooMany.fieldErrors["custom_fields"] != nil)
            // Intake says the cap once, not once per field past it.
            let intakeFields = Dictionary(uniqueKeysWithValues: (0..<(Ingest.maxCustomFields + 50)).map { ("f\($0)", "v") })
            let crowded = try await client.call(.post, "/api/v1/intake", key: api.editor, json: ["email": "crowd@example.com", "custom_fields": intakeFields])
            #expect(crowded.status == .unprocessableContent)
            #expect(crowded.fieldErrors.keys.sorted() == ["custom_fields"], "\(crowded.fieldErrors.keys.count) fields named")
            // JSON true is "true", and the numbers 0 and 1 are numbers (Linux bridges them to Bool).
            let typed = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor,
                                              json: ["value": 1, "custom_fields": ["Trial": true, "Seats": 1]])
            #expect(typed.status == .ok, "\(typed.json)")
            #expect(typed.data["value"] as? Double == 1)
            #expect((typed.data["custom_fields"] as? [String: String]) ?? [:] == ["Budget": "50k", "Trial": "true", "Seats": "1"])

            let status = try await client.call(.put, "/api/v1/leads/\(id)/status", key: api.editor, json: ["status": "qualified"])
            #expect(status.data["status"] as? String == "qualified")
            let badStatus = try await client.call(.put, "/api/v1/leads/\(id)/status", key: api.editor, json: ["status": "great"])
            #expect(badStatus.status == .unprocessableContent)
            #expect(badStatus.fieldErrors["status"] != nil)

            let notes = try await client.call(.put, "/api/v1/leads/\(id)/notes", key: api.editor, json: ["notes": "call back Monday"])
            #expect(notes.data["notes"] as? String == "call back Monday")
            // A misspelled key is refused rather than read as "clear the notes".
            let misspelled = try await client.call(.put, "/api/v1/leads/\(id)/notes", key: api.editor, json: ["note": "x"])
            #expect(misspelled.status == .unprocessableContent && misspelled.fieldErrors["notes"] != nil)
            #expect(try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader).data["notes"] as? String == "call back Monday")

            // Bodies of a fixed shape name the field a wrong type is in.
            for (path, body, field) in [("status", ["status": 5], "status"), ("assign", ["user_id": ["x"]], "user_id"),
                                        ("tags", ["name": true], "name"), ("merge", ["duplicate_id": "14"], "duplicate_id")] as [(String, [String: Any], String)] {
                let reply = try await client.call(path == "tags" || path == "merge" ? .post : .put, "/api/v1/leads/\(id)/\(path)",
                                                  key: api.editor, json: body)
                #expect(reply.status == .unprocessableContent, "\(path)")
                #expect(reply.fieldErrors[field] != nil, "\(path): \(reply.json)")
                let message = reply.fieldErrors[field]?.joined() ?? ""
                let namesSwiftType = ["Dictionary", "Array", "Int64", "String", "Bool"].contains { message.contains($0) }
                #expect(!namesSwiftType, "a JSON type name, not Swift's: \(message)")
            }

            let tagged = try await client.call(.post, "/api/v1/leads/\(id)/tags", key: api.editor, json: ["tag": "navy"])
            #expect(tagged.status == .created)
            #expect(Set(tagged.data["tags"] as? [String] ?? []) == ["vip", "navy"])
            // An error names the key the client used.
            for key in ["tag", "name"] {
                let blank = try await client.call(.post, "/api/v1/leads/\(id)/tags", key: api.editor, json: [key: " "])
                #expect(blank.status == .unprocessableContent && blank.fieldErrors.keys.sorted() == [key], "\(blank.json)")
            }
            let untagged = try await client.call(.delete, "/api/v1/leads/\(id)/tags/vip", key: api.editor)
            #expect(untagged.data["tags"] as? [String] == ["navy"])
            #expect(try await client.call(.delete, "/api/v1/leads/\(id)/tags/vip", key: api.editor).status == .notFound)

            let assigned = try await client.call(.put, "/api/v1/leads/\(id)/assign", key: api.editor, json: ["userId": "rep-7"])
            #expect(assigned.data["assigned_to"] as? String == "rep-7")
            let mine = try await client.call(.get, "/api/v1/leads?assigned_to=rep-7", key: api.reader)
            #expect(mine.list.map { $0["id"] as? Int } == [id])
            let unassigned = try await client.call(.put, "/api/v1/leads/\(id)/assign", key: api.editor, json: ["user_id": NSNull()])
            #expect(unassigned.data["assigned_to"] is NSNull)
            #expect(try await client.call(.get, "/api/v1/leads?assigned_to=unassigned", key: api.reader).list.count == 1)
            // No user is called "unassigned": the filter by that name could never find their leads.
            let reserved = try await client.call(.put, "/api/v1/leads/\(id)/assign", key: api.editor, json: ["user_id": "Unassigned"])
            #expect(reserved.status == .unprocessableContent && reserved.fieldErrors["user_id"] != nil, "\(reserved.json)")
            let reservedPatch = try await client.call(.patch, "/api/v1/leads/\(id)", key: api.editor, json: ["assigned_to": "unassigned"])
            #expect(reservedPatch.status == .unprocessableContent && reservedPatch.fieldErrors["assigned_to"] != nil, "\(reservedPatch.json)")
            let form = try await client.call(.post, "/api/v1/intake", key: api.editor, json: ["email": "own@example.com", "owner": "Unassigned"])
            let formID = try #require(form.json["lead_id"] as? Int)
            let formLead = try await client.call(.get, "/api/v1/leads/\(formID)", key: api.reader)
            #expect(formLead.data["assigned_to"] is NSNull, "a form's Unassigned owner is no owner")

            let timeline = try await client.call(.get, "/api/v1/leads/\(id)/events", key: api.reader)
            let kinds = timeline.list.map { $0["kind"] as? String }
            #expect(kinds.contains("status_changed"))
            #expect(kinds.contains("assigned"))

            #expect(try await client.call(.delete, "/api/v1/leads/\(id)", key: api.editor).status == .noContent)
            #expect(try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader).status == .notFound)
        }
    }

    @Test("every lead route answers 404 for an unknown lead", arguments: [
        (HTTPRequest.Method.get, ""), (.patch, ""), (.put, ""), (.delete, ""), (.put, "/status"), (.put, "/notes"),
        (.post, "/tags"), (.delete, "/tags/x"), (.put, "/assign"), (.get, "/events"), (.get, "/duplicates"), (.post, "/merge"),
    ])
    func unknownLead(method: HTTPRequest.Method, suffix: String) async throws {
        let api = try TestAPI(leads: 1)
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let body: [String: Any] = ["status": "new", "notes": "x", "name": "t", "user_id": "u", "duplicate_id": 1, "company": "c"]
            let key = method == .get ? api.reader : api.writer
            let reply = try await client.call(method, "/api/v1/leads/424242\(suffix)", key: key, json: body)
            #expect(reply.status == .notFound, "\(method) \(suffix)")
            #expect(reply.errorCode == "NOT_FOUND")
            let message = reply.json["message"] as? String ?? ""
            #expect(!message.contains("SELECT") && !message.contains("sqlite"))
        }
    }

    @Test("intake: JSON or a form, deduped by email, merged without blanking")
    func intake() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let first = try await client.call(.post, "/api/v1/intake", key: api.writer, json: [
                "First Name": "Ada", "E-mail": " ADA@example.com ", "company": "Engines", "note": "from the form",
                "Budget": 5000, "tags": "math,vip",
            ])
            #expect(first.status == .created)
            #expect(first.json["status"] as? String == "created")
            #expect(first.json["is_duplicate"] as? Bool == false)
            let id = try #require(first.json["lead_id"] as? Int)

            let again = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                              raw: "email=ada%40example.com&company=&phone=555+0101&notes=second+visit",
                                              contentType: "application/x-www-form-urlencoded")
            #expect(again.status == .ok)
            #expect(again.json["is_duplicate"] as? Bool == true)
            #expect(again.json["lead_id"] as? Int == id)
            #expect(again.json["status"] as? String == "updated")
            // The same form sent again holds nothing new.
            let resent = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                               raw: "email=ada%40example.com&company=&phone=555+0101",
                                               contentType: "application/x-www-form-urlencoded")
            #expect(resent.status == .ok && resent.json["status"] as? String == "unchanged", "\(resent.json)")

            let lead = try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader).data
            #expect(lead["company"] as? String == "Engines", "a blank never overwrites")
            #expect(lead["phone"] as? String == "555 0101")
            #expect(lead["first_name"] as? String == "Ada")
            #expect((lead["custom_fields"] as? [String: String])?["Budget"] == "5000")
            #expect(lead["notes"] as? String == "from the form\nsecond visit")
            #expect(Set(lead["tags"] as? [String] ?? []) == ["math", "vip"])

            // A note for a lead that has none yet (a NULL notes column crashed the server).
            let bare = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "nt1@example.com"])
            let noted = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "nt1@example.com", "note": "call me"])
            #expect(noted.status == .ok)
            let bareID = try #require(bare.json["lead_id"] as? Int)
            #expect(try await client.call(.get, "/api/v1/leads/\(bareID)", key: api.reader).data["notes"] as? String == "call me")
            // A form's "comments" is a note too: added, never replacing what a rep wrote. A note
            // that an earlier, longer one contains is news; the same note sent again is not.
            let rep = try await client.call(.put, "/api/v1/leads/\(bareID)/notes", key: api.writer, json: ["notes": "Rep: VIP, wants a demo"])
            #expect(rep.status == .ok)
            let comment = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                                raw: "email=nt1%40example.com&comments=Please+send+a+quote",
                                                contentType: "application/x-www-form-urlencoded")
            #expect(comment.json["status"] as? String == "updated", "\(comment.json)")
            let demo = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "nt1@example.com", "note": "demo"])
            #expect(demo.json["status"] as? String == "updated", "\(demo.json)")
            let sameNote = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "nt1@example.com", "Comment": "demo"])
            #expect(sameNote.json["status"] as? String == "unchanged", "\(sameNote.json)")
            #expect(try await client.call(.get, "/api/v1/leads/\(bareID)", key: api.reader).data["notes"] as? String
                    == "Rep: VIP, wants a demo\nPlease send a quote\ndemo")
            // A textarea's CRLF lines are lines too.
            _ = try await client.call(.put, "/api/v1/leads/\(bareID)/notes", key: api.writer, json: ["notes": "Rep note\r\nCall me\r\nLater"])
            for line in ["Call me", "Rep note", "Later"] {
                let crlf = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "nt1@example.com", "comments": line])
                #expect(crlf.json["status"] as? String == "unchanged", "\(line): \(crlf.json)")
            }

            // A number is no address and true no phone: refused by field, not kept as other text.
            // A status the API does not know is refused by field, as POST /leads refuses it;
            // only files keep one aside.
            for (body, field) in [(["email": 123, "phone": "+1 555 010 9999"] as [String: Any], "email"), (["email": "t@example.com", "phone": true], "phone"),
                                  (["email": "s@example.com", "Lead Status": "Working"], "Lead Status")] {
                let wrong = try await client.call(.post, "/api/v1/intake", key: api.writer, json: body)
                #expect(wrong.status == .unprocessableContent && wrong.fieldErrors[field] != nil, "\(wrong.json)")
            }

            let none = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["first_name": "Anon"])
            #expect(none.status == .unprocessableContent)
            #expect(none.fieldErrors["email"] != nil)
            // A form's "n/a" is not an address: two people who typed it stay two leads, each
            // keeping the text, and one with nothing else to identify them is refused by its field.
            var placeholderIDs: [Int] = []
            for (name, phone) in [("Ann", "555 123 4567"), ("Bob", "555 987 6543")] {
                let sent = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["Email": "n/a", "first_name": name, "phone": phone])
                #expect(sent.status == .created, "\(name): \(sent.json)")
                placeholderIDs.append(try #require(sent.json["lead_id"] as? Int))
            }
            #expect(Set(placeholderIDs).count == 2, "two strangers who typed n/a became one lead")
            let ann = try await client.call(.get, "/api/v1/leads/\(placeholderIDs[0])", key: api.reader).data
            #expect(ann["first_name"] as? String == "Ann" && ann["email"] is NSNull)
            #expect((ann["custom_fields"] as? [String: String])?["Email"] == "n/a")
            let onlyPlaceholder = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["Email": "none", "first_name": "Cy"])
            #expect(onlyPlaceholder.status == .unprocessableContent)
            #expect(onlyPlaceholder.fieldErrors["Email"]?.first?.contains("is not an email address") == true, "\(onlyPlaceholder.json)")
            let broken = try await client.call(.post, "/api/v1/intake", key: api.writer, raw: "{not json", contentType: "application/json")
            #expect(broken.status == .unprocessableContent)
            #expect(broken.fieldErrors["body"]?.first?.hasPrefix("is not valid JSON") == true)
            // The strict routes tell broken JSON from JSON that is not an object, as intake does.
            for (route, method) in [("/api/v1/leads", HTTPRequest.Method.post), ("/api/v1/leads/\(bareID)", .patch)] {
                let cut = try await client.call(method, route, key: api.writer, raw: #"{"a":"#, contentType: "application/json")
                #expect(cut.status == .unprocessableContent)
                #expect(cut.fieldErrors["body"]?.first?.hasPrefix("is not valid JSON") == true, "\(route) \(cut.json)")
                let array = try await client.call(method, route, key: api.writer, raw: "[1]", contentType: "application/json")
                #expect(array.fieldErrors["body"] == ["must be a JSON object"], "\(route)")
            }
            // Over-long and out-of-range values say so rather than "not a JSON object".
            let long = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                             json: ["email": "long@example.com", "notes": String(repeating: "n", count: 70_000)])
            #expect(long.status == .unprocessableContent)
            #expect(long.fieldErrors["body"]?.first?.contains("longer than 64 KiB") == true, "\(long.json)")
            let huge = try await client.call(.post, "/api/v1/leads/bulk", key: api.writer,
                                             raw: #"{"leads": [{"email": "n@example.com", "value": 1e400}]}"#, contentType: "application/json")
            #expect(huge.status == .unprocessableContent)
            #expect(huge.fieldErrors["body"]?.first?.hasPrefix("is not valid JSON") == true, "\(huge.json)")

            // `curl -d '{...}'` sends JSON labelled as a form: still read as JSON.
            let curled = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                               raw: #" {"email": "grace@example.com", "first_name": "Grace"}"#,
                                               contentType: "application/x-www-form-urlencoded")
            #expect(curled.status == .created)
            let grace = try #require(curled.json["lead_id"] as? Int)
            #expect(try await client.call(.get, "/api/v1/leads/\(grace)", key: api.reader).data["first_name"] as? String == "Grace")
        }
    }

    @Test("bulk: one result per item by index; valid items commit when others fail")
    func bulk() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let reply = try await client.call(.post, "/api/v1/leads/bulk", key: api.writer, json: [
                "batch": [["email": "one@example.com"], ["first_name": "no identity"], ["email": "one@example.com", "company": "Dup"],
                          "not an object", ["phone": "+1 555 0100"], ["email": "st@example.com", "status": "Working"]],
                "source": "expo", "note": "met at the booth",
            ])
            #expect(reply.status == .ok)
            let items = reply.list
            #expect(items.map { $0["index"] as? Int } == [0, 1, 2, 3, 4, 5])
            #expect((items[5]["errors"] as? [String: [String]])?["status"]?.first?.hasPrefix("must be one of") == true, "\(items[5])")
            #expect(items[0]["status"] as? String == "created")
            #expect(items[1]["errors"] != nil)
            #expect(items[2]["status"] as? String == "duplicate")
            #expect(items[2]["lead_id"] as? Int == items[0]["lead_id"] as? Int)
            #expect(items[3]["errors"] != nil)
            #expect(items[4]["status"] as? String == "created")
            let lead = try await client.call(.get, "/api/v1/leads/\(items[0]["lead_id"] as! Int)", key: api.reader).data
            #expect(lead["source"] as? String == "expo")
            #expect(lead["company"] as? String == "Dup")
            #expect(lead["notes"] as? String == "met at the booth")

            let tooMany = try await client.call(.post, "/api/v1/leads/bulk", key: api.writer,
                                                json: ["leads": (0...1000).map { ["email": "p\($0)@example.com"] }])
            #expect(tooMany.status == .unprocessableContent)
            #expect(tooMany.fieldErrors["leads"] != nil)
            // Both keys: refused whole, rather than one list taken and the other dropped.
            let both = try await client.call(.post, "/api/v1/leads/bulk", key: api.writer,
                                             json: ["leads": [["email": "l@example.com"]], "batch": [["email": "b@example.com"]]])
            #expect(both.status == .unprocessableContent)
            #expect(both.errorCode == "VALIDATION_FAILED")
            #expect(Set(both.fieldErrors.keys) == ["leads", "batch"], "\(both.json)")
            #expect(try await client.call(.get, "/api/v1/leads", key: api.reader).meta["total"] as? Int == 2)
        }
    }

    @Test("intake, bulk and import commit their leads already scored by the active model")
    func writesAreScoredBeforeCommit() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try Self.activateDefaultModel(api.store)
        try await api.app.test(.router) { client in
            // Concurrent intakes, which may share transactions and so a rescoring pass.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<24 {
                    group.addTask {
                        let reply = try await client.call(.post, "/api/v1/intake", key: api.writer, json: [
                            "email": "form\(i)@example.com", "company": i % 2 == 0 ? "Acme" : "", "Budget": i * 100,
                        ])
                        #expect(reply.status == .created)
                    }
                }
                try await group.waitForAll()
            }
            let bulk = try await client.call(.post, "/api/v1/leads/bulk", key: api.writer, json: [
                "leads": [["email": "bulk1@example.com", "value": 900], ["email": "form3@example.com", "company": "Later Co"]],
            ])
            #expect(bulk.list.map { $0["status"] as? String } == ["created", "duplicate"])
            let imported = try await client.call(.post, "/api/v1/leads/import", key: api.writer,
                                                 raw: "email,company\r\ncsv1@example.com,Initech\r\n", contentType: "text/csv")
            #expect(imported.data["leads_created"] as? Int == 1)
        }
        let (version, unscored) = try await api.store.reader.read { db in
            (try String.fetchOne(db, sql: "SELECT version FROM models WHERE is_active = 1"),
             try Int.fetchOne(db, sql: "SELECT count(*) FROM leads WHERE score IS NULL OR model_version IS NOT (SELECT version FROM models WHERE is_active = 1)"))
        }
        #expect(version != nil && unscored == 0)
        // Scoring again changes nothing: each stored score reflects its lead's committed fields,
        // the duplicate's merged company included.
        // (Only the seconds between the two passes move time-based features, far below 1e-6.)
        let (stored, rescored) = try await api.store.writer.write { db in
            let stored = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, probability FROM leads").map {
                (($0[0] as Int64), ($0[1] as Double))
            })
            let scorer = try #require(try ActiveScorer().scorer(in: db))
            return (stored, try scorer.rescore(ids: Array(stored.keys), in: db))
        }
        #expect(rescored.count == 26)
        for lead in rescored {
            #expect(abs(lead.probability - (stored[lead.leadID] ?? -1)) < 1e-6, "lead \(lead.leadID)")
        }
    }

    @Test("CSV import follows the ingest rules and reports rejects by line; over 10 MiB is 413")
    func importCSV() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let csv = "\u{FEFF}Email,First Name,Lead Source,Amount\r\nx@example.com,X,web,10\r\n,,,\r\ny@example.com,\"Y, Jr\",ads,abc\r\nz@example.com,Z,ads,5\r\n"
            let reply = try await client.call(.post, "/api/v1/leads/import", key: api.writer, raw: csv, contentType: "text/csv")
            #expect(reply.status == .ok)
            #expect(reply.data["leads_created"] as? Int == 2)
            #expect(reply.data["rejected"] as? Int == 2)
            let rejects = try #require(reply.data["rejects"] as? [[String: Any]])
            #expect(rejects.compactMap { $0["line"] as? Int }.sorted() == [3, 4])
            #expect(rejects.contains { $0["field"] as? String == "Amount" })
            let again = try await client.call(.post, "/api/v1/leads/import", key: api.writer, raw: csv, contentType: "text/csv")
            #expect(again.data["leads_created"] as? Int == 0, "importing twice adds nothing")

            // A header row that is not UTF-8: nothing can be mapped, a 422 on the body.
            let unreadable = try await client.execute(
                uri: "/api/v1/leads/import", method: .post,
                headers: [.authorization: "Bearer \(api.writer)", .contentType: "text/csv"],
                body: ByteBuffer(bytes: Array("email,".utf8) + [0xFF] + Array("\nx@example.com,a\n".utf8))) { $0 }
            #expect(unreadable.status == .unprocessableContent)
            #expect(String(buffer: unreadable.body).contains("\"body\""))

            let huge = String(repeating: "a", count: APILimits.maxBodyBytes + 1)
            let tooLarge = try await client.call(.post, "/api/v1/leads/import", key: api.writer, raw: huge, contentType: "text/csv")
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.errorCode == "PAYLOAD_TOO_LARGE")
            // A declared length over the limit is refused before any body is read (none is sent:
            // the test client would otherwise set the length from the body).
            let declared = try await client.execute(
                uri: "/api/v1/intake", method: .post,
                headers: [.authorization: "Bearer \(api.writer)", .contentType: "application/json",
                          .contentLength: String(APILimits.maxBodyBytes + 1)],
                body: nil) { $0 }
            #expect(declared.status == .contentTooLarge)
            #expect(String(buffer: declared.body).contains("PAYLOAD_TOO_LARGE"))
        }
    }

    @Test("events: rescored before the response, deduped, rejects by index, batch limit")
    func events() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try Self.activateDefaultModel(api.store)
        try await api.app.test(.router) { client in
            let batch: [String: Any] = ["batch": [
                ["type": "identify", "userId": "u1", "traits": ["email": "u1@example.com", "company": "Acme"]],
                ["type": "track", "userId": "u1", "event": "Demo Requested", "messageId": "m-1", "timestamp": "2026-01-02T03:04:05Z"],
                ["type": "track", "event": "Orphan"],
                ["type": "page", "userId": "u1", "name": "Pricing", "messageId": "m-2"],
            ]]
            let reply = try await client.call(.post, "/api/v1/events", key: api.editor, json: batch)
            #expect(reply.status == .ok)
            #expect(reply.data["events_added"] as? Int == 2)
            #expect(reply.data["leads_created"] as? Int == 1)
            #expect(reply.data["leads_updated"] as? Int == 0 && reply.data["leads_unchanged"] as? Int == 0)
            #expect(reply.data["rejected"] as? Int == 1)
            #expect((reply.data["rejects"] as? [[String: Any]])?.first?["index"] as? Int == 2)
            let leads = try #require(reply.data["leads"] as? [[String: Any]])
            #expect(leads.count == 1)
            let score = try #require(leads[0]["score"] as? Int)
            #expect(leads[0]["model_version"] as? String == "default-v0")
            let id = try #require(leads[0]["lead_id"] as? Int)
            let stored = try await client.call(.get, "/api/v1/leads/\(id)", key: api.reader).data
            #expect(stored["score"] as? Int == score, "the reported score is the stored one")
            #expect((stored["factors"] as? [Any])?.isEmpty == false)

            let resent = try await client.call(.post, "/api/v1/events", key: api.writer, json: batch)
            #expect(resent.data["events_added"] as? Int == 0)
            #expect(resent.data["duplicates"] as? Int == 2)
            #expect(resent.data["leads_merged"] as? Int == 0)
            #expect(resent.data["leads_unchanged"] as? Int == 1, "the identify, already applied")
            // A pipeline's write-only key learns which leads its events reached, not their scores:
            // an event naming someone's email would otherwise read that lead's score.
            let fresh = try await client.call(.post, "/api/v1/events", key: api.writer, json: [
                "type": "track", "userId": "u2", "event": "Webinar Attended", "messageId": "m-3"])
            #expect(fresh.data["events_added"] as? Int == 1)
            let written = try #require(fresh.data["leads"] as? [[String: Any]])
            #expect(written.count == 1 && written[0]["lead_id"] as? Int != nil)
            #expect(written.allSatisfy { Set($0.keys) == ["lead_id"] }, "\(written)")


            let timeline = try await client.call(.get, "/api/v1/leads/\(id)/events?per_page=50", key: api.reader)
            let events = timeline.list.filter { $0["kind"] as? String == "event" }
            #expect(events.map { $0["type"] as? String } == ["Viewed Pricing Page", "Demo Requested"], "newest first")
            #expect(timeline.list.contains { $0["kind"] as? String == "score_changed" })

            let tooMany = try await client.call(.post, "/api/v1/events", key: api.writer,
                                                json: ["batch": (0...5000).map { ["type": "track", "userId": "u\($0)", "event": "x"] }])
            #expect(tooMany.status == .unprocessableContent)
            #expect(tooMany.fieldErrors["batch"] != nil)
            // A value over 64 KiB rejects its own message, by index, and the rest commit.
            let long = String(repeating: "y", count: 70_000)
            let oversized = try await client.call(.post, "/api/v1/events", key: api.writer, json: ["batch": [
                ["type": "track", "userId": "big1", "event": "x", "messageId": "big-1"],
                ["type": "track", "userId": "big1", "event": "x", "messageId": "big-2", "properties": ["desc": long]],
                ["type": "track", "userId": "big1", "event": "x", "messageId": "big-3"],
            ]])
            #expect(oversized.status == .ok, "\(oversized.json)")
            #expect(oversized.data["events_added"] as? Int == 2)
            let oversizedRejects = oversized.data["rejects"] as? [[String: Any]]
            #expect(oversizedRejects?.count == 1 && oversizedRejects?.first?["index"] as? Int == 1, "\(oversized.json)")
            // Anything but an object is refused whole, not answered 200 with one reject.
            for body in ["[1, 2]", "\"hi\"", "null", #"[{"type":"track","userId":"u9","event":"x"}]"#] {
                let reply = try await client.call(.post, "/api/v1/events", key: api.writer, raw: body)
                #expect(reply.status == .unprocessableContent, "\(body)")
                #expect(reply.fieldErrors["body"] != nil, "\(body)")
            }
            // A device's visitor merging into its user is reported by the request that links it.
            let visit = try await client.call(.post, "/api/v1/events", key: api.writer,
                                              json: ["type": "page", "anonymousId": "dev-9", "name": "Docs", "messageId": "m-9"])
            #expect(visit.data["leads_created"] as? Int == 1)
            let link = try await client.call(.post, "/api/v1/events", key: api.writer,
                                             json: ["type": "alias", "previousId": "dev-9", "userId": "u1"])
            #expect(link.data["leads_merged"] as? Int == 1, "\(link.json)")
        }
    }

    @Test("gzip bodies are decoded within the body limit; a batch's context reaches every message")
    func gzipBodiesAndBatchContext() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            func post(_ path: String, _ body: [UInt8], encoding: String?) async throws -> Reply {
                var headers: HTTPFields = [.authorization: "Bearer \(api.writer)", .contentType: "application/json"]
                if let encoding { headers[.contentEncoding] = encoding }
                return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(bytes: body)) {
                    Reply(status: $0.status, headers: $0.headers, body: $0.body)
                }
            }
            let batch = try JSONSerialization.data(withJSONObject: [
                "batch": [
                    ["type": "track", "userId": "g1", "event": "Email Opened", "messageId": "gz-1"],
                    ["type": "track", "userId": "g2", "event": "Email Opened", "messageId": "gz-2"],
                ],
                "context": ["campaign": ["source": "newsletter"]],
            ])
            let reply = try await post("/api/v1/events", try gzipped(Array(batch)), encoding: "gzip")
            #expect(reply.status == .ok, "\(reply.json)")
            #expect(reply.data["events_added"] as? Int == 2)
            let sources = try await api.store.reader.read { db in
                try String.fetchAll(db, sql: "SELECT source FROM leads WHERE external_id IN ('g1', 'g2')")
            }
            #expect(sources == ["newsletter", "newsletter"])

            let intake = try await post("/api/v1/intake", try gzipped(Array(#"{"email":"gz@example.com"}"#.utf8)), encoding: "x-gzip")
            #expect(intake.status == .created, "\(intake.json)")
            // HTTP's deflate is zlib data; some clients send raw deflate under that name.
            let zlib = try await post("/api/v1/intake", try zlibWrapped(Array(#"{"email":"zlib@example.com"}"#.utf8)), encoding: "deflate")
            #expect(zlib.status == .created, "\(zlib.json)")
            let raw = try await post("/api/v1/intake", try rawDeflated(Array(#"{"email":"raw@example.com"}"#.utf8)), encoding: "Deflate")
            #expect(raw.status == .created, "\(raw.json)")
            let mislabelled = try await post("/api/v1/intake", try gzipped(Array(#"{"email":"gzip-as-deflate@example.com"}"#.utf8)), encoding: "deflate")
            #expect(mislabelled.status == .created, "gzip sent as deflate: \(mislabelled.json)")
            let emails = try await api.store.reader.read { db in
                try String.fetchAll(db, sql: "SELECT email FROM leads WHERE email IN ('zlib@example.com', 'raw@example.com') ORDER BY email")
            }
            #expect(emails == ["raw@example.com", "zlib@example.com"])

            // 11 MiB of spaces compress to a few KiB, and decode past the 10 MiB limit.
            let bomb = try gzipped([UInt8](repeating: 0x20, count: 11 << 20))
            #expect(bomb.count < 100_000)
            let tooLarge = try await post("/api/v1/events", bomb, encoding: "gzip")
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.errorCode == "PAYLOAD_TOO_LARGE")

            let broken = try await post("/api/v1/events", Array(try gzipped(Array(batch)).dropLast(12)), encoding: "gzip")
            #expect(broken.status == .unprocessableContent)
            #expect(broken.fieldErrors["body"]?.first?.contains("truncated") == true, "\(broken.json)")

            let brotli = try await post("/api/v1/events", Array(batch), encoding: "br")
            #expect(brotli.status == .unprocessableContent)
            #expect(brotli.fieldErrors["Content-Encoding"] != nil)
            #expect(brotli.header("Accept-Encoding") == "gzip, deflate")
            let plain = try await post("/api/v1/events", Array(batch), encoding: "identity")
            #expect(plain.status == .ok)
            #expect(plain.data["duplicates"] as? Int == 2)
        }
    }

    @Test("bodies are read as `leadlens ingest` reads files: a byte order mark is skipped, a gzip file sent as is is decoded, broken JSON is placed by byte")
    func bodiesReadLikeFiles() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            func post(_ path: String, _ body: [UInt8], contentType: String) async throws -> Reply {
                let headers: HTTPFields = [.authorization: "Bearer \(api.writer)", .contentType: contentType]
                return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(bytes: body)) {
                    Reply(status: $0.status, headers: $0.headers, body: $0.body)
                }
            }
            let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
            let message = Array(#"{"type":"track","userId":"b1","event":"Email Opened","messageId":"bom-1"}"#.utf8)
            let event = try await post("/api/v1/events", bom + message, contentType: "application/json")
            #expect(event.status == .ok && event.data["events_added"] as? Int == 1, "\(event.json)")
            let intake = try await post("/api/v1/intake", bom + Array(#"{"email":"bom@example.com"}"#.utf8), contentType: "application/json")
            #expect(intake.status == .created, "\(intake.json)")

            let csv = Array("email,first_name\nzip1@example.com,Zed\nzip2@example.com,Zoe\n".utf8)
            let imported = try await post("/api/v1/leads/import", try gzipped(csv), contentType: "text/csv")
            #expect(imported.status == .ok, "\(imported.json)")
            #expect(imported.data["leads_created"] as? Int == 2, "\(imported.json)")
            let zipped = try await post("/api/v1/events", try gzipped(Array(#"{"type":"track","userId":"z1","event":"E","messageId":"gz-file"}"#.utf8)),
                                        contentType: "application/json")
            #expect(zipped.status == .ok && zipped.data["events_added"] as? Int == 1, "\(zipped.json)")

            // Raw Latin-1 in a form is refused by byte, as in a JSON body, not stored as U+FFFD.
            let latin1 = Array("email=l%40x.com&first_name=Ren".utf8) + [0xE9]
            let form = try await post("/api/v1/intake", latin1, contentType: "application/x-www-form-urlencoded")
            #expect(form.status == .unprocessableContent)
            #expect(form.fieldErrors["body"] == ["holds invalid UTF-8 (at byte 31)"], "\(form.fieldErrors)")
            // As browsers send it, percent-encoded: refused by field, not stored as "Ren%E9".
            let encoded = try await post("/api/v1/intake", Array("email=l%40x.com&first_name=Ren%E9&note=100%".utf8),
                                         contentType: "application/x-www-form-urlencoded")
            #expect(encoded.status == .unprocessableContent && encoded.fieldErrors["first_name"] != nil, "\(encoded.json)")
            // A JSON file posted with curl's default form type, its byte order mark first.
            let marked = try await post("/api/v1/intake", bom + Array(#"{"email":"marked@example.com"}"#.utf8),
                                        contentType: "application/x-www-form-urlencoded")
            #expect(marked.status == .created, "\(marked.json)")

            // The second message is broken at byte 64 of the body, the BOM counted.
            let broken = bom + Array(#"{"batch":[{"type":"track","userId":"x","event":"E"},{"type":,}]}"#.utf8)
            let refused = try await post("/api/v1/events", broken, contentType: "application/json")
            #expect(refused.status == .unprocessableContent)
            #expect(refused.fieldErrors["body"]?.first?.hasSuffix("at byte 64") == true, "\(refused.fieldErrors)")
        }
    }

    @Test("a lead's duplicates page like any list, in id order")
    func duplicatesArePaginated() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            var ids: [Int] = []
            for index in 0..<4 {
                ids.append(try await client.call(.post, "/api/v1/leads", key: api.writer, json: [
                    "email": "twin\(index)@example.com", "first_name": "Ada", "last_name": "Byron", "company": "Engines",
                ]).data["id"] as! Int)
            }
            let path = "/api/v1/leads/\(ids[0])/duplicates"
            let first = try await client.call(.get, "\(path)?per_page=2", key: api.reader)
            #expect(first.list.map { $0["id"] as? Int } == [ids[1], ids[2]])
            #expect(first.meta["total"] as? Int == 3 && first.meta["last_page"] as? Int == 2 && first.meta["per_page"] as? Int == 2)
            #expect((first.links["next"] as? String)?.contains("page=2") == true)
            let second = try await client.call(.get, "\(path)?per_page=2&page=2", key: api.reader)
            #expect(second.list.map { $0["id"] as? Int } == [ids[3]])
            #expect(second.meta["from"] as? Int == 3 && second.meta["to"] as? Int == 3)
            #expect(second.links["next"] is NSNull)
            #expect(second.meta["next_cursor"] is NSNull)

            // Keyset: the first page's cursor continues after its last duplicate.
            let cursor = try #require(first.meta["next_cursor"] as? String)
            let keyset = try await client.call(.get, "\(path)?per_page=2&cursor=\(cursor)", key: api.reader)
            #expect(keyset.list.map { $0["id"] as? Int } == [ids[3]])
            #expect(keyset.meta["current_page"] is NSNull && keyset.meta["total"] as? Int == 3)
            #expect(keyset.meta["next_cursor"] is NSNull)
            let elsewhere = try await client.call(.get, "/api/v1/leads/\(ids[1])/duplicates?cursor=\(cursor)", key: api.reader)
            #expect(elsewhere.status == .unprocessableContent && elsewhere.fieldErrors["cursor"] != nil,
                    "a cursor of one lead's duplicates is refused on another's")
        }
    }

    @Test("a lead's timeline pages by cursor: the walk is the whole timeline, newer entries never shift it")
    func timelineKeysetPages() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try Self.activateDefaultModel(api.store)  // score changes interleave with the events
        try await api.app.test(.router) { client in
            // 23 events, three of them at the same millisecond, so ties must break by row.
            var batch: [[String: Any]] = (0..<20).map { day in
                ["type": "track", "userId": "walker", "event": "Viewed Page \(day)", "messageId": "w\(day)",
                 "timestamp": String(format: "2025-03-%02dT10:00:00Z", day + 1)]
            }
            batch += (0..<3).map { ["type": "track", "userId": "walker", "event": "Same Time \($0)", "messageId": "t\($0)",
                                    "timestamp": "2025-03-10T10:00:00Z"] }
            let posted = try await client.call(.post, "/api/v1/events", key: api.writer, json: ["batch": batch])
            #expect(posted.status == .ok)
            let id = try #require(try await api.store.reader.read { db in
                try Int.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'walker'")
            })
            let path = "/api/v1/leads/\(id)/events"
            func key(_ entry: [String: Any]) -> String {
                "\(entry["kind"] as? String ?? "")|\(entry["at"] as? String ?? "")|\(entry["type"] as? String ?? "")"
            }
            // A recorded change at an event's millisecond: changes sort before events there.
            try await api.store.writer.write { db in
                try db.execute(sql: """
                    INSERT INTO lead_timeline (lead_id, at, kind, old_value, new_value) VALUES (?, ?, 'status_changed', 'new', 'contacted')
                    """, arguments: [id, Timestamp.parse("2025-03-10T10:00:00Z")!])
            }
            let whole = try await client.call(.get, "\(path)?per_page=100", key: api.reader)
            let expected = whole.list.map(key)
            #expect(expected.count == whole.meta["total"] as? Int && expected.count == 25)
            let tie = expected.firstIndex { $0.contains("2025-03-10") }
            #expect(tie.map { expected[$0].hasPrefix("status_changed|") } == true)
            // Pages of 3 put boundaries between the change and the first event of the tie, and
            // between two of its events.
            #expect(tie == 11, "the tie starts at 11: boundaries at 12 and 15 fall inside it")
            #expect(expected.first?.hasPrefix("score_changed|") == true)
            #expect(whole.meta["next_cursor"] is NSNull, "one page holds it all")

            var walked: [String] = []
            // The first page by offset: its cursor continues after it.
            var reply = try await client.call(.get, "\(path)?per_page=3", key: api.reader)
            var newer = 0
            while true {
                #expect(reply.status == .ok)
                walked += reply.list.map(key)
                guard let cursor = reply.meta["next_cursor"] as? String, newer < 10 else { break }
                if newer > 0 { #expect((reply.links["next"] as? String)?.contains("cursor=") == true) }
                // Meanwhile the lead keeps browsing: newer than every entry walked past.
                newer += 1
                _ = try await client.call(.post, "/api/v1/events", key: api.writer, json: [
                    "type": "track", "userId": "walker", "event": "Later \(newer)", "messageId": "later-\(newer)",
                    "timestamp": "2026-01-0\(newer)T10:00:00Z",
                ])
                reply = try await client.call(.get, "\(path)?per_page=3&cursor=\(cursor)", key: api.reader)
                #expect(reply.meta["current_page"] is NSNull)
            }
            #expect(walked == expected, "keyset pages walk the timeline as it was, in order, once")
            #expect(newer == (expected.count + 2) / 3 - 1)

            // Cursors are the timeline's own, and this lead's.
            let other = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "other@example.com"])
            let otherID = try #require(other.json["lead_id"] as? Int)
            let first = try await client.call(.get, "\(path)?per_page=5", key: api.reader)
            let cursor = try #require(first.meta["next_cursor"] as? String)
            for bad in ["/api/v1/leads/\(otherID)/events?cursor=\(cursor)", "/api/v1/leads/\(id)/duplicates?cursor=\(cursor)",
                        "\(path)?cursor=not-a-cursor"] {
                let refused = try await client.call(.get, bad, key: api.reader)
                #expect(refused.status == .unprocessableContent && refused.fieldErrors["cursor"] != nil, "\(bad)")
            }
            // A lead that does not exist is a 404, whatever cursor comes with it.
            for list in ["events", "duplicates"] {
                let missing = try await client.call(.get, "/api/v1/leads/999999/\(list)?cursor=\(cursor)", key: api.reader)
                #expect(missing.status == .notFound, "\(list): \(missing.json)")
            }
        }
    }

    @Test("intake of an address a merge kept for another lead updates that lead, which keeps its own email")
    func intakeAfterMerge() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let primary = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                                json: ["email": "jane@acme.example", "first_name": "Jane"])
            let work = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "jane.work@acme.example"])
            let primaryID = try #require(primary.json["lead_id"] as? Int), workID = try #require(work.json["lead_id"] as? Int)
            let merged = try await client.call(.post, "/api/v1/leads/\(primaryID)/merge", key: api.writer, json: ["duplicate_id": workID])
            #expect(merged.status == .ok)

            for _ in 0..<2 {
                let again = try await client.call(.post, "/api/v1/intake", key: api.writer, json: ["email": "jane.work@acme.example"])
                #expect(again.status == .ok, "\(again.json)")
                #expect(again.json["is_duplicate"] as? Bool == true && again.json["lead_id"] as? Int == primaryID)
                #expect(again.json["status"] as? String == "unchanged")
            }
            // News for the merged address still lands, and the lead keeps its own address.
            let noted = try await client.call(.post, "/api/v1/intake", key: api.writer,
                                              json: ["email": "jane.work@acme.example", "company": "Acme"])
            #expect(noted.json["lead_id"] as? Int == primaryID && noted.json["status"] as? String == "updated")
            let lead = try await client.call(.get, "/api/v1/leads/\(primaryID)", key: api.reader).data
            #expect(lead["email"] as? String == "jane@acme.example" && lead["company"] as? String == "Acme")
            #expect((lead["custom_fields"] as? [String: String])?["Other email"] == "jane.work@acme.example")
            #expect(try await api.store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM leads") } == 1)

            // The kept address is taken: a strict create or another lead's update would steal its data.
            let create = try await client.call(.post, "/api/v1/leads", key: api.writer, json: ["email": "Jane.Work@acme.example"])
            #expect(create.status == .conflict && create.errorCode == "CONFLICT", "\(create.json)")
            let other = try await client.call(.post, "/api/v1/leads", key: api.writer, json: ["email": "other@acme.example"])
            let otherID = try #require(other.data["id"] as? Int)
            let steal = try await client.call(.patch, "/api/v1/leads/\(otherID)", key: api.writer, json: ["email": "jane.work@acme.example"])
            #expect(steal.status == .conflict, "\(steal.json)")
            // The lead it names may take it back as its own.
            let own = try await client.call(.patch, "/api/v1/leads/\(primaryID)", key: api.writer, json: ["email": "jane.work@acme.example"])
            #expect(own.status == .ok, "\(own.json)")
        }
    }

    @Test("duplicates are found by email, phone or name and company; merge moves everything over")
    func duplicatesAndMerge() async throws {
        let api = try TestAPI()
        defer { api.cleanUp() }
        try await api.app.test(.router) { client in
            let primary = try await client.call(.post, "/api/v1/leads", key: api.editor, json: [
                "email": "kim@example.com", "first_name": "Kim", "last_name": "Lee", "company": "Hanbit", "tags": ["a"],
            ]).data["id"] as! Int
            let twin = try await client.call(.post, "/api/v1/leads", key: api.editor, json: [
                "external_id": "crm-9", "first_name": "kim", "last_name": "Lee", "company": "HANBIT", "phone": "+82 10 5555 0101",
                "tags": ["b"], "notes": "met twice", "custom_fields": ["Plan": "pro"],
            ]).data["id"] as! Int
            _ = try await client.call(.post, "/api/v1/events", key: api.editor,
                                      json: ["type": "track", "userId": "crm-9", "event": "Signed Up", "messageId": "s1"])

            let duplicates = try await client.call(.get, "/api/v1/leads/\(primary)/duplicates", key: api.reader)
            #expect(duplicates.list.map { $0["id"] as? Int } == [twin])
            #expect(duplicates.list.first?["matched_on"] as? [String] == ["name_company"])
            #expect(duplicates.meta["total"] as? Int == 1 && duplicates.meta["last_page"] as? Int == 1)
            #expect(duplicates.links["next"] is NSNull)

            let itself = try await client.call(.post, "/api/v1/leads/\(primary)/merge", key: api.editor, json: ["duplicate_id": primary])
            #expect(itself.status == .unprocessableContent)
            let missing = try await client.call(.post, "/api/v1/leads/\(primary)/merge", key: api.editor, json: ["duplicate_id": 99999])
            #expect(missing.status == .notFound)
            // Valid JSON with a number the id cannot hold: said so, not "the body is not valid JSON".
            for raw in [#"{"duplicate_id": 6.5}"#, #"{"duplicate_id": 9223372036854775808}"#] {
                let odd = try await client.call(.post, "/api/v1/leads/\(primary)/merge", key: api.editor, raw: raw, contentType: "application/json")
                #expect(odd.status == .unprocessableContent && odd.fieldErrors["body"]?.first?.hasPrefix("holds a value that does not fit") == true,
                        "\(odd.json)")
            }
            let nul = try await client.call(.get, "/api/v1/leads?search=a%00b", key: api.reader)
            #expect(nul.status == .unprocessableContent && nul.fieldErrors["search"] != nil, "\(nul.json)")

            let merged = try await client.call(.post, "/api/v1/leads/\(primary)/merge", key: api.editor, json: ["duplicate_id": twin])
            #expect(merged.status == .ok)
            #expect(Set(merged.data["tags"] as? [String] ?? []) == ["a", "b"])
            #expect(merged.data["external_id"] as? String == "crm-9")
            #expect(merged.data["phone"] as? String == "+82 10 5555 0101")
            #expect(merged.data["notes"] as? String == "met twice")
            #expect((merged.data["custom_fields"] as? [String: String])?["Plan"] == "pro")
            #expect(merged.data["last_activity_at"] is String)
            #expect(try await client.call(.get, "/api/v1/leads/\(twin)", key: api.reader).status == .notFound)
            let timeline = try await client.call(.get, "/api/v1/leads/\(primary)/events", key: api.reader).list
            #expect(timeline.contains { $0["kind"] as? String == "merged" })
            #expect(timeline.contains { $0["type"] as? String == "Signed Up" })
            let activity = try await api.store.reader.read { db in try LeadActivity.fetch(db, leadID: Int64(primary)) }
            #expect(activity?.eventCount == 1)
        }
    }

    /// The app with a models folder holding a small feature spec, so POST /models/train runs.
    static func trainingApp(_ api: TestAPI) throws -> some ApplicationProtocol {
        let modelsDirectory = api.directory.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: modelsDirectory, withIntermediateDirectories: true)
        let spec = FeatureSpec.shortcut(name: "apitest", numeric: ["value"], categorical: ["source"])
        try JSONEncoder().encode(spec).write(to: modelsDirectory.appendingPathComponent("features.json"))
        return api.app { $0.modelsDirectory = modelsDirectory.path }
    }

    @Test("models, training and rescoring jobs, and metrics")
    func modelsAndJobs() async throws {
        let api = try TestAPI(leads: 600)
        defer { api.cleanUp() }
        try await Self.trainingApp(api).test(.router) { client in
            #expect(try await client.call(.get, "/api/v1/models/active", key: api.reader).status == .notFound)
            let noModel = try await client.call(.post, "/api/v1/leads/rescore", key: api.admin)
            #expect(noModel.status == .conflict)

            let started = try await client.call(.post, "/api/v1/models/train", key: api.admin, json: ["activate": true, "C": 0.5])
            #expect(started.status == .accepted)
            let location = try #require(started.header("Location"))
            #expect(location == (started.json["links"] as? [String: String])?["self"])
            let job = try await Self.waitForJob(client, location, key: api.reader)
            #expect(job["state"] as? String == "succeeded", "\(job)")
            let result = try #require(job["result"] as? [String: Any])
            #expect(result["activated"] as? Bool == true)
            let version = try #require(result["version"] as? String)

            let active = try await client.call(.get, "/api/v1/models/active", key: api.reader).data
            #expect(active["version"] as? String == version)
            #expect(active["metrics"] is [String: Any])
            #expect((active["coefficients"] as? [Any])?.isEmpty == false)
            #expect(active["metrics_on"] as? String == "holdout")
            // Enough to reproduce a score: the standardization and both intercepts, which agree.
            let columns = try #require(active["columns"] as? [String])
            let means = try #require(active["means"] as? [Double]), stds = try #require(active["stds"] as? [Double])
            #expect(means.count == columns.count && stds.count == columns.count)
            let weights = try #require(active["coefficients"] as? [[String: Any]]).compactMap { $0["weight"] as? Double }
            let intercept = try #require(active["intercept"] as? Double), interceptRaw = try #require(active["intercept_raw"] as? Double)
            let shift = zip(weights, zip(means, stds)).reduce(0) { $0 + $1.0 * $1.1.0 / $1.1.1 }
            #expect(abs(interceptRaw - (intercept - shift)) < 1e-9)
            #expect(active["features"] is [String: Any])
            let models = try await client.call(.get, "/api/v1/models", key: api.reader)
            #expect(models.list.count == 1)
            models.expectWholeList(path: "/api/v1/models")

            let rescore = try await client.call(.post, "/api/v1/leads/rescore", key: api.admin)
            #expect(rescore.status == .accepted)
            let rescored = try await Self.waitForJob(client, try #require(rescore.header("Location")), key: api.reader)
            #expect((rescored["result"] as? [String: Any])?["scored"] as? Int == 600)
            let versions = try await api.store.reader.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT model_version FROM leads") }
            #expect(versions == [version])

            let badTrain = try await client.call(.post, "/api/v1/models/train", key: api.admin, json: ["C": -1, "holdout": 2])
            #expect(badTrain.status == .unprocessableContent)
            #expect(Set(badTrain.fieldErrors.keys) == ["C", "holdout"])
            #expect(try await client.call(.get, "/api/v1/jobs/999", key: api.reader).status == .notFound)

            // A wrong method is counted under the route it reached, not as an unknown path.
            #expect(try await client.call(.put, "/api/v1/leads/stats", key: api.writer).status == .methodNotAllowed)
            let metrics = try await client.call(.get, "/metrics", key: nil)
            #expect(metrics.status == .ok)
            #expect(metrics.text.split(separator: "\n").contains { $0.contains("\"/api/v1/leads/stats\"") && $0.contains("405") },
                    "405s labelled by their route")
            #expect(metrics.text.contains("leadlens_training_runs_total"))
            #expect(metrics.text.contains("hb_requests"))
            #expect(metrics.text.contains("http_server_request_duration_bucket"), "the latency histogram")
            // An error's latency is in the histogram too, under its status.
            let timed422 = metrics.text.split(separator: "\n").first {
                $0.hasPrefix("http_server_request_duration_count") && $0.contains("\"/api/v1/models/train\"") && $0.contains("422")
            }
            #expect(timed422.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0 >= 1, "422s timed: \(timed422 ?? "none")")
        }
    }

    @Test("C null, under either spelling, trains without a penalty; C and c together are refused")
    func trainWithoutPenalty() async throws {
        let api = try TestAPI(leads: 600)
        defer { api.cleanUp() }
        try await Self.trainingApp(api).test(.router) { client in
            for key in ["C", "c"] {
                let started = try await client.call(.post, "/api/v1/models/train", key: api.admin, json: [key: NSNull()])
                #expect(started.status == .accepted, "\(key): \(started.json)")
                let job = try await Self.waitForJob(client, try #require(started.header("Location")), key: api.reader)
                #expect(job["state"] as? String == "succeeded", "\(job)")
                let version = try #require((job["result"] as? [String: Any])?["version"] as? String)
                let model = try #require(try await client.call(.get, "/api/v1/models", key: api.reader).list
                    .first { $0["version"] as? String == version })
                #expect(model["C"] is NSNull, "\(key): null, not the default 1: \(model["C"] ?? "absent")")
                let stored = try await api.store.reader.read { db in try ModelRegistry.model(version: version, in: db) }
                #expect(stored?.c == nil, "fitted without a penalty")
            }
            let both = try await client.call(.post, "/api/v1/models/train", key: api.admin, json: ["c": 0.5, "C": 2])
            #expect(both.status == .unprocessableContent)
            #expect(both.errorCode == "VALIDATION_FAILED")
            #expect(Set(both.fieldErrors.keys) == ["C", "c"], "\(both.json)")
            let badLower = try await client.call(.post, "/api/v1/models/train", key: api.admin, json: ["c": 0])
            #expect(badLower.fieldErrors.keys.sorted() == ["c"], "named as sent")
        }
    }

    @Test("a rescore job scores with the model active when it runs, not the one active when it was asked for")
    func rescoreUsesTheModelActiveWhenItRuns() async throws {
        let api = try TestAPI(leads: 50)
        defer { api.cleanUp() }
        try Self.activateDefaultModel(api.store)
        var newer = try ScoringModel.load(from: Self.repository.appendingPathComponent("models/default.json"))
        newer.version = "default-v1"
        try await api.store.writer.write { [newer] db in try ModelRegistry.register(newer, in: db) }
        try await api.app.test(.router) { client in
            // The job waits in the blocking pool's queue while a training job, say, activates another model.
            let pool = BlockingPoolHold()
            try await pool.occupy()
            let asked = try await client.call(.post, "/api/v1/leads/rescore", key: api.admin)
            try await api.store.writer.write { db in try ModelRegistry.activate(version: "default-v1", in: db) }
            pool.release()
            #expect(asked.status == .accepted)
            let job = try await Self.waitForJob(client, try #require(asked.header("Location")), key: api.reader)
            #expect(job["state"] as? String == "succeeded", "\(job)")
            #expect((job["result"] as? [String: Any])?["model_version"] as? String == "default-v1", "\(job)")
            let versions = try await api.store.reader.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT model_version FROM leads") }
            #expect(versions == ["default-v1"])
        }
    }

    static func waitForJob(_ client: some TestClientProtocol, _ location: String, key: String) async throws -> [String: Any] {
        for _ in 0..<300 {
            let job = try await client.call(.get, location, key: key).data
            if let state = job["state"] as? String, state == "succeeded" || state == "failed" { return job }
            try await Task.sleep(for: .milliseconds(100))
        }
        return [:]
    }
}

@Suite("Report routes")
struct ReportRoutesTests {
    @Test("POST makes a report whose numbers are the stats endpoint's; GET lists it and serves its files")
    func reports() async throws {
        let api = try TestAPI(leads: 300)
        defer { api.cleanUp() }
        var configuration = APIConfiguration(version: "test")
        configuration.reportsDirectory = api.directory.appendingPathComponent("reports").path
        let app = buildApplication(store: api.store, configuration: configuration)
        try await app.test(.router) { client in
            #expect(try await client.call(.post, "/api/v1/reports", key: api.reader).status == .forbidden)
            let bad = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["from": "2026-02-01", "to": "2026-01-01"])
            #expect(bad.status == .unprocessableContent)
            #expect(bad.fieldErrors["from"] != nil)
            // Equal bounds are refused by the same rule, in words that fit both cases.
            let equal = try await client.call(.post, "/api/v1/reports", key: api.admin,
                                              json: ["from": "2026-01-01T10:00:00Z", "to": "2026-01-01T10:00:00Z"])
            #expect(equal.status == .unprocessableContent)
            #expect(equal.json["message"] as? String == "from must be before to: the period would be empty")
            #expect(equal.fieldErrors["from"] == ["must be before to"])
            let future = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["from": "2199-01-01"])
            #expect(future.fieldErrors["from"] == ["must be before now, where to defaults to"], "\(future.json)")
            let toOnly = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["to": "2026-01-01"])
            #expect(toOnly.fieldErrors["from"] == ["is required with to"])
            let typo = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["perod": "7d"])
            #expect(typo.status == .unprocessableContent && typo.fieldErrors["perod"] != nil)

            let made = try await client.call(.post, "/api/v1/reports", key: api.admin, json: ["period": "30d"])
            #expect(made.status == .created)
            let id = try #require(made.data["id"] as? String)
            let files = try #require(made.data["files"] as? [[String: Any]])
            #expect(files.contains { $0["name"] as? String == "summary.html" })

            let list = try await client.call(.get, "/api/v1/reports", key: api.reader)
            #expect(list.list.map { $0["id"] as? String } == [id])
            list.expectWholeList(path: "/api/v1/reports")
            #expect(list.links["latest"] as? String == "/api/v1/reports/\(id)/index.json")

            let html = try await client.call(.get, "/api/v1/reports/\(id)/summary.html", key: api.reader)
            #expect(html.status == .ok)
            #expect(html.header("Content-Type")?.hasPrefix("text/html") == true)
            let csv = try await client.call(.get, "/api/v1/reports/\(id)/by_status.csv", key: api.reader)
            #expect(csv.header("Content-Type")?.hasPrefix("text/csv") == true)

            // The report's by_status.csv counts equal the stats endpoint's for the same period.
            let period = try #require(made.data["period"] as? [String: String])
            let from = try #require(period["from"])
            let to = try #require(period["to"])
            let stats = try await client.call(.get, "/api/v1/leads/stats?created_after=\(from)&created_before=\(to)", key: api.reader)
            let rows = CSVReader.parse(csv.text)
            let header = try #require(rows.first)
            let statusColumn = try #require(header.firstIndex(of: "status"))
            let countColumn = try #require(header.firstIndex(where: { $0 == "count" || $0 == "leads" }))
            var fromCSV: [String: Int] = [:]
            for row in rows.dropFirst() where row.count > countColumn { fromCSV[row[statusColumn]] = Int(row[countColumn]) }
            let byStatus = try #require(stats.data["by_status"] as? [String: Int])
            #expect(fromCSV.filter { $0.value > 0 } == byStatus.filter { $0.value > 0 })

            #expect(try await client.call(.get, "/api/v1/reports/\(id)/..%2F..%2Fstore.sqlite", key: api.reader).status == .notFound)
            #expect(try await client.call(.get, "/api/v1/reports/2026-01-01-000000/summary.html", key: api.reader).status == .notFound)
        }
    }
}

/// Keeps every thread of NIO's blocking pool, where background jobs run, busy until released,
/// so a job submitted meanwhile waits in the pool's queue.
final class BlockingPoolHold: Sendable {
    private let threads = NIOSingletons.blockingPoolThreadCountSuggestion
    private let started = Mutex(0)
    private let gate = DispatchSemaphore(value: 0)

    /// Returns once every thread is held. Polls rather than waits: a blocking wait here would
    /// take a thread of the cooperative pool the server's tasks need.
    func occupy() async throws {
        for _ in 0..<threads {
            NIOThreadPool.singleton.submit { _ in
                self.started.withLock { $0 += 1 }
                self.gate.wait()
            }
        }
        while started.withLock({ $0 }) < threads { try await Task.sleep(for: .milliseconds(5)) }
    }

    func release() {
        for _ in 0..<threads { gate.signal() }
    }
}
