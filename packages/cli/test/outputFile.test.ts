import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { awaitFiber, eventually } from "@sluice/testing/TestEvents"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as OutputFile from "../src/internal/outputFile.js"

const result = (id: string) =>
  `${JSON.stringify({
    id: `batch_req_${id}`,
    custom_id: id,
    response: { status_code: 200, request_id: null, body: { ok: true } },
    error: null,
    sluice: { status: "succeeded", line: 1, attempts: 1 }
  })}\n`

const failure = (id: string, retryable: boolean) =>
  `${JSON.stringify({
    id: `batch_req_${id}`,
    custom_id: id,
    response: null,
    error: { code: "server_error", message: "503" },
    sluice: { status: "failed", line: 1, attempts: 3, error: { kind: "ServerError", retryable } }
  })}\n`

describe("the results file", () => {
  it.scoped("recovery collects the done ids of complete lines; an absent file is empty", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      expect(yield* OutputFile.recover(fs, `${dir}/none.jsonl`)).toEqual({
        done: new Set(),
        lines: 0,
        truncatedBytes: 0
      })
      yield* fs.writeFileString(`${dir}/out.jsonl`, result("a") + result("b") + result("é-ünïcode"))
      const recovered = yield* OutputFile.recover(fs, `${dir}/out.jsonl`)
      expect([...recovered.done]).toEqual(["a", "b", "é-ünïcode"])
      expect(recovered.truncatedBytes).toBe(0)
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("a torn last line is truncated away (even one that parses), and the file stays appendable", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const path = `${dir}/out.jsonl`
      const complete = result("a") + result("b")
      for (const torn of ['{"custom_id":"c","sta', JSON.stringify({ custom_id: "c" })]) {
        yield* fs.writeFileString(path, complete + torn)
        const recovered = yield* OutputFile.recover(fs, path)
        expect([...recovered.done]).toEqual(["a", "b"])
        expect(recovered.truncatedBytes).toBe(torn.length)
        expect(yield* fs.readFileString(path)).toBe(complete)
      }
      yield* Effect.scoped(
        Effect.flatMap(OutputFile.makeWriter(fs, path, { flag: "a" }), (writer) =>
          Effect.zipRight(writer.append({ custom_id: "c" }), writer.append({ custom_id: "d" }))
        )
      )
      expect(yield* fs.readFileString(path)).toBe(`${complete}{"custom_id":"c"}\n{"custom_id":"d"}\n`)
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("the latest record of each custom_id counts: failures kept, retryable ones to redo with retryFailed", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const path = `${dir}/out.jsonl`
      yield* fs.writeFileString(
        path,
        failure("a", true) + result("b") + failure("c", false) + result("a") + failure("d", true)
      )
      const kept = yield* OutputFile.recover(fs, path)
      expect(kept).toMatchObject({ lines: 5, keep: new Set([1, 2, 3, 4]), legacy: new Set() })
      expect([...kept.done].sort()).toEqual(["a", "b", "c", "d"])
      expect([...kept.failed!].sort()).toEqual(["c", "d"])
      const retrying = yield* OutputFile.recover(fs, path, { retryFailed: true })
      expect([...retrying.retry!]).toEqual(["d"])
      expect([...retrying.done].sort()).toEqual(["a", "b", "c"])
      expect(retrying.keep).toEqual(new Set([1, 2, 3]))
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("compaction pauses in the act; stopped there (as by kill -9) the old file stands whole", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const path = `${dir}/out.jsonl`
      const before = failure("a", true) + result("b") + result("a")
      yield* fs.writeFileString(path, before)
      for (const phase of ["writing", "renaming"] as const) {
        const reached = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          OutputFile.compact(fs, path, new Set([1, 2]), {
            pause: (at) =>
              at === phase ? Effect.zipRight(Deferred.succeed(reached, undefined), Effect.never) : Effect.void
          })
        )
        yield* Deferred.await(reached)
        // The new file is being written beside the old one, which is untouched.
        expect(yield* fs.exists(OutputFile.compactingPathFor(path))).toBe(true)
        expect(yield* fs.readFileString(path)).toBe(before)
        yield* Fiber.interrupt(fiber)
        expect(yield* fs.readFileString(path)).toBe(before)
      }
      // The next compaction overwrites what a stopped one left, and renames it over the file.
      const phases: Array<string> = []
      yield* OutputFile.compact(fs, path, new Set([1, 2]), { pause: (at) => Effect.sync(() => void phases.push(at)) })
      expect(phases).toEqual(["writing", "renaming"])
      expect(yield* fs.readFileString(path)).toBe(result("b") + result("a"))
      expect(yield* fs.exists(OutputFile.compactingPathFor(path))).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("a file whose complete lines are not results is refused, not appended to", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${dir}/a.jsonl`, `${result("a")}hello\n`)
      yield* fs.writeFileString(`${dir}/b.jsonl`, `${result("a")}{"id":1}\n`)
      for (const [name, detail] of [
        ["a.jsonl", "line 2 is not JSON"],
        ["b.jsonl", "line 2 has no custom_id"]
      ] as const) {
        const exit = yield* Effect.exit(OutputFile.recover(fs, `${dir}/${name}`))
        expect(exit).toEqual(Exit.fail(expect.objectContaining({ reason: "OutputCorrupt", detail })))
      }
    }).pipe(Effect.provide(NodeContext.layer))
  )
})

describe("the results writer", () => {
  it.scopedLive("a slow fsync holds up no append: lines written meanwhile are synced by the next one", () =>
    Effect.gen(function* () {
      const real = yield* FileSystem.FileSystem
      const dir = yield* real.makeTempDirectoryScoped()
      const path = `${dir}/out.jsonl`
      const release = yield* Deferred.make<void>()
      let syncs = 0
      // The real file system, but every fsync waits until released.
      const slowSync: FileSystem.FileSystem = {
        ...real,
        open: (file, options) =>
          Effect.map(real.open(file, options), (handle) => {
            const sync = Effect.zipRight(
              Effect.sync(() => {
                syncs++
              }),
              Effect.zipRight(Deferred.await(release), handle.sync)
            )
            return new Proxy(handle, {
              get: (target, property) => {
                if (property === "sync") return sync
                const value = Reflect.get(target, property)
                return typeof value === "function" ? value.bind(target) : value
              }
            })
          })
      }
      const writer = yield* OutputFile.makeWriter(slowSync, path, { flag: "w", syncEvery: 1, syncInterval: "1 hour" })
      // The first append reaches syncEvery and waits in its fsync.
      const first = yield* Effect.fork(writer.append({ custom_id: "a" }))
      yield* eventually("the first append's fsync began", () => syncs > 0)
      // Others are not held up by it: their lines are written at once.
      yield* Effect.forkDaemon(writer.append({ custom_id: "b" }))
      yield* Effect.forkDaemon(writer.append({ custom_id: "c" }))
      yield* eventually(
        "the file holds 3 lines",
        Effect.map(real.readFileString(path), (text) => text.split("\n").length >= 4).pipe(Effect.orDie)
      )
      expect(first.unsafePoll()).toBe(null)
      // `sync` is a barrier even while another fsync is under way: it returns once one begun after b and c ended.
      // Its own fsync beginning (and waiting for the release) is the event; a barrier that returns early shows too.
      const barrier = yield* Effect.fork(writer.sync)
      yield* eventually(
        "the barrier's fsync began, or the barrier returned",
        () => syncs >= 2 || barrier.unsafePoll() !== null
      )
      expect(barrier.unsafePoll()).toBe(null)
      const syncsBefore = syncs
      yield* Deferred.succeed(release, undefined)
      yield* awaitFiber("the first append ends", first)
      yield* awaitFiber("the barrier ends", barrier)
      expect(syncsBefore).toBeGreaterThanOrEqual(2)
      expect(yield* real.readFileString(path)).toBe('{"custom_id":"a"}\n{"custom_id":"b"}\n{"custom_id":"c"}\n')
    }).pipe(Effect.provide(NodeContext.layer))
  )
})
