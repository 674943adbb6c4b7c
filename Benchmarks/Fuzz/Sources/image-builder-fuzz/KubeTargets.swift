import Foundation
import ImageBuilder
import KubeClient
import KubeTypes

/// Watch streams: the first byte picks the chunking and the line limit, the rest is the body.
/// Property: a body split into any chunks gives the same lines as the body in one piece. Then
/// every line is decoded as the watches decode it.
enum WatchStreamTarget {
    static func run(_ data: Data) {
        guard let control = data.first else { return }
        // A slice (start index 1), as chunks from the transport may be.
        let body = data[data.index(after: data.startIndex)...]
        let limit = control & 0x80 != 0 ? Int(control & 0x3f) + 1 : 64 << 20
        var whole = LineFramer(maxLineLength: limit)
        let wholeLines: [Data]? = try? whole.append(body) + (whole.finish().map { [$0] } ?? [])

        var chunked = LineFramer(maxLineLength: limit)
        var chunkedLines: [Data] = []
        var failed = false
        var offset = body.startIndex
        var state = UInt32(control) &* 2_654_435_761 | 1
        while offset < body.endIndex {
            state = state &* 1_103_515_245 &+ 12345
            let size = Int(state >> 16) % 17 + 1
            let end = min(body.endIndex, offset + size)
            do {
                chunkedLines += try chunked.append(Data(body[offset..<end]))
            } catch {
                failed = true
                break
            }
            offset = end
        }
        if !failed {
            if let last = chunked.finish() { chunkedLines.append(last) }
            FuzzCheck.require(wholeLines.map { $0.map { Data($0) } } == chunkedLines.map { Data($0) },
                              "chunked framing gave other lines than the whole body")
        }
        // Log framing keeps blank lines; it must not fail within its limit.
        var logs = LineFramer(maxLineLength: 1 << 20, skipsBlankLines: false)
        let logLines = (try? logs.append(body)) ?? []
        FuzzCheck.require(logLines.count <= body.count + 1, "more log lines than bytes")

        for line in (wholeLines ?? chunkedLines).prefix(64) {
            decode(line)
        }
    }

    static func decode(_ line: Data) {
        if let event = try? WatchEventDecoder.decode(JSONValue.self, line: line) {
            switch event {
            case .added(let object), .modified(let object), .deleted(let object):
                _ = try? object.decode(as: ImageSpec.self)
            case .bookmark, .error:
                break
            }
        }
        _ = try? WatchEventDecoder.decode(Pod.self, line: line)
        _ = try? WatchEventDecoder.decode(Job.self, line: line)
        _ = try? WatchEventDecoder.decode(ImageSpec.self, line: line)
        do {
            _ = try WatchEventDecoder.decode(Event.self, line: line)
        } catch {
            // Every failure is described, never a bare decoding error.
            FuzzCheck.require(!"\(error)".isEmpty, "an undescribed decoding error")
        }
    }
}

/// JSON: `JSONValue` with the Kubernetes coders and the plain ones, and the typed models.
/// Properties: decode → encode is a fixed point after one step (bytes and values); the plain and
/// the typed decoders read the same values; a merge patch of a value to itself is empty, and
/// `applyingChange` from a value to another gives the other. A NUL splits the input in two values.
enum JSONTarget {
    static let encoder = KubeJSON.encoder
    static let decoder = KubeJSON.decoder

    static func run(_ data: Data) {
        let (first, second) = splitAtNUL(data)
        guard let value = roundTrip(first) else { return }
        if let second, let other = roundTrip(second) {
            FuzzCheck.require(JSONValue.mergePatch(from: value, to: value) == nil, "a merge patch from a value to itself")
            FuzzCheck.require(value.applyingChange(from: value, to: other) == other,
                              "applyingChange from a value to another did not give the other")
            if let patch = JSONValue.mergePatch(from: value, to: other) {
                FuzzCheck.require(value != other, "a merge patch between equal values")
                _ = try? encoder.encode(patch)
            }
        }
        models(first)
    }

    /// Decodes, checks the round trip, and returns the value.
    static func roundTrip(_ data: Data) -> JSONValue? {
        let typed = try? decoder.decode(JSONValue.self, from: data)
        let plain = try? JSONDecoder().decode(JSONValue.self, from: data)
        FuzzCheck.require((typed == nil) == (plain == nil), "the typed and plain decoders disagree on validity")
        guard let typed else { return nil }
        FuzzCheck.require(typed == plain, "the typed and plain decoders read different values")
        let once: Data
        do { once = try encoder.encode(typed) } catch {
            FuzzCheck.require(false, "a decoded value does not encode: \(error)")
            return nil
        }
        guard let again = try? decoder.decode(JSONValue.self, from: once) else {
            FuzzCheck.require(false, "encoded JSON does not decode: \(String(decoding: once, as: UTF8.self))")
            return nil
        }
        let twice = (try? encoder.encode(again)) ?? Data()
        FuzzCheck.require(once == twice, "encoding is not stable: \(String(decoding: once, as: UTF8.self)) then \(String(decoding: twice, as: UTF8.self))")
        return typed
    }

    static func models(_ data: Data) {
        model(Pod.self, data)
        model(Job.self, data)
        model(Event.self, data)
        model(Lease.self, data)
        model(Secret.self, data)
        model(ConfigMap.self, data)
        model(Status.self, data)
        model(ImageSpec.self, data)
        model(ImageSpecJob.self, data)
        model(Image.self, data)
    }

    /// A model read and written back reads again: what the operator writes, it can read. (Not
    /// byte for byte: timestamps round on writing, and a `Date` far from now holds fewer
    /// microseconds than a MicroTime writes.)
    static func model<T: Codable & Equatable>(_ type: T.Type, _ data: Data) {
        guard let object = try? decoder.decode(T.self, from: data) else { return }
        let once: Data
        do { once = try encoder.encode(object) } catch {
            FuzzCheck.require(false, "a decoded \(T.self) does not encode: \(error)")
            return
        }
        do { _ = try decoder.decode(T.self, from: once) } catch {
            FuzzCheck.require(false, "\(T.self) written as \(String(decoding: once, as: UTF8.self)) does not read back: \(error)")
        }
    }
}

/// Kubeconfig files, then the client configuration of every context (and of the current one).
enum KubeconfigTarget {
    static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        guard let config = try? Kubeconfig(yaml: text, file: "/nonexistent/fuzz/kubeconfig") else { return }
        _ = try? config.configuration()
        for name in config.contexts.keys.sorted().prefix(16) {
            _ = try? config.configuration(context: name)
        }
        var merged = config
        merged.merge(config)
        FuzzCheck.require(merged.clusters == config.clusters && merged.users == config.users
                          && merged.contexts == config.contexts, "a kubeconfig merged with itself changed")
    }
}

/// An exec credential plugin's standard output (the first byte picks the apiVersion the
/// kubeconfig asked for). Property: what is accepted carries a token or a certificate and key.
enum ExecCredentialTarget {
    static func run(_ data: Data) {
        guard let control = data.first else { return }
        let apiVersion = ExecConfig.supportedAPIVersions[Int(control) % ExecConfig.supportedAPIVersions.count]
        let config = ExecConfig(command: "fuzz-plugin", apiVersion: apiVersion)
        do {
            let status = try config.credential(fromOutput: data.dropFirst())
            let hasToken = status.token?.isEmpty == false
            let hasPair = status.clientCertificateData?.isEmpty == false && status.clientKeyData?.isEmpty == false
            FuzzCheck.require(hasToken || hasPair, "accepted a credential without a token or a certificate and key")
        } catch let error as KubeClientError {
            FuzzCheck.require("\(error)".contains("fuzz-plugin"), "an error that does not name the plugin: \(error)")
        } catch {
            FuzzCheck.require(false, "an error of an unexpected kind: \(error)")
        }
    }
}
