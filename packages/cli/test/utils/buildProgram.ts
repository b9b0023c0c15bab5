/**
 * The CLI tests' global setup: builds the `sluice` program (`node build.mjs`, as install's `prepare`
 * does) before any test starts it, so no test runs a stale build, whether the suite runs through
 * `pnpm test` or one file at a time through `vitest run`.
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

export default function setup(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL("../../build.mjs", import.meta.url))], { stdio: "inherit" })
}
