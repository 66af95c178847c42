import LeadStore
import Testing

@Suite("Key normalization")
struct FieldNameTests {
    @Test("CSV headers, Segment traits and CRM aliases map to known fields", arguments: [
        ("First Name", LeadField.firstName), ("first_name", .firstName), ("firstName", .firstName),
        ("FIRST-NAME", .firstName), ("lead_firstname", .firstName), ("Last Name", .lastName),
        ("E-mail", .email), ("email", .email), ("lead_email", .email), ("Email Address", .email),
        ("Mobile", .phone), ("Phone Number", .phone), ("phone", .phone),
        ("Company Name", .company), ("lead_company_name", .company), ("company", .company),
        ("Lead Source", .source), ("lead_source", .source), ("source", .source),
        ("id", .externalID), ("external_id", .externalID), ("lead_id", .externalID), ("userId", .externalID),
        ("Lead ID", .externalID), ("status", .status), ("Lead Status", .status),
        ("assignee", .assignedTo), ("Assigned To", .assignedTo), ("note", .notes), ("Notes", .notes),
        ("Created At", .createdAt), ("tags", .tags), ("Name", .fullName), ("value", .value),
    ])
    func knownFields(header: String, field: LeadField) {
        #expect(FieldName.knownField(header) == field)
    }

    @Test("Other keys are custom fields", arguments: ["Industry", "Employees", "plan_interest", "leader", "lead", "Country"])
    func customFields(header: String) {
        #expect(FieldName.knownField(header) == nil)
    }

    @Test func normalizeIgnoresCaseSpacesUnderscoresAndDashes() {
        let forms = ["Plan Interest", "plan_interest", "planInterest", "PLAN-INTEREST", " plan interest "]
        #expect(Set(forms.map(FieldName.normalize)) == ["planinterest"])
    }

    @Test("Non-ASCII keys lowercase by Unicode rules, ASCII ones byte by byte, to the same forms")
    func normalizeUnicode() {
        #expect(FieldName.normalize("Größe_Ärger") == "größeärger")
        #expect(FieldName.normalize("ÉTAT-Civil") == "étatcivil")
        #expect(FieldName.normalize("E-MAIL.Address\t") == "emailaddress")
        #expect(FieldName.normalize(Substring("xx First_Name").dropFirst(3)) == "firstname")
        #expect(FieldName.normalize("") == "")
        #expect(FieldName.knownField("É-mail") == nil && FieldName.knownField("E-Mail") == .email)
    }
}
