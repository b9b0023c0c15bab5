// A worker process for examples/provider-pool-workers.ts: JSON lines in on stdin, JSON lines out on stdout.
// { id, op: "work", input } → { id, ok: true, output, pid }; { id, op: "ping" } → { id, ok: true, pid };
// { id, op: "hang" } → nothing, ever.
// It says { ready: true, pid } once started, and exits when its stdin closes (its parent is gone) or on SIGTERM.
// Plain JavaScript so that Node runs it as it is, with nothing to build.
import { createInterface } from "node:readline"

const reply = (message) => process.stdout.write(`${JSON.stringify({ ...message, pid: process.pid })}\n`)

createInterface({ input: process.stdin }).on("line", (line) => {
  let request
  try {
    request = JSON.parse(line)
  } catch {
    reply({ id: null, ok: false, error: "not JSON" })
    return
  }
  if (request.op === "ping") reply({ id: request.id, ok: true })
  else if (request.op === "work") {
    // Some work: a little CPU, then the answer.
    setTimeout(() => reply({ id: request.id, ok: true, output: String(request.input).toUpperCase() }), 20)
  } else if (request.op === "hang") {
    // Never answers: a test kills the worker under the call.
  } else reply({ id: request.id, ok: false, error: `unknown op ${request.op}` })
})
process.stdin.on("end", () => process.exit(0))
process.on("SIGTERM", () => process.exit(0))
reply({ ready: true })
