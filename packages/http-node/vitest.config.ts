import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "http-node",
    include: ["test/**/*.test.ts"],
    // A real server and a real pool: room for a loaded 2-core machine, not vitest's 5 s default.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
