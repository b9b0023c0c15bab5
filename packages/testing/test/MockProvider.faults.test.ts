import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as MockProvider from "../src/MockProvider.js"
import { accepts, awaitSleeper, ClientLive, chat, open, send } from "./utils/client.js"

const chatUrl = (provider: MockProvider.MockProviderShape) => `${provider.baseUrl}/chat/completions`

/** Sends a request that the server will delay, then moves the TestClock past its latency. */
const delayedCall = (provider: MockProvider.MockProviderShape, sequence: number, content: string) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(send(chatUrl(provider), chat(content)))
    const entry = (yield* provider.awaitRequests(sequence))[sequence - 1]!
    if (entry.latencyMillis > 0) {
      yield* awaitSleeper
      yield* TestClock.adjust(entry.latencyMillis)
    }
    const answer = yield* Fiber.join(fiber)
    return { entry, answer }
  })

describe("MockProvider faults", () => {
  it.scoped("500 and 503: the status and an OpenAI-style error body, with the rate-limit headers", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ rpm: 10, faults: { serverError500: 1 } })
      const internal = yield* send(chatUrl(provider), chat("a"))
      expect(internal.status).toBe(500)
      expect(JSON.parse(internal.text).error.type).toBe("server_error")
      expect(internal.headers["x-ratelimit-remaining-requests"]).toBe("9")
      yield* provider.setFaults({ serviceUnavailable503: 1 })
      const unavailable = yield* send(chatUrl(provider), chat("a"))
      expect(unavailable.status).toBe(503)
      expect(JSON.parse(unavailable.text).error.type).toBe("server_error")
      const counters = yield* provider.counters
      expect(counters.faults.serverError500).toBe(1)
      expect(counters.faults.serviceUnavailable503).toBe(1)
      expect(counters.served).toBe(0)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("reset: the client sees a connection error, and the server goes on serving", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ faults: { reset: 1 } })
      const error = yield* Effect.flip(send(chatUrl(provider), chat("a")))
      expect(error._tag).toBe("RequestError")
      expect(error._tag === "RequestError" && error.reason).toBe("Transport")
      const log = yield* provider.log
      expect(log[0]).toMatchObject({ outcome: "fault", fault: "reset", status: undefined })
      yield* provider.setFaults({})
      expect((yield* send(chatUrl(provider), chat("a"))).status).toBe(200)
      expect((yield* provider.counters).faults.reset).toBe(1)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("malformed JSON: a 200 whose body is the answer cut off, so it does not parse", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make()
      const whole = yield* send(chatUrl(provider), chat("cut me"))
      yield* provider.setFaults({ malformedJson: 1 })
      const broken = yield* send(chatUrl(provider), chat("cut me"))
      expect(broken.status).toBe(200)
      expect(broken.headers["content-type"]).toContain("application/json")
      expect(() => JSON.parse(broken.text)).toThrow()
      expect(broken.text.length).toBeGreaterThan(0)
      expect(whole.text.startsWith(broken.text)).toBe(true)
      expect((yield* provider.counters).faults.malformedJson).toBe(1)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("hang: no answer comes; the client's own timeout ends the wait", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ faults: { hang: 1 } })
      const fiber = yield* Effect.fork(Effect.timeout(send(chatUrl(provider), chat("a")), "5 seconds"))
      const log = yield* provider.awaitRequests(1)
      expect(log[0]).toMatchObject({ fault: "hang", status: undefined })
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("TimeoutException")
      expect((yield* provider.counters).faults.hang).toBe(1)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("hang: closing the server's scope ends the hung connection and closes the port", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const provider = yield* MockProvider.make({ faults: { hang: 1 } }).pipe(Scope.extend(scope))
      const fiber = yield* Effect.fork(Effect.either(send(chatUrl(provider), chat("a"))))
      yield* provider.awaitRequests(1)
      yield* Scope.close(scope, Exit.void)
      const result = yield* Fiber.join(fiber)
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) expect(result.left._tag).toBe("RequestError")
      expect(yield* accepts(provider.port)).toBe(false)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("slow body: the answer arrives piece by piece, one piece per interval", () =>
    Effect.gen(function* () {
      const chunks = 4
      const provider = yield* MockProvider.make({ slowBody: { chunks, interval: "1 second" } })
      const expected = (yield* send(chatUrl(provider), chat("take your time"))).text
      yield* provider.setFaults({ slowBody: 1 })

      const response = yield* open(chatUrl(provider), chat("take your time"))
      expect(response.status).toBe(200)
      const received = yield* Queue.unbounded<string>()
      const decoder = new TextDecoder()
      const reader = yield* Effect.fork(
        Stream.runForEach(response.stream, (bytes) => Queue.offer(received, decoder.decode(bytes, { stream: true })))
      )
      const pieceSize = Math.ceil(expected.length / chunks)
      let text = ""
      for (let piece = 1; piece <= chunks; piece++) {
        const target = Math.min(expected.length, piece * pieceSize)
        while (text.length < target) text += yield* Queue.take(received)
        // Exactly `piece` pieces so far: the next one waits for the clock.
        expect(text).toBe(expected.slice(0, target))
        if (piece < chunks) {
          yield* awaitSleeper
          expect(yield* Queue.size(received)).toBe(0)
          yield* TestClock.adjust("1 second")
        }
      }
      yield* Fiber.join(reader)
      expect(JSON.parse(text)).toEqual(JSON.parse(expected))
      expect((yield* provider.log)[1]).toMatchObject({ fault: "slowBody", status: 200, outcome: "fault" })
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("a streamed answer meets the same faults: malformed JSON cuts its events, a slow body spaces them", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ slowBody: { chunks: 2, interval: "1 second" } })
      const request = chat("stream", { stream: true })
      const expected = (yield* send(chatUrl(provider), request)).text
      expect(expected.endsWith("data: [DONE]\n\n")).toBe(true)

      yield* provider.setFaults({ malformedJson: 1 })
      const cut = yield* send(chatUrl(provider), request)
      expect(cut.status).toBe(200)
      expect(cut.headers["content-type"]).toContain("text/event-stream")
      expect(cut.text).toBe(expected.slice(0, Math.floor(expected.length / 2)))

      yield* provider.setFaults({ slowBody: 1 })
      const fiber = yield* Effect.fork(send(chatUrl(provider), request))
      yield* provider.awaitRequests(3)
      yield* awaitSleeper
      yield* TestClock.adjust("1 second")
      const slow = yield* Fiber.join(fiber)
      expect(slow.headers["content-type"]).toContain("text/event-stream")
      expect(slow.text).toBe(expected)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("faults switch at run time", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make()
      const statuses: Array<number> = []
      const call = Effect.map(send(chatUrl(provider), chat("switch")), (answer) => answer.status)
      statuses.push(yield* call)
      yield* provider.setFaults({ serviceUnavailable503: 1 })
      statuses.push(yield* call, yield* call)
      yield* provider.setFaults({ serverError500: 1 })
      statuses.push(yield* call)
      yield* provider.setFaults({})
      statuses.push(yield* call)
      expect(statuses).toEqual([200, 503, 503, 500, 200])
      const counters = yield* provider.counters
      expect(counters.served).toBe(2)
      expect(counters.faults.serviceUnavailable503).toBe(2)
      expect(counters.faults.serverError500).toBe(1)
      expect(counters.total).toBe(5)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("shares with a seed: a mix of faults, the same mix for the same seed", () =>
    Effect.gen(function* () {
      const run = (seed: number) =>
        Effect.scoped(
          Effect.gen(function* () {
            const provider = yield* MockProvider.make({
              seed,
              faults: { serverError500: 0.25, serviceUnavailable503: 0.25 }
            })
            const statuses: Array<number> = []
            for (let i = 0; i < 24; i++) statuses.push((yield* send(chatUrl(provider), chat(`n${i}`))).status)
            const counters = yield* provider.counters
            expect(counters.served + counters.faults.serverError500 + counters.faults.serviceUnavailable503).toBe(24)
            return statuses
          })
        )
      const first = yield* run(42)
      expect(yield* run(42)).toEqual(first)
      expect(new Set(first)).toEqual(new Set([200, 500, 503]))
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("fixed latency: the answer waits for the Clock", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ latency: { fixed: "2 seconds" } })
      const fiber = yield* Effect.fork(send(chatUrl(provider), chat("a")))
      const log = yield* provider.awaitRequests(1)
      expect(log[0]!.latencyMillis).toBe(2000)
      yield* awaitSleeper
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 milli")
      expect((yield* Fiber.join(fiber)).status).toBe(200)
    }).pipe(Effect.provide(ClientLive))
  )

  it.scoped("uniform and normal latency: drawn from a seeded Random, within bounds, repeatable", () =>
    Effect.gen(function* () {
      const latencies = (latency: MockProvider.Latency) =>
        Effect.scoped(
          Effect.gen(function* () {
            const provider = yield* MockProvider.make({ seed: 7, latency })
            const drawn: Array<number> = []
            for (let i = 1; i <= 6; i++) drawn.push((yield* delayedCall(provider, i, `n${i}`)).entry.latencyMillis)
            return drawn
          })
        )
      const uniform = yield* latencies({ uniform: { min: 100, max: 300 } })
      for (const millis of uniform) {
        expect(millis).toBeGreaterThanOrEqual(100)
        expect(millis).toBeLessThanOrEqual(300)
      }
      expect(new Set(uniform).size).toBeGreaterThan(1)
      expect(yield* latencies({ uniform: { min: 100, max: 300 } })).toEqual(uniform)

      const normal = yield* latencies({ normal: { mean: "1 second", stdDev: "200 millis" } })
      for (const millis of normal) {
        expect(Number.isInteger(millis)).toBe(true)
        expect(millis).toBeGreaterThanOrEqual(0)
      }
      expect(yield* latencies({ normal: { mean: "1 second", stdDev: "200 millis" } })).toEqual(normal)

      // setLatency at run time: back to none.
      const provider = yield* MockProvider.make({ latency: { fixed: "1 hour" } })
      yield* provider.setLatency(undefined)
      expect((yield* send(chatUrl(provider), chat("now"))).status).toBe(200)
    }).pipe(Effect.provide(ClientLive))
  )
})
