/**
 * @sluice/model: the Model service (chat and embeddings on an OpenAI-compatible
 * API), with token estimation reserved and reconciled.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Model from "./Model.js"
/** @since 0.1.0 */
export * as TokenEstimator from "./TokenEstimator.js"
