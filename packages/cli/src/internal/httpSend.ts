/**
 * The sender's machinery: one ApiClient for the run. Every line goes through
 * the Model's call for its endpoint (`chat`, `embed`, `complete`: the body
 * checked, the token estimate reserved on the token limit and reconciled with
 * the usage the answer reports). `RunStats` counts the requests from the
 * client's Executor events.
 *
 * The ApiClient runs over a `HttpClient` wrapped to see every attempt: each
 * call is named in a FiberRef (which the Executor carries into the fiber
 * running each attempt), so the wrapper can count the attempts of each line
 * (its result's `attempts`), keep its last answer's status and `x-request-id`
 * (for the output record), tell `RunStats` of each 429, and, while the run
 * learns its limits, read the first answer that reports them: it replaces the
 * limits of the client's limiter (`learningLimiter.ts`) before the ApiClient
 * reads that answer, so the ApiClient's own header feed seeds the new limits.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import { CircuitBreaker, InvalidOptions, Retry } from "@sluice/core"
import * as ApiClient from "@sluice/http/ApiClient"
import * as ApiError from "@sluice/http/ApiError"
import * as EndpointConfig from "@sluice/http/EndpointConfig"
import * as RateLimitHeaders from "@sluice/http/RateLimitHeaders"
import { Model } from "@sluice/model"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as HttpSend from "../HttpSend.js"
import type * as Runner from "../Runner.js"
import { RunStats } from "../RunStats.js"
import { ENDPOINTS, pathUnder } from "./batchLine.js"
import * as FailureKind from "./failureKind.js"
import { InvalidLine } from "./invalidLine.js"
import * as LearnedLimits from "./learnedLimits.js"
import * as LearningLimiter from "./learningLimiter.js"
import * as Outage from "./outage.js"
import { RunError } from "./runError.js"

/** The call the current fiber works for (set around each line's send). */
const currentCall = FiberRef.unsafeMake<string | undefined>(undefined)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * The usage an answer reports, and what the provider counted against its
 * token limit (the Model's own arithmetic): with `outputTokensCharged:
 * "maximum"`, a chat line's prompt plus the `max_tokens` it asked for, for each
 * of its `n` choices (`Model.chargedChatTokens`), a completions line's prompt
 * plus its `max_tokens` (16 by default) for each choice of each prompt
 * (`Model.chargedCompletionTokens`); an embeddings line has no output.
 */
export const usageOf = (
  line: { readonly url: string; readonly body: unknown },
  response: unknown,
  outputTokensCharged: "used" | "maximum"
): Runner.Usage | undefined => {
  const usage = isRecord(response) ? response.usage : undefined
  if (!isRecord(usage)) return undefined
  const promptTokens = typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : 0
  if (line.url === "/v1/embeddings") return { promptTokens, completionTokens: 0 }
  const completionTokens = typeof usage.completion_tokens === "number" ? usage.completion_tokens : 0
  if (outputTokensCharged !== "maximum") return { promptTokens, completionTokens }
  const chargedTokens =
    line.url === "/v1/completions"
      ? Option.match(decodeCompletion(line.body), {
          onNone: () => undefined,
          onSome: (request) => Model.chargedCompletionTokens(request, { prompt_tokens: promptTokens }, "maximum")
        })
      : Option.match(decodeChat(line.body), {
          onNone: () => undefined,
          onSome: (request) => Model.chargedChatTokens(request, { prompt_tokens: promptTokens }, "maximum")
        })
  return chargedTokens === undefined
    ? { promptTokens, completionTokens }
    : { promptTokens, completionTokens, chargedTokens }
}

const decodeChat = Schema.decodeUnknownOption(Model.ChatRequest)
const decodeCompletion = Schema.decodeUnknownOption(Model.CompletionRequest)

/** The flags' limits, each over the run's window. */
export const givenLimits = (options: HttpSend.Options): LearnedLimits.Limits => {
  const windowMillis = Duration.toMillis(Duration.decode(options.window ?? "1 minute"))
  return {
    requests: options.rpm === undefined ? undefined : { limit: options.rpm, windowMillis },
    tokens: options.tpm === undefined ? undefined : { limit: options.tpm, windowMillis }
  }
}

export const DEFAULT_BURST = 0.02
export const DEFAULT_HEADROOM = 0.02

/** How long the other lines wait for the first line's answer before they go by the flags' limits. */
export const DEFAULT_LEARN_WAIT = Duration.seconds(10)

export const endpointConfig = (
  options: HttpSend.Options,
  limits: LearnedLimits.Limits = givenLimits(options)
): EndpointConfig.EndpointConfig => {
  const burst = options.burst ?? DEFAULT_BURST
  const headroom = options.headroom ?? DEFAULT_HEADROOM
  return {
    name: options.name ?? "sluice-run",
    baseUrl: options.baseUrl,
    auth: options.apiKey === undefined ? undefined : { _tag: "Bearer", token: options.apiKey },
    timeout: options.timeout,
    limits: {
      requests: limits.requests === undefined ? undefined : LearnedLimits.bucket(limits.requests, burst, headroom),
      tokens: limits.tokens === undefined ? undefined : LearnedLimits.bucket(limits.tokens, burst, headroom),
      concurrency: options.concurrency
    },
    retry: {
      maxAttempts: options.maxAttempts ?? 3,
      // A batch outlives an outage: a line refused by an open breaker waits for it (paying nothing, using no
      // attempt) instead of failing, for up to ten minutes of retrying. With `maxOutage` the sender waits
      // instead (woken when the breaker lets probes through), so the refusal comes back to it at once.
      isRetryable:
        options.maxOutage === undefined && options.waitForBreaker !== false
          ? (error) => Retry.isRetryable(error) || error instanceof CircuitBreaker.CircuitOpenError
          : Retry.isRetryable,
      maxElapsed: "10 minutes"
    },
    breaker: options.breaker,
    allowInsecureHttp: options.allowInsecureHttp
  }
}

type CallFailure =
  | ApiError.ApiError
  | Model.ModelError
  | InvalidLine
  | { readonly _tag: string; readonly message: string }

type Call = (line: Runner.BatchLine) => Effect.Effect<unknown, CallFailure>

/**
 * The breaker `sluice run` has by default (the demo's settings): over the last 20 calls, once 10 were
 * seen, half of them failing opens it; open for 1 s, then 2, 4, up to 10 s while probes keep failing;
 * two probes. Only the provider's failures count (5xx, timeouts, failed connections): a 4xx or a 429
 * is the line's own or the limiter's business.
 */
export const defaultBreaker = (name: string): CircuitBreaker.Options => ({
  name,
  policy: { kind: "count", size: 20, failureRate: 0.5, minimumCalls: 10 },
  openDuration: Schedule.union(Schedule.exponential("1 second", 2), Schedule.spaced("10 seconds")),
  halfOpenProbes: 2,
  classify: (exit) => {
    if (Exit.isSuccess(exit)) return "success"
    const failure = Cause.failureOption(exit.cause)
    if (Option.isNone(failure)) return "ignore"
    const error = failure.value
    if (error instanceof ApiError.ApiError) {
      return error.reason === "ServerError" || error.reason === "Transport" || error.reason === "Timeout"
        ? "failure"
        : "ignore"
    }
    return "failure"
  }
})

/** The limits a run can have, as the endpoint's limiter names them. */
const LIMIT_NAMES = ["requests", "tokens"] as const

export const make = (
  options: HttpSend.Options
): Effect.Effect<HttpSend.Sender, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | RunStats | Scope.Scope> =>
  Effect.gen(function* () {
    const stats = yield* RunStats
    const http = yield* HttpClient.HttpClient
    const burst = options.burst ?? DEFAULT_BURST
    const headroom = options.headroom ?? DEFAULT_HEADROOM
    if (!(burst > 0 && burst < 1) || !(headroom >= 0 && headroom < 1) || burst + headroom >= 1) {
      return yield* new InvalidOptions.InvalidOptionsError({
        component: "HttpSend",
        issues: `["burst"] and ["headroom"] Expected a burst above 0, a headroom from 0, and together below 1 (the run paces at 1 - headroom - burst of a limit), actual ${burst} and ${headroom}`
      })
    }
    // A shared limiter's limits are its domain's, given: nothing to learn.
    const learn = options.rateLimiter === undefined && (options.learnLimits ?? true)
    const outputTokensCharged = options.outputTokensCharged ?? "maximum"
    const given = givenLimits(options)
    const name = options.name ?? "sluice-run"
    // Pausing through outages needs a breaker to tell an outage from a line's bad luck: one by default.
    const breaker =
      options.maxOutage === undefined
        ? options.breaker
        : options.breaker === undefined
          ? yield* CircuitBreaker.make(defaultBreaker(name))
          : "protect" in options.breaker
            ? options.breaker
            : yield* CircuitBreaker.make({ ...options.breaker, name: options.breaker.name ?? name })
    const config = endpointConfig({ ...options, breaker }, given)
    /** Completes when the run must stop at once: the credentials refused, or an outage past `maxOutage`. */
    const halted = yield* Deferred.make<RunError>()
    const outage =
      options.maxOutage === undefined
        ? undefined
        : yield* Outage.forRun({
            maxOutage: options.maxOutage,
            stats,
            halted,
            silent: "it has not answered",
            back: "the provider"
          })
    if (breaker !== undefined && "subscribe" in breaker) {
      const transitions = yield* breaker.subscribe
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.flatMap(Queue.take(transitions), (transition) =>
            Effect.zipRight(
              // The breaker opened (tripped, or a probe failed): the provider is down, if no answer says otherwise.
              outage !== undefined && transition.to === "OPEN"
                ? Effect.zipRight(stats.setBreaker(transition.to), outage.down())
                : stats.setBreaker(transition.to),
              // Probes may go, or the breaker closed: the waiting lines try now rather than at their timer.
              outage !== undefined && (transition.to === "HALF_OPEN" || transition.to === "CLOSED")
                ? outage.wake
                : Effect.void
            )
          )
        )
      )
    }
    /** Each call's answers-so-far count when its last attempt began (see `Outage.answers`). */
    const answersAtAttempt = new Map<string, number>()
    /** Attempts so far of each call in flight, by its call id. */
    const attempts = new Map<string, number>()
    /** The last answer of each call in flight: its status and `x-request-id`. */
    const lastAnswer = new Map<string, { readonly status: number; readonly requestId: string | undefined }>()
    let nextCall = 0

    /** The bucket of each limit in `limits`, by the limiter's names. */
    const bucketsOf = (limits: LearnedLimits.Limits) => {
      const buckets: Record<string, EndpointConfig.LimitOptions> = {}
      for (const name of LIMIT_NAMES) {
        const limit = limits[name]
        if (limit !== undefined) buckets[name] = LearnedLimits.bucket(limit, burst, headroom)
      }
      return buckets
    }
    // Bad options are named by the endpoint's own check, before any limiter is built from them.
    yield* EndpointConfig.validate(config)
    // Learning: the one client goes by the flags' limits until the first answer says the server's.
    const learning = learn
      ? yield* LearningLimiter.make({
          name: `endpoint:${config.name}`,
          limitNames: LIMIT_NAMES,
          limits: bucketsOf(given)
        })
      : undefined
    /** Told once what the rest of the run goes by: learned limits (the tighter of them and the flags'), or the flags'. */
    const decided = yield* Deferred.make<LearnedLimits.Limits>()
    /** What the limiter took from the first answer that reported limits, and the call that got it. */
    let learned: { readonly limits: LearnedLimits.Limits; readonly call: string } | undefined
    let released = false
    /**
     * Lets the other lines go. Once the limits were learned, only when the ApiClient has read the answer that
     * reported them (its `remaining` counts seed the new buckets): when the call that got it ends or makes
     * another attempt.
     */
    const release = Effect.suspend(() => {
      released = true
      return Deferred.succeed(decided, learned?.limits ?? given)
    })

    /** Learns from the first answer that reports a limit, replacing the limiter's limits before the ApiClient reads it. */
    const learnFrom = (
      learning: LearningLimiter.LearningLimiter,
      call: string,
      headers: RateLimitHeaders.RateLimitInfo
    ) =>
      Effect.suspend(() => {
        const reported = LearnedLimits.fromHeaders(headers)
        // An answer that reports no limit (a proxy's 502 page) teaches nothing: the first line's retry may.
        if (reported.requests === undefined && reported.tokens === undefined) return Effect.void
        const limits = LearnedLimits.combine(given, reported)
        learned = { limits: given, call }
        // Limits no limiter can be built with (nothing a header parses to should give them) leave the flags'.
        return Effect.ignore(
          Effect.map(learning.replace(bucketsOf(limits)), () => {
            learned = { limits, call }
          })
        )
      })

    const observed: HttpClient.HttpClient = HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
      (requestEffect) =>
        Effect.flatMap(Effect.zip(requestEffect, FiberRef.get(currentCall)), ([request, call]) => {
          if (call === undefined) return http.execute(request)
          attempts.set(call, (attempts.get(call) ?? 0) + 1)
          if (outage !== undefined) answersAtAttempt.set(call, outage.answers())
          return Effect.gen(function* () {
            // The call that taught the limits tries again: the ApiClient has read the answer that taught them.
            if (learned !== undefined && learned.call === call) yield* release
            const response = yield* http.execute(request)
            lastAnswer.set(call, { status: response.status, requestId: response.headers["x-request-id"] })
            if (outage !== undefined && response.status < 500) yield* outage.alive
            if (response.status === 429) yield* stats.rateLimited
            if (learning !== undefined && learned === undefined && !released) {
              yield* learnFrom(learning, call, RateLimitHeaders.parse(response.headers, yield* Clock.currentTimeMillis))
            }
            return response
          })
        }),
      Effect.succeed
    )

    const api = yield* Effect.provideService(
      ApiClient.make(
        config,
        options.rateLimiter !== undefined
          ? { rateLimiter: options.rateLimiter }
          : learning === undefined
            ? {}
            : { rateLimiter: learning.limiter }
      ),
      HttpClient.HttpClient,
      observed
    )
    if (api.progress !== undefined) yield* stats.observe(api.progress)
    const publish = (limits: LearnedLimits.Limits) =>
      stats.setLimits({ rpm: LearnedLimits.perMinute(limits.requests), tpm: LearnedLimits.perMinute(limits.tokens) })
    /** Calls over the one client, by a Model that knows `limits` (its largest request is the token limit). */
    const callsFor = (limits: LearnedLimits.Limits) =>
      Effect.map(
        Model.fromClient(api, {
          outputTokensCharged,
          maxRequestTokens: limits.tokens?.limit,
          // Each endpoint's path under the base URL (`/v1/chat/completions` under `.../v1` is `/chat/completions`).
          chatPath: pathUnder(api.baseUrl, "/v1/chat/completions"),
          embedPath: pathUnder(api.baseUrl, "/v1/embeddings"),
          completePath: pathUnder(api.baseUrl, "/v1/completions")
        }),
        callThrough
      )

    yield* publish(given)
    const first = yield* callsFor(given)
    let send: Call = first
    if (learning !== undefined) {
      const scope = yield* Effect.scope
      // The rest, once the limits are decided; built once, in the sender's own scope (a line interrupted while
      // it waits leaves it to the others). The waiting lines await a Deferred, which wakes them in the order
      // they came (a fiber's joiners are woken last first: the lines would go out 1, 16, 15, ..., 2).
      const rest = yield* Deferred.make<Call>()
      yield* Effect.forkIn(
        Deferred.await(decided).pipe(
          Effect.tap(publish),
          Effect.flatMap(callsFor),
          Effect.orDie,
          Effect.intoDeferred(rest)
        ),
        scope
      )
      let firstSent = false
      send = (line) => {
        if (!firstSent) {
          firstSent = true
          // The first line goes alone. A first answer slow in coming (or never coming) holds the rest back only
          // `learnWait`; a first line that ends having taught nothing lets them go at once, by the flags.
          const wait = Deferred.await(decided).pipe(
            Effect.timeoutOption(options.learnWait ?? DEFAULT_LEARN_WAIT),
            Effect.zipRight(release)
          )
          return Effect.zipRight(Effect.forkIn(wait, scope), Effect.ensuring(first(line), release))
        }
        return Effect.flatMap(Deferred.await(rest), (call) => call(line))
      }
    }

    /** A line's final failure; with the `x-request-id` of the answer that refused it, when one did. */
    const failed = (
      failure: CallFailure,
      verdict: FailureKind.Verdict,
      attemptsMade: number,
      answer: { readonly status: number; readonly requestId: string | undefined } | undefined
    ) =>
      new RunError({
        reason: "SendFailed",
        errorKind: verdict.errorKind,
        detail: failure.message,
        attempts: attemptsMade,
        retryable: verdict.retryable,
        label: verdict.label,
        failureClass: verdict.refused ? "refused" : verdict.class === "systemic" ? "systemic" : "own",
        ...(verdict.status === undefined ? {} : { status: verdict.status }),
        ...(answer?.requestId !== undefined && answer.status === verdict.status ? { requestId: answer.requestId } : {})
      })

    /** The run stops: every line would be refused the same way. */
    const authFailed = (line: Runner.BatchLine, failure: CallFailure, verdict: FailureKind.Verdict) =>
      Effect.suspend(() => {
        const error = new RunError({
          reason: "AuthenticationFailed",
          errorKind: verdict.errorKind,
          label: verdict.label,
          ...(verdict.status === undefined ? {} : { status: verdict.status }),
          detail: `the provider refused ${options.apiKey === undefined ? "the request: no API key was sent (name the variable holding one with --api-key-env)" : "the API key (check the variable named by --api-key-env)"}; line ${line.lineNumber} (custom_id ${JSON.stringify(line.customId)}) got: ${failure.message}. The run stopped at once; lines without a result stay for a rerun`
        })
        return Effect.zipRight(Deferred.succeed(halted, error), Effect.fail(error))
      })

    const sendLine = (line: Runner.BatchLine): Effect.Effect<Runner.SendResult, RunError> => {
      const id = String(++nextCall)
      const attemptsOf = () => attempts.get(id) ?? 0
      const once = send(line).pipe(
        Effect.map((response): Runner.SendResult => {
          const usage = usageOf(line, response, outputTokensCharged)
          const answer = lastAnswer.get(id)
          return {
            response,
            attempts: attemptsOf(),
            ...(answer === undefined ? {} : { statusCode: answer.status, requestId: answer.requestId }),
            ...(usage === undefined ? {} : { usage })
          }
        })
      )
      /**
       * Sends the line; a systemic failure that no answer followed (the provider is down for everyone)
       * waits for the provider and sends it again (the breaker, while open, refuses it at no cost), for as
       * long as the outage is allowed to last.
       */
      const loop = (round: number): Effect.Effect<Runner.SendResult, RunError> =>
        Effect.catchAll(once, (failure) => {
          const verdict = FailureKind.verdictOf(failure)
          if (verdict.class === "auth") return authFailed(line, failure, verdict)
          if (outage === undefined || verdict.class !== "systemic") {
            return Effect.fail(failed(failure, verdict, attemptsOf(), lastAnswer.get(id)))
          }
          // Refused by the open breaker, or no answer to anyone since its last attempt began: the provider is down.
          // The shared limits' store down (--redis) is an outage whatever the provider answers others meanwhile.
          const refused = verdict.refused
          if (!refused && verdict.storeDown !== true && outage.answers() !== (answersAtAttempt.get(id) ?? -1)) {
            return Effect.fail(failed(failure, verdict, attemptsOf(), lastAnswer.get(id)))
          }
          // Until the breaker would let it through, else a backoff; woken early by a sign the provider is back.
          const retryAfter = (failure as { readonly retryAfterMillis?: unknown }).retryAfterMillis
          const pause = Duration.millis(
            refused && typeof retryAfter === "number" && Number.isFinite(retryAfter)
              ? Math.max(50, retryAfter)
              : Math.min(5_000, 500 * 2 ** Math.min(round, 4))
          )
          // A refusal says nothing new (the failures that opened the breaker did); a failure starts the outage.
          return (refused ? Effect.void : outage.down(verdict.label)).pipe(
            Effect.zipRight(
              Effect.acquireUseRelease(
                outage.waiting(1),
                () => Effect.raceFirst(Effect.sleep(pause), outage.nextChance),
                () => outage.waiting(-1)
              )
            ),
            Effect.zipRight(Effect.suspend(() => loop(round + 1)))
          )
        })
      // Once the run must stop, every line stops with the same error.
      return Effect.raceFirst(loop(0), Effect.flatMap(Deferred.await(halted), Effect.fail)).pipe(
        Effect.locally(currentCall, id),
        Effect.ensuring(
          Effect.sync(() => {
            attempts.delete(id)
            answersAtAttempt.delete(id)
            lastAnswer.delete(id)
          })
        )
      )
    }
    return Object.assign(sendLine, { halted: Deferred.await(halted) }) satisfies HttpSend.Sender
  })

/** Each endpoint's line through the Model, which checks its body, estimates and reconciles its tokens. */
const callThrough =
  (model: Model.ModelShape): Call =>
  (line) => {
    switch (line.url) {
      case "/v1/chat/completions":
        return Effect.flatMap(decodeLine(Model.ChatRequest, line), model.chat)
      case "/v1/embeddings":
        return Effect.flatMap(decodeLine(Model.EmbedRequest, line), model.embed)
      case "/v1/completions":
        return Effect.flatMap(decodeLine(Model.CompletionRequest, line), model.complete)
      default:
        // `BatchLine.parse` lets no other url through.
        return Effect.fail(new InvalidLine({ detail: `the url is not one of ${ENDPOINTS.join(", ")}` }))
    }
  }

/** A line's body as the Model's request: a body it cannot be is the line's own failure, sent nowhere. */
const decodeLine = <A, I>(schema: Schema.Schema<A, I>, line: Runner.BatchLine) =>
  Schema.decodeUnknown(schema)(line.body).pipe(
    Effect.mapError(
      (error) =>
        new InvalidLine({
          // Where and what kind, never the values: a body may hold anything.
          detail: `the body is not a valid request: ${ParseResult.ArrayFormatter.formatErrorSync(error)
            .map((issue) => `${JSON.stringify(issue.path)} ${issue._tag}`)
            .join("; ")}`
        })
    )
  )
