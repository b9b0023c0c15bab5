import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "examples",
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "build/**"],
    // Some of these tests run on the live clock or start a real MockProvider: sized for a loaded 2-core machine, not vitest's 5 s default.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
