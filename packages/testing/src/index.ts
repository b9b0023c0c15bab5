/**
 * @sluice/testing: a MockProvider (a real local OpenAI-compatible HTTP server
 * with its own limits, latency and faults) and test layers.
 *
 * The RateLimiterStore conformance suite is imported from its own path,
 * `@sluice/testing/RateLimiterStoreConformance`, and not re-exported here:
 * it loads `vitest`, which has no place where this index is loaded (the
 * CLI's demo, the benchmark).
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as MockProvider from "./MockProvider.js"
/** @since 0.1.0 */
export * as TestHttpClient from "./TestHttpClient.js"
