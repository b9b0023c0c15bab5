/**
 * The MockProvider's command line: flags (read by `node:util` `parseArgs`)
 * turned into `MockProvider.Options` and validated by the same Schema as
 * `make`, so a wrong value names its field. Numbers are read as numbers when
 * they look like one and otherwise passed on as text for the Schema to refuse;
 * durations are milliseconds or Effect duration text (`"1.5 seconds"`).
 */

import { parseArgs } from "node:util"
import { InvalidOptionsError } from "@sluice/core/InvalidOptions"
import * as Effect from "effect/Effect"
import type * as MockProvider from "../MockProvider.js"
import { decodeOptions } from "./mockProviderOptions.js"

export const USAGE = `Usage: sluice-mock-provider [flags]

A local OpenAI-compatible server (POST /v1/chat/completions, streamed or not,
POST /v1/embeddings, GET /v1/models) with its own limits, latency and faults.
Prints its base URL; stops on Ctrl-C.

  --port <n>                   port to listen on (default 0: a free port)
  --host <address>             address to bind (default 127.0.0.1)
  --rpm <n>                    requests per minute (sliding 60 s window)
  --tpm <n>                    tokens per minute
  --window <duration>          count the limits over this window instead of a minute
  --latency <duration>         fixed latency (milliseconds, or e.g. "1 second")
  --latency-min <duration>     uniform latency between min and max
  --latency-max <duration>
  --latency-mean <duration>    normal latency (draws below zero count as zero)
  --latency-stddev <duration>
  --fault-500 <share>          share (0..1) of requests answered 500
  --fault-503 <share>          ... answered 503
  --fault-reset <share>        ... whose connection is reset
  --fault-hang <share>         ... never answered
  --fault-malformed-json <share>  ... answered 200 with a cut-off JSON body
  --fault-slow-body <share>    ... whose body arrives in slow pieces
  --slow-body-chunks <n>       pieces of a slow body (default 5)
  --slow-body-interval <duration>  time between pieces (default 200 ms)
  --api-key <key>              accept this bearer key (repeatable; none: no auth)
  --seed <n>                   make fault and latency draws repeatable
  --log-capacity <n>           request log entries kept (default 10000)
  --model <id>                 list this model on GET /v1/models (repeatable;
                               default mock-model, mock-embedding)
  -h, --help                   show this help
`

/** What the command line asks for. */
export type Command = { readonly _tag: "Help" } | { readonly _tag: "Run"; readonly options: MockProvider.Options }

const FLAGS = {
  port: { type: "string" },
  host: { type: "string" },
  rpm: { type: "string" },
  tpm: { type: "string" },
  window: { type: "string" },
  latency: { type: "string" },
  "latency-min": { type: "string" },
  "latency-max": { type: "string" },
  "latency-mean": { type: "string" },
  "latency-stddev": { type: "string" },
  "fault-500": { type: "string" },
  "fault-503": { type: "string" },
  "fault-reset": { type: "string" },
  "fault-hang": { type: "string" },
  "fault-malformed-json": { type: "string" },
  "fault-slow-body": { type: "string" },
  "slow-body-chunks": { type: "string" },
  "slow-body-interval": { type: "string" },
  "api-key": { type: "string", multiple: true },
  seed: { type: "string" },
  "log-capacity": { type: "string" },
  model: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" }
} as const

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i

/** A number when the text is one; else the text itself, for the Schema to refuse with its field's name. */
const numeric = (text: string | undefined): number | string | undefined =>
  text === undefined ? undefined : NUMBER.test(text.trim()) ? Number(text) : text

const commandLineError = (issues: string) => new InvalidOptionsError({ component: "MockProvider command line", issues })

/** Drops undefined fields, so an absent flag is an absent option. */
const defined = <A extends Record<string, unknown>>(record: A): Partial<A> | undefined => {
  const entries = Object.entries(record).filter(([, value]) => value !== undefined)
  return entries.length === 0 ? undefined : (Object.fromEntries(entries) as Partial<A>)
}

/**
 * Reads `argv` (without the node and script paths). Unknown flags, and flags
 * of two latency kinds at once, fail with an `InvalidOptionsError` of component
 * `"MockProvider command line"`; bad values with the Schema's own error.
 */
export const parse = (argv: ReadonlyArray<string>): Effect.Effect<Command, InvalidOptionsError> =>
  Effect.gen(function* () {
    const { values } = yield* Effect.try({
      try: () => parseArgs({ args: [...argv], options: FLAGS, strict: true, allowPositionals: false }),
      catch: (error) => commandLineError(error instanceof Error ? error.message : String(error))
    })
    if (values.help === true) return { _tag: "Help" } as const

    const kinds = [
      values.latency !== undefined ? "--latency" : undefined,
      values["latency-min"] !== undefined || values["latency-max"] !== undefined
        ? "--latency-min/--latency-max"
        : undefined,
      values["latency-mean"] !== undefined || values["latency-stddev"] !== undefined
        ? "--latency-mean/--latency-stddev"
        : undefined
    ].filter((kind) => kind !== undefined)
    if (kinds.length > 1) {
      return yield* Effect.fail(commandLineError(`Give one kind of latency, not ${kinds.join(" and ")}`))
    }
    const latency =
      values.latency !== undefined
        ? { fixed: numeric(values.latency) }
        : kinds.length === 1 && values["latency-mean"] === undefined && values["latency-stddev"] === undefined
          ? { uniform: { min: numeric(values["latency-min"]), max: numeric(values["latency-max"]) } }
          : kinds.length === 1
            ? { normal: { mean: numeric(values["latency-mean"]), stdDev: numeric(values["latency-stddev"]) } }
            : undefined

    const options = defined({
      port: numeric(values.port),
      host: values.host,
      rpm: numeric(values.rpm),
      tpm: numeric(values.tpm),
      window: numeric(values.window),
      latency,
      faults: defined({
        serverError500: numeric(values["fault-500"]),
        serviceUnavailable503: numeric(values["fault-503"]),
        reset: numeric(values["fault-reset"]),
        hang: numeric(values["fault-hang"]),
        malformedJson: numeric(values["fault-malformed-json"]),
        slowBody: numeric(values["fault-slow-body"])
      }),
      slowBody: defined({
        chunks: numeric(values["slow-body-chunks"]),
        interval: numeric(values["slow-body-interval"])
      }),
      apiKeys: values["api-key"],
      seed: numeric(values.seed),
      logCapacity: numeric(values["log-capacity"]),
      models: values.model
    })
    return { _tag: "Run", options: yield* decodeOptions(options ?? {}) } as const
  })
