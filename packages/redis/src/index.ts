/**
 * @sluice/redis: one rate-limit quota shared by many processes through Redis.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as RedisBreakerStore from "./RedisBreakerStore.js"
/** @since 0.1.0 */
export * as RedisClient from "./RedisClient.js"
/** @since 0.1.0 */
export * as RedisStore from "./RedisStore.js"
