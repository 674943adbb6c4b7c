/// A clock the tests move by hand.
struct ManualClock {
    private(set) var now = ContinuousClock.now

    mutating func advance(by duration: Duration) { now = now + duration }
}

import KubeTestSupport
import Synchronization

/// A value shared between test tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }

    var value: Value { mutex.withLock { $0 } }
}
