/**
 * The public API's documentation rules (issue 15, STYLE.md rule 7): every export of a public module (a file
 * its package's `exports` lists) carries `@since`, and, outside the index files, an `@category` from the one
 * fixed list below, unless it is marked `@internal`. A declaration's JSDoc is the comment right above it;
 * an `export { ... }` block's items carry theirs inside the braces.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/**
 * The categories, one short list for every package (what a reader scans the reference by): add to it here, on
 * purpose, when none fits. Folded from 21 names (issue 15): predicates → guards, type ids → symbols; classifiers,
 * parsing and validation → utils; config and decoding → schemas; commands → running; schedules and wiring →
 * constructors.
 */
const CATEGORIES = [
  "models",
  "schemas",
  "tags",
  "constructors",
  "layers",
  "errors",
  "combinators",
  "guards",
  "symbols",
  "constants",
  "metrics",
  "running",
  "utils"
]

interface Problem {
  readonly where: string
  readonly problem: string
}

/** The problems of one module's source text. */
const problemsOf = (where: string, text: string, isIndex: boolean): Array<Problem> => {
  const lines = text.split("\n")
  const problems: Array<Problem> = []
  lines.forEach((line, index) => {
    if (!line.startsWith("export ")) return
    const at = `${where}:${index + 1}`
    if (/^export (type )?\{/.test(line) && !line.includes("}")) {
      // A multi-line `export { ... }` block: each item's JSDoc is inside it.
      let end = index
      while (end < lines.length && !lines[end]!.startsWith("}")) end++
      const block = lines.slice(index, end + 1).join("\n")
      if (!block.includes("@since") && !precedingDoc(lines, index).includes("@since"))
        problems.push({ where: at, problem: "no @since" })
      return
    }
    const doc = precedingDoc(lines, index)
    if (doc.includes("@internal")) return
    if (!doc.includes("@since")) problems.push({ where: at, problem: "no @since" })
    if (isIndex) return
    const category = /@category ([^\n*]+)/.exec(doc)?.[1]?.trim()
    if (category === undefined) problems.push({ where: at, problem: "no @category" })
    else if (!CATEGORIES.includes(category))
      problems.push({ where: at, problem: `@category ${category} is not in the list` })
  })
  return problems
}

/** The JSDoc comment right above line `index` (blank lines between allowed), or "". */
const precedingDoc = (lines: ReadonlyArray<string>, index: number): string => {
  let end = index - 1
  while (end >= 0 && lines[end]!.trim() === "") end--
  if (end < 0 || !lines[end]!.trim().endsWith("*/")) return ""
  let start = end
  while (start >= 0 && !lines[start]!.includes("/**")) start--
  return start < 0 ? "" : lines.slice(start, end + 1).join("\n")
}

const publicModules = fs
  .readdirSync(path.join(root, "packages"))
  .filter((name) => fs.existsSync(path.join(root, "packages", name, "package.json")))
  .flatMap((name) => {
    const dir = path.join(root, "packages", name)
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
    return Object.values(manifest.exports as Record<string, string>)
      .filter((target) => target.startsWith("./src/"))
      .map((target) => ({ file: path.join(dir, target), where: `packages/${name}/${target.slice(2)}` }))
  })

describe("the public API's JSDoc", () => {
  it("every export of a public module has @since, and an @category from the list", () => {
    expect(publicModules.length).toBeGreaterThan(10)
    const problems = publicModules.flatMap(({ file, where }) =>
      problemsOf(where, fs.readFileSync(file, "utf8"), path.basename(file) === "index.ts")
    )
    expect(problems).toEqual([])
  })

  it("the check finds an export without @since, and a category off the list", () => {
    const text = [
      "/** @since 0.1.0\n * @category models */",
      "export type A = 1",
      "/** Undocumented version. */",
      "export const b = 2",
      "/**\n * @since 0.1.0\n * @category stuff\n */",
      "export const c = 3",
      "/** @internal */",
      "export const d = 4",
      "/**\n * @since 0.1.0\n * @category models of things\n */",
      "export const e = 5"
    ].join("\n")
    expect(problemsOf("x.ts", text, false).map(({ problem }) => problem)).toEqual([
      "no @since",
      "no @category",
      "@category stuff is not in the list",
      "@category models of things is not in the list"
    ])
  })
})
