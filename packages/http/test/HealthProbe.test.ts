/**
 * The health probe against the real MockProvider over real sockets: it lists
 * the models with the endpoint's key and spends no tokens; a refused key or a
 * server that is gone fails it. Each probe is awaited as it is (the
 * MockProvider answers `/v1/models` at once); nothing here asserts timing.
 */

import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { ApiError, type EndpointConfig, HealthProbe } from "../src/index.js"

const endpoint = (baseUrl: string, key = "sk-good"): EndpointConfig.EndpointConfig => ({
  name: "probe",
  baseUrl,
  auth: { _tag: "Bearer" as const, token: Redacted.make(key) },
  // A probe ignores these: one attempt, no limits.
  limits: { requests: { limit: 1, interval: "1 hour" }, concurrency: 1 },
  retry: { maxAttempts: 5, base: "1 second" }
})

describe("HealthProbe", () => {
  it.scoped("lists the models with the endpoint's key: GET /v1/models, 2xx passes, no tokens spent", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ apiKeys: ["sk-good"], tpm: 10, rpm: 1 })
      const probe = yield* HealthProbe.make(endpoint(provider.baseUrl))
      // Three probes in a row, past the server's 1 request a minute and the config's 1 an hour: none is metered.
      for (let i = 0; i < 3; i++) expect(Exit.isSuccess(yield* Effect.exit(probe))).toBe(true)
      const log = yield* provider.log
      expect(log.map(({ method, path, status, chargedTokens }) => ({ method, path, status, chargedTokens }))).toEqual(
        Array.from({ length: 3 }, () => ({ method: "GET", path: "/v1/models", status: 200, chargedTokens: 0 }))
      )
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("a refused key fails it, once, with the server's 401", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ apiKeys: ["sk-good"] })
      const probe = yield* HealthProbe.make(endpoint(provider.baseUrl, "sk-revoked"))
      const error = yield* Effect.flip(probe)
      expect(error).toBeInstanceOf(ApiError.ApiError)
      expect(error).toMatchObject({ reason: "ClientError", status: 401 })
      // One attempt: the config's retry is not the probe's.
      expect((yield* provider.counters).unauthorized).toBe(1)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("a server that is gone fails it with a Transport error", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const provider = yield* MockProvider.make({}).pipe(Scope.extend(scope))
      const probe = yield* HealthProbe.make(endpoint(provider.baseUrl))
      expect(Exit.isSuccess(yield* Effect.exit(probe))).toBe(true)
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(probe)
      expect(error).toBeInstanceOf(ApiError.ApiError)
      expect((error as ApiError.ApiError).reason).toBe("Transport")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )
})
