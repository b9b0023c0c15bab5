/**
 * Events for observers who may not be there: a sliding `PubSub` that counts
 * its subscribers, so a publisher can skip building an event nobody reads.
 * Slow subscribers lose the oldest events rather than slowing the publisher.
 * Used by the Executor (request events) and the CircuitBreaker (transitions).
 */
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

export interface EventHub<A> {
  /** True while anyone subscribes. */
  readonly observed: () => boolean
  /** Publishes at once (from synchronous bookkeeping). */
  readonly offer: (event: A) => void
  /** A queue subscribed once this returns, for the scope's life. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<A>, never, Scope.Scope>
  /** Every event from subscription on. */
  readonly stream: Stream.Stream<A>
}

export const make = <A>(bufferSize: number): Effect.Effect<EventHub<A>> =>
  Effect.map(PubSub.sliding<A>(bufferSize), (pubsub) => {
    let subscribers = 0
    const subscribe = Effect.acquireRelease(
      Effect.sync(() => {
        subscribers++
      }),
      () =>
        Effect.sync(() => {
          subscribers--
        })
    ).pipe(Effect.zipRight(PubSub.subscribe(pubsub)))
    return {
      observed: () => subscribers > 0,
      offer: (event) => {
        if (subscribers > 0) pubsub.unsafeOffer(event)
      },
      subscribe,
      stream: Stream.unwrapScoped(Effect.map(subscribe, Stream.fromQueue))
    }
  })
