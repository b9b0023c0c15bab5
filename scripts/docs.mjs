/**
 * The API reference: runs @effect/docgen on every package (its docgen.json lists the public modules: the
 * files its package.json `exports` names) into docs/<package>/. docgen fails on an export without @since or
 * documentation, and type-checks every JSDoc @example block.
 *
 *   node scripts/docs.mjs            writes packages/<package>/docs/
 *   node scripts/docs.mjs --out DIR  writes DIR/<package>/ instead (the check in test/packaging/docs.test.ts)
 *
 * docgen reads its config, package.json and tsconfig from the working directory, so for --out each package
 * runs from a temporary copy of the tree made of links (its own files linked one by one, the other packages
 * whole), and its pages are copied to DIR/<package>.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const docgen = path.join(root, "node_modules", ".bin", "docgen")
export const PACKAGES = ["core", "http", "http-node", "redis", "testing", "model", "cli"]

const outIndex = process.argv.indexOf("--out")
const out = outIndex === -1 ? undefined : path.resolve(process.argv[outIndex + 1])

for (const name of PACKAGES) {
  const dir = path.join(root, "packages", name)
  let cwd = dir
  let scratch
  if (out !== undefined) {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-docgen-${name}-`))
    // The same layout as the repository, so docgen.json's relative paths still resolve.
    cwd = path.join(scratch, "packages", name)
    fs.mkdirSync(cwd, { recursive: true })
    for (const entry of fs.readdirSync(dir)) {
      if (entry !== "docs") fs.symlinkSync(path.join(dir, entry), path.join(cwd, entry))
    }
    for (const other of PACKAGES) {
      if (other !== name) fs.symlinkSync(path.join(root, "packages", other), path.join(scratch, "packages", other))
    }
    for (const entry of ["node_modules", "tsconfig.base.json"]) {
      fs.symlinkSync(path.join(root, entry), path.join(scratch, entry))
    }
  }
  try {
    execFileSync(docgen, [], {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      // docgen runs `tsc` on the examples: the workspace's own.
      env: { ...process.env, PATH: `${path.join(root, "node_modules", ".bin")}${path.delimiter}${process.env.PATH}` }
    })
    if (out !== undefined)
      fs.cpSync(path.join(cwd, "docs", "modules"), path.join(out, name, "modules"), { recursive: true })
  } catch (error) {
    process.stderr.write(`docgen failed for packages/${name}:\n${error.stdout}${error.stderr}\n`)
    process.exitCode = 1
  } finally {
    if (scratch !== undefined) fs.rmSync(scratch, { recursive: true, force: true })
  }
}
