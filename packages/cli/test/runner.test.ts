import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { awaitDeferred, awaitFiber, awaitSleeperAt } from "@sluice/testing/TestEvents"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as Runner from "../src/Runner.js"
import * as RunStats from "../src/RunStats.js"

const TestLayer = Layer.merge(NodeContext.layer, RunStats.layer())

const request = (id: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", id } })

const requests = (count: number) => Array.from({ length: count }, (_, index) => request(`r${index}`))

const echo: Runner.Send = (line) =>
  Effect.succeed({ response: { echo: line.customId }, attempts: 1, usage: { promptTokens: 3, completionTokens: 5 } })

/** Reads a results (or errors) file as parsed lines, checking each line is complete. */
const readJsonl = (path: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    if (!(yield* fs.exists(path))) return []
    const text = yield* fs.readFileString(path)
    if (text !== "") expect(text.endsWith("\n")).toBe(true)
    return text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, any>)
  })

const ids = (lines: ReadonlyArray<Record<string, any>>) => lines.map((line) => line.custom_id as string)

/** A result as this version writes it. */
const succeededRecord = (id: string) =>
  JSON.stringify({
    id: `batch_req_${id}`,
    custom_id: id,
    response: { status_code: 200, request_id: "req_1", body: { echo: id } },
    error: null,
    sluice: { status: "succeeded", line: 1, attempts: 1 }
  })

/** A failure as this version writes it; `retryable` undefined: a record that does not say. */
const failedRecord = (id: string, kind: string, retryable: boolean | undefined) =>
  JSON.stringify({
    id: `batch_req_${id}`,
    custom_id: id,
    response: null,
    error: { code: "x", message: "failed" },
    sluice: {
      status: "failed",
      line: 1,
      attempts: 1,
      error: { kind, ...(retryable === undefined ? {} : { retryable }) }
    }
  })

const setup = (inputLines: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    yield* fs.writeFileString(`${dir}/in.jsonl`, `${inputLines.join("\n")}\n`)
    return { input: `${dir}/in.jsonl`, output: `${dir}/out.jsonl`, dir }
  })

/** Each run gets fresh stats, as each `sluice run` does. */
const runOnce = (options: Runner.RunOptions, send: Runner.Send) =>
  Effect.provide(Runner.run(options, send), RunStats.layer())

describe("Runner.run", () => {
  it.scoped("writes one result per line; malformed and duplicate lines are reported with their line numbers", () =>
    Effect.gen(function* () {
      const files = yield* setup([
        request("a"),
        "{not json",
        "",
        request("b"),
        JSON.stringify({ method: "POST", url: "/v1/x", body: {} }),
        request("a"),
        JSON.stringify({ custom_id: "c", method: "GET", url: "/v1/x", body: {} }),
        request("d")
      ])
      const reported: Array<Runner.Malformed> = []
      const summary = yield* runOnce(
        {
          ...files,
          concurrency: 4,
          onMalformed: (malformed) => Effect.sync(() => void reported.push(malformed))
        },
        echo
      )
      const expected = [
        { lineNumber: 2, reason: "not valid JSON" },
        { lineNumber: 5, reason: "missing custom_id" },
        { lineNumber: 6, customId: "a", reason: "duplicate custom_id (first on line 1)" },
        { lineNumber: 7, customId: "c", reason: 'method must be "POST"' }
      ]
      expect(reported).toEqual(expected)
      // The errors file in OpenAI's batch output shape too: no response, an error with a code and a message.
      expect(yield* readJsonl(Runner.errorsPathFor(files.output))).toEqual(
        expected.map(({ lineNumber, customId, reason }) => ({
          id: expect.stringMatching(/^batch_req_[0-9a-f]{32}$/),
          custom_id: customId ?? null,
          response: null,
          error: { code: "invalid_request", message: `line ${lineNumber}: ${reason}` },
          sluice: { status: "malformed", line: lineNumber, reason }
        }))
      )
      const results = yield* readJsonl(files.output)
      expect(ids(results).sort()).toEqual(["a", "b", "d"])
      expect(results.find((line) => line.custom_id === "b")).toEqual({
        id: expect.stringMatching(/^batch_req_[0-9a-f]{32}$/),
        custom_id: "b",
        response: { status_code: 200, request_id: null, body: { echo: "b" } },
        error: null,
        sluice: {
          status: "succeeded",
          line: 4,
          attempts: 1,
          started_at: expect.any(String),
          finished_at: expect.any(String),
          duration_ms: expect.any(Number),
          usage: { prompt_tokens: 3, completion_tokens: 5 }
        }
      })
      expect(new Set(results.map((line) => line.id)).size).toBe(results.length)
      expect(summary).toMatchObject({
        stopReason: "completed",
        total: 7,
        succeeded: 3,
        failed: 0,
        skipped: 0,
        malformed: 4,
        remaining: 0,
        promptTokens: 9,
        completionTokens: 15
      })
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("a failed line is written with its final error and counts as done on a rerun", () =>
    Effect.gen(function* () {
      const files = yield* setup(requests(6))
      const failOdd: Runner.Send = (line) =>
        Number(line.customId.slice(1)) % 2 === 1
          ? Effect.fail(
              new Runner.RunError({
                reason: "SendFailed",
                errorKind: "ServerError",
                detail: "503 overloaded",
                attempts: 3
              })
            )
          : echo(line)
      const first = yield* runOnce({ ...files, concurrency: 3 }, failOdd)
      expect(first).toMatchObject({ succeeded: 3, failed: 3 })
      const failed = (yield* readJsonl(files.output)).find((line) => line.custom_id === "r1")
      expect(failed).toMatchObject({
        response: null,
        error: { code: "server_error", message: "503 overloaded" },
        sluice: { status: "failed", attempts: 3, error: { kind: "ServerError", retryable: true } }
      })
      let sent = 0
      const second = yield* runOnce({ ...files, concurrency: 3 }, (line) =>
        Effect.zipRight(
          Effect.sync(() => sent++),
          echo(line)
        )
      )
      expect(sent).toBe(0)
      expect(second).toMatchObject({ skipped: 6, succeeded: 0, failed: 0, stopReason: "completed" })
      expect(ids(yield* readJsonl(files.output)).sort()).toEqual(
        requests(6)
          .map((line) => JSON.parse(line).custom_id)
          .sort()
      )
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("resume: a torn last line is removed and done lines are skipped", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const files = yield* setup(requests(5))
      yield* fs.writeFileString(
        files.output,
        `${succeededRecord("r0")}\n${failedRecord("r3", "ClientError", false)}\n{"id":"batch_req_1","custom_id":"r1","resp`
      )
      const sent: Array<string> = []
      const summary = yield* runOnce({ ...files, concurrency: 2 }, (line) =>
        Effect.zipRight(
          Effect.sync(() => sent.push(line.customId)),
          echo(line)
        )
      )
      expect(sent.sort()).toEqual(["r1", "r2", "r4"])
      expect(summary).toMatchObject({
        skipped: 2,
        succeeded: 3,
        truncatedBytes: '{"id":"batch_req_1","custom_id":"r1","resp'.length
      })
      expect(ids(yield* readJsonl(files.output))).toHaveLength(5)
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("stop: no new lines are sent, in-flight ones finish, and a rerun does exactly the rest", () =>
    Effect.gen(function* () {
      const files = yield* setup(requests(1000))
      const stop = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const allStarted = yield* Deferred.make<void>()
      let started = 0
      const gated: Runner.Send = (line) =>
        Effect.gen(function* () {
          if (++started === 4) yield* Deferred.succeed(allStarted, undefined)
          yield* Deferred.await(gate)
          return yield* echo(line)
        })
      const start = yield* Clock.currentTimeMillis
      const fiber = yield* Effect.fork(
        runOnce({ ...files, concurrency: 4, stop: Deferred.await(stop), drainTimeout: "1 minute" }, gated)
      )
      yield* awaitDeferred("4 lines are with the sender", allStarted)
      yield* Deferred.succeed(stop, undefined)
      // The drain deadline starts sleeping once the run has seen the stop: from then on no line is sent.
      yield* awaitSleeperAt("the run has seen the stop (its drain deadline sleeps)", start + 60_000)
      yield* Deferred.succeed(gate, undefined)
      const summary = yield* awaitFiber("the stopped run ends", fiber)
      expect(summary.stopReason).toBe("drained")
      expect(started).toBe(4)
      const firstIds = ids(yield* readJsonl(files.output))
      expect(firstIds.length).toBe(started)
      expect(firstIds.length).toBeLessThan(1000)
      expect(new Set(firstIds).size).toBe(firstIds.length)

      const rest = yield* runOnce({ ...files, concurrency: 8 }, echo)
      expect(rest).toMatchObject({
        stopReason: "completed",
        skipped: firstIds.length,
        succeeded: 1000 - firstIds.length
      })
      const all = ids(yield* readJsonl(files.output))
      expect(all.length).toBe(1000)
      expect(new Set(all).size).toBe(1000)
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("abort (and the drain deadline) interrupt hung sends; the output holds only complete lines", () =>
    Effect.gen(function* () {
      const files = yield* setup(requests(50))
      /** Answers the first 10 lines; hangs on the rest, and completes `hung` once `concurrency` (4) hang. */
      const hangAfterTen =
        (count: { value: number }, hung: Deferred.Deferred<void>): Runner.Send =>
        (line) =>
          Effect.suspend(() => {
            const sent = ++count.value
            if (sent <= 10) return echo(line)
            return Effect.zipRight(sent === 14 ? Deferred.succeed(hung, undefined) : Effect.void, Effect.never)
          })

      const stop = yield* Deferred.make<void>()
      const abort = yield* Deferred.make<void>()
      const hung = yield* Deferred.make<void>()
      const count = { value: 0 }
      const fiber = yield* Effect.fork(
        runOnce(
          {
            ...files,
            concurrency: 4,
            stop: Deferred.await(stop),
            abort: Deferred.await(abort),
            drainTimeout: "1 hour"
          },
          hangAfterTen(count, hung)
        )
      )
      yield* awaitDeferred("4 sends hang", hung)
      yield* Deferred.succeed(stop, undefined)
      yield* Deferred.succeed(abort, undefined)
      expect((yield* awaitFiber("the aborted run ends", fiber)).stopReason).toBe("aborted")
      expect(ids(yield* readJsonl(files.output))).toHaveLength(10)

      // The deadline: a short drain, the sends still hanging.
      const stopAgain = yield* Deferred.make<void>()
      const hungAgain = yield* Deferred.make<void>()
      const again = { value: 0 }
      const deadlineFiber = yield* Effect.fork(
        runOnce(
          { ...files, concurrency: 4, stop: Deferred.await(stopAgain), drainTimeout: "50 millis" },
          hangAfterTen(again, hungAgain)
        )
      )
      yield* awaitDeferred("4 sends hang again", hungAgain)
      const stoppedAt = yield* Clock.currentTimeMillis
      yield* Deferred.succeed(stopAgain, undefined)
      // The drain deadline sleeps on the TestClock: once it does, move the clock past it.
      yield* awaitSleeperAt("the drain deadline sleeps", stoppedAt + 50)
      yield* TestClock.adjust("50 millis")
      const deadline = yield* awaitFiber("the run ends at its drain deadline", deadlineFiber)
      expect(deadline).toMatchObject({ stopReason: "deadline", skipped: 10, succeeded: 10 })

      const rest = yield* runOnce({ ...files, concurrency: 4 }, echo)
      expect(rest).toMatchObject({ stopReason: "completed", skipped: 20, succeeded: 30 })
      const all = ids(yield* readJsonl(files.output))
      expect(new Set(all).size).toBe(50)
      expect(all).toHaveLength(50)
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("refuses to run with the input as the output, or a missing input", () =>
    Effect.gen(function* () {
      const files = yield* setup(requests(1))
      const same = yield* Effect.flip(runOnce({ input: files.input, output: files.input, concurrency: 1 }, echo))
      expect(same).toMatchObject({ _tag: "RunError", reason: "SamePath" })
      const missing = yield* Effect.flip(
        runOnce({ input: `${files.dir}/absent.jsonl`, output: files.output, concurrency: 1 }, echo)
      )
      expect(missing).toMatchObject({ _tag: "RunError", reason: "InputUnreadable" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped(
    "retryFailed: a rerun does again the retryable failures; the output ends with one record per custom_id",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const files = yield* setup(requests(4))
        // r0 succeeded; r1 failed retryably (said); r2 failed for good; r3 failed retryably by its kind (the
        // record does not say); r0 again: an earlier run's duplicate, the latest standing.
        yield* fs.writeFileString(
          files.output,
          [
            failedRecord("r0", "ServerError", true),
            failedRecord("r1", "ServerError", true),
            failedRecord("r2", "ClientError", false),
            failedRecord("r3", "Timeout", undefined),
            succeededRecord("r0")
          ].join("\n") + "\n"
        )
        const sent: Array<string> = []
        const counting: Runner.Send = (line) =>
          Effect.zipRight(
            Effect.sync(() => sent.push(line.customId)),
            echo(line)
          )

        const kept = yield* runOnce({ ...files, concurrency: 2 }, counting)
        expect(sent).toEqual([])
        expect(kept).toMatchObject({ skipped: 4, succeeded: 0 })
        // Even without retrying, the superseded r0 record went: one per custom_id.
        expect(ids(yield* readJsonl(files.output))).toEqual(["r1", "r2", "r3", "r0"])

        const retried = yield* runOnce({ ...files, concurrency: 2, retryFailed: true }, counting)
        expect(sent.sort()).toEqual(["r1", "r3"])
        expect(retried).toMatchObject({ skipped: 2, succeeded: 2, failed: 0 })
        const lines = yield* readJsonl(files.output)
        expect(ids(lines).sort()).toEqual(["r0", "r1", "r2", "r3"])
        expect(lines.find((line) => line.custom_id === "r1")).toMatchObject({
          error: null,
          sluice: { status: "succeeded" }
        })
        expect(lines.find((line) => line.custom_id === "r2")).toMatchObject({
          response: null,
          error: { code: "x" },
          sluice: { status: "failed" }
        })
        expect(yield* fs.exists(`${files.output}.compacting`)).toBe(false)
      }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("a kill -9 during compaction (before the rename) leaves the old file: the next run compacts again", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const files = yield* setup(requests(3))
      const before = [failedRecord("r0", "Transport", true), succeededRecord("r1"), failedRecord("r0", "Timeout", true)]
      yield* fs.writeFileString(files.output, `${before.join("\n")}\n`)
      // What a compaction cut short leaves: a partial new file beside the old one.
      yield* fs.writeFileString(`${files.output}.compacting`, `${before[1]}\n{"custom_id":"r`)
      const summary = yield* runOnce({ ...files, concurrency: 2, retryFailed: true }, echo)
      expect(summary).toMatchObject({ skipped: 1, succeeded: 2, failed: 0 })
      const lines = yield* readJsonl(files.output)
      expect(ids(lines).sort()).toEqual(["r0", "r1", "r2"])
      expect(lines.every((line) => line.error === null && line.response.status_code === 200)).toBe(true)
      expect(yield* fs.exists(`${files.output}.compacting`)).toBe(false)
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("an output an earlier Sluice wrote is resumed: read as it is, rewritten in OpenAI's shape", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const files = yield* setup(requests(4))
      const legacy = [
        {
          custom_id: "r0",
          line: 1,
          started_at: "2026-01-01T00:00:00.000Z",
          finished_at: "2026-01-01T00:00:01.500Z",
          duration_ms: 1500,
          status: "succeeded",
          attempts: 2,
          response: { object: "chat.completion", choices: [] },
          error: null,
          usage: { prompt_tokens: 7, completion_tokens: 3 }
        },
        {
          custom_id: "r1",
          line: 2,
          started_at: "2026-01-01T00:00:00.000Z",
          finished_at: "2026-01-01T00:00:00.100Z",
          duration_ms: 100,
          status: "failed",
          attempts: 1,
          response: null,
          error: {
            tag: "ClientError",
            message: "bad body",
            reason: "request refused (400)",
            status: 400,
            retryable: false
          }
        },
        // Retryable by its kind: with retryFailed it is done again.
        {
          custom_id: "r2",
          line: 3,
          status: "failed",
          attempts: 3,
          response: null,
          error: { tag: "Timeout", message: "t" }
        }
      ]
      // A new record after them (a file resumed once, half-way through a run, by this version).
      yield* fs.writeFileString(
        files.output,
        `${[...legacy.map((record) => JSON.stringify(record)), succeededRecord("r3")].join("\n")}\n`
      )
      const sent: Array<string> = []
      const summary = yield* runOnce({ ...files, concurrency: 2, retryFailed: true }, (line) =>
        Effect.zipRight(
          Effect.sync(() => sent.push(line.customId)),
          echo(line)
        )
      )
      expect(sent).toEqual(["r2"])
      expect(summary).toMatchObject({ skipped: 3, keptFailed: 1, succeeded: 1 })
      const lines = yield* readJsonl(files.output)
      expect(ids(lines)).toEqual(["r0", "r1", "r3", "r2"])
      expect(lines[0]).toEqual({
        id: expect.stringMatching(/^batch_req_[0-9a-f]{32}$/),
        custom_id: "r0",
        response: { status_code: 200, request_id: null, body: { object: "chat.completion", choices: [] } },
        error: null,
        sluice: {
          status: "succeeded",
          line: 1,
          attempts: 2,
          started_at: "2026-01-01T00:00:00.000Z",
          finished_at: "2026-01-01T00:00:01.500Z",
          duration_ms: 1500,
          usage: { prompt_tokens: 7, completion_tokens: 3 }
        }
      })
      expect(lines[1]).toMatchObject({
        custom_id: "r1",
        response: null,
        error: { code: "invalid_request", message: "bad body" },
        sluice: {
          status: "failed",
          attempts: 1,
          error: { kind: "ClientError", reason: "request refused (400)", status: 400, retryable: false }
        }
      })
      // The record this version wrote is kept byte for byte.
      expect(lines[2]).toEqual(JSON.parse(succeededRecord("r3")))
      expect(yield* fs.exists(`${files.output}.compacting`)).toBe(false)
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("a failure is written with its reason, status and verdict; the summary counts failures by reason", () =>
    Effect.gen(function* () {
      const files = yield* setup(requests(3))
      const refuse: Runner.Send = (line) =>
        line.customId === "r0"
          ? echo(line)
          : Effect.fail(
              new Runner.RunError({
                reason: "SendFailed",
                errorKind: "ClientError",
                status: 400,
                label: "request refused (400)",
                retryable: false,
                detail: "bad body",
                attempts: 1
              })
            )
      const summary = yield* runOnce({ ...files, concurrency: 2 }, refuse)
      expect(summary.failuresByReason).toEqual({ "request refused (400)": 2 })
      const failed = (yield* readJsonl(files.output)).find((line) => line.custom_id === "r1")
      expect(failed).toMatchObject({
        response: null,
        error: { code: "invalid_request", message: "bad body" },
        sluice: {
          status: "failed",
          error: { kind: "ClientError", reason: "request refused (400)", status: 400, retryable: false }
        }
      })
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("a send failing with AuthenticationFailed (or halt) stops the run at once; nothing else is written", () =>
    Effect.gen(function* () {
      const files = yield* setup(requests(20))
      const gate = yield* Deferred.make<void>()
      const auth: Runner.Send = (line) =>
        line.customId === "r0"
          ? Effect.zipRight(
              Deferred.await(gate),
              Effect.fail(
                new Runner.RunError({ reason: "AuthenticationFailed", status: 401, detail: "the key was refused" })
              )
            )
          : Effect.zipRight(Deferred.succeed(gate, undefined), Effect.never)
      const summary = yield* runOnce({ ...files, concurrency: 4 }, auth)
      expect(summary).toMatchObject({
        stopReason: "halted",
        halt: { reason: "AuthenticationFailed" },
        succeeded: 0,
        failed: 0
      })
      expect(summary.halt?.message).toContain("Authentication failed (401)")
      expect(yield* readJsonl(files.output)).toEqual([])

      const halt = yield* Deferred.make<Runner.RunError>()
      const stalled = yield* Effect.fork(
        runOnce({ ...files, concurrency: 2, halt: Deferred.await(halt) }, () => Effect.never)
      )
      yield* Deferred.succeed(halt, new Runner.RunError({ reason: "ProviderUnavailable", detail: "down" }))
      const halted = yield* awaitFiber("the halted run ends", stalled)
      expect(halted).toMatchObject({ stopReason: "halted", halt: { reason: "ProviderUnavailable" } })
    }).pipe(Effect.provide(TestLayer))
  )

  it.scoped("a second run on the same output refuses to start, naming the holder; a stale lock is taken over", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const files = yield* setup(requests(2))
      const lock = `${files.output}.lock`
      const os = yield* Effect.promise(() => import("node:os"))
      // Held by a live process on this host (this one, as another run would be).
      yield* fs.writeFileString(lock, JSON.stringify({ pid: process.ppid, host: os.hostname(), startedAt: "then" }))
      const refused = yield* Effect.flip(runOnce({ ...files, concurrency: 1 }, echo))
      expect(refused).toMatchObject({ _tag: "RunError", reason: "OutputLocked" })
      expect(refused.message).toContain(`pid ${process.ppid}`)
      expect(yield* fs.exists(files.output)).toBe(false)
      // Left by a process that is gone: taken over, and removed at the end.
      yield* fs.writeFileString(lock, JSON.stringify({ pid: 2 ** 30, host: os.hostname(), startedAt: "then" }))
      const summary = yield* runOnce({ ...files, concurrency: 1 }, echo)
      expect(summary).toMatchObject({ succeeded: 2 })
      expect(yield* fs.exists(lock)).toBe(false)
    }).pipe(Effect.provide(TestLayer))
  )
})
