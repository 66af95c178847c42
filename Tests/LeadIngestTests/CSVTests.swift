import Foundation
import GRDB
@testable import LeadIngest
import LeadStore
import Testing

@Suite("CSV parsing")
struct CSVTests {
    /// Parses CSV text straight through the parser, for the shape of each record.
    private func parse(_ data: Data) throws -> [CSVParser.Outcome] {
        let directory = try TemporaryDirectory()
        let file = try directory.write("input.csv", data)
        let reader = try ByteReader(path: file.path)
        try reader.skipByteOrderMark()
        var parser = CSVParser(reader: reader)
        var outcomes: [CSVParser.Outcome] = []
        while let outcome = try parser.next() { outcomes.append(outcome) }
        return outcomes
    }

    private func records(_ text: String) throws -> [CSVParser.Record] {
        try parse(Data(text.utf8)).compactMap {
            if case .record(let record) = $0 { return record }
            return nil
        }
    }

    @Test func quotedFieldsWithCommasNewlinesAndDoubledQuotes() throws {
        let rows = try records("a,b,c\r\n\"Smith, Jones & Co\",\"line one\nline two\",\"say \"\"hi\"\"\"\r\nx,,z\n")
        #expect(rows.map(\.fields) == [
            ["a", "b", "c"],
            ["Smith, Jones & Co", "line one\nline two", "say \"hi\""],
            ["x", "", "z"],
        ])
        // The record after an embedded newline starts two lines later.
        #expect(rows.map(\.line) == [1, 2, 4])
    }

    @Test func byteOrderMarkIsSkipped() throws {
        let rows = try parse(Data([0xEF, 0xBB, 0xBF] + Array("Email,Name\na@x.io,Ann\n".utf8)))
        guard case .record(let header) = rows.first else { Issue.record("no header"); return }
        #expect(header.fields == ["Email", "Name"])
    }

    @Test func lastRecordWithoutNewlineAndBlankLines() throws {
        let rows = try records("a,b\n\n1,2\n\n3,4")
        #expect(rows.map(\.fields) == [["a", "b"], ["1", "2"], ["3", "4"]])
        #expect(rows.map(\.line) == [1, 3, 5])
    }

    @Test func invalidUTF8RejectsOnlyItsRecord() throws {
        var data = Data("id,name\n1,Ann\n2,".utf8)
        data.append(contentsOf: [0xC3, 0x28])  // an invalid two-byte sequence
        data.append(contentsOf: Array("\n3,Cy\n".utf8))
        let outcomes = try parse(data)
        #expect(outcomes.count == 4)
        guard case .rejected(let line, .invalidUTF8(let field)) = outcomes[2] else {
            Issue.record("expected the third record rejected for invalid UTF-8")
            return
        }
        #expect(line == 3 && field == 1)
        guard case .record(let after) = outcomes[3] else { Issue.record("lost the record after"); return }
        #expect(after.fields == ["3", "Cy"])
    }

    @Test("An overlong quoted field with newlines is one rejected record; its text never becomes rows")
    func overlongQuotedFieldIsOneReject() throws {
        let long = String(repeating: "x", count: 70_000)
        let text = "email,notes,company\na@x.com,\"\(long)\nvictim@evil.com,injected,EvilCorp\ntail\",ACME\nb@y.com,ok,Fine\n"
        let outcomes = try parse(Data(text.utf8))
        #expect(outcomes.count == 3)
        guard outcomes.count == 3, case .rejected(let line, .fieldTooLong(let field)) = outcomes[1],
              case .record(let next) = outcomes[2] else {
            Issue.record("expected the header, one rejected record and the next row")
            return
        }
        #expect(line == 2 && field == 1)
        #expect(next.line == 5 && next.fields == ["b@y.com", "ok", "Fine"])

        // Through the ingester: one reject naming the column, and only the good lead.
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let rejects = RejectRecorder()
        let summary = try ingest(store, try directory.write("leads.csv", text), rejects: rejects)
        #expect(summary.counts.rejected == 1)
        #expect(rejects.rejects.map(\.error.line) == [2])
        #expect(rejects.rejects.first?.error.code == .valueTooLarge)
        #expect(rejects.rejects.first?.error.field == "notes")
        #expect(try store.leads().map(\.email) == ["b@y.com"])
    }

    @Test("A doubled quote inside an overlong field does not end it")
    func overlongQuotedFieldWithDoubledQuotes() throws {
        let long = String(repeating: "x\"\"\n", count: 25_000)
        let outcomes = try parse(Data("id,notes\n1,\"\(long)2,\"\"evil\"\"\"\n3,ok\n".utf8))
        #expect(outcomes.count == 3)
        guard outcomes.count == 3, case .rejected(2, .fieldTooLong(1)) = outcomes[1], case .record(let next) = outcomes[2] else {
            Issue.record("expected one rejected record then the next row")
            return
        }
        #expect(next.line == 25_003 && next.fields == ["3", "ok"])
    }

    @Test("A quote that never closes rejects the rest of the input as one record, however long")
    func unterminatedQuoteAtEndOfInput() throws {
        for notes in ["short", String(repeating: "x", count: CSVParser.maxFieldBytes + 10)] {
            let outcomes = try parse(Data("id,notes\n1,\"\(notes)\n2,ok\n".utf8))
            #expect(outcomes.count == 2)
            guard outcomes.count == 2, case .rejected(2, .unterminatedQuote(lastLine: 3)) = outcomes[1] else {
                Issue.record("expected one unterminated-quote reject")
                continue
            }
        }
    }

    @Test("Text after a closing quote rejects the record, with the lines a stray quote joined and their text")
    func textAfterClosingQuote() throws {
        // The stray quote in line 2 opens a field that runs to the quote in line 3: A2's row
        // was read into A1's first name, and both were once stored as one lead.
        let text = "id,first_name,last_name,email,notes\nA1,\"Ann,Lee,ann@x.com,\nA2,Bob,Ray,bob@x.com,\"met at expo, \"wants\" demo\"\r\nA3,Cy,Doe,cy@x.com,\n"
        let outcomes = try parse(Data(text.utf8))
        guard outcomes.count == 3, case .rejected(2, .textAfterQuote(field: 1, lastLine: 3)) = outcomes[1],
              case .record(let next) = outcomes[2] else {
            Issue.record("expected the header, one reject for lines 2–3, then A3: \(outcomes)")
            return
        }
        // Quotes after the failure open nothing: the record ends at its line, and A3 is read.
        #expect(next.line == 4 && next.fields == ["A3", "Cy", "Doe", "cy@x.com", ""])

        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let rejects = RejectRecorder()
        let summary = try ingest(store, try directory.write("leads.csv", text), rejects: rejects)
        #expect(summary.counts.leadsCreated == 1 && summary.counts.rejected == 1)
        #expect(try store.leads().map(\.externalID) == ["A3"])
        let reject = try #require(rejects.rejects.first)
        #expect(reject.error.line == 2 && reject.error.field == "first_name" && reject.error.code == .malformedCSV)
        #expect(reject.error.reason.contains("lines 2–3"))
        // The rejects file keeps both rows' text, so A2 can be recovered by hand.
        #expect(reject.raw == "A1,\"Ann,Lee,ann@x.com,\nA2,Bob,Ray,bob@x.com,\"met at expo, \"wants\" demo\"")

        // On one line: only that row, and a doubled quote after a closing one is still data.
        let rows = try parse(Data("a,b\n\"Best\" Widgets,1\n\"say \"\"hi\"\"\",2\r3,4".utf8))
        guard rows.count == 4, case .rejected(2, .textAfterQuote(field: 0, lastLine: 2)) = rows[1],
              case .record(let quoted) = rows[2], case .record(let last) = rows[3] else {
            Issue.record("expected one single-line reject between good rows: \(rows)")
            return
        }
        #expect(quoted.fields == ["say \"hi\"", "2"] && quoted.line == 3)
        #expect(last.fields == ["3", "4"] && last.line == 4)

        // Spaces between a closing quote and the delimiter or line end are dropped, not refused.
        #expect(try records("a,b\n\"x\" ,\"\"  \r\n").map(\.fields) == [["a", "b"], ["x", ""]])
    }

    @Test("A custom field written as an amount gets the number the value column would: currency signs and spaces dropped")
    func customAmountsAreNumbers() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let summary = try ingest(store, try directory.write("budgets.csv", """
            id,Value,Budget
            L1,"$1,200.50","$1,200.50"
            L2,€900,€900
            L3,1 500,1 500
            L4,,n/a
            L5,,"12,5"

            """))
        #expect(summary.counts.leadsCreated == 5 && summary.counts.rejected == 0)
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.value, v.number FROM leads l JOIN lead_custom_values v ON v.lead_id = l.id ORDER BY l.external_id
                """).map { [$0[0], $0[1]] as [Double?] }
        }
        #expect(rows == [[1200.5, 1200.5], [900, 900], [1500, 1500], [nil, nil], [nil, nil]])
    }

    @Test("A status the API would refuse is kept as a custom field; the lead keeps one it knows")
    func unknownStatusesAreKeptAside() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let summary = try ingest(store, try directory.write("crm.csv", """
            id,Lead Status
            L1,Working - Contacted
            L2,QUALIFIED

            """))
        #expect(summary.counts.leadsCreated == 2 && summary.counts.rejected == 0)
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.external_id, l.status, v.value FROM leads l
                LEFT JOIN lead_custom_values v ON v.lead_id = l.id ORDER BY l.external_id
                """).map { [$0[0], $0[1], $0[2]] as [String?] }
        }
        #expect(rows == [["L1", "new", "Working - Contacted"], ["L2", "qualified", nil]])

        // Two status columns the API knows neither value of: each kept under its own label.
        _ = try ingest(store, try directory.write("two.csv", "id,Status,status\nL3,Working,Nurturing\n"))
        let kept = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT f.label, v.value FROM leads l JOIN lead_custom_values v ON v.lead_id = l.id
                JOIN custom_fields f ON f.id = v.field_id WHERE l.external_id = 'L3' ORDER BY f.label
                """).map { "\($0[0] as String)=\($0[1] as String)" }
        }
        #expect(kept == ["Status=Working", "status (column 3)=Nurturing"])
    }

    @Test("A short last row without a line break is a cut-off file: rejected, and it overwrites nothing")
    func cutOffLastRow() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        _ = try ingest(store, try directory.write("full.csv", "id,first_name,last_name,email\nL2,Zoë,Miller,z@x.io\n"))
        let rejects = RejectRecorder()
        let summary = try ingest(store, try directory.write("cut.csv", "id,first_name,last_name,email\nL1,Al,Ng,a@x.io\nL2,Zoë,Mil"),
                                 rejects: rejects)
        #expect(summary.counts.leadsCreated == 1 && summary.counts.rejected == 1)
        #expect(rejects.rejects.map(\.error.line) == [3])
        #expect(rejects.rejects.first?.error.reason.contains("3 of the header's 4 fields") == true)
        #expect(try store.leads().first { $0.externalID == "L2" }?.lastName == "Miller")

        // A short row ended by a line break still reads blanks, and so does a whole last row
        // without one.
        let fine = try ingest(store, try directory.write("ragged.csv", "id,first_name,last_name,email\nL3,Cy\nL4,Di,Ko,d@x.io"))
        #expect(fine.counts.leadsCreated == 2 && fine.counts.rejected == 0)
    }

    @Test("A lone CR ends a line (classic Mac files); CR inside quotes stays data")
    func bareCRLineEndings() throws {
        let rows = try records("email,name\ra@x.com,Ann\rb@y.com,\"Bob\rSmith\"\r\rc@z.com,Cy\r")
        #expect(rows.map(\.fields) == [["email", "name"], ["a@x.com", "Ann"], ["b@y.com", "Bob\rSmith"], ["c@z.com", "Cy"]])
        #expect(rows.map(\.line) == [1, 2, 3, 6])

        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let summary = try ingest(store, try directory.write("mac.csv", "email,name\ra@x.com,Ann\rb@y.com,Bob\r"))
        #expect(summary.counts.leadsCreated == 2 && summary.counts.rejected == 0)
        #expect(try store.leads().map(\.email) == ["a@x.com", "b@y.com"])
    }

    @Test("CRLF is one line ending, outside quotes and in them")
    func crlfIsOneLineEnding() throws {
        let rows = try records("a,b\r\n1,\"x\r\ny\"\r\n\r\n3,4\r\n")
        #expect(rows.map(\.fields) == [["a", "b"], ["1", "x\r\ny"], ["3", "4"]])
        #expect(rows.map(\.line) == [1, 2, 5])
    }

    @Test("Ragged rows: short rows read blanks, long rows are rejected with their line")
    func raggedRows() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("leads.csv", "id,email,company\nL1,a@x.io\nL2,b@x.io,Acme,extra\nL3,c@x.io,Beta\n")
        let rejects = RejectRecorder()
        let summary = try ingest(store, file, rejects: rejects)
        #expect(summary.counts.leadsCreated == 2)
        #expect(rejects.rejects.map(\.error.line) == [3])
        #expect(rejects.rejects.first?.error.code == .malformedCSV)
        #expect(try store.leads().map(\.externalID) == ["L1", "L3"])
        #expect(try store.leads().first?.company == nil)
    }

    @Test("No column is lost: blank headers, repeated labels, and more columns for one known field")
    func blankAndRepeatedHeadersKeepTheirValues() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("leads.csv", """
            email,,Plan,plan,Phone,Mobile,mobile,Column 2,Value,Amount
            a@x.io,mystery,gold,silver,111,222,333,c2,1200,"$1,200.00"
            b@x.io,,,,,333,,,,
            c@x.io,,,,+1 444,1444,+1 (444),,5,6

            """)
        let summary = try ingest(store, file)
        #expect(summary.counts.leadsCreated == 3 && summary.counts.rejected == 0)
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.email, l.phone, l.value, f.label, v.value FROM leads l
                LEFT JOIN lead_custom_values v ON v.lead_id = l.id LEFT JOIN custom_fields f ON f.id = v.field_id
                ORDER BY l.email, f.label
                """).map { [$0[0], $0[1], ($0[2] as Double?).map { String($0) }, $0[3], $0[4]] as [String?] }
        }
        #expect(rows == [
            ["a@x.io", "111", "1200.0", "Column 2 (column 8)", "c2"],
            ["a@x.io", "111", "1200.0", "Mobile", "222"],
            ["a@x.io", "111", "1200.0", "Plan", "gold"],
            ["a@x.io", "111", "1200.0", "column 2", "mystery"],
            ["a@x.io", "111", "1200.0", "mobile (column 7)", "333"],
            ["a@x.io", "111", "1200.0", "plan (column 4)", "silver"],
            // The first phone column was blank: the next fills the field, not a custom one.
            ["b@x.io", "333", nil, nil, nil],
            // The same number written differently is one value; a different amount is kept.
            ["c@x.io", "+1 444", "5.0", "Amount", "6"],
        ])
    }

    @Test("A NUL in a value rejects its row, naming the field, rather than storing the text cut short")
    func nulBytesAreRejected() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let csv = try directory.write("leads.csv", Data("id,email,Plan\nL1,a\u{0}@x.io,\nL2,b@x.io,go\u{0}ld\nL3,c@x.io,gold\n".utf8))
        let rejects = RejectRecorder()
        let summary = try ingest(store, csv, rejects: rejects)
        #expect(summary.counts.leadsCreated == 1)
        #expect(rejects.rejects.map { [String($0.error.line), $0.error.field ?? ""] } == [["2", "email"], ["3", "Plan"]])
        let events = try directory.write("events.ndjson", [
            #"{"type":"identify","userId":"u\u0000","traits":{"email":"d@x.io"}}"#,
            #"{"type":"track","event":"Demo\u0000","userId":"u2","messageId":"m1","timestamp":"2026-01-01T00:00:00Z"}"#,
            #"{"type":"identify","userId":"u3","traits":{"firstName":"A\u0000B"}}"#,
        ].joined(separator: "\n"))
        let jsonRejects = RejectRecorder()
        let json = try ingest(store, events, rejects: jsonRejects)
        #expect(json.counts.rejected == 3)
        #expect(jsonRejects.rejects.map { $0.error.field ?? "" } == ["userId", "event", "traits.firstName"])
    }

    @Test("A spreadsheet-safe export ingests as the values it guarded: the apostrophe before =, +, - or @ goes")
    func formulaGuardDropped() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let csv = try directory.write("export.csv", Data("""
            id,phone,company,first_name,Plan
            L1,'+1-555-0100,'=SUM(1),'@home,'-2+3
            L2,+1 555 0101,O'Brien & Co,'quoted','''=kept
            """.utf8))
        _ = try ingest(store, csv)
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.external_id, l.phone, l.company, l.first_name, v.value FROM leads l
                LEFT JOIN lead_custom_values v ON v.lead_id = l.id ORDER BY l.external_id
                """).map { row in (0..<5).map { row[$0] as String? } }
        }
        #expect(rows == [["L1", "+1-555-0100", "=SUM(1)", "@home", "-2+3"],
                         ["L2", "+1 555 0101", "O'Brien & Co", "'quoted'", "''=kept"]])
        // Only CSV carries the guard: a JSON value is stored as sent.
        let json = try directory.write("identify.ndjson", #"{"type":"identify","userId":"J1","traits":{"company":"'=SUM(1)"}}"#)
        _ = try ingest(store, json)
        let company = try store.reader.read { db in try String.fetchOne(db, sql: "SELECT company FROM leads WHERE external_id = 'J1'") }
        #expect(company == "'=SUM(1)")
    }

    @Test("A row of an export written before its lead last changed only fills blanks: an old report cannot undo a newer status")
    func staleExportRowsOnlyFill() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        _ = try ingest(store, try directory.write("crm.csv", """
            id,email,status,company
            X1,ann@example.com,qualified,
            X2,bob@example.com,new,Old Co
            X3,cy@example.com,new,Third Co

            """))
        let exportedAt = "2026-03-01T10:00:00Z"
        let exportedMillis = try #require(Timestamp.parse(exportedAt))
        let dayLater = exportedMillis + 86_400_000
        // As the export saw them: all last changed at the export's second (X2 within it, at .400).
        try store.writer.write { db in
            try db.execute(sql: "UPDATE leads SET updated_at = ?", arguments: [exportedMillis])
            try db.execute(sql: "UPDATE leads SET updated_at = ? WHERE external_id = 'X2'", arguments: [exportedMillis + 400])
        }
        // Since then a rep marked X1 converted (the timeline records the move, as PUT /status
        // does), and someone renamed X3's company.
        try store.writer.write { db in
            let x1 = try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'X1'")!
            try db.execute(sql: "UPDATE leads SET status = 'converted', updated_at = ? WHERE id = ?", arguments: [dayLater, x1])
            try LeadMutations.recordTimeline(x1, kind: "status_changed", old: "qualified", new: "converted", at: dayLater, in: db)
            try db.execute(sql: "UPDATE leads SET company = 'Renamed', updated_at = ? WHERE external_id = 'X3'", arguments: [dayLater])
        }
        let report = try directory.write("leads.csv", """
            id,external_id,email,status,company,tags,updated_at
            1,X1,ann@example.com,qualified,Acme,hot,\(exportedAt)
            2,X2,bob@example.com,contacted,New Co,warm,\(exportedAt)
            3,X3,cy@example.com,qualified,Third Co,,\(exportedAt)

            """)
        let summary = try ingest(store, report)
        #expect(summary.counts.rejected == 0)
        #expect(summary.counts.staleExportRows == 2, "X1 and X3 held values they did not apply, so the summary can say so")
        // X1's tags are what it had then (a rep may have removed one since): not added back.
        let tags = try store.reader.read { db in
            try String.fetchAll(db, sql: "SELECT l.external_id || ':' || t.tag FROM lead_tags t JOIN leads l ON l.id = t.lead_id ORDER BY 1")
        }
        #expect(tags == ["X2:warm"])
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: "SELECT status, company FROM leads ORDER BY external_id").map { [$0[0], $0[1]] as [String?] }
        }
        // X1: its stale status is not written back over the rep's move, its blank company is
        // filled. X2, unchanged since the export (which writes whole seconds), takes the edits.
        // X3: the spreadsheet moved its status, the store had not: taken; its company, renamed
        // in the store since, is kept.
        #expect(rows == [["converted", "Acme"], ["contacted", "New Co"], ["qualified", "Renamed"]])
        // Running the same command again (after an interrupt, say): every row is older than its
        // lead now; only those still holding a value the lead does not take are counted.
        let again = try ingest(store, report)
        #expect(again.counts.staleExportRows == 2, "X1's status and X3's company; X2's applied row is not counted")
        // Without updated_at (an older report), the row applies as before.
        _ = try ingest(store, try directory.write("plain.csv", "id,external_id,status\n1,X1,lost\n"))
        #expect(try store.reader.read { try String.fetchOne($0, sql: "SELECT status FROM leads WHERE external_id = 'X1'") } == "lost")
    }

    @Test("A file with id and external_id is LeadLens's own, however its headers are spelled; its created_at dates only new leads")
    func ownExportHeadersNormalized() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("export.csv", Data("""
            ID,External ID,First Name,Score,Model Version,Created At,Custom Fields
            301,,Ann,88,default-v0,2025-01-02T03:04:05Z,"{""Plan"":""gold""}"
            302,X2,Bob,12,default-v0,2025-02-03T00:00:00Z,{}
            """.utf8))
        let first = try ingest(store, file)
        #expect(first.counts.leadsCreated == 1 && first.counts.rejected == 1, "301 has no identity once its row id is left out")
        func bob() throws -> Row? { try store.reader.read { try Row.fetchOne($0, sql: "SELECT external_id, created_at FROM leads") } }
        #expect(try bob()?["external_id"] as String? == "X2")
        #expect(try bob()?["created_at"] as Int64? == Timestamp.parse("2025-02-03T00:00:00Z"))
        #expect(try store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM lead_custom_values") } == 0,
                "no computed column became a custom field")
        // Read again with another created_at (the export writes seconds): the lead's stays.
        let moved = try directory.write("moved.csv", Data("""
            id,external_id,first_name,created_at
            302,X2,Bob,2025-02-03T00:00:09Z
            """.utf8))
        let second = try ingest(store, moved)
        #expect(second.counts.leadsUpdated == 0 && second.counts.leadsUnchanged == 1)
        #expect(try bob()?["created_at"] as Int64? == Timestamp.parse("2025-02-03T00:00:00Z"))
    }

    @Test("An email that is not an address matches nobody: it is kept as a custom field, and alone it is no identity")
    func placeholderEmailsDoNotMerge() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("leads.csv", """
            E-mail,name,phone
            n/a,Ann,555 123 4567
            n/a,Bob,555 987 6543
            ann@example,Cy,555 222 3333
            none,Di,
            d@x.io,Ed,

            """)
        let rejects = RejectRecorder()
        let summary = try ingest(store, file, rejects: rejects)
        #expect(summary.counts.leadsCreated == 4 && summary.counts.rejected == 1, "\(summary.counts)")
        let rows = try store.reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.first_name, l.email, (
                    SELECT v.value FROM lead_custom_values v JOIN custom_fields f ON f.id = v.field_id
                    WHERE v.lead_id = l.id AND f.label = 'E-mail'
                ) FROM leads l ORDER BY l.id
                """).map { "\($0[0] as String? ?? "-") \($0[1] as String? ?? "-") \($0[2] as String? ?? "-")" }
        }
        #expect(rows == ["Ann - n/a", "Bob - n/a", "Cy - ann@example", "Ed d@x.io -"])
        let reject = try #require(rejects.rejects.first)
        #expect(reject.error.line == 5 && reject.error.field == "E-mail")
        #expect(reject.error.reason.contains("E-mail is not an email address"), "\(reject.error.reason)")
        #expect(!reject.error.reason.contains("none"), "the reason must not echo the value")
    }

    @Test("Emails lose an export's decorations; decorated or listed text is no address", arguments: [
        ("mailto:M@x.io", "m@x.io"), ("mailto:m@x.io?subject=Hi", "m@x.io"), ("<l5@x.io>", "l5@x.io"), ("Bob Lee <Bob2@x.io>", "bob2@x.io"),
        (" a.b+tag@mail.x.io ", "a.b+tag@mail.x.io"), ("Ann <a@x.io>, Bob <b@x.io>", nil), (#""Lee, Ann" <A10@x.io>"#, "a10@x.io"),
        (#""Lee, Ann" <a@x.io>, Bob <b@x.io>"#, nil),
        ("a@b@x.io", nil), ("x<y@x.io", nil), ("a@x.io, b@x.io", nil), ("bob at x.io", nil), ("bob@x", nil), ("bob@x.io.", nil),
    ] as [(String, String?)])
    func emailNormalization(raw: String, expected: String?) {
        #expect(Ingest.Identity.normalizeEmail(raw) == expected)
    }

    @Test("An accent typed as one character or as a letter and a combining mark is one address, byte for byte")
    func emailsAreComposed() throws {
        // Swift's == calls these equal already; SQLite compares bytes, so the test does too.
        let composed = Array("caf\u{E9}@x.io".utf8)
        for raw in ["CAFE\u{301}@x.io", "cafe\u{301}@x.io", "caf\u{E9}@x.io", "CAF\u{C9}@X.IO"] {
            #expect(Ingest.Identity.normalizeEmail(raw).map { Array($0.utf8) } == composed, "\(Array(raw.utf8))")
        }

        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let summary = try ingest(store, try directory.write("accents.csv", "email,first_name\ncafe\u{301}@x.io,Ann\ncaf\u{E9}@x.io,Ann\n"))
        #expect(summary.counts.leadsCreated == 1)
    }

    /// Two addresses for one id in a file, and a row with the first one alone: the id's lead
    /// ends with the second, the other row's lead keeps the first, and a re-run changes nothing
    /// (it used to merge that lead away and make it again on every run).
    @Test("Re-ingesting a file that gives one id two emails changes nothing")
    func twoEmailsForOneIDAreStable() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("rr.csv", "Email,Lead ID,First Name\nc1@x.com,L1,\nc1b@x.com,L1,\nc1@x.com,,Cee\n")
        let first = try ingest(store, file)
        #expect(first.counts.leadsCreated == 2)
        let before = try store.reader.read { try Row.fetchAll($0, sql: "SELECT id, external_id, email, first_name FROM leads ORDER BY id") }
        for _ in 0..<2 {
            let again = try ingest(store, file)
            #expect(again.counts.leadsCreated == 0, "\(again.counts)")
            #expect(try store.reader.read { try Row.fetchAll($0, sql: "SELECT id, external_id, email, first_name FROM leads ORDER BY id") } == before)
        }
        #expect(try store.reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM lead_timeline WHERE kind = 'merged'") } == 0)
    }

    @Test("A placeholder phone (one digit repeated) matches nobody: two leads stay two")
    func placeholderPhonesDoNotMerge() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let file = try directory.write("leads.csv", """
            id,name,phone
            A,Ann,000-000-0000
            B,Bob,000-000-0000
            C,Cy,555-0100
            ,Cy Lee,(555) 0100
            D,Di,+1 000-000-0000
            E,Ed,+1 (000) 000-0000
            F,Flo,+44 0000 000000

            """)
        let summary = try ingest(store, file)
        #expect(summary.counts.leadsCreated == 6, "the Cy Lee row matches C by a real number; the rest share only placeholders")
        #expect(try store.leads().compactMap(\.externalID).sorted() == ["A", "B", "C", "D", "E", "F"])
        #expect(LeadMutations.identityPhoneDigits("+1 555 010 0001") == "15550100001")
    }

    @Test("A status or owner an import changes is on the lead's timeline, as an API change is")
    func importedStatusChangesReachTheTimeline() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        try ingest(store, try directory.write("a.csv", "id,status,owner\nL1,new,\n"))
        try ingest(store, try directory.write("b.csv", "id,status,owner\nL1,Qualified,rep-7\n"))
        try ingest(store, try directory.write("c.csv", "id,status,owner\nL1,qualified,rep-7\n"))  // no change
        let entries = try store.reader.read { db in
            let id = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM leads WHERE external_id = 'L1'"))
            return try LeadMutations.timeline(id, offset: 0, limit: 10, in: db).entries
        }
        #expect(entries.map { [$0.kind, $0.oldValue ?? "-", $0.newValue ?? "-"] }.sorted { $0[0] < $1[0] }
                == [["assigned", "-", "rep-7"], ["status_changed", "new", "qualified"]])

        // A file that moves a lead and back nets out, so ingesting it again adds no entry.
        let flip = try directory.write("flip.csv", "id,status\nL1,new\nL1,qualified\n")
        try ingest(store, flip)
        try ingest(store, flip)
        let after = try store.reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM lead_timeline") }
        #expect(after == 2)
    }

    @Test("A header without commas but with semicolons or tabs sets the separator (European exports, TSV)")
    func semicolonAndTabSeparators() throws {
        let directory = try TemporaryDirectory()
        let store = try LeadStore.inMemory()
        let semicolons = try ingest(store, try directory.write("eu.csv", "id;E-mail;Company\nL1;a@x.io;\"Smith; Jones\"\nL2;b@x.io;Acme, Inc\n"))
        let tabs = try ingest(store, try directory.write("leads.tsv", "id\tEmail\nT1\tt@x.io\n"))
        #expect(semicolons.counts.leadsCreated == 2 && semicolons.counts.rejected == 0)
        #expect(tabs.counts.leadsCreated == 1 && tabs.counts.rejected == 0)
        let rows = try store.leads().map { [$0.externalID, $0.email, $0.company] }
        #expect(rows == [["L1", "a@x.io", "Smith; Jones"], ["L2", "b@x.io", "Acme, Inc"], ["T1", "t@x.io", nil]])
        #expect(CSVParser.delimiter(ofHeader: Array("id,name;x".utf8)) == UInt8(ascii: ","), "a tie keeps the standard")
        // A rejected row is written back with the file's own separator, so it can be fixed and resent.
        let rejects = RejectRecorder()
        _ = try ingest(store, try directory.write("bad.tsv", "id\tValue\nT9\t12,5\n"), rejects: rejects)
        #expect(rejects.rejects.map(\.raw) == ["T9\t12,5"])
        #expect(CSVParser.delimiter(ofHeader: Array("id\tEmail\tCity, State".utf8)) == 0x09, "the most frequent wins")
        let named = try ingest(store, try directory.write("more.tsv", "id\tCity, State\nT2\tAustin, TX\n"))
        #expect(named.counts.leadsCreated == 1 && named.counts.rejected == 0, "a .tsv file splits at tabs")
        #expect(CSVParser.delimiter(ofHeader: Array("\"a,b\";c".utf8)) == UInt8(ascii: ";"), "commas in quotes do not count")
    }
}
