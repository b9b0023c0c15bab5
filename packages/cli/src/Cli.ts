/**
 * The `sluice` command line: `sluice run` (a JSONL batch through a metered
 * API, resumable, with live progress) and `sluice demo` (the same against an
 * embedded MockProvider).
 *
 * ```sh
 * sluice run --input requests.jsonl --output results.jsonl \
 *   --base-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY \
 *   --rpm 500 --tpm 90000 --concurrency 16 --max-attempts 3 --timeout 60s
 * ```
 *
 * Limits: one API client for the whole run. The first line goes alone and
 * the server's rate-limit headers on its answer say the limits; the client's
 * limits become the tighter of those and `--rpm`/`--tpm` (see `HttpSend`).
 * `--no-learn-limits` goes by the flags only.
 *
 * Several endpoints: `--providers FILE` (see `internal/providers.ts`) puts
 * one such client per provider, each with its own key, limits and breaker,
 * behind a Router (`internal/routerSend.ts`, `--strategy`): a provider that
 * fails moves its lines to the others; the run pauses only when every
 * provider is down. The single endpoint stays its own path (not a router of
 * one): its outage pauses the run through its own breaker, which a router of
 * one would only wrap in a pass-through Executor and a second outage check.
 *
 * Exit codes (`EXIT_CODES`, also in `sluice run --help`): 0 every line has a
 * successful result; 1 the run completed but some lines failed (now, or
 * kept from an earlier run) or were malformed (see the output and the
 * errors file); 2 a usage error (a bad
 * flag, an unset `--api-key-env` variable, a bad base URL, no key for a
 * host other than loopback without `--no-api-key`); 3 the run could
 * not go on (input unreadable, output unwritable or not a results file, or
 * held by another run); 4 authentication failed (the provider answered 401
 * or 403: the run stopped at once); 5 the provider was unavailable for
 * longer than `--max-outage` (the run stopped, keeping what was done); 130
 * interrupted by Ctrl-C (or SIGTERM). In every case the output is
 * consistent and a rerun does the rest.
 *
 * Outages: `sluice run` has a circuit breaker (`HttpSend.defaultBreaker`).
 * A line whose failure is the provider's while the provider answers no one
 * waits and is sent again; it fails only by its own error. A rerun does
 * again the lines whose failure was retryable (`--no-retry-failed` keeps
 * them).
 *
 * Failures are shown as they happen, grouped by what happened (on a terminal
 * one line per reason, counting up; otherwise a line when a reason's count
 * grows, at most every 2 s), and counted by reason in the summary.
 *
 * Progress: on a terminal, a live line on stderr (done/total, requests and
 * tokens per minute against the limits, 429s, retries, ETA); otherwise only
 * the summary, as text on stdout, or with `--json` as one JSON object.
 * Malformed input lines are reported on stderr as they are found.
 *
 * Ctrl-C: the first stops taking lines and lets in-flight lines finish for
 * up to `--drain-timeout`; the second stops at once (a repeat within half a
 * second is the same Ctrl-C: launchers forward it twice). Both leave only
 * complete lines in the output.
 *
 * Flags: each shows its default in `--help` and names itself, as typed, in
 * its errors (`internal/flags.ts`). A run to a host other than loopback
 * needs `--api-key-env`, or `--no-api-key` to say no key is meant; plain
 * `http://` goes only to loopback unless `--allow-insecure-http`.
 *
 * What `@effect/cli` gave us: flag parsing, validation, `--help`. What this
 * module adds: the flags of `run`, the check of where a run may go, the wiring of the runner to a sender and
 * the terminal (`makeSender` for one endpoint, `makeRouterSender` for `--providers`), the
 * two-step Ctrl-C and the exit codes.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import { CircuitBreaker, type InvalidOptions, type Router } from "@sluice/core"
import * as EndpointConfig from "@sluice/http/EndpointConfig"
import * as NodeHttpPool from "@sluice/http-node/NodeHttpPool"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Demo from "./Demo.js"
import * as HttpSend from "./HttpSend.js"
import * as CompactionPause from "./internal/compactionPause.js"
import * as Flags from "./internal/flags.js"
import * as View from "./internal/progressView.js"
import * as Providers from "./internal/providers.js"
import * as RouterSend from "./internal/routerSend.js"
import * as SharedLimits from "./internal/sharedLimits.js"
import * as Signals from "./internal/signals.js"
import * as Runner from "./Runner.js"
import * as RunReport from "./RunReport.js"
import * as RunStats from "./RunStats.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const ExitCode = {
  success: 0,
  someLinesFailed: 1,
  usage: 2,
  runError: 3,
  authenticationFailed: 4,
  providerUnavailable: 5,
  interrupted: 130
} as const

/**
 * What each exit code of `sluice run` means (shown by `--help`).
 *
 * @since 0.1.0
 * @category constants
 */
export const EXIT_CODES: ReadonlyArray<readonly [code: number, meaning: string]> = [
  [ExitCode.success, "every line has a successful result"],
  [
    ExitCode.someLinesFailed,
    "the run completed, but some lines failed (now, or kept from an earlier run) or were malformed (see the output and the errors file)"
  ],
  [
    ExitCode.usage,
    "a usage error: a bad flag, an unset --api-key-env variable, a bad base URL, no key for a host other than loopback"
  ],
  [
    ExitCode.runError,
    "the run could not go on: input unreadable, output unwritable or not a results file, or in use by another run"
  ],
  [ExitCode.authenticationFailed, "authentication failed: the provider answered 401 or 403; the run stopped at once"],
  [
    ExitCode.providerUnavailable,
    "the provider was unavailable for longer than --max-outage; the run stopped, keeping what was done"
  ],
  [ExitCode.interrupted, "interrupted by Ctrl-C or SIGTERM"]
]

/**
 * Where `sluice run` sends a batch unless `--base-url` says otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_BASE_URL = "https://api.openai.com/v1"

/**
 * A mistake in how the command was called, found after parsing (exit code 2).
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Schema.TaggedError<UsageError>("@sluice/cli/UsageError")("UsageError", {
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The flags of `sluice run`, parsed.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunFlags {
  readonly input: string
  readonly output: string
  readonly errors: Option.Option<string>
  readonly baseUrl: string
  readonly apiKeyEnv: Option.Option<string>
  readonly noApiKey: boolean
  readonly rpm: Option.Option<number>
  readonly tpm: Option.Option<number>
  readonly window: Duration.Duration
  readonly burst: number
  readonly headroom: number
  readonly learnLimits: boolean
  readonly outputTokensCharged: "maximum" | "used"
  readonly concurrency: number
  readonly maxAttempts: number
  readonly timeout: Duration.Duration
  readonly drainTimeout: Duration.Duration
  readonly json: boolean
  readonly allowInsecureHttp: boolean
  readonly report: Option.Option<string>
  readonly maxOutage: Duration.Duration
  readonly retryFailed: boolean
  /** `--redis URL`: share the limits with every `sluice run` on that Redis (see `internal/sharedLimits.ts`). */
  readonly redis: Option.Option<string>
  /** `--providers FILE`: several endpoints behind a Router (see `internal/providers.ts`, `internal/routerSend.ts`). */
  readonly providers: Option.Option<string>
  /** `--provider name=a,base-url=...,key-env=A_KEY,...` (repeated): the providers without a file (see `internal/providers.ts`). */
  readonly provider: ReadonlyArray<string>
  /** `--domain name=org,rpm=...,tpm=...` (repeated, with `--provider`): a quota domain its members share. */
  readonly domain: ReadonlyArray<string>
  /** `--strategy`: how the Router balances the providers. */
  readonly strategy: Router.Strategy
  /** `--redis-env NAME`: the same, the URL read from that environment variable (kept out of the process list). */
  readonly redisEnv: Option.Option<string>
}

const runFlags = {
  input: Flags.file("input", { exists: true }).pipe(
    Options.withDescription("The batch: JSONL, one { custom_id, method, url, body } per line (OpenAI batch format)")
  ),
  output: Flags.file("output").pipe(
    Options.withDescription("The results (JSONL), appended to; rerun with the same output to resume")
  ),
  errors: Flags.file("errors").pipe(
    Options.withDescription("Where malformed input lines are reported"),
    Flags.optional("<output>.errors.jsonl")
  ),
  baseUrl: Flags.url("base-url").pipe(
    Options.withDescription(
      "The API's base URL; a line's url /v1/... is taken under it. Plain http:// only to loopback, unless --allow-insecure-http"
    ),
    Flags.withDefault(DEFAULT_BASE_URL)
  ),
  apiKeyEnv: Options.text("api-key-env").pipe(
    Options.withPseudoName("NAME"),
    Options.withDescription(
      "The environment variable holding the API key (sent as a Bearer token, never printed). Required for a host other than loopback, unless --no-api-key"
    ),
    Flags.optional("no key: refused for a host other than loopback unless --no-api-key")
  ),
  noApiKey: Flags.toggle(
    "no-api-key",
    "Send no API key, to a host other than loopback too (an API that takes none)",
    "a run to a host other than loopback needs --api-key-env"
  ),
  rpm: Flags.positiveInteger("rpm").pipe(
    Options.withDescription("Requests per minute (per --window)"),
    Flags.optional("what the server's rate-limit headers report (none if they report none)")
  ),
  tpm: Flags.positiveInteger("tpm").pipe(
    Options.withDescription(
      "Tokens per minute (per --window; a line is estimated by the Model's token estimator, prompt + max_tokens)"
    ),
    Flags.optional("what the server's rate-limit headers report (none if they report none)")
  ),
  window: Flags.duration("window").pipe(
    Options.withDescription("The window --rpm and --tpm are counted over"),
    Flags.withDefault(Duration.minutes(1), "1m")
  ),
  burst: Flags.share("burst", { zero: false }).pipe(
    Options.withDescription(
      "The share of a window's allowance that may go at once (a larger request pays as the bucket refills)"
    ),
    Flags.withDefault(0.02)
  ),
  headroom: Flags.share("headroom", { zero: true }).pipe(
    Options.withDescription(
      "The share of each limit left unused in every window, for timing; the run holds at (1 - headroom - burst) of a limit"
    ),
    Flags.withDefault(0.02)
  ),
  learnLimits: Flags.toggle(
    "no-learn-limits",
    "Do not send the first line alone to learn the server's limits from its headers (the flags' limits only)",
    "the first line goes alone, and its answer's headers say the limits"
  ).pipe(Options.map((off) => !off)),
  outputTokensCharged: Flags.choice("output-tokens-charged", ["maximum", "used"]).pipe(
    Options.withDescription(
      "What the provider counts for a chat answer's output: max_tokens (OpenAI) or the tokens used (settled after the call)"
    ),
    Flags.withDefault("maximum")
  ),
  concurrency: Flags.positiveInteger("concurrency").pipe(
    Options.withDescription("Requests in flight at once"),
    Flags.withDefault(16)
  ),
  maxAttempts: Flags.positiveInteger("max-attempts").pipe(
    Options.withDescription("Attempts per line, the first included"),
    Flags.withDefault(3)
  ),
  timeout: Flags.duration("timeout").pipe(
    Options.withDescription("How long one attempt may take"),
    Flags.withDefault(Duration.seconds(60), "60s")
  ),
  drainTimeout: Flags.duration("drain-timeout").pipe(
    Options.withDescription("After Ctrl-C, how long in-flight lines may finish"),
    Flags.withDefault(Duration.seconds(30), "30s")
  ),
  maxOutage: Flags.duration("max-outage").pipe(
    Options.withDescription(
      "How long lines wait for a provider that answers no one (failed connections, 5xx, an open breaker) before the run stops, keeping what is done (exit 5)"
    ),
    Flags.withDefault(Duration.minutes(5), "5m")
  ),
  retryFailed: Flags.toggle(
    "no-retry-failed",
    "On a rerun, keep the failed results whose error was retryable (a 5xx, a timeout, a failed connection, a 429) instead of doing those lines again",
    "a rerun does again the lines whose failure was retryable"
  ).pipe(Options.map((off) => !off)),
  json: Flags.toggle("json", "Print the summary as one JSON object", "the summary as text"),
  allowInsecureHttp: Flags.toggle(
    "allow-insecure-http",
    "Allow a plain http:// base URL to a host other than loopback",
    "plain http:// only to loopback"
  ),
  report: Flags.file("report").pipe(
    Options.withDescription("Write a report page here (one self-contained HTML file: the run charted over time)"),
    Flags.optional("none")
  ),
  redis: Options.text("redis").pipe(
    Options.withPseudoName("URL"),
    Options.withDescription(
      "Keep the limits in this Redis (redis://host:port): every sluice run given it, against the same --base-url, shares one quota. The process list shows it: a URL with a password belongs in --redis-env"
    ),
    Flags.optional("none: the limits are this process's own")
  ),
  providers: Flags.file("providers", { exists: true }).pipe(
    Options.withDescription(
      "Several endpoints behind a Router: a JSON array of { name, baseUrl, keyEnv, domain?, weight?, tier?, contextWindow?, limits?: { rpm?, tpm? }, concurrency? } (limits absent: learned from the headers), or { domains: { name: { rpm?, tpm? } }, providers: [...] } where a declared domain's limits are shared by its members. Replaces --base-url, --api-key-env, --rpm and --tpm; a provider that fails moves its lines to the others"
    ),
    Flags.optional("none: one endpoint, --base-url")
  ),
  provider: Options.text("provider").pipe(
    Options.withPseudoName(
      "name=N,base-url=URL,key-env=VAR[,rpm=R][,tpm=T][,domain=D][,weight=W][,tier=T][,context-window=C][,concurrency=C]"
    ),
    Options.withDescription(
      "A provider behind a Router, in place of a --providers file (repeat the flag, one per provider): the file's fields as key=value pairs. Cannot go with --providers"
    ),
    Options.withDescription("Default: none (one endpoint, --base-url)"),
    Options.repeated
  ),
  domain: Options.text("domain").pipe(
    Options.withPseudoName("name=D[,rpm=R][,tpm=T]"),
    Options.withDescription(
      "With --provider: a quota domain whose limits its members (domain=D) share, as the file's domains (repeat per domain)"
    ),
    Options.withDescription("Default: none"),
    Options.repeated
  ),
  strategy: Flags.choice("strategy", ["leastOutstanding", "roundRobin", "weightedRoundRobin", "lowestLatency"]).pipe(
    Options.withDescription("With --providers: how the Router balances the providers"),
    Flags.withDefault("leastOutstanding")
  ),
  redisEnv: Options.text("redis-env").pipe(
    Options.withPseudoName("NAME"),
    Options.withDescription(
      "As --redis, the URL (redis://[:password@]host:port) read from this environment variable, so that no password shows in the process list, output or logs"
    ),
    Flags.optional("none")
  )
}

/**
 * Where the run may go, checked before anything is sent: plain `http://` only
 * to loopback unless `--allow-insecure-http`; to a host other than loopback
 * with a key (`--api-key-env`), unless `--no-api-key` says none is meant.
 * Errors name the host, not the URL (a query string may hold a secret).
 */
const checkDestination = (flags: RunFlags): Effect.Effect<void, UsageError> => {
  const url = new URL(flags.baseUrl)
  const loopback = EndpointConfig.isLoopback(url.hostname)
  const refuse = (detail: string) => Effect.fail(new UsageError({ detail }))
  if (flags.noApiKey && Option.isSome(flags.apiKeyEnv)) {
    return refuse(`--no-api-key and --api-key-env ${flags.apiKeyEnv.value}: give one or the other`)
  }
  if (!loopback && url.protocol === "http:" && !flags.allowInsecureHttp) {
    return refuse(
      `--base-url: plain http:// to ${url.hostname}, which is not loopback, would cross the network in clear; use https://, or add --allow-insecure-http if that is meant`
    )
  }
  if (!loopback && Option.isNone(flags.apiKeyEnv) && !flags.noApiKey) {
    return refuse(
      `--base-url: no --api-key-env given, so no API key would be sent to ${url.hostname}; give --api-key-env NAME (the variable holding the key), or add --no-api-key if the API takes none`
    )
  }
  return Effect.void
}

/**
 * The Redis URL of `--redis` or `--redis-env`, `Redacted` from here on (it may hold a password). Errors name
 * the flag and the variable, never the URL.
 */
const readRedisUrl = (flags: RunFlags): Effect.Effect<Option.Option<Redacted.Redacted<string>>, UsageError> => {
  if (Option.isSome(flags.redis) && Option.isSome(flags.redisEnv)) {
    return Effect.fail(
      new UsageError({ detail: `--redis and --redis-env ${flags.redisEnv.value}: give one or the other` })
    )
  }
  if (Option.isSome(flags.redis)) return Effect.succeed(Option.some(Redacted.make(flags.redis.value)))
  return Option.match(flags.redisEnv, {
    onNone: () => Effect.succeed(Option.none()),
    onSome: (name) =>
      Config.redacted(name).pipe(
        Effect.map(Option.some),
        Effect.mapError(
          () => new UsageError({ detail: `--redis-env ${name}: the environment variable ${name} is not set` })
        )
      )
  })
}

const readApiKey = (flags: RunFlags): Effect.Effect<Redacted.Redacted<string> | undefined, UsageError> =>
  Option.match(flags.apiKeyEnv, {
    onNone: () => Effect.succeed(undefined),
    onSome: (name) =>
      Config.redacted(name).pipe(
        Effect.mapError(
          () => new UsageError({ detail: `--api-key-env ${name}: the environment variable ${name} is not set` })
        )
      )
  })

/**
 * The sender `sluice run` uses, built from its flags: today `HttpSend`
 * (an `ApiClient` with the flags' limits). This is the one place to wire the
 * Model service instead.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSender = (
  flags: RunFlags,
  apiKey: Redacted.Redacted<string> | undefined
): Effect.Effect<
  HttpSend.Sender,
  InvalidOptions.InvalidOptionsError,
  HttpClient.HttpClient | RunStats.RunStats | RunReport.Recording | Scope.Scope
> =>
  Effect.gen(function* () {
    // The run's breaker (the default one), built here so that the report can chart it.
    const breaker = yield* CircuitBreaker.make(HttpSend.defaultBreaker(RUN_NAME))
    yield* Effect.flatMap(RunReport.Recording, (recording) => recording.watchBreaker(breaker))
    return yield* sender(flags, apiKey, breaker)
  })

const RUN_NAME = "sluice-run"

/** Flags that `--providers` replaces (each provider gives its own in the file). */
const REPLACED_BY_PROVIDERS = ["--api-key-env", "--no-api-key", "--rpm", "--tpm", "--redis", "--redis-env"] as const

/**
 * The sender of `sluice run --providers FILE`: the file read and checked, each provider's key read
 * (`Redacted`), one `HttpSend` per provider behind a Router (`internal/routerSend.ts`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRouterSender = (
  flags: RunFlags,
  /** The providers file; undefined: the `--provider` flags. */
  path: string | undefined
): Effect.Effect<
  RouterSend.RouterSender,
  InvalidOptions.InvalidOptionsError | Providers.ProvidersError | UsageError,
  HttpClient.HttpClient | RunStats.RunStats | FileSystem.FileSystem | Scope.Scope
> =>
  Effect.gen(function* () {
    const given = [
      Option.isSome(flags.apiKeyEnv),
      flags.noApiKey,
      Option.isSome(flags.rpm),
      Option.isSome(flags.tpm),
      Option.isSome(flags.redis),
      Option.isSome(flags.redisEnv)
    ]
    const clash = REPLACED_BY_PROVIDERS.filter((_, index) => given[index])
    if (path !== undefined && flags.provider.length > 0) {
      return yield* new UsageError({
        detail: `--providers ${path} and --provider cannot go together: give every provider in the file, or every one as a --provider flag`
      })
    }
    if (path !== undefined && flags.domain.length > 0) {
      return yield* new UsageError({
        detail: `--providers ${path} and --domain cannot go together: declare the domains in the file ({ "domains": {...}, "providers": [...] })`
      })
    }
    if (clash.length > 0) {
      return yield* new UsageError({
        detail:
          path === undefined
            ? `--provider: ${clash.join(", ")} cannot go with it; give each provider its key-env and limits in its --provider flag`
            : `--providers ${path}: ${clash.join(", ")} cannot go with it; give each provider its keyEnv and limits in the file`
      })
    }
    const options = { allowInsecureHttp: flags.allowInsecureHttp }
    const { domains, providers } = yield* path === undefined
      ? Providers.loadFlags(flags.provider, flags.domain, options)
      : Providers.load(path, options)
    return yield* RouterSend.make({
      providers,
      domains,
      strategy: flags.strategy,
      maxOutage: flags.maxOutage,
      shared: {
        window: flags.window,
        burst: flags.burst,
        headroom: flags.headroom,
        learnLimits: flags.learnLimits,
        outputTokensCharged: flags.outputTokensCharged,
        concurrency: flags.concurrency,
        maxAttempts: flags.maxAttempts,
        timeout: flags.timeout,
        allowInsecureHttp: flags.allowInsecureHttp
      }
    })
  })

const sender = (
  flags: RunFlags,
  apiKey: Redacted.Redacted<string> | undefined,
  breaker: CircuitBreaker.CircuitBreakerShape
) =>
  HttpSend.make({
    name: RUN_NAME,
    breaker,
    baseUrl: flags.baseUrl,
    apiKey,
    rpm: Option.getOrUndefined(flags.rpm),
    tpm: Option.getOrUndefined(flags.tpm),
    window: flags.window,
    burst: flags.burst,
    headroom: flags.headroom,
    learnLimits: flags.learnLimits,
    outputTokensCharged: flags.outputTokensCharged,
    concurrency: flags.concurrency,
    maxAttempts: flags.maxAttempts,
    timeout: flags.timeout,
    allowInsecureHttp: flags.allowInsecureHttp,
    maxOutage: flags.maxOutage
  })

const setExitCode = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

const clearLine = "\r\x1b[2K"

const reportDetails = (flags: RunFlags): ReadonlyArray<readonly [string, string]> => [
  ["input", flags.input],
  ["output", flags.output],
  Option.match(flags.providers, {
    onNone: () =>
      flags.provider.length > 0
        ? (["providers", `${flags.provider.length} --provider flags (--strategy ${flags.strategy})`] as const)
        : (["base URL", flags.baseUrl] as const),
    onSome: (path) => ["providers", `${path} (--strategy ${flags.strategy})`] as const
  })
]
/** Failures of a reason are reported again (off a terminal) when their count grew, at most this often. */
const REPORT_EVERY_MILLIS = 2_000
/** An outage still going is reported again (off a terminal) this often. */
const OUTAGE_REPORT_EVERY_MILLIS = 30_000

/** The exit code for a run's summary. */
export const exitCodeOf = (summary: Runner.Summary): number =>
  summary.stopReason === "halted"
    ? summary.halt?.reason === "AuthenticationFailed"
      ? ExitCode.authenticationFailed
      : summary.halt?.reason === "ProviderUnavailable"
        ? ExitCode.providerUnavailable
        : ExitCode.runError
    : summary.stopReason !== "completed"
      ? ExitCode.interrupted
      : summary.failed > 0 || summary.keptFailed > 0 || summary.malformed > 0
        ? ExitCode.someLinesFailed
        : ExitCode.success

/**
 * What stderr shows while a run goes: on a terminal a live block redrawn in place (one line per failure
 * reason, counting up; the outage being waited out; the progress line); otherwise a line when a reason's
 * count grew (at most every 2 s each) and when an outage begins, lasts and ends.
 */
const makeStderrView = (live: boolean, maxOutageMillis: number) => {
  const write = (text: string) => Effect.sync(() => void process.stderr.write(text))
  /** Lines of the live block on screen now. */
  let drawn = 0
  const eraseBlock = () => {
    const up = drawn > 1 ? `\x1b[${drawn - 1}A` : ""
    drawn = 0
    return `${up}${clearLine}\x1b[J`
  }
  const reported = new Map<string, { readonly count: number; readonly at: number }>()
  let outageReportedAt: number | undefined
  const blockOf = (progress: RunStats.Progress) => [
    ...Object.entries(progress.failuresByReason)
      .sort(([, a], [, b]) => b - a)
      .map(([reason, count]) => View.failureLine(reason, count)),
    ...(progress.outage === undefined ? [] : [View.outageLine(progress.outage, maxOutageMillis)]),
    View.progressLine(progress)
  ]
  return {
    /** A line above the live block (or just a line). */
    print: (text: string) => Effect.suspend(() => write(`${live ? eraseBlock() : ""}${text}\n`)),
    /** Redraws the block (terminal) or prints what changed (otherwise). */
    update: (progress: RunStats.Progress, final: boolean) =>
      Effect.suspend(() => {
        if (live) {
          const lines = blockOf(progress)
          const text = `${eraseBlock()}${lines.join("\n")}`
          drawn = lines.length
          return write(text)
        }
        const now = progress.elapsedMillis
        const out: Array<string> = []
        for (const [reason, count] of Object.entries(progress.failuresByReason)) {
          const last = reported.get(reason)
          if (last !== undefined && (last.count === count || (!final && now - last.at < REPORT_EVERY_MILLIS))) continue
          reported.set(reason, { count, at: now })
          out.push(View.failureLine(reason, count))
        }
        if (progress.outage !== undefined) {
          if (outageReportedAt === undefined || now - outageReportedAt >= OUTAGE_REPORT_EVERY_MILLIS) {
            outageReportedAt = now
            out.push(View.outageLine(progress.outage, maxOutageMillis))
          }
        } else if (outageReportedAt !== undefined) {
          outageReportedAt = undefined
          out.push("provider answering again: the waiting lines go on")
        }
        return out.length === 0 ? Effect.void : write(`${out.join("\n")}\n`)
      }),
    /** Leaves the final counts on screen (terminal: the block without the progress line). */
    close: (progress: RunStats.Progress) =>
      Effect.suspend(() => {
        if (!live) return Effect.void
        const reasons = blockOf(progress).slice(0, -1)
        return write(`${eraseBlock()}${reasons.map((line) => `${line}\n`).join("")}`)
      })
  }
}

const runBatch = (flags: RunFlags, interrupts: Signals.Interrupts) =>
  Effect.gen(function* () {
    const stats = yield* RunStats.RunStats
    if (flags.domain.length > 0 && Option.isNone(flags.providers) && flags.provider.length === 0) {
      return yield* new UsageError({ detail: "--domain goes with --provider: name its members with domain=NAME" })
    }
    const routed =
      Option.isSome(flags.providers) || flags.provider.length > 0
        ? yield* makeRouterSender(flags, Option.getOrUndefined(flags.providers))
        : undefined
    const senderConcurrency = routed?.concurrency ?? flags.concurrency
    const send: HttpSend.Sender =
      routed ??
      (yield* Effect.gen(function* () {
        yield* checkDestination(flags)
        const apiKey = yield* readApiKey(flags)
        const redisUrl = yield* readRedisUrl(flags)
        const redisFlag = Option.match(flags.redisEnv, {
          onNone: () => "--redis",
          onSome: (name) => `--redis-env ${name}`
        })
        return yield* SharedLimits.withRedis(redisUrl, flags.baseUrl, makeSender(flags, apiKey)).pipe(
          Effect.catchTag("RedisClientError", (error) => new UsageError({ detail: `${redisFlag}: ${error.message}` }))
        )
      }))
    const live = process.stderr.isTTY === true
    const view = makeStderrView(live, Duration.toMillis(flags.maxOutage))

    const render = Effect.flatMap(stats.snapshot, (progress) => view.update(progress, false))
    const renderer = yield* Effect.forkScoped(Effect.repeat(render, Schedule.spaced(live ? "250 millis" : "1 second")))
    yield* Effect.forkScoped(
      interrupts.first.pipe(
        Effect.zipRight(
          view.print(
            `Stopping: no new lines; in-flight lines may finish for up to ${Duration.format(flags.drainTimeout)}.`
          )
        ),
        // Said once a second Ctrl-C counts (a repeat sooner is the same one, forwarded by a launcher).
        Effect.zipRight(interrupts.armed),
        Effect.zipRight(view.print("Ctrl-C again to stop at once."))
      )
    )

    const summary = yield* Runner.run(
      {
        input: flags.input,
        output: flags.output,
        errors: Option.getOrUndefined(flags.errors),
        // Twice the sender's own concurrency (with --providers, the providers' together): the next lines wait in
        // an Executor's queue (where admission happens), so a finished call is followed at once; the runner is
        // never the limiter.
        concurrency: 2 * senderConcurrency,
        stop: interrupts.first,
        abort: interrupts.second,
        halt: send.halted,
        retryFailed: flags.retryFailed,
        drainTimeout: flags.drainTimeout,
        onMalformed: (malformed) => view.print(View.malformedLine(malformed)),
        onCompaction: yield* CompactionPause.fromEnvironment
      },
      send
    )
    const exitCode = exitCodeOf(summary)
    yield* Fiber.interrupt(renderer)
    const progress = yield* stats.snapshot
    yield* view.update(progress, true)
    yield* view.close(progress)
    if (summary.halt !== undefined) yield* Console.error(`sluice run stopped. ${summary.halt.message}`)
    yield* flags.json ? Console.log(View.summaryJson(summary, exitCode)) : Console.log(View.summaryText(summary))
    yield* setExitCode(exitCode)
  }).pipe(
    Effect.scoped,
    // The sender feeds RunStats its client's request events, its 429s and the limits in force.
    Effect.provide(
      RunReport.layer(
        Option.match(flags.report, {
          onNone: () => undefined,
          onSome: (path) => ({ path, title: "sluice run", details: reportDetails(flags) })
        })
      )
    ),
    Effect.provide(NodeHttpPool.layer({ connections: flags.concurrency })),
    Effect.catchTags({
      UsageError: (error) => Effect.zipRight(Console.error(error.message), setExitCode(ExitCode.usage)),
      ProvidersError: (error) => Effect.zipRight(Console.error(error.message), setExitCode(ExitCode.usage)),
      InvalidOptionsError: (error) => Effect.zipRight(Console.error(error.message), setExitCode(ExitCode.usage)),
      RunError: (error) => Effect.zipRight(Console.error(error.message), setExitCode(ExitCode.runError))
    })
  )

/**
 * `sluice run`. The handler runs the batch on its own (daemon) fiber and waits
 * for it uninterruptibly: Ctrl-C is handled by the two-step drain (our signal
 * listeners see it), not by `runMain` interrupting the program.
 *
 * @since 0.1.0
 * @category running
 */
export const runCommand = Command.make("run", runFlags, (flags) =>
  Effect.uninterruptible(
    Effect.scoped(
      Effect.gen(function* () {
        const interrupts = yield* Signals.make()
        // A daemon: an interrupt sent to this fiber (runMain's own SIGINT handler) would reach a child.
        const fiber = yield* Effect.forkDaemon(Effect.interruptible(runBatch(flags, interrupts)))
        yield* Fiber.join(fiber)
      })
    )
  )
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("Run a JSONL batch (OpenAI batch format) through a metered API, resumably."),
      HelpDoc.p("Exit codes:"),
      ...EXIT_CODES.map(([code, meaning]) => HelpDoc.p(`  ${String(code).padEnd(3)} ${meaning}`))
    ])
  )
)

const demoFlags = {
  requests: Flags.positiveInteger("requests").pipe(
    Options.withDescription("Chat requests in the batch (the default takes about 45 s)"),
    Flags.withDefault(320)
  ),
  directory: Options.directory("keep-files").pipe(
    Options.withDescription("Write the input and results here and keep them"),
    Flags.optional("a temporary directory")
  ),
  report: Flags.file("report").pipe(
    Options.withDescription("Write the report page here"),
    Flags.optional("report.html in --keep-files, else sluice-demo-report.html in the system's temporary directory")
  )
}

/**
 * `sluice demo`: `sluice run` against an embedded MockProvider (see `Demo`).
 *
 * @since 0.1.0
 * @category running
 */
export const demoCommand = Command.make("demo", demoFlags, (flags) =>
  Demo.run({
    requests: flags.requests,
    directory: Option.getOrUndefined(flags.directory),
    report: Option.getOrUndefined(flags.report)
  }).pipe(
    Effect.flatMap(({ summary }) => setExitCode(summary.failed > 0 ? ExitCode.someLinesFailed : ExitCode.success)),
    Effect.catchAll((error) => Effect.zipRight(Console.error(error.message), setExitCode(ExitCode.runError)))
  )
).pipe(
  Command.withDescription(
    "Run a batch through the whole stack against an embedded MockProvider, with live progress and a report"
  )
)

/**
 * @since 0.1.0
 * @category running
 */
export const command = Command.make("sluice").pipe(Command.withSubcommands([runCommand, demoCommand]))

/**
 * The whole command line: give it `process.argv`.
 *
 * @since 0.1.0
 * @category running
 */
export const cli = Command.run(command, { name: "sluice", version: "0.1.0" })
