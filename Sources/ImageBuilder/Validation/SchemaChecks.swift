import KubeTypes
import RegistryTypes

/// The Swift-side checks a `Schema` names.
enum SchemaChecks {
    static func run(_ check: Schema.Check, on value: JSONValue, at path: FieldPath, _ problems: inout [ValidationProblem]) {
        switch (check, value) {
        case (.imageReference, .string(let text)):
            do {
                _ = try ImageReference(parsing: text)
            } catch {
                problems.append(ValidationProblem(path, "not a valid image reference: \(error.reason)", value: text))
            }
        case (.aptPackage, .string(let text)):
            if let reason = PackageGrammar.debianProblem(text) {
                problems.append(ValidationProblem(path, "not a valid apt package: \(reason)", value: text))
            }
        case (.pipRequirement, .string(let text)):
            if let reason = PackageGrammar.pipProblem(text) {
                problems.append(ValidationProblem(path, "not a valid pip requirement (PEP 508): \(reason)", value: text))
            }
        case (.condaList, .array(let items)):
            let strings = items.compactMap(\.stringValue)
            guard strings.count == items.count else { return }  // item type errors are already reported
            for (index, reason) in CondaRequest.parse(strings).problems {
                problems.append(ValidationProblem(path / index, "not a valid conda package: \(reason)", value: strings[index]))
            }
        case (.envName, .string(let text)):
            if !isEnvironmentName(text) {
                problems.append(ValidationProblem(
                    path, "an environment variable name is a letter or '_' followed by letters, digits and '_'", value: text))
            }
        case (.dnsSubdomain, .string(let text)):
            if !isDNSSubdomain(text) {
                problems.append(ValidationProblem(
                    path, "must be a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters",
                    value: text))
            }
        case (.dnsLabel, .string(let text)):
            if !isDNSLabel(text) {
                problems.append(ValidationProblem(
                    path, "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
                    value: text))
            }
        case (.dateTime, .string(let text)):
            if KubeJSON.parseTimestamp(text) == nil {
                problems.append(ValidationProblem(path, "must be an RFC 3339 date-time such as 2024-01-02T03:04:05Z, in the years 0000 to 9999 (UTC)", value: text))
            }
        case (.quantity, _):
            if let text = value.scalarText, Quantity.parse(text) == nil {
                problems.append(ValidationProblem(path, "not a resource quantity such as 500m, 2Gi or 1", value: text))
            }
        case (.duration, _):
            if let text = value.scalarText, GoDuration.seconds(text) == nil {
                problems.append(ValidationProblem(path, "not a duration such as 90s, 45m or 1h30m (or a number of seconds)", value: text))
            }
        case (.repository, .string(let text)), (.repositoryPrefix, .string(let text)):
            let isPrefix = { if case .repositoryPrefix = check { return true } else { return false } }()
            do {
                let reference = try ImageReference(parsing: isPrefix ? text + "/name" : text)
                if reference.tag != nil || reference.digest != nil {
                    problems.append(ValidationProblem(path, "must be a repository without tag or digest", value: text))
                }
            } catch {
                problems.append(ValidationProblem(
                    path, "not a valid repository\(isPrefix ? " prefix" : ""): \(error.reason)", value: text))
            }
        case (.registryHost, .string(let text)):
            // A host is what a reference with a path after it names as its registry.
            if text.contains("/") || ImageReference.parse(text + "/x")?.registry != text {
                problems.append(ValidationProblem(path, "must be a registry host such as registry.example.com:5000", value: text))
            }
        case (.commandLineOption, .string(let text)):
            if !text.hasPrefix("--") || text.count < 3 {
                problems.append(ValidationProblem(path, "must be a long option such as --verbosity=info", value: text))
            }
        case (.uniqueKey(let key), .array(let items)):
            var seen: [String: Int] = [:]
            for (index, item) in items.enumerated() {
                guard let name = item[key]?.stringValue else { continue }
                if let first = seen[name] {
                    problems.append(ValidationProblem(path / index / key, "duplicate of item \(first)", value: name))
                } else {
                    seen[name] = index
                }
            }
        default:
            break
        }
    }

    static func isEnvironmentName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, PackageGrammar.isUpper(first) || PackageGrammar.isLower(first) || first == PackageGrammar.underscore else {
            return false
        }
        return bytes.allSatisfy { PackageGrammar.isAlnum($0) || $0 == PackageGrammar.underscore }
    }

    static func isDNSLabel(_ text: String) -> Bool {
        text.utf8.count <= 63 && !text.contains(".") && isDNSSubdomain(text)
    }

    /// Kubernetes' DNS-1123 subdomain: dot-separated label-like parts, 253 characters in all (the
    /// parts have no length limit of their own).
    static func isDNSSubdomain(_ text: String) -> Bool {
        text.utf8.count <= 253 && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            let bytes = Array(part.utf8)
            guard let first = bytes.first, let last = bytes.last else { return false }
            return PackageGrammar.isLowerAlnum(first) && PackageGrammar.isLowerAlnum(last)
                && bytes.allSatisfy { PackageGrammar.isLowerAlnum($0) || $0 == PackageGrammar.minus }
        }
    }

    /// Same letters ignoring case, or one edit apart: worth a "did you mean".
    static func isNearMiss(_ typed: String, _ known: String) -> Bool {
        if typed.lowercased() == known.lowercased() { return true }
        let a = Array(typed.lowercased().unicodeScalars), b = Array(known.lowercased().unicodeScalars)
        guard abs(a.count - b.count) <= 1, a.count < 64, b.count < 64 else { return false }
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where i <= a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where j <= b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count] <= 1
    }
}
