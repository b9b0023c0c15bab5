/**
 * The routed Model: several endpoints behind one Router, the Model's
 * interface unchanged. Against two real MockProviders (real sockets, the
 * test's clock still): calls spread over both; one answering 503 moves the
 * traffic to the other with no call failing, and is ejected. With in-memory
 * HTTP (one handler per endpoint, by host): a context too long falls over to
 * the provider with the larger window (and a call that cannot fit a window
 * is never sent there); a 429 cools its provider's domain and the call is
 * answered by the other domain; a content-policy refusal follows the
 * content-filter chain; providers sharing a quota domain share its bucket
 * and its cooldown; the tokens are reserved and reconciled on the provider
 * that answered; errors are the Model's own, naming the provider.
 */
import { describe, expect, it } from "@effect/vitest"
import { Router } from "@sluice/core"
import type { EndpointConfig } from "@sluice/http"
import { NodeHttpPool } from "@sluice/http-node"
import * as MockProvider from "@sluice/testing/MockProvider"
import { awaitEvent } from "@sluice/testing/TestEvents"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { Model, TokenEstimator } from "../src/index.js"

/** Lets real I/O happen without moving the test's clock: waits (bounded in real time) for the call to end. */
const run = <A, E>(effect: Effect.Effect<A, E>) => awaitEvent("the call ends", Effect.exit(effect))

const succeeded = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isFailure(exit)) throw new Error(Cause.pretty(exit.cause))
  return exit.value
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a typed failure: ${Cause.pretty(exit.cause)}`)
  return failure.value
}

const chat = (content: string, extra: Partial<Model.ChatRequest> = {}): Model.ChatRequest => ({
  model: "mock-1",
  messages: [{ role: "user", content }],
  ...extra
})

const endpoint = (
  name: string,
  baseUrl: string,
  extra: Partial<EndpointConfig.EndpointConfig> = {}
): EndpointConfig.EndpointConfig => ({
  name,
  baseUrl,
  limits: { tokens: { limit: 100_000, interval: "1 minute" } },
  ...extra
})

/** A routed Model over the two MockProviders, built in the test's scope over the real undici pool. */
const overMocks = (
  a: MockProvider.MockProviderShape,
  b: MockProvider.MockProviderShape,
  extra: Partial<Model.RoutedOptions> = {}
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Model.layerRouted({
        name: "pair",
        strategy: "roundRobin",
        providers: [{ endpoint: endpoint("a", a.baseUrl) }, { endpoint: endpoint("b", b.baseUrl) }],
        ...extra
      }).pipe(Layer.provide(NodeHttpPool.layer()))
    )
    return { model: Context.get(context, Model.Model), router: Context.get(context, Router.Router) }
  })

describe("Model.layerRouted against two MockProviders", () => {
  it.scoped("chat spreads over both providers; each reserves and reconciles on its own limits", () =>
    Effect.gen(function* () {
      const a = yield* MockProvider.make({})
      const b = yield* MockProvider.make({})
      const { model, router } = yield* overMocks(a, b)
      for (let i = 0; i < 6; i++) {
        const response = succeeded(yield* run(model.chat(chat(`question ${i}`))))
        expect(response.choices[0]!.finish_reason).toBe("stop")
      }
      expect([(yield* a.counters).served, (yield* b.counters).served]).toEqual([3, 3])
      const snapshot = yield* router.snapshot
      expect(snapshot.providers.map((provider) => [provider.name, provider.inFlight])).toEqual([
        ["a", 0],
        ["b", 0]
      ])
    })
  )

  it.scoped("one provider answering 503: every call is answered by the other, and the failing one is ejected", () =>
    Effect.gen(function* () {
      const a = yield* MockProvider.make({ faults: { serviceUnavailable503: 1 } })
      const b = yield* MockProvider.make({})
      const { model, router } = yield* overMocks(a, b, {
        ejection: { consecutiveFailures: 3, baseEjectionTime: "1 minute" }
      })
      for (let i = 0; i < 10; i++) {
        succeeded(yield* run(model.chat(chat(`question ${i}`))))
      }
      const failing = yield* a.counters
      expect(failing.served).toBe(0)
      // Three 503s in a row eject it; no call after that is sent to it.
      expect(failing.faults.serviceUnavailable503).toBe(3)
      expect((yield* b.counters).served).toBe(10)
      const state = (yield* router.snapshot).providers.find((provider) => provider.name === "a")!
      expect(state.state).toBe("ejected")
    })
  )
})

// ---- in-memory HTTP, one handler per endpoint --------------------------------

type Behaviour = (request: TestHttpClient.TestRequest) => TestHttpClient.TestResponse

const completion = (model: string, usage = { prompt: 10, completion: 5 }, finishReason = "stop") => ({
  status: 200,
  body: {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: "Hello!" }, finish_reason: finishReason }],
    usage: {
      prompt_tokens: usage.prompt,
      completion_tokens: usage.completion,
      total_tokens: usage.prompt + usage.completion
    }
  }
})

const refusal = (status: number, message: string, code: string, headers: Record<string, string> = {}) => ({
  status,
  headers,
  body: { error: { message, type: "invalid_request_error", param: null, code } }
})

/** Always estimates 1,000 prompt tokens and 200 of output: 1,200 reserved. */
const fixedEstimator: TokenEstimator.TokenEstimator = {
  chat: () => ({ prompt: 1_000, maxOutput: 200 }),
  embed: () => ({ prompt: 50, maxOutput: 0 }),
  complete: () => ({ prompt: 1_000, maxOutput: 200 })
}

/**
 * A routed Model over in-memory endpoints `https://<name>.test`, each answered by its behaviour;
 * every request is recorded with the endpoint it reached.
 */
const inMemory = (
  behaviours: Record<string, Behaviour>,
  options: Omit<Model.RoutedOptions, "providers"> & {
    readonly providers: ReadonlyArray<
      Omit<Model.RoutedProvider, "endpoint"> & {
        readonly name: string
        readonly concurrency?: number
        readonly apiKey?: Redacted.Redacted<string>
      }
    >
  }
) =>
  Effect.gen(function* () {
    const seen: Array<{
      readonly provider: string
      readonly method: string
      readonly path: string
      readonly authorization: string | undefined
      readonly body: unknown
    }> = []
    const handler: TestHttpClient.Handler = (request) => {
      const provider = request.url.hostname.replace(".test", "")
      seen.push({
        provider,
        method: request.method,
        path: request.url.pathname,
        authorization: request.headers.authorization,
        body: request.body
      })
      return behaviours[provider]!(request)
    }
    const routed = yield* Model.makeRouted({
      estimator: fixedEstimator,
      ...options,
      providers: options.providers.map(({ apiKey, concurrency, name, ...provider }) => ({
        ...provider,
        endpoint: {
          name,
          baseUrl: `https://${name}.test/v1`,
          ...(apiKey === undefined ? {} : { auth: { _tag: "Bearer" as const, token: apiKey } }),
          // A member of a shared domain draws on the domain's limits.
          ...(provider.domain === undefined
            ? { limits: { tokens: { limit: 10_000, interval: "1 minute" }, concurrency } }
            : concurrency === undefined
              ? {}
              : { limits: { concurrency } })
        }
      }))
    }).pipe(Effect.provide(TestHttpClient.layer(handler)))
    return { routed, seen }
  })

/** The tokens left in a provider's bucket (the clock does not move: no refill). */
const tokensLeft = (routed: Model.RoutedModel, provider: string) =>
  Effect.map(
    Effect.orDie(routed.state(provider)),
    (buckets) => buckets.find((bucket) => bucket.name === "tokens")!.available
  )

describe("Model.makeRouted with in-memory providers", () => {
  it.scoped("keeps the Model's interface: a routed Model is a ModelShape", () =>
    Effect.gen(function* () {
      const { routed } = yield* inMemory({ a: () => completion("mock-1") }, { providers: [{ name: "a" }] })
      const model: Model.ModelShape = routed
      expect(Object.keys(model).sort()).toEqual(["chat", "complete", "embed", "router", "state"])
      expect((yield* model.chat(chat("hi"))).choices[0]!.message.content).toBe("Hello!")
    })
  )

  it.scoped("context too long on the small window falls over to the larger one; a call that cannot fit skips it", () =>
    Effect.gen(function* () {
      const { routed, seen } = yield* inMemory(
        {
          small: () =>
            refusal(
              400,
              "This model's maximum context length is 2048 tokens. However, your messages resulted in 2400 tokens.",
              "context_length_exceeded"
            ),
          large: () => completion("mock-1")
        },
        {
          estimator: TokenEstimator.standard,
          providers: [
            { name: "small", contextWindow: 2_048 },
            { name: "large", contextWindow: 128_000, tier: 1 }
          ]
        }
      )
      // A short prompt and 200 tokens of output fit the small window's declaration: tried there, refused
      // (the provider counts otherwise), answered by the large one.
      const answered = yield* routed.chat(chat("a long prompt", { max_tokens: 200 }))
      expect(answered.choices).toHaveLength(1)
      expect(seen.map((request) => request.provider)).toEqual(["small", "large"])
      // Asking for 4,000 tokens of output cannot fit 2,048: the small one is passed over.
      yield* routed.chat(chat("a long prompt", { max_tokens: 4_000 }))
      expect(seen.map((request) => request.provider)).toEqual(["small", "large", "large"])
    })
  )

  it.scoped("context too long everywhere: a ContextTooLong ModelError naming the provider, with its numbers", () =>
    Effect.gen(function* () {
      const tooLong = () =>
        refusal(
          400,
          "This model's maximum context length is 2048 tokens. However, your messages resulted in 2400 tokens.",
          "context_length_exceeded"
        )
      const { routed, seen } = yield* inMemory(
        { small: tooLong, other: tooLong },
        {
          strategy: "roundRobin",
          providers: [
            { name: "small", contextWindow: 2_048 },
            { name: "other", contextWindow: 2_048 }
          ]
        }
      )
      const error = failureOf(yield* Effect.exit(routed.chat(chat("a long prompt", { max_tokens: 200 }))))
      expect(error).toMatchObject({
        _tag: "ModelError",
        reason: "ContextTooLong",
        provider: "small",
        maxContextTokens: 2_048
      })
      // No provider declares a larger window: no second try.
      expect(seen).toHaveLength(1)
    })
  )

  it.scoped("a 429 cools its provider's domain; the call is answered by the other domain, no call fails", () =>
    Effect.gen(function* () {
      const { routed, seen } = yield* inMemory(
        {
          busy: () => refusal(429, "Rate limit reached", "rate_limit_exceeded", { "retry-after": "20" }),
          calm: () => completion("mock-1")
        },
        { strategy: "roundRobin", providers: [{ name: "busy" }, { name: "calm" }] }
      )
      for (let i = 0; i < 3; i++) yield* routed.chat(chat(`question ${i}`))
      // busy was tried once; its domain then cooled for the 20 s it asked; calm answered all three.
      expect(seen.map((request) => request.provider)).toEqual(["busy", "calm", "calm", "calm"])
      const domains = (yield* routed.router.snapshot).domains
      expect(domains.find((domain) => domain.name === "busy")!.cooldownUntil).toBe(20_000)
      // Reconciled to each answer's usage (15) where it was answered; the refused one's tokens given back.
      expect(yield* tokensLeft(routed, "calm")).toBe(10_000 - 3 * 15)
      expect(yield* tokensLeft(routed, "busy")).toBe(10_000)
    })
  )

  it.scoped(
    "providers sharing a quota domain: a 429 on one cools both; the call and the next go to the other domain",
    () =>
      Effect.gen(function* () {
        const { routed, seen } = yield* inMemory(
          {
            east: () => refusal(429, "Rate limit reached", "rate_limit_exceeded", { "retry-after": "20" }),
            west: () => completion("mock-1"),
            other: () => completion("mock-1")
          },
          {
            strategy: "roundRobin",
            domains: { org: { tokens: { limit: 10_000, interval: "1 minute" } } },
            providers: [{ name: "east", domain: "org" }, { name: "west", domain: "org" }, { name: "other" }]
          }
        )
        for (let i = 0; i < 3; i++) yield* routed.chat(chat(`question ${i}`))
        // west shares east's spent quota: it is passed over too.
        expect(seen.map((request) => request.provider)).toEqual(["east", "other", "other", "other"])
        const domains = (yield* routed.router.snapshot).domains
        expect(domains.find((domain) => domain.name === "org")!.cooldownUntil).toBe(20_000)
        // One bucket for the domain: east's and west's are the same.
        expect(yield* tokensLeft(routed, "west")).toBe(yield* tokensLeft(routed, "east"))
        expect(yield* tokensLeft(routed, "east")).toBe(10_000)
        expect(yield* tokensLeft(routed, "other")).toBe(10_000 - 3 * 15)

        const ownLimits = yield* Effect.flip(
          Model.makeRouted({
            domains: { org: { tokens: { limit: 10_000, interval: "1 minute" } } },
            providers: [
              {
                endpoint: {
                  name: "a",
                  baseUrl: "https://a.test",
                  limits: { tokens: { limit: 10, interval: "1 minute" } }
                },
                domain: "org"
              }
            ]
          }).pipe(Effect.provide(TestHttpClient.layer(() => completion("x"))))
        )
        expect(ownLimits.message).toContain('["providers", 0, "endpoint", "limits"] A member of quota domain "org"')
      })
  )

  it.scoped("a content-policy refusal follows the content-filter chain; a 5xx on both is a ProviderUnavailable", () =>
    Effect.gen(function* () {
      const { routed, seen } = yield* inMemory(
        {
          strict: () => refusal(400, "Your request was rejected by our content policy", "content_policy_violation"),
          lenient: () => completion("mock-1")
        },
        {
          strategy: "roundRobin",
          providers: [{ name: "strict" }, { name: "lenient", tier: 1 }],
          contentFilteredChain: ["lenient"]
        }
      )
      yield* routed.chat(chat("something edgy"))
      expect(seen.map((request) => request.provider)).toEqual(["strict", "lenient"])

      const down = yield* inMemory(
        { one: () => ({ status: 503, body: "down" }), two: () => ({ status: 500, body: "down" }) },
        { strategy: "roundRobin", providers: [{ name: "one" }, { name: "two" }] }
      )
      const error = failureOf(yield* Effect.exit(down.routed.chat(chat("hello"))))
      expect(error).toMatchObject({
        _tag: "ModelError",
        reason: "ProviderUnavailable",
        provider: "two",
        kind: "ServerError"
      })
    })
  )

  it.scoped("a provider's model replaces the request's; tokens are reconciled on the provider that answered", () =>
    Effect.gen(function* () {
      const { routed, seen } = yield* inMemory(
        { azure: () => completion("my-deployment", { prompt: 700, completion: 130 }) },
        { providers: [{ name: "azure", model: "my-deployment" }] }
      )
      yield* routed.chat(chat("hello"))
      expect((seen[0]!.body as { model: string }).model).toBe("my-deployment")
      expect(yield* tokensLeft(routed, "azure")).toBe(10_000 - 830)
    })
  )

  it.scoped("healthCheck: true probes GET /models with the provider's key, on the Router's interval", () =>
    Effect.gen(function* () {
      const { routed, seen } = yield* inMemory(
        { a: () => ({ status: 200, body: { object: "list", data: [] } }) },
        {
          providers: [
            {
              name: "a",
              apiKey: Redacted.make("sk-probe"),
              healthCheck: true
            }
          ]
        }
      )
      const healthOf = Effect.map(routed.router.snapshot, (snapshot) => snapshot.providers[0]!.healthCheck)
      expect(seen).toEqual([])
      // The first probe after the healthy interval (30 s by default), not before.
      yield* TestClock.adjust("29 seconds")
      expect(seen).toEqual([])
      yield* TestClock.adjust("1 second")
      expect(seen.map((request) => [request.method, request.path, request.authorization])).toEqual([
        ["GET", "/v1/models", "Bearer sk-probe"]
      ])
      expect(yield* healthOf).toEqual({ passing: true, consecutiveFailures: 0, lastProbeAt: 30_000 })
    })
  )

  it.scoped(
    "healthCheck without a probe: the default probe failing counts toward ejection; its intervals are kept",
    () =>
      Effect.gen(function* () {
        const { routed, seen } = yield* inMemory(
          { a: () => refusal(503, "down", "unavailable"), b: () => completion("mock-1") },
          {
            ejection: { consecutiveFailures: 2, maxEjectionPercent: 100 },
            providers: [
              { name: "a", healthCheck: { healthyInterval: "10 seconds", failingInterval: "2 seconds" } },
              { name: "b" }
            ]
          }
        )
        const stateOf = Effect.map(routed.router.snapshot, (snapshot) => snapshot.providers[0]!)
        yield* TestClock.adjust("10 seconds")
        expect((yield* stateOf).healthCheck).toEqual({ passing: false, consecutiveFailures: 1, lastProbeAt: 10_000 })
        expect((yield* stateOf).state).toBe("active")
        // The next probe a failing interval later: a second failure in a row ejects it.
        yield* TestClock.adjust("2 seconds")
        expect((yield* stateOf).healthCheck?.consecutiveFailures).toBe(2)
        expect((yield* stateOf).state).toBe("ejected")
        expect(seen.map((request) => request.path)).toEqual(["/v1/models", "/v1/models"])
      })
  )

  it.scoped("a given probe is used as given; no healthCheck, no probe and no snapshot", () =>
    Effect.gen(function* () {
      let probed = 0
      const { routed, seen } = yield* inMemory(
        { a: () => completion("mock-1"), b: () => completion("mock-1") },
        {
          providers: [
            {
              name: "a",
              healthCheck: {
                probe: Effect.sync(() => {
                  probed++
                })
              }
            },
            { name: "b" }
          ]
        }
      )
      yield* TestClock.adjust("30 seconds")
      expect(probed).toBe(1)
      expect(seen).toEqual([])
      const providers = (yield* routed.router.snapshot).providers
      expect(providers.map((provider) => provider.healthCheck?.passing)).toEqual([true, undefined])
    })
  )

  it.scoped("adaptiveConcurrency starts at the endpoint's concurrency and halves on a 429", () =>
    Effect.gen(function* () {
      const { routed } = yield* inMemory(
        {
          busy: () => refusal(429, "Rate limit reached", "rate_limit_exceeded", { "retry-after": "1" }),
          calm: () => completion("mock-1")
        },
        {
          strategy: "roundRobin",
          providers: [
            { name: "busy", concurrency: 8, adaptiveConcurrency: { floor: 2, ceiling: 8 } },
            { name: "calm", concurrency: 8 }
          ]
        }
      )
      const concurrencyOf = Effect.map(routed.router.snapshot, (snapshot) =>
        snapshot.providers.map((provider) => provider.concurrency?.limit)
      )
      expect(yield* concurrencyOf).toEqual([8, undefined])
      yield* routed.chat(chat("question"))
      expect(yield* concurrencyOf).toEqual([4, undefined])
    })
  )

  it.scoped("adaptiveConcurrency without a ceiling derives it from the provider's request limit", () =>
    Effect.gen(function* () {
      // 600 requests a minute (10/s) and answers taking 500 ms: Little's law allows 10 x 0.5 = 5 in flight.
      const slow = () => Effect.as(Effect.sleep("500 millis"), completion("mock-1"))
      const routed = yield* Model.makeRouted({
        estimator: fixedEstimator,
        providers: [
          {
            endpoint: {
              name: "limited",
              baseUrl: "https://limited.test/v1",
              limits: { requests: { limit: 600, interval: "1 minute" }, concurrency: 8 }
            },
            adaptiveConcurrency: { floor: 1 }
          },
          {
            endpoint: {
              name: "ceilinged",
              baseUrl: "https://ceilinged.test/v1",
              limits: { requests: { limit: 600, interval: "1 minute" }, concurrency: 8 }
            },
            adaptiveConcurrency: { floor: 1, ceiling: 8 }
          }
        ],
        strategy: "roundRobin"
      }).pipe(Effect.provide(TestHttpClient.layer(slow)))
      const concurrencyOf = Effect.map(routed.router.snapshot, (snapshot) =>
        snapshot.providers.map((provider) => [provider.concurrency?.limit, provider.concurrency?.ceiling])
      )
      // Before any latency is known, the ceiling is the starting limit.
      expect(yield* concurrencyOf).toEqual([
        [8, 8],
        [8, 8]
      ])
      const calls = Effect.all([routed.chat(chat("one")), routed.chat(chat("two"))], { concurrency: "unbounded" })
      const fiber = yield* Effect.fork(calls)
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(fiber)
      // The derived ceiling pulls the first provider's limit down; a given ceiling stays as given.
      expect(yield* concurrencyOf).toEqual([
        [5, 5],
        [8, 8]
      ])
    })
  )

  it.scoped("bad options fail with an InvalidOptionsError naming the field", () =>
    Effect.gen(function* () {
      const undeclared = yield* Effect.flip(inMemory({}, { providers: [{ name: "a", domain: "org" }] }))
      expect(undeclared.message).toContain('["providers",0,"domain"] Expected a domain declared in domains')
      const mixed = yield* Effect.flip(
        Model.makeRouted({
          providers: [
            {
              endpoint: {
                name: "a",
                baseUrl: "https://a.test",
                limits: { tokens: { limit: 10, interval: "1 minute" } }
              }
            },
            { endpoint: { name: "b", baseUrl: "https://b.test" } }
          ]
        }).pipe(Effect.provide(TestHttpClient.layer(() => completion("x"))))
      )
      expect(mixed.message).toContain('["providers", 1] "b" has no "tokens" limit while "a" has one')
    })
  )
})
