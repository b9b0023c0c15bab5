// The packaging fields of every package.json under packages/, derived from the sources so that they cannot
// drift: `node scripts/packages.mjs` checks them (exit 1 and a list of what differs), `--write` rewrites them.
// The test suite runs the check (test/packaging/exports.test.ts), so a new public module without its entry
// fails `pnpm test` until `node scripts/packages.mjs --write` adds it.
//
// The rule: every `src/*.ts` file of a package is a public module, one entry of `exports` each, except
// `index.ts` (the "." entry) and the program files listed in PROGRAM_MODULES below; nothing under
// `src/internal/` is an entry, so Node refuses to load it from outside (ERR_PACKAGE_PATH_NOT_EXPORTED).
//
// Two views of the same entries (pnpm's `publishConfig`, applied by `pnpm pack` and `pnpm publish`):
// - in the workspace, `exports` points at the TypeScript sources (`./src/X.ts`), so vitest, tsx and
//   `tsc -b` (project references) work from sources with no build step in between;
// - published, `publishConfig.exports` replaces it with the build: `types` `./dist/X.d.ts` and `import`
//   `./dist/X.js` (ES modules with source maps and declaration maps; `src/` ships for the maps).
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/**
 * Source files that are not library modules, per package: the programs' entry points and the modules only a
 * program loads. They are built (type-checked) but not exported, and their JavaScript is left out of the
 * tarball. `@sluice/cli`'s program is the bundle `dist/bin.js` (packages/cli/build.mjs), which carries
 * `Cli` and `Demo` (and the demo's MockProvider) inside it.
 */
const PROGRAM_MODULES = {
  "@sluice/cli": ["bin", "Cli", "Demo"],
  "@sluice/testing": ["bin"]
}

/** The Node versions the packages support (and CI tests: Node 20; see the README). */
const ENGINES = { node: ">=20" }

const packageDirs = () =>
  fs
    .readdirSync(path.join(root, "packages"), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && fs.existsSync(path.join(root, "packages", entry.name, "package.json")))
    .map((entry) => path.join(root, "packages", entry.name))
    .sort()

/** The public modules of the package in `dir`, by name (`CircuitBreaker` for `src/CircuitBreaker.ts`). */
export const publicModules = (dir, name) => {
  const program = new Set(PROGRAM_MODULES[name] ?? [])
  return fs
    .readdirSync(path.join(dir, "src"))
    .filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts"))
    .map((file) => file.slice(0, -3))
    .filter((module) => module !== "index" && !program.has(module))
    .sort()
}

/** What the packaging fields of the package in `dir` must be. */
export const expectedFields = (dir, pkg) => {
  const modules = publicModules(dir, pkg.name)
  const program = PROGRAM_MODULES[pkg.name] ?? []
  const hasBin = program.includes("bin")
  const sources = { "./package.json": "./package.json", ".": "./src/index.ts" }
  const built = {
    "./package.json": "./package.json",
    ".": { types: "./dist/index.d.ts", import: "./dist/index.js" }
  }
  for (const module of modules) {
    sources[`./${module}`] = `./src/${module}.ts`
    built[`./${module}`] = { types: `./dist/${module}.d.ts`, import: `./dist/${module}.js` }
  }
  const binName = pkg.bin === undefined ? undefined : Object.keys(pkg.bin)[0]
  const fields = {
    // The same built file in the workspace (install's `prepare` builds it) and published.
    ...(binName === undefined ? {} : { bin: { [binName]: "./dist/bin.js" } }),
    engines: ENGINES,
    sideEffects: hasBin ? ["./dist/bin.js"] : false,
    files: [
      "dist",
      "src",
      "!**/*.tsbuildinfo",
      // The bundle's map is larger than the rest of the package together: the bin is readable without it.
      ...(pkg.name === "@sluice/cli" ? ["!dist/bin.js.map"] : []),
      ...program.filter((module) => module !== "bin").map((module) => `!dist/${module}.*`)
    ],
    exports: sources,
    publishConfig: {
      access: "public",
      main: "./dist/index.js",
      types: "./dist/index.d.ts",
      exports: built,
      ...(binName === undefined ? {} : { bin: { [binName]: "./dist/bin.js" } })
    }
  }
  return fields
}

const equal = (a, b) => JSON.stringify(a) === JSON.stringify(b)

/** The fields of every package that differ from what they must be: `[{ file, field, expected, actual }]`. */
export const check = () => {
  const problems = []
  for (const dir of packageDirs()) {
    const file = path.join(dir, "package.json")
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"))
    for (const [field, expected] of Object.entries(expectedFields(dir, pkg))) {
      if (!equal(pkg[field], expected))
        problems.push({ file: path.relative(root, file), field, expected, actual: pkg[field] })
    }
    if (pkg.private === true)
      problems.push({ file: path.relative(root, file), field: "private", expected: undefined, actual: true })
    if (!/^0\.\d+\.\d+/.test(pkg.version ?? ""))
      problems.push({ file: path.relative(root, file), field: "version", expected: "0.x", actual: pkg.version })
  }
  return problems
}

/** Rewrites the fields (the others keep their values and order), then lets the formatter lay the files out. */
const write = () => {
  const files = []
  for (const dir of packageDirs()) {
    const file = path.join(dir, "package.json")
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"))
    Object.assign(pkg, expectedFields(dir, pkg))
    fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`)
    files.push(file)
  }
  execFileSync(path.join(root, "node_modules", ".bin", "biome"), ["format", "--write", ...files], { stdio: "inherit" })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--write")) {
    write()
  } else {
    const problems = check()
    for (const { file, field, expected, actual } of problems) {
      console.error(`${file}: "${field}" is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`)
    }
    if (problems.length > 0) {
      console.error(`\n${problems.length} packaging field(s) out of date: run \`node scripts/packages.mjs --write\`.`)
      process.exit(1)
    }
    console.log("package.json packaging fields are up to date")
  }
}
