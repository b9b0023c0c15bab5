/**
 * @sluice/testing: a MockProvider (a real local OpenAI-compatible HTTP server
 * with its own limits, latency and faults) and test layers.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as MockProvider from "./MockProvider.js"
/** @since 0.1.0 */
export * as TestHttpClient from "./TestHttpClient.js"
