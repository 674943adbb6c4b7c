import CCurl
import CCurlShim
import Foundation
import Synchronization

/// Drives every transfer of a client on one dedicated thread through a curl multi handle.
///
/// Connections are kept in the multi handle's pool and reused; with `http2`, one HTTP/2
/// connection carries many transfers at once. Nothing here blocks Swift's cooperative thread pool: callers submit
/// commands and await continuations that the engine thread resumes.
final class CurlEngine: @unchecked Sendable {
    enum Command {
        case add(Transfer)
        case resume(Transfer)
        case cancel(Transfer)
    }

    private let multi: UnsafeMutableRawPointer
    private let commands = Mutex<[Command]>([])
    /// Transfers in the multi handle, by easy handle. Engine thread only.
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    private let activeCount = Atomic<Int>(0)
    /// New connections curl opened (the sum of every finished transfer's CURLINFO_NUM_CONNECTS).
    private let connectionCount = Atomic<Int>(0)
    private let transferCount = Atomic<Int>(0)

    private static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }()

    /// Ask for HTTP/2 (over TLS) and multiplex transfers on one connection; otherwise HTTP/1.1.
    let http2: Bool

    /// Idle connections kept for reuse. curl's default (4 × the transfers in the multi handle)
    /// shrinks whenever few transfers run, and HTTP/1.1 connections are then closed and opened again.
    static let maxCachedConnections = 64

    init(maxConnectionsPerHost: Int = 0, http2: Bool = false) {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        self.http2 = http2
        ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING)
        ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(Self.maxCachedConnections, maxConnectionsPerHost))
        if maxConnectionsPerHost > 0 {
            ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        }
        let thread = Thread { [self] in run() }
        thread.name = "curl-engine"
        thread.start()
    }

    /// Transfers currently in flight.
    var transfersInFlight: Int { activeCount.load(ordering: .relaxed) }

    /// Connections opened so far; with reuse this grows far slower than the number of requests.
    var connectionsOpened: Int { connectionCount.load(ordering: .relaxed) }

    /// Transfers started so far.
    var transfersStarted: Int { transferCount.load(ordering: .relaxed) }

    func submit(_ command: Command) {
        commands.withLock { $0.append(command) }
        curl_multi_wakeup(multi)
    }

    private func run() {
        while true {
            let pending = commands.withLock { list -> [Command] in
                let taken = list
                list.removeAll(keepingCapacity: true)
                return taken
            }
            for command in pending { handle(command) }

            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard ccurl_msg_is_done(message) != 0, let easy = ccurl_msg_easy_handle(message) else { continue }
                let code = ccurl_msg_result(message)
                guard let transfer = active[easy] else { continue }
                remove(transfer)
                if code == CURLE_OK {
                    transfer.finish(.success(()))
                } else {
                    transfer.finish(.failure(.from(code: code, url: transfer.request.url, detail: transfer.errorText)))
                }
                transfer.releaseHandle()
            }
            var ready: Int32 = 0
            curl_multi_poll(multi, nil, 0, 1000, &ready)
        }
    }

    private func handle(_ command: Command) {
        switch command {
        case .add(let transfer):
            if transfer.state.withLock({ $0.cancelled }) {
                transfer.finish(.failure(TransportError(kind: .cancelled, curlCode: 0, url: transfer.request.url, detail: "")))
                return
            }
            if let error = transfer.makeHandle() {
                transfer.releaseHandle()
                transfer.finish(.failure(error))
                return
            }
            guard let easy = transfer.easy else { return }
            let code = curl_multi_add_handle(multi, easy)
            if code != CURLM_OK {
                transfer.releaseHandle()
                let detail = curl_multi_strerror(code).map { String(cString: $0) } ?? "curl_multi_add_handle failed"
                transfer.finish(.failure(TransportError(kind: .other, curlCode: 0, url: transfer.request.url, detail: detail)))
                return
            }
            active[easy] = transfer
            activeCount.wrappingAdd(1, ordering: .relaxed)
            transferCount.wrappingAdd(1, ordering: .relaxed)
        case .resume(let transfer):
            if let easy = transfer.easy, active[easy] != nil {
                curl_easy_pause(easy, CURLPAUSE_CONT)
            }
        case .cancel(let transfer):
            guard let easy = transfer.easy, active[easy] != nil else { return }
            remove(transfer)
            transfer.finish(.failure(TransportError(kind: .cancelled, curlCode: 0, url: transfer.request.url, detail: "")))
            transfer.releaseHandle()
        }
    }

    private func remove(_ transfer: Transfer) {
        guard let easy = transfer.easy else { return }
        var connects = 0
        if ccurl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK, connects > 0 {
            connectionCount.wrappingAdd(connects, ordering: .relaxed)
        }
        curl_multi_remove_handle(multi, easy)
        active[easy] = nil
        activeCount.wrappingSubtract(1, ordering: .relaxed)
    }
}
