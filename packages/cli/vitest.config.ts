import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "cli",
    include: ["test/**/*.test.ts"],
    // The tests start the built program (dist/bin.js), as the README does: build it first.
    globalSetup: ["test/utils/buildProgram.ts"],
    // These tests start real servers (and the CLI's child processes) and wait on real I/O:
    // sized for a loaded 2-core machine, not vitest's 5 s default.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
