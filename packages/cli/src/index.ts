/**
 * @sluice/cli: the `sluice` command, and the batch runner behind `sluice run`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Cli from "./Cli.js"
/** @since 0.1.0 */
export * as HttpSend from "./HttpSend.js"
/** @since 0.1.0 */
export * as Runner from "./Runner.js"
/** @since 0.1.0 */
export * as RunStats from "./RunStats.js"
