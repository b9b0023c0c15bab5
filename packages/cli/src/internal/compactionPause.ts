/**
 * A test hook of `sluice run`: with `SLUICE_TEST_PAUSE_COMPACTION` set to
 * `writing` or `renaming`, the compaction of an existing output stops at
 * that phase (the new file partly written; fully written and fsynced, just
 * before the rename over the old one), says so on stderr, and waits there
 * until the process is killed. The end-to-end tests `kill -9` it on that
 * line, so they hit compaction every time instead of by luck. Any other
 * value, or none, leaves compaction alone.
 *
 * What Effect gave us: `Config` (the variable) and `Effect.never` (the wait).
 * What this adds: the announcement, at the phase asked for.
 */
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CompactionPhase } from "./outputFile.js"

export const VARIABLE = "SLUICE_TEST_PAUSE_COMPACTION"

/** What stderr says when compaction pauses at `phase`. */
export const announcement = (phase: CompactionPhase) => `sluice: compaction paused while ${phase} (${VARIABLE})`

/** The hook the variable asks for, if any. */
export const fromEnvironment: Effect.Effect<((phase: CompactionPhase) => Effect.Effect<void>) | undefined> =
  Config.option(Config.string(VARIABLE)).pipe(
    Effect.orElseSucceed(() => Option.none<string>()),
    Effect.map((value) => {
      if (Option.isNone(value) || (value.value !== "writing" && value.value !== "renaming")) return undefined
      const at = value.value
      return (phase: CompactionPhase) =>
        phase === at ? Effect.zipRight(Console.error(announcement(phase)), Effect.never) : Effect.void
    })
  )
