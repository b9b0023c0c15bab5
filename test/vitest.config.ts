import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "integration",
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "build/**", "packaging/scratch-app/**"],
    // Virtual time, but CPU-bound: room for a loaded 2-core machine, not vitest's 5 s default.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
