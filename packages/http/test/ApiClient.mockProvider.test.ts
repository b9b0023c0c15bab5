/**
 * The ApiClient against the real MockProvider: real sockets through the real
 * undici pool, with the server and the client both reading the test's Clock,
 * so every delay is asserted exactly in virtual time. Waiting for socket I/O
 * is done by yielding real time in small steps (`untilDone`) until the call
 * ends, bounded in real time; it asserts nothing about timing.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import type { RequestEvent } from "@sluice/core"
import * as MockProvider from "@sluice/testing/MockProvider"
import { eventually } from "@sluice/testing/TestEvents"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import { ApiClient, ApiError, Auth, type EndpointConfig } from "../src/index.js"

const ChatCompletion = Schema.Struct({
  model: Schema.String,
  choices: Schema.Array(
    Schema.Struct({
      message: Schema.Struct({ role: Schema.Literal("assistant"), content: Schema.String }),
      finish_reason: Schema.String
    })
  ),
  usage: Schema.Struct({ prompt_tokens: Schema.Number, completion_tokens: Schema.Number, total_tokens: Schema.Number })
})

const chat = (content: string) => ({ model: "mock-1", messages: [{ role: "user", content }] })

/**
 * Lets real I/O happen: a little real time, and virtual time moved by `step`, until `fiber` ends
 * (bounded in real time, failing with a message).
 */
const untilDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, step: Duration.DurationInput = "100 millis") =>
  Effect.gen(function* () {
    yield* eventually(
      "the calls end (moving the TestClock a step at a time)",
      Effect.gen(function* () {
        if (fiber.unsafePoll() !== null) return true
        yield* TestServices.provideLive(Effect.sleep("2 millis"))
        yield* TestClock.adjust(step)
        return fiber.unsafePoll() !== null
      })
    )
    return yield* Fiber.join(fiber)
  })

const run = <A, E>(effect: Effect.Effect<A, E>, step?: Duration.DurationInput) =>
  Effect.flatMap(Effect.fork(Effect.exit(effect)), (fiber) => untilDone(fiber, step))

const setup = (
  options: MockProvider.Options,
  endpoint: Partial<EndpointConfig.EndpointConfig> = {},
  auth?: Auth.AuthProvider
) =>
  Effect.gen(function* () {
    const provider = yield* MockProvider.make(options)
    const api = yield* Effect.map(
      Layer.build(
        ApiClient.layer(
          {
            name: "mock",
            baseUrl: provider.baseUrl,
            retry: { maxAttempts: 3, base: "100 millis", jitter: "none" },
            ...endpoint
          },
          auth === undefined ? undefined : { auth }
        ).pipe(Layer.provide(NodeHttpClient.layerUndici))
      ),
      Context.get(ApiClient.ApiClient)
    )
    return { provider, api }
  })

describe("ApiClient against the MockProvider", () => {
  it.scoped("a completion comes back decoded, with its usage", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup({})
      const exit = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("hello there") }))
      expect(Exit.isSuccess(exit)).toBe(true)
      const completion = Exit.isSuccess(exit) ? exit.value : undefined
      expect(completion?.choices[0]?.message.content.length).toBeGreaterThan(0)
      expect(completion?.usage.total_tokens).toBe(
        (completion?.usage.prompt_tokens ?? 0) + (completion?.usage.completion_tokens ?? 0)
      )
      expect((yield* provider.counters).served).toBe(1)
    })
  )

  it.scoped("a 429 with retry-after delays the next attempt by at least that long", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup({ rpm: 2 })
      const exit = yield* run(
        Effect.forEach(
          ["a", "b", "c"],
          (text) => api.post("/chat/completions", { schema: ChatCompletion, body: chat(text) }),
          {
            concurrency: 1
          }
        ),
        "1 second"
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const log = yield* provider.log
      const limited = log.find((entry) => entry.outcome === "rateLimited")!
      const retry = log[log.indexOf(limited) + 1]!
      expect(retry.outcome).toBe("served")
      // The window frees a slot 60 s after the first request; the server said so, and the client waited.
      expect(retry.time - limited.time).toBeGreaterThanOrEqual(60_000 - limited.time)
      expect((yield* provider.counters).rateLimited).toBe(1)
    })
  )

  it.scoped("header sync slows the whole endpoint: queued calls wait for the reset instead of each getting a 429", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup(
        { rpm: 3 },
        { limits: { requests: { limit: 600, interval: "1 minute" }, concurrency: 1 } }
      )
      const exit = yield* run(
        Effect.forEach(
          ["1", "2", "3", "4", "5", "6"],
          (text) => api.post("/chat/completions", { schema: ChatCompletion, body: chat(text) }),
          { concurrency: "unbounded" }
        ),
        "1 second"
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      // At most one 429: the request already admitted (waiting for the permit) when the server said
      // "0 remaining". Without the sync every call after the third would get one.
      const counters = yield* provider.counters
      expect(counters.served).toBe(6)
      expect(counters.rateLimited).toBeLessThanOrEqual(1)
      const served = (yield* provider.log).filter((entry) => entry.outcome === "served").map((entry) => entry.time)
      expect(served.slice(3).every((time) => time >= 60_000)).toBe(true)

      // The same calls with no limiter to feed: each one after the third finds the limit by its own 429.
      const unsynced = yield* setup(
        { rpm: 3 },
        { limits: { concurrency: 1 }, retry: { maxAttempts: 5, base: "10 seconds", jitter: "none" } }
      )
      yield* run(
        Effect.forEach(
          ["1", "2", "3", "4", "5", "6"],
          (text) => unsynced.api.post("/chat/completions", { schema: ChatCompletion, body: chat(text) }),
          { concurrency: "unbounded" }
        ),
        "1 second"
      )
      expect((yield* unsynced.provider.counters).rateLimited).toBeGreaterThanOrEqual(3)
    })
  )

  it.scoped("5xx is retried; a 4xx is not", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup({ faults: { serviceUnavailable503: 1 } })
      const exit = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("x") }))
      expect((yield* provider.counters).faults.serviceUnavailable503).toBe(3)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ServerError" })
      expect((error as ApiError.ApiError).status).toBe(503)

      yield* provider.setFaults({})
      const bad = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: { model: "mock-1" } }))
      expect((yield* provider.counters).badRequest).toBe(1)
      const badError = Exit.isFailure(bad) ? (bad.cause as { error?: unknown }).error : undefined
      expect(badError).toMatchObject({ _tag: "ApiError", reason: "ClientError" })
      expect((badError as ApiError.ApiError).status).toBe(400)
      expect((badError as ApiError.ApiError).excerpt!.length).toBeGreaterThan(0)
    })
  )

  it.scoped("a hung server is a Timeout, per attempt", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup(
        { faults: { hang: 1 } },
        { timeout: "2 seconds", retry: { maxAttempts: 2, base: "100 millis", jitter: "none" } }
      )
      const exit = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("x") }))
      expect(exit).toEqual(
        Exit.fail(
          ApiError.ApiError.timeout({
            endpoint: "mock",
            method: "POST",
            path: "/chat/completions",
            timeoutMillis: 2000
          })
        )
      )
      const log = yield* provider.log
      expect(log.map((entry) => entry.fault)).toEqual(["hang", "hang"])
      expect(log[1]!.time - log[0]!.time).toBe(2100)
    })
  )

  it.scoped("a connection reset is a Transport error, and is retried", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup({ faults: { reset: 1 } })
      const exit = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("x") }))
      expect((yield* provider.counters).faults.reset).toBe(3)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Transport" })
      yield* provider.setFaults({})
      expect(
        Exit.isSuccess(yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("x") })))
      ).toBe(true)
    })
  )

  it.scoped("malformed JSON is a Decode error, not retried", () =>
    Effect.gen(function* () {
      const { provider, api } = yield* setup({ faults: { malformedJson: 1 } })
      const exit = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("x") }))
      expect((yield* provider.counters).faults.malformedJson).toBe(1)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Decode" })
      expect((error as ApiError.ApiError).issues).toContain("not JSON")
    })
  )

  it.scoped("a 401 with a refreshable token refreshes once; the key never reaches a log, event or error", () =>
    Effect.gen(function* () {
      const keys = ["sk-expired-aaaaaaaaaaaa", "sk-fresh-bbbbbbbbbbbbbb"]
      let fetches = 0
      const auth = yield* Auth.cachedToken({
        endpoint: "mock",
        fetch: Effect.sync(() => ({ token: Redacted.make(keys[Math.min(fetches++, 1)]!), expiresIn: "1 hour" }))
      })
      const logs: Array<string> = []
      const { provider, api } = yield* setup({ apiKeys: [keys[1]!] }, {}, auth)
      const events = yield* api.progress!.subscribe
      const exit = yield* run(
        api.post("/chat/completions", { schema: ChatCompletion, body: chat("x") }).pipe(
          Effect.tap(() => Effect.logInfo("answered")),
          Effect.provide(
            Logger.replace(
              Logger.defaultLogger,
              Logger.make(({ message }) => logs.push(String(message)))
            )
          )
        )
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(fetches).toBe(2)
      const counters = yield* provider.counters
      expect(counters).toMatchObject({ unauthorized: 1, served: 1 })

      yield* provider.setApiKeys(["sk-someone-else-cccccccccc"])
      const refused = yield* run(api.post("/chat/completions", { schema: ChatCompletion, body: chat("y") }))
      const error = Exit.isFailure(refused) ? (refused.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ClientError" })
      const captured = [
        ...logs,
        JSON.stringify(yield* provider.log),
        JSON.stringify(Array.from(yield* Queue.takeAll(events)) satisfies Array<RequestEvent.RequestEvent>),
        String(error),
        JSON.stringify(error)
      ].join("\n")
      for (const key of keys) expect(captured).not.toContain(key)
    })
  )

  it.effect("after the scope closes, no socket or server handle is left open", () =>
    Effect.gen(function* () {
      const handles = () =>
        process.getActiveResourcesInfo().filter((name) => name === "TCPSocketWrap" || name === "TCPServerWrap").length
      const before = handles()
      const scope = yield* Scope.make()
      const { api } = yield* Scope.extend(setup({}), scope)
      const exit = yield* run(
        Effect.forEach(
          ["a", "b", "c", "d"],
          (text) => api.post("/chat/completions", { schema: ChatCompletion, body: chat(text) }),
          {
            concurrency: "unbounded"
          }
        )
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(handles()).toBeGreaterThan(before)
      yield* Scope.close(scope, Exit.void)
      yield* eventually(
        `the open socket and server handles are back to the ${before} from before`,
        () => handles() <= before
      )
      expect(handles()).toBe(before)
    })
  )
})
