import Foundation
import KubeTypes
import RegistryTypes

/// How a request was (or would be) authenticated; `inspect` prints it.
public enum AuthenticationMethod: Sendable, Hashable, CustomStringConvertible {
    /// No credentials were needed.
    case anonymous
    /// HTTP basic authentication with a credential.
    case basic(username: String, source: String?)
    /// A bearer token from the registry's token service, requested with a credential or anonymously.
    case bearer(realm: String, username: String?, source: String?)

    public var description: String {
        switch self {
        case .anonymous:
            return "anonymous"
        case .basic(let username, let source):
            return "basic as user \"\(username)\"" + Self.from(source)
        case .bearer(let realm, let username?, let source):
            return "bearer token from realm \(realm) as user \"\(username)\"" + Self.from(source)
        case .bearer(let realm, nil, _):
            return "anonymous bearer token from realm \(realm)"
        }
    }

    private static func from(_ source: String?) -> String {
        source.map { " (credentials from auths key \"\($0)\")" } ?? ""
    }
}

/// One challenge of a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"`.
public struct AuthenticationChallenge: Sendable, Hashable {
    /// `bearer` or `basic`, lowercased.
    public var scheme: String
    /// Parameter names lowercased; values unquoted.
    public var parameters: [String: String]

    public init(scheme: String, parameters: [String: String]) {
        self.scheme = scheme.lowercased()
        self.parameters = parameters
    }

    public var realm: String? { parameters["realm"] }
    public var service: String? { parameters["service"] }
    public var scope: String? { parameters["scope"] }
    /// `insufficient_scope`, `invalid_token`, … when the server says why a token was refused.
    public var error: String? { parameters["error"] }

    /// Parses the challenges of one or more `WWW-Authenticate` header values (RFC 7235: a scheme
    /// name, then `name=value` or `name="quoted value"` pairs separated by commas; a new scheme
    /// starts after a comma with a token not followed by `=`).
    public static func parse(_ values: [String]) -> [AuthenticationChallenge] {
        var challenges: [AuthenticationChallenge] = []
        for value in values {
            var scanner = ChallengeScanner(Array(value.unicodeScalars))
            var current: AuthenticationChallenge?
            while !scanner.atEnd {
                scanner.skip { $0 == " " || $0 == "\t" || $0 == "," }
                guard let token = scanner.token(), !token.isEmpty else {
                    scanner.advance()
                    continue
                }
                scanner.skip { $0 == " " || $0 == "\t" }
                if scanner.peek == "=" {
                    scanner.advance()
                    scanner.skip { $0 == " " || $0 == "\t" }
                    let parameterValue = scanner.peek == "\"" ? scanner.quoted() : (scanner.token() ?? "")
                    current?.parameters[token.lowercased()] = parameterValue
                } else {
                    if let done = current { challenges.append(done) }
                    current = AuthenticationChallenge(scheme: token, parameters: [:])
                }
            }
            if let done = current { challenges.append(done) }
        }
        return challenges
    }
}

private struct ChallengeScanner {
    let scalars: [Unicode.Scalar]
    var index = 0

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    var atEnd: Bool { index >= scalars.count }
    var peek: Unicode.Scalar? { atEnd ? nil : scalars[index] }
    mutating func advance() { index += 1 }

    mutating func skip(while predicate: (Unicode.Scalar) -> Bool) {
        while let scalar = peek, predicate(scalar) { index += 1 }
    }

    /// An RFC 7230 token (also accepting `/`, which some servers leave unquoted in scope values).
    mutating func token() -> String? {
        let start = index
        while let scalar = peek, scalar != "=", scalar != ",", scalar != " ", scalar != "\t", scalar != "\"" {
            index += 1
        }
        return index > start ? String(String.UnicodeScalarView(scalars[start..<index])) : nil
    }

    mutating func quoted() -> String {
        advance()
        var out = String.UnicodeScalarView()
        while let scalar = peek {
            advance()
            if scalar == "\\", let next = peek {
                out.append(next)
                advance()
            } else if scalar == "\"" {
                break
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }
}

/// A registry bearer token's claims, read without verifying the signature (the registry verifies
/// it; the client only wants to know what the token service granted).
public struct TokenClaims: Sendable, Hashable {
    /// One `access` entry: `{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}`.
    public struct Access: Sendable, Hashable {
        public var type: String
        public var name: String
        public var actions: [String]
    }

    public var access: [Access]
    public var subject: String?
    public var expiresAt: Date?

    /// The claims of a JWT (`header.payload.signature`, payload base64url JSON); nil when the token
    /// is not a JWT or has no `access` claim (opaque tokens).
    public init?(jwt token: String) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
              let payload = try? JSONDecoder().decode(JSONValue.self, from: data),
              let accessList = payload["access"]?.arrayValue
        else { return nil }
        access = accessList.compactMap { entry in
            guard let type = entry["type"]?.stringValue, let name = entry["name"]?.stringValue else { return nil }
            return Access(type: type, name: name, actions: entry["actions"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        subject = payload["sub"]?.stringValue
        expiresAt = payload["exp"]?.intValue.map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// Whether the claims grant `action` on `repository` (`*` grants every action).
    public func grants(_ action: String, onRepository repository: String) -> Bool {
        access.contains { $0.type == "repository" && $0.name == repository && ($0.actions.contains(action) || $0.actions.contains("*")) }
    }
}

/// A token service's answer: `token` or `access_token`, `expires_in` (seconds, default 60).
struct TokenResponse: Sendable {
    var token: String
    var expiresIn: Int

    static let defaultLifetime = 60

    init?(json data: Data) {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data) else { return nil }
        guard let token = (value["token"]?.stringValue).flatMap({ $0.isEmpty ? nil : $0 })
            ?? (value["access_token"]?.stringValue).flatMap({ $0.isEmpty ? nil : $0 })
        else { return nil }
        self.token = token
        let lifetime = value["expires_in"]?.intValue.map(Int.init) ?? Self.defaultLifetime
        expiresIn = lifetime > 0 ? lifetime : Self.defaultLifetime
    }
}
