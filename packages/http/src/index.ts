/**
 * @sluice/http: the resource client for one metered HTTP API.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as ApiClient from "./ApiClient.js"
/** @since 0.1.0 */
export * as ApiError from "./ApiError.js"
/** @since 0.1.0 */
export * as Auth from "./Auth.js"
/** @since 0.1.0 */
export * as EndpointConfig from "./EndpointConfig.js"
/** @since 0.1.0 */
export * as HealthProbe from "./HealthProbe.js"
/** @since 0.1.0 */
export * as RateLimitHeaders from "./RateLimitHeaders.js"
