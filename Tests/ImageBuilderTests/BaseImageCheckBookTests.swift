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

@Suite struct OwnWriteBookTests {
    /// The book lets a pass skip asking the API for the current version only when the cache shows
    /// this process's last write (or there was none).
    @Test func aCachedVersionIsCurrentOnlyWhenItShowsTheLastOwnWrite() {
        let book = OwnWriteBook()
        let key = ObjectKey(namespace: "hub", name: "a"), other = ObjectKey(namespace: "hub", name: "b")
        #expect(book.cacheShowsOwnWrites(key, cachedVersion: "7"), "never written by this process")
        #expect(!book.cacheShowsOwnWrites(key, cachedVersion: nil), "a cached object without a version")
        book.remember(key, version: "9")
        #expect(!book.cacheShowsOwnWrites(key, cachedVersion: "7"), "the cache is behind the write")
        #expect(!book.cacheShowsOwnWrites(key, cachedVersion: "12"), "someone else wrote after it: only equality counts")
        #expect(book.cacheShowsOwnWrites(key, cachedVersion: "9"))
        #expect(book.cacheShowsOwnWrites(other, cachedVersion: "7"), "kept per object")
        book.forget(key)
        #expect(book.cacheShowsOwnWrites(key, cachedVersion: "7"), "forgotten with the object")
    }
}
