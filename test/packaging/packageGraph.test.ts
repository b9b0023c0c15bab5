/**
 * The workspace's packaging rules, checked from the package.json files and the sources (issue 15):
 * - every package.json's `exports`, `publishConfig`, `files`, `sideEffects`, `engines` and `bin` are the
 *   ones scripts/packages.mjs derives from `src/` (every public module exported, nothing of `internal/`),
 *   and that check does fail when a module is missing;
 * - the package graph has no cycle (dev dependencies included: pnpm warns about those too);
 * - no library depends on `@sluice/testing` at run time;
 * - the platform-neutral packages (core, http, model) neither depend on nor import a platform
 *   (`@effect/platform-node`, `undici`, Node's `node:` modules), so they run on any `HttpClient`.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const script = path.join(root, "scripts", "packages.mjs")

interface Manifest {
  readonly name: string
  readonly dependencies?: Record<string, string>
  readonly devDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
}

const packages = fs
  .readdirSync(path.join(root, "packages"))
  .filter((name) => fs.existsSync(path.join(root, "packages", name, "package.json")))
  .map((name) => ({
    dir: path.join(root, "packages", name),
    manifest: JSON.parse(fs.readFileSync(path.join(root, "packages", name, "package.json"), "utf8")) as Manifest
  }))

const sluiceDependencies = (manifest: Manifest, fields: ReadonlyArray<keyof Manifest>) =>
  fields.flatMap((field) =>
    Object.keys((manifest[field] as Record<string, string> | undefined) ?? {}).filter((name) =>
      name.startsWith("@sluice/")
    )
  )

describe("packaging", () => {
  it("every package.json's packaging fields are the ones its sources call for", () => {
    const ran = spawnSync(process.execPath, [script], { encoding: "utf8" })
    expect(ran.stderr).toBe("")
    expect(ran.status).toBe(0)
  })

  it("the check names a public module missing from exports, and exports nothing of internal/", () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-exports-"))
    try {
      fs.mkdirSync(path.join(copy, "scripts"))
      fs.copyFileSync(script, path.join(copy, "scripts", "packages.mjs"))
      const pkg = path.join(copy, "packages", "core")
      fs.mkdirSync(path.join(pkg, "src", "internal"), { recursive: true })
      fs.copyFileSync(path.join(root, "packages", "core", "package.json"), path.join(pkg, "package.json"))
      for (const file of fs.readdirSync(path.join(root, "packages", "core", "src"))) {
        if (file.endsWith(".ts")) fs.writeFileSync(path.join(pkg, "src", file), "")
      }
      fs.writeFileSync(path.join(pkg, "src", "internal", "hidden.ts"), "")
      expect(spawnSync(process.execPath, [path.join(copy, "scripts", "packages.mjs")]).status).toBe(0)

      fs.writeFileSync(path.join(pkg, "src", "NewModule.ts"), "")
      const ran = spawnSync(process.execPath, [path.join(copy, "scripts", "packages.mjs")], { encoding: "utf8" })
      expect(ran.status).toBe(1)
      expect(ran.stderr).toContain('"./NewModule":"./src/NewModule.ts"')
      expect(ran.stderr).toContain('"./NewModule":{"types":"./dist/NewModule.d.ts","import":"./dist/NewModule.js"}')
      expect(ran.stderr).not.toContain("hidden")
    } finally {
      fs.rmSync(copy, { recursive: true, force: true })
    }
  })

  it("the package graph has no cycle, dev dependencies included", () => {
    const edges = new Map(
      packages.map(({ manifest }) => [
        manifest.name,
        sluiceDependencies(manifest, ["dependencies", "devDependencies", "peerDependencies"])
      ])
    )
    const done = new Set<string>()
    const cycles: Array<string> = []
    const visit = (name: string, trail: ReadonlyArray<string>) => {
      if (trail.includes(name)) return void cycles.push([...trail, name].join(" → "))
      if (done.has(name)) return
      for (const next of edges.get(name) ?? []) visit(next, [...trail, name])
      done.add(name)
    }
    for (const name of edges.keys()) visit(name, [])
    expect(cycles).toEqual([])
  })

  it("no package needs @sluice/testing at run time", () => {
    const offenders = packages
      .filter(({ manifest }) =>
        sluiceDependencies(manifest, ["dependencies", "peerDependencies"]).includes("@sluice/testing")
      )
      .map(({ manifest }) => manifest.name)
    expect(offenders).toEqual([])
  })

  it("core, http and model are platform-neutral: no platform among their dependencies or imports", () => {
    const platform = /^(@effect\/platform-node|@effect\/platform-bun|undici|node:)/
    for (const name of ["core", "http", "model"]) {
      const { manifest, dir } = packages.find(({ dir }) => path.basename(dir) === name)!
      const runtime = Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies })
      expect(
        runtime.filter((dependency) => platform.test(dependency)),
        name
      ).toEqual([])
      const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "src"], {
        cwd: dir,
        encoding: "utf8"
      })
        .split("\n")
        .filter((file) => file.endsWith(".ts"))
      expect(files.length, name).toBeGreaterThan(0)
      for (const file of files) {
        const source = fs.readFileSync(path.join(dir, file), "utf8")
        const specifiers = [...source.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((match) => match[1]!)
        expect(
          specifiers.filter((specifier) => platform.test(specifier)),
          `${name}/${file}`
        ).toEqual([])
      }
    }
  })
})
