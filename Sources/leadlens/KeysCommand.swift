import ArgumentParser
import Foundation
import LeadAPI
import LeadStore

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke API keys.",
        discussion: """
            Keys are stored only as SHA-256 hashes: a new key is printed once, on stdout, alone on \
            its line. Scopes: read (GET), write (create, update, delete, ingestion), admin (keys, \
            training, rescoring, reports).

            Examples:
              leadlens keys create --name dashboard --scopes read --rate 60/min
              leadlens keys list
              leadlens keys revoke dashboard
            """,
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once.")

        @OptionGroup var store: StoreOptions

        @Option(help: "A name to tell the key by.")
        var name: String

        @Option(help: ArgumentHelp("Comma-separated: read, write, admin.", valueName: "scopes"))
        var scopes: String

        @Option(help: ArgumentHelp("Requests allowed: 1000/h (default), N/min, N/s, N/day or unlimited.", valueName: "rate"))
        var rate = "1000/h"

        func validate() throws {
            if name.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--name must not be empty.") }
            if APIKeys.isNumericName(name) { throw ValidationError("--name must not be a number (digits, signed or not): `keys revoke N` takes a number as a key's id.") }
            if APIKeys.hasControlCharacters(name) { throw ValidationError("--name must not hold control characters (line breaks, escapes).") }
            _ = try parsedScopes()
            if RateLimit(parsing: rate) == nil { throw ValidationError("--rate must look like 10/s, 60/min, 1000/h, 5000/day or unlimited.") }
        }

        func parsedScopes() throws -> Set<Scope> {
            guard let result = Scope.set(named: scopes.split(separator: ",")) else {
                throw ValidationError("--scopes must list read, write or admin, comma-separated; got '\(scopes)'.")
            }
            return result
        }

        func run() throws {
            let leadStore = try LeadStore.openForCommand(store, label: "leadlens.keys", creating: true)
            let scopes = try parsedScopes()
            let created: (key: String, record: APIKey)
            do {
                created = try leadStore.writer.write { db in
                    try APIKeys.create(name: name, scopes: scopes, rateLimit: RateLimit(parsing: rate)!, in: db)
                }
            } catch is APIKeys.NameTaken {
                Terminal.error("a live key is already named '\(name)'; revoke it first (`leadlens keys revoke \(name)`) or choose another name")
                throw ExitCode(2)
            }
            Terminal.status("created key \(created.record.id) '\(created.record.name)' (\(scopes.map(\.rawValue).sorted().joined(separator: ","))), \(created.record.rateLimit); it is shown only now:")
            print(created.key)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never the keys themselves).")

        @OptionGroup var store: StoreOptions

        func run() throws {
            let leadStore = try LeadStore.openForCommand(store, label: "leadlens.keys", creating: true)
            let keys = try leadStore.reader.read { db in try APIKeys.list(in: db) }
            if keys.isEmpty {
                print("no keys; create one with `leadlens keys create --name NAME --scopes read`")
                return
            }
            let formatter = ISO8601DateFormatter()
            for key in keys {
                let created = formatter.string(from: Date(timeIntervalSince1970: Double(key.createdAt) / 1000))
                let state = key.revokedAt == nil ? "live" : "revoked"
                let scopes = Scope.allCases.filter(key.scopes.contains).map(\.rawValue).joined(separator: ",")
                print("\(key.id)\t\(key.name)\t\(key.prefix)…\t\(scopes)\t\(key.rateLimit)\t\(created)\t\(state)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id or name.")

        @OptionGroup var store: StoreOptions

        @Argument(help: "The key's id or name.")
        var key: String

        func run() throws {
            let leadStore = try LeadStore.openForCommand(store, label: "leadlens.keys", creating: true)
            let revoked: Int
            do {
                revoked = try leadStore.writer.write { db in try APIKeys.revoke(key, in: db) }
            } catch let ambiguous as APIKeys.AmbiguousName {
                Terminal.error("\(ambiguous.ids.count) live keys are named '\(key)' (ids \(ambiguous.ids.map(String.init).joined(separator: ", "))); revoke one by id")
                throw ExitCode(2)
            }
            guard revoked > 0 else {
                Terminal.error("no live key with id or name '\(key)'")
                throw ExitCode(1)
            }
            print("revoked \(revoked) key\(revoked == 1 ? "" : "s"); a running server stops accepting it within 5 s")
        }
    }
}
