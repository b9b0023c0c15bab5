/**
 * @sluice/core: rate limiting, admission and execution of metered calls.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CircuitBreaker from "./CircuitBreaker.js"
/** @since 0.1.0 */
export * as CircuitBreakerStore from "./CircuitBreakerStore.js"
/** @since 0.1.0 */
export * as Executor from "./Executor.js"
/** @since 0.1.0 */
export * as Hedge from "./Hedge.js"
/** @since 0.1.0 */
export * as InvalidOptions from "./InvalidOptions.js"
/** @since 0.1.0 */
export * as ProviderPool from "./ProviderPool.js"
/** @since 0.1.0 */
export * as RateLimiter from "./RateLimiter.js"
/** @since 0.1.0 */
export * as RateLimiterStore from "./RateLimiterStore.js"
/** @since 0.1.0 */
export * as RequestEvent from "./RequestEvent.js"
/** @since 0.1.0 */
export * as Retry from "./Retry.js"
/** @since 0.1.0 */
export * as Router from "./Router.js"
