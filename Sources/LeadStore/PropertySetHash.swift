import Crypto

/// The key `event_property_sets` rows are looked up by: the first 8 bytes of the properties'
/// SHA-256, sign bit cleared. Rows with one hash are told apart by their text, so a collision
/// costs a comparison; SHA-256 so nobody can craft objects that all share one hash.
public enum PropertySetHash {
    public static func of(_ json: String) -> Int64 {
        var json = json
        let digest = json.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return digest.withUnsafeBytes { raw in
            Int64(bitPattern: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)) & 0x7FFF_FFFF_FFFF_FFFF)
        }
    }
}
