/**
 * One circuit breaker for several processes: when one of them finds the
 * provider down and opens its breaker, the others refuse at once too, instead
 * of each spending its own calls to find out. Each process still judges from
 * its own calls (its failure window is its own); opening, the half-open probe
 * (one for all of them) and closing are shared.
 *
 * Here the two "processes" are two breakers of one name on one in-process
 * store (`CircuitBreakerStore.layerMemory`). In production each process runs
 * the same code with the Redis store instead:
 *
 *   RedisBreakerStore.layer({ prefix: "my-app:" }).pipe(Layer.provide(RedisClient.layerConfig()))
 *
 * Mind the trade-off: one bad process (its own network broken, a wrong key)
 * opens the breaker for everyone. Give it a policy that needs real evidence.
 *
 * Run: npx tsx examples/shared-breaker.ts
 */
import { CircuitBreaker, CircuitBreakerStore } from "@sluice/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"

/** The same options in every process: the `name` is what they share. */
export const breakerOptions = {
  name: "payments-api",
  // Half of at least 10 recent calls failing, not a couple of unlucky ones: one process opens it for all.
  policy: { kind: "count", size: 20, failureRate: 0.5, minimumCalls: 10 },
  openDuration: "30 seconds",
  halfOpenProbes: 1
} satisfies Omit<CircuitBreaker.Options, "store">

/** A provider that is down. */
const failingCall = Effect.fail("503 Service Unavailable" as const)

export const program = Effect.gen(function* () {
  const store = yield* CircuitBreakerStore.CircuitBreakerStore
  const processA = yield* CircuitBreaker.make({ ...breakerOptions, store })
  const processB = yield* CircuitBreaker.make({ ...breakerOptions, store })
  // B is in use (a breaker follows the shared state of the keys it uses) and watches its transitions.
  yield* processB.state()
  const seenByB = yield* processB.subscribe

  // A calls the provider ten times and finds it down: A opens, and tells the store.
  for (let i = 0; i < 10; i++) yield* Effect.exit(processA.protect(failingCall))
  const learned = yield* Queue.take(seenByB)
  yield* Console.log(`B learned: ${learned.from} -> ${learned.to} (shared: ${learned.shared === true})`)

  // B has not made a single call, and still refuses at once.
  const refused = yield* Effect.flip(processB.protect(Effect.succeed("never called")))
  yield* Console.log(`B refuses: ${refused.message}`)
  return { learned, refused }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(CircuitBreakerStore.layerMemory)))
}
