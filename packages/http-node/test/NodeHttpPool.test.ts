/**
 * The Node pool under an ApiClient: real requests to a MockProvider on a real
 * socket, a pool of the endpoint's size, closed with its scope.
 */
import { describe, expect, it } from "@effect/vitest"
import { ApiClient, type EndpointConfig } from "@sluice/http"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { NodeHttpPool } from "../src/index.js"

const Models = Schema.Struct({ data: Schema.Array(Schema.Struct({ id: Schema.String })) })

describe("NodeHttpPool", () => {
  it.live("serves an ApiClient over undici, and refuses calls once its scope closed", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const config: EndpointConfig.EndpointConfig = {
          name: "mock",
          baseUrl: provider.baseUrl,
          pool: { connections: 2, keepAliveTimeout: "1 second" }
        }
        const scope = yield* Scope.make()
        const api = yield* Effect.map(
          Layer.buildWithScope(
            ApiClient.layer(config, { executor: false }).pipe(Layer.provide(NodeHttpPool.layer(config.pool))),
            scope
          ),
          Context.get(ApiClient.ApiClient)
        )
        const models = yield* Effect.forEach([1, 2, 3], () => api.get("/models", { schema: Models }), {
          concurrency: 3
        })
        expect(models.map((answer) => answer.data.length)).toEqual([2, 2, 2])
        yield* Scope.close(scope, Exit.void)
        const after = yield* Effect.exit(api.get("/models", { schema: Models }))
        expect(Exit.isFailure(after)).toBe(true)
      })
    )
  )
})
