/**
 * The report page in a real headless browser: a real `sluice run --report`
 * (a child process) against a real MockProvider (with faults), then Debian's
 * `chromium` driven by `playwright-core` opens the page from disk. The page
 * loads with no console error and no network request, and its charts hold
 * the run's numbers. The page, the run's files and a screenshot are kept in
 * `packages/cli/build/report-test/`.
 *
 * Every wait is bounded (60 s, generous for a loaded machine).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { type BrowserContext, chromium } from "playwright-core"
import { chatLine, ids, REPO_ROOT, readResults, runArgs, sluice } from "./utils/child.js"

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const API_KEY = "sk-report-test-0123456789"
const WAIT = 60_000
const OUT = path.join(REPO_ROOT, "packages/cli/build/report-test")
const LINES = 40

let scope: Scope.CloseableScope
let provider: MockProvider.MockProviderShape
let browser: BrowserContext | undefined
let userDataDir: string | undefined

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  provider = await Effect.runPromise(
    Scope.extend(
      MockProvider.make({
        apiKeys: [API_KEY],
        seed: 11,
        latency: { uniform: { min: "20 millis", max: "120 millis" } },
        faults: { serviceUnavailable503: 0.15 }
      }),
      scope
    )
  )
})

afterAll(async () => {
  await browser?.close()
  if (userDataDir !== undefined) fs.rmSync(userDataDir, { recursive: true, force: true })
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

/** What the page's script leaves on `window` (the test type-checks without the DOM's types). */
interface PageGlobals {
  readonly document: {
    readonly body: { getAttribute(name: string): string | null }
    querySelectorAll(selector: string): { readonly length: number }
  }
  readonly sluiceCharts: Record<string, { readonly data: Array<Array<number | null>> }>
  readonly sluiceData: {
    readonly series: { readonly t: Array<number> }
    readonly totals: {
      readonly requests: number
      readonly retries: number
      readonly succeeded: number
      readonly faultsByKind: Record<string, number>
    }
  }
}

/** Rejects after `millis` with `what` (the child is killed). */
const bounded = <A>(what: string, promise: Promise<A>, millis: number, onTimeout?: () => void): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout?.()
        reject(new Error(`timed out after ${millis / 1000} s waiting for ${what}`))
      }, millis)
    })
  ]).finally(() => clearTimeout(timer))
}

describe("the report page", () => {
  it(
    "opens from disk with no console error and no network, and charts the run's numbers",
    async () => {
      fs.rmSync(OUT, { recursive: true, force: true })
      fs.mkdirSync(OUT, { recursive: true })
      const input = path.join(OUT, "requests.jsonl")
      const output = path.join(OUT, "results.jsonl")
      const report = path.join(OUT, "report.html")
      fs.writeFileSync(
        input,
        `${ids(LINES)
          .map((id) => chatLine(id, `say something about ${id}`))
          .join("\n")}\n`
      )

      const run = sluice(
        runArgs(
          { input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_REPORT_KEY" },
          "--rpm",
          "600",
          "--tpm",
          "200000",
          "--concurrency",
          "4",
          "--max-attempts",
          "8",
          "--report",
          report
        ),
        { SLUICE_REPORT_KEY: API_KEY }
      )
      const { code } = await bounded("sluice run to exit", run.exited, 2 * WAIT, () => run.child.kill("SIGKILL"))
      expect(run.stderr()).toContain(`Report: ${report}`)
      expect(code).toBe(0)
      expect(readResults(output).ids.length).toBe(LINES)
      const counters = await Effect.runPromise(provider.counters)

      userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-chromium-"))
      // A fresh user-data dir for each run.
      browser = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        timeout: WAIT,
        viewport: { width: 1280, height: 900 },
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync"
        ]
      })
      const page = browser.pages()[0] ?? (await browser.newPage())
      page.setDefaultTimeout(WAIT)
      const consoleErrors: Array<string> = []
      const network: Array<string> = []
      const failed: Array<string> = []
      page.on("console", (message) => {
        if (message.type() === "error") consoleErrors.push(message.text())
      })
      page.on("pageerror", (error) => consoleErrors.push(String(error)))
      page.on("request", (request) => {
        if (!request.url().startsWith("file:")) network.push(request.url())
      })
      page.on("requestfailed", (request) => failed.push(request.url()))

      await page.goto(pathToFileURL(report).href, { waitUntil: "load", timeout: WAIT })
      await page.waitForFunction(
        () => (globalThis as unknown as PageGlobals).document.body.getAttribute("data-charts") !== null,
        undefined,
        {
          timeout: WAIT
        }
      )

      const seen = await page.evaluate(() => {
        const w = globalThis as unknown as PageGlobals
        const charts = w.sluiceCharts
        const sum = (column: Array<number | null>) => column.reduce<number>((total, value) => total + (value ?? 0), 0)
        return {
          chartIds: Object.keys(charts).sort(),
          samples: w.sluiceData.series.t.length,
          xLengths: Object.values(charts).map((chart) => chart.data[0]!.length),
          sentInChart: sum(charts["chart-sent"]!.data[1]!),
          succeededInChart: charts["chart-lines"]!.data[1]!.at(-1),
          totals: w.sluiceData.totals,
          canvases: w.document.querySelectorAll("canvas").length,
          tiles: w.document.querySelectorAll(".tile").length
        }
      })
      await page.screenshot({ path: path.join(OUT, "report.png"), fullPage: true, timeout: WAIT })

      expect(consoleErrors).toEqual([])
      expect(network).toEqual([])
      expect(failed).toEqual([])
      expect(seen.chartIds).toEqual([
        "chart-errors",
        "chart-latency",
        "chart-lines",
        "chart-queue",
        "chart-rpm",
        "chart-sent",
        "chart-tpm"
      ])
      expect(seen.canvases).toBe(seen.chartIds.length)
      expect(seen.samples).toBeGreaterThan(1)
      expect(new Set(seen.xLengths)).toEqual(new Set([seen.samples]))
      // The run's numbers: every request the server saw, each line that succeeded, the 503s as faults.
      expect(seen.totals.requests).toBe(counters.total)
      expect(seen.sentInChart).toBe(counters.total)
      expect(seen.totals.succeeded).toBe(LINES)
      expect(seen.succeededInChart).toBe(LINES)
      expect(seen.totals.faultsByKind.ServerError ?? 0).toBe(counters.faults.serviceUnavailable503)
      expect(seen.totals.retries).toBe(counters.total - LINES)
    },
    4 * WAIT
  )
})
