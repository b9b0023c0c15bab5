// Bundles the benchmark and Sluice's TypeScript into one ES module, as a
// published build of @sluice/core would be compiled: without the `__name`
// wrapper that tsx (esbuild with keepNames) puts around every function, which
// costs about a microsecond per closure created on a hot path and would be
// charged to Sluice alone (the peers and Effect are plain JavaScript).
// Effect and the peers stay external: the bench runs their own published code.
// The MockProvider's standalone program and the `sluice` program are bundled
// beside it: the HTTP part runs the one, the main-job part the other, each as
// a separate process.
import { build } from "esbuild"

await build({
  entryPoints: {
    run: "bench/run.ts",
    "mock-provider": "packages/testing/src/bin.ts",
    sluice: "packages/cli/src/bin.ts"
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
