/**
 * @sluice/http-node: the Node `HttpClient` (an undici pool) for `@sluice/http`'s clients.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NodeHttpPool from "./NodeHttpPool.js"
