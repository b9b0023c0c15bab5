/**
 * One run per output at a time: `<output>.lock`, created exclusively (`wx`)
 * and holding the owner's pid, host and start time; removed when the scope
 * closes. A lock whose process is gone (on this host: `kill(pid, 0)` says no
 * such process) is stale, left by a `kill -9` or a crash: it is taken over.
 * A lock from another host, or whose process lives, refuses the run, naming
 * the holder.
 */

import * as os from "node:os"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { RunError } from "./runError.js"

export const lockPathFor = (output: string): string => `${output}.lock`

interface Holder {
  readonly pid: number
  readonly host: string
  readonly startedAt: string
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Whether a process with this pid runs on this host (EPERM: it runs, as another user). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const parseHolder = (text: string): Holder | undefined => {
  try {
    const json = JSON.parse(text) as Partial<Holder>
    return typeof json.pid === "number" && typeof json.host === "string"
      ? { pid: json.pid, host: json.host, startedAt: String(json.startedAt ?? "?") }
      : undefined
  } catch {
    return undefined
  }
}

/** Takes the lock on `output` for the scope's life, or fails with `OutputLocked` naming the holder. */
export const acquire = (fs: FileSystem.FileSystem, output: string): Effect.Effect<void, RunError, Scope.Scope> => {
  const path = lockPathFor(output)
  const unwritable = (error: unknown) => new RunError({ reason: "OutputUnwritable", path, detail: describe(error) })
  const self: Holder = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() }
  const create = fs.writeFileString(path, `${JSON.stringify(self)}\n`, { flag: "wx" })
  const take = (attempt: number): Effect.Effect<void, RunError> =>
    Effect.catchAll(create, (error) =>
      Effect.gen(function* () {
        if (error._tag !== "SystemError" || error.reason !== "AlreadyExists" || attempt > 1) {
          return yield* Effect.fail(unwritable(error))
        }
        const text = yield* Effect.orElseSucceed(fs.readFileString(path), () => "")
        const holder = parseHolder(text)
        const stale =
          holder !== undefined && holder.host === self.host && holder.pid !== self.pid && !isAlive(holder.pid)
        if (!stale) {
          return yield* new RunError({
            reason: "OutputLocked",
            path: output,
            detail:
              holder === undefined
                ? `${path} exists and names no process; if no other sluice run writes this output, remove it`
                : `another sluice run (pid ${holder.pid}${holder.host === self.host ? "" : ` on ${holder.host}`}, started ${holder.startedAt}) holds ${path}; wait for it to end, or stop it${holder.host === self.host ? "" : "; if that process is gone, remove the lock file"}`
          })
        }
        // Stale: its process is gone. Remove it and try once more (another run may win the race: then it holds it).
        yield* Effect.mapError(fs.remove(path, { force: true }), unwritable)
        return yield* take(attempt + 1)
      })
    )
  return Effect.acquireRelease(take(0), () => Effect.ignore(fs.remove(path, { force: true })))
}
