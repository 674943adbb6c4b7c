import ArgumentParser
import Foundation
import ImageBuilder

/// Reading the command-line's input files.
enum InputFiles {
    /// Files larger than this are not read.
    static let maxBytes = YAMLLoader.Limits.default.maxBytes

    struct Unreadable: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "\(path): \(reason)" }
    }

    /// The UTF-8 text of `path` (`-` for standard input).
    static func text(of path: String) throws(Unreadable) -> String {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw Unreadable(path: path, reason: "no such file")
            }
            guard !isDirectory.boolValue else { throw Unreadable(path: path, reason: "is a directory") }
            if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maxBytes {
                throw Unreadable(path: path, reason: "is \(size) bytes; at most \(maxBytes) are read")
            }
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw Unreadable(path: path, reason: "cannot be read")
            }
            data = contents
        }
        guard data.count <= maxBytes else { throw Unreadable(path: path, reason: "is larger than \(maxBytes) bytes") }
        guard let text = String(data: data, encoding: .utf8) else { throw Unreadable(path: path, reason: "is not UTF-8 text") }
        return text
    }

    /// The text of `path`; when it cannot be read, says why and exits with status 2.
    static func textOrExit(of path: String) throws -> String {
        do {
            return try text(of: path)
        } catch {
            printError(error.description)
            throw ExitCode(2)
        }
    }

    /// `paths` with directories replaced by the `.yaml`/`.yml` files below them (sorted, hidden
    /// entries skipped).
    static func expand(_ paths: [String]) -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard path != "-", FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                files.append(path)
                continue
            }
            let root = URL(fileURLWithPath: path).standardizedFileURL
            let enumerator = FileManager.default.enumerator(
                at: root, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles])
            var found: [String] = []
            while let url = enumerator?.nextObject() as? URL {
                guard ["yaml", "yml"].contains(url.pathExtension.lowercased()),
                      (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
                let full = url.standardizedFileURL.path
                let relative = full.hasPrefix(root.path + "/") ? String(full.dropFirst(root.path.count + 1)) : url.lastPathComponent
                found.append(path.hasSuffix("/") ? path + relative : path + "/" + relative)
            }
            files += found.sorted()
        }
        return files
    }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
