/**
 * The Router's one error type, in its own module so that the machinery and
 * the public module can both use it without importing each other.
 */
import * as Schema from "effect/Schema"

/** Why the Router itself failed a call, or refused a change. */
export const RouterErrorReason = Schema.Literal(
  "NoProvider",
  "NoAdmission",
  "ContextWindow",
  "UnknownProvider",
  "DuplicateProvider",
  "UnknownDomain"
)
export type RouterErrorReason = typeof RouterErrorReason.Type

export class RouterError extends Schema.TaggedError<RouterError>("@sluice/core/Router/RouterError")("RouterError", {
  router: Schema.String,
  reason: RouterErrorReason,
  /** `UnknownProvider`, `DuplicateProvider`: the provider named. */
  provider: Schema.optional(Schema.String),
  /** `UnknownDomain`: the domain named. */
  domain: Schema.optional(Schema.String),
  /** `NoAdmission`: the earliest admission among the candidates (ms from now) and what was left of the deadline. */
  earliestMillis: Schema.optional(Schema.Number),
  deadlineMillis: Schema.optional(Schema.Number),
  /** `ContextWindow`: the tokens the call needs, and the largest window declared. */
  contextTokens: Schema.optional(Schema.Number),
  largestWindow: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    const messages: Record<RouterErrorReason, string> = {
      NoProvider: `Router "${this.router}" has no provider that can take this call (none registered, or every one is draining or was tried)`,
      NoAdmission: `Router "${this.router}": no provider's quota can admit this call before its deadline (earliest admission in ${this.earliestMillis} ms, ${this.deadlineMillis} ms left)`,
      ContextWindow: `Router "${this.router}": the call needs ${this.contextTokens} tokens of context; the largest window declared by a provider left is ${this.largestWindow}`,
      UnknownProvider: `Router "${this.router}" has no provider named "${this.provider}"`,
      DuplicateProvider: `Router "${this.router}" already has a provider named "${this.provider}"`,
      UnknownDomain: `Router "${this.router}": provider "${this.provider}" names quota domain "${this.domain}", which is not declared in domains`
    }
    return messages[this.reason]
  }
  /** Only a call that found no admission before its deadline may fare better later. */
  get retryable(): boolean {
    return this.reason === "NoAdmission"
  }
}
