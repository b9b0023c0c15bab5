import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "core",
    include: ["test/**/*.test.ts"],
    // Virtual time, but CPU-bound: room for a loaded 2-core machine, not vitest's 5 s default.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
