/**
 * @sluice/cli: the batch runner behind `sluice run`. The `sluice` command itself
 * is the package's bin (`dist/bin.js`, one bundled file that carries the
 * command line and the demo's MockProvider); its modules (`Cli`, `Demo`) are
 * not exported.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as HttpSend from "./HttpSend.js"
/** @since 0.1.0 */
export * as Runner from "./Runner.js"
/** @since 0.1.0 */
export * as RunReport from "./RunReport.js"
/** @since 0.1.0 */
export * as RunStats from "./RunStats.js"
