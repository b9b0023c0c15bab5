/**
 * How an endpoint proves who is calling. Static credentials come from the
 * endpoint's config (`EndpointConfig.auth`: bearer token, API-key header,
 * basic); anything else is an {@link AuthProvider}, e.g. {@link cachedToken}:
 * an OAuth token fetched when first needed, kept until it expires, fetched
 * again (once, however many calls are waiting) when it has expired or a
 * server answered 401.
 *
 * Every secret is a `Redacted`: it prints as `<redacted>` in logs, errors,
 * spans and inspection; the client reveals it only into the request headers.
 * Effect gives `Redacted`, `Clock` and `Semaphore`; this module adds the
 * header shapes and the token cache.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/**
 * Fetching credentials failed (the token endpoint refused or was unreachable).
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthFailed extends Schema.TaggedError<AuthFailed>("@sluice/http/AuthFailed")("AuthFailed", {
  endpoint: Schema.String,
  reason: Schema.String
}) {
  get retryable(): boolean {
    return false
  }
  override get message(): string {
    return `Could not get credentials for endpoint "${this.endpoint}": ${this.reason}`
  }
}

/**
 * Headers to add to each request, and what to do when a server answers 401.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthProvider {
  /** The auth headers for the next request (names lower-case). */
  readonly headers: Effect.Effect<ReadonlyArray<readonly [string, Redacted.Redacted<string>]>, AuthFailed>
  /**
   * Called when a server answered 401 to headers this provider gave; the
   * request is then sent once more. `false` when there is nothing to refresh
   * (static credentials): the 401 is returned as it is.
   */
  readonly refresh: Effect.Effect<boolean, AuthFailed>
}

/**
 * Static credentials, as `EndpointConfig.auth` holds them.
 *
 * @since 0.1.0
 * @category models
 */
export type StaticAuth =
  | { readonly _tag: "Bearer"; readonly token: Redacted.Redacted<string> }
  | { readonly _tag: "ApiKey"; readonly header?: string | undefined; readonly key: Redacted.Redacted<string> }
  | { readonly _tag: "Basic"; readonly username: string; readonly password: Redacted.Redacted<string> }
  | { readonly _tag: "None" }

/**
 * The header name an API-key auth uses by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_API_KEY_HEADER = "x-api-key"

/**
 * The provider for static credentials: the same headers every time, nothing to refresh.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStatic = (auth: StaticAuth | undefined): AuthProvider => {
  const headers: ReadonlyArray<readonly [string, Redacted.Redacted<string>]> = (() => {
    switch (auth?._tag) {
      case "Bearer":
        return [["authorization", Redacted.make(`Bearer ${Redacted.value(auth.token)}`)] as const]
      case "ApiKey":
        return [[(auth.header ?? DEFAULT_API_KEY_HEADER).toLowerCase(), auth.key] as const]
      case "Basic": {
        const encoded = Buffer.from(`${auth.username}:${Redacted.value(auth.password)}`).toString("base64")
        return [["authorization", Redacted.make(`Basic ${encoded}`)] as const]
      }
      default:
        return []
    }
  })()
  return { headers: Effect.succeed(headers), refresh: Effect.succeed(false) }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Token {
  readonly token: Redacted.Redacted<string>
  /** How long it is valid from now. */
  readonly expiresIn: Duration.DurationInput
}

/**
 * A token fetched by `fetch`, cached until `refreshBefore` ahead of its
 * expiry (default 30 s), refreshed by one fetch however many calls need it,
 * and refreshed at once when a server answers 401. Sent as
 * `authorization: Bearer <token>` unless `header`/`scheme` say otherwise.
 * Needs the endpoint's name only for its error messages.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cachedToken = <E, R>(options: {
  readonly endpoint: string
  readonly fetch: Effect.Effect<Token, E, R>
  readonly header?: string | undefined
  readonly scheme?: string | undefined
  readonly refreshBefore?: Duration.DurationInput | undefined
}): Effect.Effect<AuthProvider, never, R> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<R>()
    const lock = yield* Effect.makeSemaphore(1)
    const header = (options.header ?? "authorization").toLowerCase()
    const scheme = options.scheme ?? "Bearer"
    const margin = Duration.toMillis(Duration.decode(options.refreshBefore ?? "30 seconds"))
    let current: { readonly value: Redacted.Redacted<string>; readonly validUntil: number } | undefined
    let generation = 0

    const fetchNow = (seen: number) =>
      lock.withPermits(1)(
        Effect.gen(function* () {
          // Someone else refreshed while we waited for the lock: use theirs.
          if (generation !== seen && current !== undefined) return current
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          const token = yield* options.fetch.pipe(
            Effect.provide(context),
            Effect.mapError(
              (error) =>
                new AuthFailed({
                  endpoint: options.endpoint,
                  reason: error instanceof Error ? error.message : String(error)
                })
            )
          )
          if (!Redacted.isRedacted(token.token)) {
            return yield* new AuthFailed({
              endpoint: options.endpoint,
              reason: "the token fetched is a plain string, not a Redacted secret (its value is not shown)"
            })
          }
          const lifetime = Duration.toMillis(Duration.decode(token.expiresIn))
          const value = Redacted.make(
            scheme === "" ? Redacted.value(token.token) : `${scheme} ${Redacted.value(token.token)}`
          )
          current = { value, validUntil: now + Math.max(0, lifetime - margin) }
          generation++
          return current
        })
      )

    const headers = Effect.gen(function* () {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const cached = current
      const valid = cached !== undefined && now < cached.validUntil ? cached : yield* fetchNow(generation)
      return [[header, valid.value] as const]
    })

    return {
      headers,
      refresh: Effect.suspend(() => Effect.as(fetchNow(generation), true))
    } satisfies AuthProvider
  })
