import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "redis",
    include: ["test/**/*.test.ts"],
    // Real Redis, real redis-server processes and child processes: sized for a loaded 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
