import Foundation
import KubeClient
import KubeTypes
import Testing
@testable import ImageBuilder
@testable import ImageBuilderReconcilers

@Suite struct BaseImageCheckBookTests {
    @Test func rebuildsForMovedBasesAreRateLimitedPerHour() {
        let book = BaseImageCheckBook(maxPerHour: 2)
        let start = Date(timeIntervalSince1970: 1_000_000)
        #expect(book.takeRebuildSlot(at: start) == nil)
        #expect(book.takeRebuildSlot(at: start.addingTimeInterval(60)) == nil)
        // The third within the hour waits until the first slot is an hour old.
        #expect(book.takeRebuildSlot(at: start.addingTimeInterval(120)) == start.addingTimeInterval(3600))
        #expect(book.takeRebuildSlot(at: start.addingTimeInterval(3600)) == nil)
    }

    @Test func checksAndPendingRebuildsAreKeptPerImageSpec() {
        let book = BaseImageCheckBook(maxPerHour: 1)
        let key = ObjectKey(namespace: "hub", name: "a")
        let now = Date()
        #expect(book.lastCheck(key) == nil)
        book.apply([.checked(now), .pendingRebuild("sha256:x")], for: key)
        #expect(book.lastCheck(key) == now)
        #expect(book.pendingRebuild(key) == "sha256:x")
        book.apply([.clearPendingRebuild], for: key)
        #expect(book.pendingRebuild(key) == nil && book.lastCheck(key) == now)
        book.apply([.pendingRebuild("sha256:x")], for: key)
        #expect(book.pendingRebuild(ObjectKey(namespace: "hub", name: "b")) == nil)
        book.forget(key)
        #expect(book.lastCheck(key) == nil && book.pendingRebuild(key) == nil)
    }
}
