/// A conda package list split into channels and match specs. PrimeHub lists channels inline as
/// separate items (`"-c", "conda-forge", "numpy"`); those tokens are accepted here and become
/// `--channel` arguments, in order.
public struct CondaRequest: Sendable, Hashable {
    public var channels: [String]
    public var specs: [String]

    public init(channels: [String] = [], specs: [String] = []) {
        self.channels = channels
        self.specs = specs
    }

    public static let channelFlags: Set<String> = ["-c", "--channel"]

    /// Splits `items`; each problem names the item's index and the reason.
    public static func parse(_ items: [String]) -> (request: CondaRequest, problems: [(index: Int, reason: String)]) {
        var request = CondaRequest()
        var problems: [(Int, String)] = []
        var index = 0
        while index < items.count {
            let item = items[index]
            if channelFlags.contains(item) {
                guard index + 1 < items.count else {
                    problems.append((index, "'\(item)' must be followed by a channel name as the next item"))
                    break
                }
                let channel = items[index + 1]
                if let problem = PackageGrammar.condaChannelProblem(channel) {
                    problems.append((index + 1, "channel after '\(item)': \(problem)"))
                } else {
                    request.channels.append(channel)
                }
                index += 2
                continue
            }
            if item.hasPrefix("-c ") || item.hasPrefix("--channel ") || item.hasPrefix("--channel=") || (item.hasPrefix("-c") && item.count > 2) {
                problems.append((index, "write a channel as two items (\"-c\", \"conda-forge\") or as channel::package"))
            } else if let problem = PackageGrammar.condaSpecProblem(item) {
                problems.append((index, problem))
            } else {
                request.specs.append(item)
            }
            index += 1
        }
        if problems.isEmpty, request.specs.isEmpty, !request.channels.isEmpty {
            problems.append((items.count - 1, "channels are given but no package to install"))
        }
        return (request, problems)
    }
}
