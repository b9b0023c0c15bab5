/**
 * The real `sluice` program as a child process, started as the README's
 * `pnpm sluice` starts it: the root package.json's `sluice` script (`node
 * packages/cli/dist/bin.js`, the build the tests' global setup makes, see
 * `test/utils/buildProgram.ts`), without the launcher; and file polling for
 * tests that watch it.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"

export const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url))
/** The `sluice` script's command, read from the root package.json: `node`, then its arguments. */
const SCRIPT: ReadonlyArray<string> = (
  JSON.parse(fs.readFileSync(`${REPO_ROOT}package.json`, "utf8")) as { scripts: { sluice: string } }
).scripts.sluice.split(" ")
if (SCRIPT[0] !== "node") throw new Error(`the sluice script no longer starts with node: ${SCRIPT.join(" ")}`)

export interface Sluice {
  readonly child: ChildProcessWithoutNullStreams
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

export const sluice = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Sluice => {
  const child = spawn(process.execPath, [...SCRIPT.slice(1), ...args], {
    cwd: REPO_ROOT,
    // Colour off unless a test says otherwise (NO_COLOR: "" is unset, as no-color.org defines it).
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk) => (stdout += String(chunk)))
  child.stderr.on("data", (chunk) => (stderr += String(chunk)))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  )
  return { child, stdout: () => stdout, stderr: () => stderr, exited }
}

/** `sluice run`'s arguments: an input, an output, a provider and the variable holding its key, then `extra`. */
export const runArgs = (
  run: { readonly input: string; readonly output: string; readonly baseUrl: string; readonly keyEnv: string },
  ...extra: ReadonlyArray<string>
): Array<string> => [
  "run",
  "--input",
  run.input,
  "--output",
  run.output,
  "--base-url",
  run.baseUrl,
  "--api-key-env",
  run.keyEnv,
  ...extra
]

/** Runs to the end. */
export const sluiceRun = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const run = sluice(args, env)
  const { code } = await run.exited
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

/** Polls `check` every 25 ms until it holds, failing after `timeoutMillis`. */
export const waitUntil = async (what: string, check: () => boolean, timeoutMillis = 30_000): Promise<void> => {
  const start = performance.now()
  while (!check()) {
    if (performance.now() - start > timeoutMillis) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

export interface Results {
  /** Every complete line, parsed. */
  readonly lines: ReadonlyArray<Record<string, any>>
  readonly ids: ReadonlyArray<string>
  /** True when the file ends in a line without its newline. */
  readonly torn: boolean
}

export const readResults = (path: string): Results => {
  if (!fs.existsSync(path)) return { lines: [], ids: [], torn: false }
  const text = fs.readFileSync(path, "utf8")
  const torn = text !== "" && !text.endsWith("\n")
  const complete = torn ? text.slice(0, text.lastIndexOf("\n") + 1) : text
  const lines = complete
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, any>)
  return { lines, ids: lines.map((line) => line.custom_id as string), torn }
}

/** Complete lines in a file so far. */
export const countLines = (path: string): number =>
  fs.existsSync(path) ? fs.readFileSync(path, "utf8").split("\n").length - 1 : 0

export const chatLine = (id: string, content = `hello ${id}`) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "mock-1", messages: [{ role: "user", content }], max_tokens: 16 }
  })

export const ids = (count: number) => Array.from({ length: count }, (_, index) => `r${index}`)
