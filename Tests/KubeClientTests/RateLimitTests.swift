import Testing
@testable import KubeClient

@Suite struct RateLimitTests {
    @Test func theBurstPassesThenRequestsWaitForTheirTokens() {
        let bucket = TokenBucket(RateLimit(requestsPerSecond: 10, burst: 3))
        let start = ContinuousClock.now
        for _ in 0..<3 { #expect(bucket.reserve(at: start) == .zero) }
        // Empty: the next token comes in 0.1 s, the one after in 0.2 s.
        #expect(abs(seconds(bucket.reserve(at: start)) - 0.1) < 1e-9)
        #expect(abs(seconds(bucket.reserve(at: start)) - 0.2) < 1e-9)
        // After a second the debt (2) is paid and 8 tokens have come back, up to the burst of 3.
        let later = start + .seconds(1)
        #expect(bucket.reserve(at: later) == .zero)
        #expect(bucket.reserve(at: later) == .zero)
        #expect(bucket.reserve(at: later) == .zero)
        #expect(bucket.reserve(at: later) > .zero)
    }

    func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    @Test func aClientWithoutALimitHasNoBucket() {
        let client = KubernetesClient(configuration: ClientConfiguration(server: "https://127.0.0.1:1"))
        #expect(client.rateLimiter == nil)
        var limited = ClientConfiguration(server: "https://127.0.0.1:1")
        limited.rateLimit = RateLimit(requestsPerSecond: 5, burst: 10)
        #expect(KubernetesClient(configuration: limited).rateLimiter?.limit == RateLimit(requestsPerSecond: 5, burst: 10))
    }
}
