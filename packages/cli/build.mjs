// Builds the `sluice` program as JavaScript: `dist/bin.js` (with `dist/bin.js.map`), one ES module that
// plain `node` starts without a TypeScript loader (the README's `pnpm sluice` and `pnpm demo`, the tests'
// child processes and the bench all run this file). Run by the root `prepare` script on install
// (`pnpm build`), by the CLI tests' global setup and by `pnpm bench`, so nothing runs a stale build.
//
// esbuild bundles the CLI with the workspace packages it uses and their dependencies into the one file:
// the workspace packages' `exports` still point at TypeScript sources (until they build to dist/
// themselves), and a single file starts in a fraction of the time that hundreds of ES modules take.
// The file is written beside and renamed into place, so a test starting the program while another
// run rebuilds it reads the old build or the new one, never half of one.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const here = path.dirname(fileURLToPath(import.meta.url))

const result = await build({
  entryPoints: [path.join(here, "src", "bin.ts")],
  outfile: path.join(here, "dist", "bin.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  // Bundled CommonJS dependencies (undici) `require` Node's modules: give the ES module a `require`.
  banner: {
    js: 'import { createRequire as __sluiceCreateRequire } from "node:module";\nconst require = __sluiceCreateRequire(import.meta.url);'
  },
  write: false,
  logLevel: "warning"
})

fs.mkdirSync(path.join(here, "dist"), { recursive: true })
for (const file of result.outputFiles) {
  const temporary = `${file.path}.${process.pid}.tmp`
  fs.writeFileSync(temporary, file.contents, { mode: file.path.endsWith(".js") ? 0o755 : 0o644 })
  fs.renameSync(temporary, file.path)
}
