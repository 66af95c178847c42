import Foundation
import Hummingbird

/// The API's OpenAPI 3.1 document, `openapi.json` beside this file, shipped as the target's resource.
/// Every route must appear in it: `OpenAPITests` fails on any route missing from either side.
public enum OpenAPIDocument {
    /// The document's bytes, read once on first use.
    ///
    /// On Linux the resource lives in `LeadLens_LeadAPI.resources` next to the executable (or in the
    /// build folder); an install must ship that folder with the binary.
    public static let data: Data = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
              let data = try? Data(contentsOf: url)
        else { preconditionFailure("openapi.json is missing from the LeadAPI resource bundle") }
        return data
    }()

    /// GET /openapi.json: the document as is, no auth.
    public static func response() -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
