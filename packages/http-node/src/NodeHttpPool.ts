/**
 * The Node `HttpClient` for Sluice's clients: an undici connection pool per
 * endpoint, sized from the endpoint's `pool` settings and closed with its scope.
 *
 * `@sluice/http` is platform-neutral: an `ApiClient` (and a `Model` over an
 * endpoint) needs an `HttpClient` in context, any of `@effect/platform`'s
 * (Node, Bun, the browser's or Deno's `fetch`, an in-memory one in tests).
 * What `@effect/platform-node` gives: `NodeHttpClient.layerUndiciWithoutDispatcher`
 * over an undici `Dispatcher`. What this module adds: the `Agent` built from
 * `EndpointConfig`'s `pool` (connections per origin, pipelining, keep-alive),
 * destroyed (its sockets closed) when the layer's scope closes.
 *
 * ```ts
 * import { ApiClient } from "@sluice/http"
 * import { NodeHttpPool } from "@sluice/http-node"
 * import * as Layer from "effect/Layer"
 *
 * const client = ApiClient.layer(config).pipe(Layer.provide(NodeHttpPool.layer(config.pool)))
 * ```
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type { EndpointConfig } from "@sluice/http"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Undici from "undici"

/**
 * The pool's settings: `EndpointConfig`'s `pool` field.
 *
 * @since 0.1.0
 * @category models
 */
export type PoolOptions = NonNullable<EndpointConfig.EndpointConfig["pool"]>

/**
 * An undici connection pool as the `HttpClient`: its size and keep-alive from
 * `pool` (an endpoint's `pool` settings); closed (its sockets destroyed) with
 * the scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (pool: PoolOptions | undefined = {}): Layer.Layer<HttpClient.HttpClient> =>
  NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
    Layer.provide(
      Layer.scoped(
        NodeHttpClient.Dispatcher,
        Effect.acquireRelease(
          Effect.sync(
            () =>
              new Undici.Agent({
                ...(pool.connections === undefined ? {} : { connections: pool.connections }),
                ...(pool.pipelining === undefined ? {} : { pipelining: pool.pipelining }),
                ...(pool.keepAliveTimeout === undefined
                  ? {}
                  : { keepAliveTimeout: Duration.toMillis(Duration.decode(pool.keepAliveTimeout)) })
              })
          ),
          (agent) => Effect.promise(() => agent.destroy())
        )
      )
    )
  )
