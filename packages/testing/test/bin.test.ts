import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as args from "../src/internal/mockProviderArgs.js"

describe("the command line", () => {
  it.effect("reads every flag into options", () =>
    Effect.gen(function* () {
      const command = yield* args.parse([
        "--port",
        "8080",
        "--rpm",
        "600",
        "--tpm",
        "60000",
        "--latency-min",
        "10",
        "--latency-max",
        "1 second",
        "--fault-500",
        "0.01",
        "--fault-503",
        "0.05",
        "--fault-reset",
        "0.01",
        "--fault-hang",
        "0.01",
        "--fault-malformed-json",
        "0.02",
        "--fault-slow-body",
        "0.03",
        "--slow-body-chunks",
        "3",
        "--slow-body-interval",
        "50",
        "--api-key",
        "one",
        "--api-key",
        "two",
        "--seed",
        "9",
        "--log-capacity",
        "100"
      ])
      expect(command).toEqual({
        _tag: "Run",
        options: {
          port: 8080,
          rpm: 600,
          tpm: 60_000,
          latency: { uniform: { min: 10, max: "1 second" } },
          faults: {
            serverError500: 0.01,
            serviceUnavailable503: 0.05,
            reset: 0.01,
            hang: 0.01,
            malformedJson: 0.02,
            slowBody: 0.03
          },
          slowBody: { chunks: 3, interval: 50 },
          apiKeys: ["one", "two"],
          seed: 9,
          logCapacity: 100
        }
      })
    })
  )

  it.effect("no flags: default options; fixed and normal latency; --help", () =>
    Effect.gen(function* () {
      expect(yield* args.parse([])).toEqual({ _tag: "Run", options: {} })
      expect(yield* args.parse(["--latency", "250"])).toEqual({ _tag: "Run", options: { latency: { fixed: 250 } } })
      expect(yield* args.parse(["--latency-mean=200", "--latency-stddev=50"])).toEqual({
        _tag: "Run",
        options: { latency: { normal: { mean: 200, stdDev: 50 } } }
      })
      expect(yield* args.parse(["-h"])).toEqual({ _tag: "Help" })
      expect(args.USAGE).toContain("--fault-503")
      expect(yield* args.parse(["--model", "gpt-mock", "--model", "embed-mock"])).toEqual({
        _tag: "Run",
        options: { models: ["gpt-mock", "embed-mock"] }
      })
      expect(args.USAGE).toContain("GET /v1/models")
    })
  )

  it.effect("bad flags fail with an InvalidOptionsError naming the field or flag", () =>
    Effect.gen(function* () {
      const cases: Array<[Array<string>, string]> = [
        [["--rpm", "lots"], '["rpm"]'],
        [["--rpm", "0"], '["rpm"]'],
        [["--fault-503", "1.5"], '["faults","serviceUnavailable503"]'],
        [["--fault-500", "0.7", "--fault-503", "0.7"], '["faults"]'],
        [["--port=-1"], '["port"]'],
        [["--latency-min", "10"], '["latency"'],
        [["--latency", "5", "--latency-mean", "5"], "one kind of latency"],
        [["--model", ""], '["models",0]'],
        [["--colour", "blue"], "--colour"],
        [["stray"], "stray"]
      ]
      for (const [argv, expected] of cases) {
        const error = yield* Effect.flip(args.parse(argv))
        expect(error._tag, argv.join(" ")).toBe("InvalidOptionsError")
        expect(error.message, argv.join(" ")).toContain(expected)
      }
    })
  )
})
