// Bundles the benchmark and Sluice's TypeScript into one ES module, as a
// published build of @sluice/core would be compiled: without the `__name`
// wrapper that tsx (esbuild with keepNames) puts around every function, which
// costs about a microsecond per closure created on a hot path and would be
// charged to Sluice alone (the peers and Effect are plain JavaScript).
// Effect and the peers stay external: the bench runs their own published code.
// The MockProvider's standalone program is bundled beside it: the HTTP part
// runs it as a separate process. The main-job parts run the `sluice` program
// as the README does, its own build (packages/cli/dist/bin.js, `pnpm build`).
import { build } from "esbuild"

await build({
  entryPoints: {
    run: "bench/run.ts",
    "mock-provider": "packages/testing/src/bin.ts"
  },
  outdir: "bench/build",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  keepNames: false,
  sourcemap: "linked",
  external: [
    "effect",
    "effect/*",
    "@effect/*",
    "undici",
    "bottleneck",
    "cockatiel",
    "opossum",
    "p-limit",
    "p-queue",
    "ioredis",
    "rate-limiter-flexible"
  ],
  logLevel: "warning"
})
