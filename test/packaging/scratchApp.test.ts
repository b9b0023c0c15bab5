/**
 * The packages as a user gets them (issue 15): every package is packed (`pnpm pack`, so `publishConfig`
 * applies and `workspace:*` becomes a version), the tarballs are installed with plain npm into a scratch
 * app in the system's temporary directory, outside the workspace (third-party packages from the npm
 * registry, `@sluice/*` only from the tarballs), and then, with no TypeScript loader anywhere:
 * - the app (test/packaging/scratch-app/main.ts: RateLimiter, ApiClient, Model and Executor against a
 *   MockProvider) compiles under moduleResolution "NodeNext" and runs with plain `node`;
 * - it type-checks under moduleResolution "Bundler" too, and internal modules resolve under neither (the
 *   NodeNext check reads every declaration file, ours and Effect's: skipLibCheck false; the Bundler check
 *   only what the app uses, for time);
 * - Node itself refuses an internal module (ERR_PACKAGE_PATH_NOT_EXPORTED);
 * - the installed `sluice` bin answers `--help` and runs a small batch against the MockProvider's bin;
 * - publint and @arethetypeswrong/cli find no problem in any tarball.
 *
 * The app, the refusal and the bin run on the Node running the tests, and on Node 22 and 24 from the npm
 * registry's `node` package (`npx -y node@22`, which installs a prebuilt binary from the registry).
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const fixture = path.join(root, "test", "packaging", "scratch-app")
const PNPM = ["-y", "pnpm@10.34.9"]

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end; never throws (the caller asserts on the code, with the output in view). */
const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: NodeJS.ProcessEnv; readonly timeout?: number }
): Promise<Ran> =>
  new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: { ...process.env, NO_COLOR: "1", ...options.env },
        timeout: options.timeout ?? 300_000,
        maxBuffer: 64 * 1024 * 1024
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
        resolve({
          code,
          stdout: String(stdout),
          stderr: `${String(stderr)}${error !== null && error.code !== code ? `\n${error.message}` : ""}`
        })
      }
    )
  })

/** Fails with the command and its output when it did not exit 0. */
const ok = async (ran: Promise<Ran>, what: string): Promise<Ran> => {
  const result = await ran
  if (result.code !== 0) {
    throw new Error(`${what} exited ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`)
  }
  return result
}

const packageDirs = fs
  .readdirSync(path.join(root, "packages"))
  .map((name) => path.join(root, "packages", name))
  .filter((dir) => fs.existsSync(path.join(dir, "package.json")))
const manifests = packageDirs.map((dir) => JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")))
/** A third-party package's version as the workspace pins it (in any package's dependencies). */
const pinned = (name: string): string => {
  for (const manifest of manifests) {
    for (const field of ["dependencies", "devDependencies"]) {
      const version = manifest[field]?.[name]
      if (typeof version === "string" && !version.startsWith("workspace:")) return version
    }
  }
  throw new Error(`no package of the workspace pins ${name}`)
}

const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")
let scratch = ""
let tarballs: Record<string, string> = {}

const timings: Record<string, number> = {}

beforeAll(async () => {
  const started = Date.now()
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-scratch-"))
  const packs = path.join(scratch, "tarballs")
  fs.mkdirSync(packs)
  // Build once (each package's `prepack` would build again, one at a time), then pack them all.
  await ok(run(process.execPath, [tsc, "-b", "tsconfig.build.json"], { cwd: root }), "tsc -b tsconfig.build.json")
  await ok(run(process.execPath, [path.join(root, "packages", "cli", "build.mjs")], { cwd: root }), "the cli's bundle")
  await ok(
    run("npx", [...PNPM, "-r", "--filter", "./packages/*", "pack", "--pack-destination", packs], {
      cwd: root,
      env: { npm_config_ignore_scripts: "true" }
    }),
    "pnpm pack"
  )
  tarballs = Object.fromEntries(
    manifests.map((manifest) => {
      const file = `${manifest.name.replace("@", "").replace("/", "-")}-${manifest.version}.tgz`
      expect(fs.existsSync(path.join(packs, file)), `${file} packed`).toBe(true)
      return [manifest.name, `file:tarballs/${file}`]
    })
  )
  const app = path.join(scratch, "app")
  fs.mkdirSync(app)
  fs.renameSync(packs, path.join(app, "tarballs"))
  timings.packedAfter = Date.now() - started
  for (const file of fs.readdirSync(fixture)) fs.copyFileSync(path.join(fixture, file), path.join(app, file))
  const { "@sluice/testing": testing, ...libraries } = tarballs
  fs.writeFileSync(
    path.join(app, "package.json"),
    JSON.stringify(
      {
        name: "sluice-scratch-app",
        private: true,
        type: "module",
        dependencies: {
          ...libraries,
          effect: pinned("effect"),
          "@effect/platform": pinned("@effect/platform"),
          "@effect/platform-node": pinned("@effect/platform-node")
        },
        devDependencies: { "@sluice/testing": testing, "@types/node": "^20.11.0" },
        // A tarball's `@sluice/*` dependency is a version (`0.1.0`): the local tarball, never the registry.
        overrides: Object.fromEntries(Object.keys(tarballs).map((name) => [name, `$${name}`]))
      },
      null,
      2
    )
  )
  await ok(
    run("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel", "error"], {
      cwd: app,
      timeout: 600_000
    }),
    "npm install in the scratch app"
  )
  timings.installedAfter = Date.now() - started
}, 900_000)

afterAll(() => {
  console.log(
    `scratch app: ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, `${(v / 1000).toFixed(1)} s`])))}`
  )
  if (scratch !== "" && process.env.SLUICE_KEEP_SCRATCH === undefined)
    fs.rmSync(scratch, { recursive: true, force: true })
})

const app = () => path.join(scratch, "app")
const bin = (name: string) => path.join(app(), "node_modules", ".bin", name)

describe("the packages installed from their tarballs into an app outside the workspace", () => {
  it("took every @sluice package from its tarball, once", () => {
    const lock = JSON.parse(fs.readFileSync(path.join(app(), "package-lock.json"), "utf8"))
    const sluice = Object.entries(lock.packages as Record<string, { resolved?: string }>).filter(([where]) =>
      /node_modules\/@sluice\/[^/]+$/.test(where)
    )
    expect(sluice.map(([where]) => where).sort()).toEqual(
      Object.keys(tarballs)
        .map((name) => `node_modules/${name}`)
        .sort()
    )
    for (const [where, entry] of sluice.filter(([where]) => /node_modules\/@sluice\/[^/]+$/.test(where)))
      expect(entry.resolved, where).toMatch(/^file:tarballs\//)
  })

  it("compiles under NodeNext and type-checks under Bundler", async () => {
    await ok(run(process.execPath, [tsc, "-p", "tsconfig.nodenext.json"], { cwd: app() }), "tsc (NodeNext)")
    await ok(run(process.execPath, [tsc, "-p", "tsconfig.bundler.json"], { cwd: app() }), "tsc (Bundler)")
  }, 300_000)

  // The Node running the tests, then 22 and 24 from the registry's `node` package.
  describe.each(["current", "22", "24"])("on Node %s", (version) => {
    let node = process.execPath

    beforeAll(async () => {
      if (version === "current") return
      const found = await ok(
        run("npx", ["-y", `node@${version}`, "-p", "process.execPath"], { cwd: os.tmpdir(), timeout: 300_000 }),
        `npx -y node@${version}`
      )
      node = found.stdout.trim().split("\n").at(-1) ?? ""
      const reported = await ok(run(node, ["--version"], { cwd: os.tmpdir() }), `${node} --version`)
      expect(reported.stdout).toMatch(new RegExp(`^v${version}\\.`))
    }, 300_000)

    it("runs the app with plain node", async () => {
      const ran = await ok(
        run(node, [path.join("out", "main.js")], { cwd: app(), timeout: 60_000 }),
        "node out/main.js"
      )
      const summary = JSON.parse(ran.stdout.trim().split("\n").at(-1) ?? "")
      expect(summary.answers).toBe(3)
      expect(summary.served).toBe(3)
      expect(summary.totalTokens.every((tokens: number) => tokens > 0)).toBe(true)
      // The ApiClient charged the shared limiter: the requests and tokens taken are still missing from its
      // hourly buckets.
      const requests = summary.limits.find((bucket: { name: string }) => bucket.name === "requests")
      const tokens = summary.limits.find((bucket: { name: string }) => bucket.name === "tokens")
      expect(requests.capacity - requests.available).toBeGreaterThan(2)
      expect(tokens.capacity - tokens.available).toBeGreaterThan(0)
    }, 120_000)

    it("refuses to load an internal module", async () => {
      for (const specifier of [
        "@sluice/core/internal/executor.js",
        "@sluice/http/internal/apiClient.js",
        "@sluice/cli/Cli"
      ]) {
        const ran = await run(node, ["--input-type=module", "-e", `await import(${JSON.stringify(specifier)})`], {
          cwd: app()
        })
        expect(ran.code, specifier).not.toBe(0)
        expect(ran.stderr, specifier).toContain("ERR_PACKAGE_PATH_NOT_EXPORTED")
      }
    }, 60_000)

    it("runs the installed sluice bin: --help, and a small batch against the MockProvider's bin", async () => {
      const help = await ok(run(node, [bin("sluice"), "--help"], { cwd: app() }), "sluice --help")
      expect(help.stdout).toContain("run")
      expect(help.stdout).toContain("demo")
      // A #!/usr/bin/env node file, runnable as a command (as npm i -g and npx run it).
      expect(fs.readFileSync(fs.realpathSync(bin("sluice")), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true)

      const provider = execFileChild(node, [bin("sluice-mock-provider"), "--port", "0"], app())
      try {
        const baseUrl = await provider.line(/listening on (http:\S+)/)
        const input = path.join(app(), `requests-${version}.jsonl`)
        fs.writeFileSync(
          input,
          ["a", "b", "c"]
            .map((prompt, index) =>
              JSON.stringify({
                custom_id: `line-${index}`,
                method: "POST",
                url: "/v1/chat/completions",
                body: { model: "mock-model", messages: [{ role: "user", content: prompt }], max_tokens: 8 }
              })
            )
            .join("\n")
        )
        const output = path.join(app(), `results-${version}.jsonl`)
        await ok(
          run(node, [bin("sluice"), "run", "--input", input, "--output", output, "--base-url", baseUrl], {
            cwd: app(),
            timeout: 120_000
          }),
          "sluice run"
        )
        const results = fs
          .readFileSync(output, "utf8")
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line))
        expect(results.map((result) => result.custom_id).sort()).toEqual(["line-0", "line-1", "line-2"])
        expect(results.every((result) => result.response?.status_code === 200 && result.error === null)).toBe(true)
      } finally {
        provider.kill()
      }
    }, 180_000)
  })

  it("passes publint and @arethetypeswrong/cli, every tarball", async () => {
    for (const tarball of Object.values(tarballs)) {
      const file = path.join(app(), tarball.slice("file:".length))
      await ok(
        run(path.join(root, "node_modules", ".bin", "publint"), ["run", file, "--strict"], { cwd: app() }),
        `publint ${file}`
      )
      // ES modules only, as Effect's packages: CommonJS `require` and node10 resolution are out of scope.
      await ok(
        run(path.join(root, "node_modules", ".bin", "attw"), [file, "--profile", "esm-only", "--format", "ascii"], {
          cwd: app()
        }),
        `attw ${file}`
      )
    }
  }, 300_000)
})

/** A long-running child whose output can be awaited line by line. */
const execFileChild = (command: string, args: ReadonlyArray<string>, cwd: string) => {
  const child = execFile(command, args, { cwd, env: { ...process.env, NO_COLOR: "1" } })
  let output = ""
  child.stdout?.on("data", (chunk) => {
    output += String(chunk)
  })
  child.stderr?.on("data", (chunk) => {
    output += String(chunk)
  })
  return {
    line: (pattern: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const timer = setInterval(() => {
          const match = pattern.exec(output)
          if (match !== null) {
            clearInterval(timer)
            resolve(match[1] ?? match[0])
          } else if (child.exitCode !== null) {
            clearInterval(timer)
            reject(new Error(`${command} ${args.join(" ")} exited ${child.exitCode}:\n${output}`))
          }
        }, 50)
      }),
    kill: () => child.kill("SIGTERM")
  }
}
