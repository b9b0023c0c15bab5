/**
 * The life of one request through an Executor, as a record that observers
 * receive each time its status changes.
 *
 * PENDING (submitted) → QUEUED (waiting in the priority queue) → PROCESSING
 * (dequeued; waiting for rate and token admission, then a concurrency permit)
 * → CALLING (running) → COMPLETED | FAILED | CANCELLED. A request can be
 * CANCELLED from any status before it ends (its caller was interrupted, or the
 * executor shut down and abandoned it).
 *
 * Effect gave us `PubSub` and `Stream` to carry these; this module only fixes
 * the record's shape.
 *
 * @since 0.1.0
 */
import type { Cost } from "./RateLimiter.js"
import type { GiveUpReason } from "./Retry.js"

/**
 * @since 0.1.0
 * @category models
 */
export type RequestStatus = "PENDING" | "QUEUED" | "PROCESSING" | "CALLING" | "COMPLETED" | "FAILED" | "CANCELLED"

/**
 * Every status, in lifecycle order.
 *
 * @since 0.1.0
 * @category constants
 */
export const statuses: ReadonlyArray<RequestStatus> = [
  "PENDING",
  "QUEUED",
  "PROCESSING",
  "CALLING",
  "COMPLETED",
  "FAILED",
  "CANCELLED"
]

/**
 * @since 0.1.0
 * @category models
 */
export type RequestId = number

/**
 * How one attempt ended, and what followed it.
 *
 * @since 0.1.0
 * @category models
 */
export interface AttemptRecord {
  readonly attempt: number
  readonly startedAt: number
  readonly endedAt: number
  /** `rejected`: refused before it was sent (an open breaker, or a cost no limit can pay). */
  readonly outcome: "success" | "failure" | "timeout" | "rejected" | "interrupted"
  readonly error?: unknown
  /** The delay before the next attempt (ms), if there was one. */
  readonly retryDelayMillis?: number
  /** Why no further attempt was made, if the retry policy gave up. */
  readonly gaveUp?: GiveUpReason
}

/**
 * A snapshot of one request, published on every status change.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestEvent {
  readonly id: RequestId
  readonly executor: string
  readonly key: string
  readonly priority: number
  /** The cost the request was submitted with (see `RateLimiter.Cost`). */
  readonly cost: Cost | undefined
  readonly status: RequestStatus
  /** When the request entered each status it has been through (ms on the executor's Clock). */
  readonly timestamps: Readonly<Partial<Record<RequestStatus, number>>>
  /** Attempts started so far. */
  readonly attempts: number
  /** Each finished attempt, when the request runs with a retry policy, breaker or deadline. */
  readonly attemptLog?: ReadonlyArray<AttemptRecord>
  /** The failure (FAILED), or why it was cancelled (CANCELLED). */
  readonly error?: unknown
}

/**
 * @example
 * ```ts
 * import { RequestEvent } from "@sluice/core"
 * const done: boolean = RequestEvent.isTerminal("COMPLETED")
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isTerminal = (status: RequestStatus): boolean =>
  status === "COMPLETED" || status === "FAILED" || status === "CANCELLED"
