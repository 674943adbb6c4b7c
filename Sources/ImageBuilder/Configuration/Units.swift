/// Kubernetes resource quantities, checked but kept as written.
enum Quantity {
    /// `[+]digits[.digits][suffix]`, suffix one of the binary (Ki…Ei), decimal (m, k, M…E) or
    /// exponent (`e3`) forms. Returns the text when valid.
    static func parse(_ text: String) -> String? {
        var scanner = ByteScanner(text)
        _ = scanner.take(UInt8(ascii: "+"))
        let whole = scanner.take(while: PackageGrammar.isDigit)
        var fraction: ArraySlice<UInt8> = []
        if scanner.take(PackageGrammar.dot) { fraction = scanner.take(while: PackageGrammar.isDigit) }
        guard !whole.isEmpty || !fraction.isEmpty else { return nil }
        let suffix = String(decoding: scanner.bytes[scanner.index...], as: UTF8.self)
        let suffixes: Set<String> = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"]
        if suffixes.contains(suffix) { return text }
        if let first = suffix.first, first == "e" || first == "E" {
            var exponent = suffix.dropFirst()
            if exponent.first == "+" || exponent.first == "-" { exponent = exponent.dropFirst() }
            if !exponent.isEmpty, exponent.allSatisfy({ $0.isASCII && $0.isNumber }) { return text }
        }
        return nil
    }
}

/// Durations as Go writes them (`1h30m`, `90s`, `500ms`) or a bare number of seconds.
enum GoDuration {
    static func seconds(_ text: String) -> Int64? {
        if let whole = Int64(text), whole >= 0 { return whole }
        var scanner = ByteScanner(text)
        var total = 0.0
        let units: [(String, Double)] = [("ms", 0.001), ("h", 3600), ("m", 60), ("s", 1)]
        while !scanner.atEnd {
            let digits = scanner.take(while: { PackageGrammar.isDigit($0) || $0 == PackageGrammar.dot })
            guard let number = Double(String(decoding: digits, as: UTF8.self)),
                  let unit = units.first(where: { scanner.take($0.0) }) else { return nil }
            total += number * unit.1
        }
        guard !text.isEmpty, total < 1e12 else { return nil }
        return Int64(total.rounded(.up))
    }
}
