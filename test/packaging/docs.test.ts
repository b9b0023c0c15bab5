/**
 * The API reference (issue 15): @effect/docgen runs on every package into a temporary directory
 * (`node scripts/docs.mjs --out DIR`). It fails on an undocumented export or an export without @since, and on
 * a JSDoc @example that does not type-check; and what it writes must be what each packages/<name>/docs/ holds, so the committed
 * reference cannot go stale (`pnpm run docs` rewrites it).
 */

import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

const PACKAGES = ["core", "http", "http-node", "redis", "testing", "model", "cli"]

/** Every module page, by `<package>/<page>`, from each package's `modules` directory as `where` places it. */
const pages = (where: (name: string) => string): Record<string, string> =>
  Object.fromEntries(
    PACKAGES.flatMap((name) => {
      const dir = where(name)
      return fs.existsSync(dir)
        ? fs
            .readdirSync(dir)
            .filter((page) => page !== "index.md")
            .map((page) => [`${name}/${page}`, fs.readFileSync(path.join(dir, page), "utf8")])
        : []
    })
  )

describe("the API reference", () => {
  it("docgen succeeds on every package and docs/ is what it writes", { timeout: 300_000 }, async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-docs-"))
    try {
      const run = await promisify(execFile)("node", [path.join(root, "scripts/docs.mjs"), "--out", out]).then(
        () => "ok",
        (error: { stderr: string }) => error.stderr
      )
      expect(run).toBe("ok")
      const generated = pages((name) => path.join(out, name, "modules"))
      expect(Object.keys(generated).length).toBeGreaterThan(20)
      expect(pages((name) => path.join(root, "packages", name, "docs", "modules"))).toEqual(generated)
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  })
})
