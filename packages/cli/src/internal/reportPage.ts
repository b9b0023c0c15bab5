/**
 * The report page of a run (`sluice run --report run.html`, and the demo's):
 * one self-contained HTML file, with uPlot's script and stylesheet inlined
 * from `node_modules` and the run's series (`runSeries.ts`) embedded as JSON,
 * so it opens from disk with no network.
 *
 * Charts: requests and tokens per minute against the limits; 429s, retries,
 * faults and attempts refused by an open breaker; latency p50/p95/p99;
 * requests waiting and being sent; the breaker's state; lines done; and
 * requests per executor/key when there are several.
 *
 * uPlot (a small, well-kept charting library) draws; this module adds the
 * page around it.
 */

import { createRequire } from "node:module"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as RunSeries from "./runSeries.js"

export interface Meta {
  /** e.g. `sluice run` or `sluice demo`. */
  readonly title: string
  /** Shown under the title, e.g. the input and output files. */
  readonly details: ReadonlyArray<readonly [string, string]>
}

export interface Assets {
  readonly script: string
  readonly stylesheet: string
}

const require = createRequire(import.meta.url)

/** uPlot's browser build and stylesheet, read from the installed package. */
export const loadAssets: Effect.Effect<Assets, PlatformError, FileSystem.FileSystem> = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const script = yield* fs.readFileString(require.resolve("uplot/dist/uPlot.iife.min.js"))
  const stylesheet = yield* fs.readFileString(require.resolve("uplot/dist/uPlot.min.css"))
  return { script, stylesheet }
})

const escapeHtml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** Text safe inside a `<script>` element: no `</script`, no `<!--`. */
const inScript = (text: string) => text.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--")

const STYLE = `
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; padding:24px 28px 40px; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink); background:var(--bg); }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:15px; margin:0 0 2px; }
.sub { color:var(--muted); margin:0 0 18px; }
.sub code { background:#eceef2; padding:1px 5px; border-radius:4px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:10px; margin-bottom:18px; }
.tile { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.tile .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.tile .value { font-size:20px; font-weight:600; margin-top:2px; }
.tile .note { color:var(--muted); font-size:12px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(540px,1fr)); gap:14px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px 6px; min-width:0; }
.card p.what { color:var(--muted); font-size:12px; margin:0 0 6px; }
.card .empty { color:var(--muted); padding:30px 0; text-align:center; }
table { border-collapse:collapse; font-size:13px; margin-top:6px; }
td, th { text-align:left; padding:3px 12px 3px 0; border-bottom:1px solid var(--line); }
.uplot .u-legend { font-size:12px; }
`

/**
 * The page's script: reads the embedded data and draws the charts; each
 * chart is kept in `window.sluiceCharts` by its id (what the browser test reads).
 */
const DRAW = `
(function () {
  var data = JSON.parse(document.getElementById("sluice-data").textContent);
  var s = data.series;
  var charts = {};
  window.sluiceCharts = charts;
  window.sluiceData = data;
  var palette = ["#2f6fed", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#e67700", "#495057"];
  var bars = uPlot.paths.bars({ size: [0.7, 40] });
  var stepped = uPlot.paths.stepped({ align: 1 });
  var fmt = function (v) { return v == null ? "–" : Math.round(v).toLocaleString("en-US"); };
  var short = function (v) {
    var a = Math.abs(v);
    return a >= 1e6 ? +(v / 1e6).toFixed(1) + "M" : a >= 1e4 ? +(v / 1e3).toFixed(0) + "k" : a >= 1e3 ? +(v / 1e3).toFixed(1) + "k" : String(+v.toFixed(1));
  };
  /** Counts: whole-number ticks, from 0. */
  var counts = { scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } }, y: { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] } };
  function chart(id, series, columns, opts) {
    var el = document.getElementById(id);
    if (!el) return;
    var width = Math.max(320, el.clientWidth);
    var o = {
      width: width,
      height: 220,
      scales: Object.assign({ x: { time: false } }, (opts && opts.scales) || {}),
      axes: [
        { label: "seconds since start", labelSize: 18, size: 34, values: function (u, vals) { return vals.map(function (v) { return v + " s"; }); } },
        Object.assign({ size: 56, values: function (u, vals) { return vals.map(short); } }, (opts && opts.y) || {})
      ],
      series: [{ label: "t", value: function (u, v) { return v == null ? "–" : v + " s"; } }].concat(series.map(function (one, i) {
        return Object.assign({ stroke: palette[i % palette.length], width: 2, value: function (u, v) { return fmt(v); } }, one);
      })),
      legend: { live: true }
    };
    charts[id] = new uPlot(o, [s.t].concat(columns), el);
  }
  function hasAny(column) { return column.some(function (v) { return v != null; }); }

  // The live line's rate: what the last 60 s held, never extrapolated (early in a run, what was sent so far).
  var rpm = [{ label: "in the last 60 s" }];
  var rpmData = [s.requestsPerMinute];
  if (hasAny(s.rpmLimit)) { rpm.push({ label: "limit", stroke: "#c92a2a", dash: [6, 4], width: 1.5 }); rpmData.push(s.rpmLimit); }
  chart("chart-rpm", rpm, rpmData);

  var tpm = [{ label: "in the last 60 s" }];
  var tpmData = [s.tokensPerMinute];
  if (hasAny(s.tpmLimit)) { tpm.push({ label: "limit", stroke: "#c92a2a", dash: [6, 4], width: 1.5 }); tpmData.push(s.tpmLimit); }
  chart("chart-tpm", tpm, tpmData);

  chart("chart-sent", [
    { label: "requests sent", paths: bars, fill: "rgba(47,111,237,0.35)", stroke: "#2f6fed", width: 1 }
  ], [s.requests], counts);

  chart("chart-errors", [
    { label: "429s", stroke: "#c92a2a", paths: stepped },
    { label: "retries", stroke: "#e67700", paths: stepped },
    { label: "faults", stroke: "#7048e8", paths: stepped },
    { label: "refused (breaker open)", stroke: "#495057", paths: stepped }
  ], [s.rateLimited, s.retries, s.faults, s.refused], counts);

  chart("chart-latency", [
    { label: "p50", stroke: "#2b8a3e", spanGaps: false },
    { label: "p95", stroke: "#e67700", spanGaps: false },
    { label: "p99", stroke: "#c92a2a", spanGaps: false }
  ], [s.p50, s.p95, s.p99], { y: { size: 70, values: function (u, vals) { return vals.map(function (v) { return v + " ms"; }); } } });

  chart("chart-queue", [
    { label: "waiting (queued or for admission)", stroke: "#7048e8", paths: stepped, fill: "rgba(112,72,232,0.12)" },
    { label: "being sent", stroke: "#0c8599", paths: stepped }
  ], [s.waiting, s.sending], counts);

  // The breaker's state at each transition's own time (a half-open probe lasts less than a sample).
  var breakerNames = Object.keys(s.breakers);
  if (breakerNames.length > 0) {
    var names = ["closed", "half-open", "open"];
    var levels = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };
    var times = [0].concat(data.transitions.map(function (t) { return t.at; }), [s.t[s.t.length - 1]]);
    times = times.filter(function (t, i) { return times.indexOf(t) === i; }).sort(function (a, b) { return a - b; });
    var state = {};
    breakerNames.forEach(function (name) { state[name] = 0; });
    var columns = breakerNames.map(function () { return []; });
    times.forEach(function (time) {
      data.transitions.forEach(function (t) { if (t.at === time) state[t.breaker] = levels[t.to]; });
      breakerNames.forEach(function (name, i) { columns[i].push(state[name]); });
    });
    var el = document.getElementById("chart-breaker");
    charts["chart-breaker"] = new uPlot({
      width: Math.max(320, el.clientWidth), height: 220, scales: { x: { time: false }, y: { range: [-0.2, 2.2] } },
      axes: [
        { label: "seconds since start", labelSize: 18, size: 34, values: function (u, vals) { return vals.map(function (v) { return v + " s"; }); } },
        { size: 76, splits: function () { return [0, 1, 2]; }, values: function (u, vals) { return vals.map(function (v) { return names[v] || ""; }); } }
      ],
      series: [{ label: "t", value: function (u, v) { return v == null ? "–" : v + " s"; } }].concat(breakerNames.map(function (name, i) {
        return { label: name, stroke: palette[i % palette.length], width: 2, paths: stepped, points: { show: false }, value: function (u, v) { return v == null ? "–" : names[v]; } };
      }))
    }, [times].concat(columns), el);
  }

  chart("chart-lines", [
    { label: "succeeded", stroke: "#2b8a3e", fill: "rgba(43,138,62,0.10)" },
    { label: "failed", stroke: "#c92a2a" }
  ], [s.succeeded, s.failed], counts);

  var groups = Object.keys(s.requestsBy);
  if (groups.length > 1) {
    chart("chart-groups", groups.map(function (name) { return { label: name, paths: stepped }; }), groups.map(function (name) { return s.requestsBy[name]; }), counts);
  }
  document.body.setAttribute("data-charts", String(Object.keys(charts).length));
})();
`

const compact = (value: number) => Math.round(value).toLocaleString("en-US")

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`

/** The page, from what the run recorded. */
export const render = (recorded: RunSeries.Recorded, meta: Meta, assets: Assets): string => {
  const { totals, series, transitions } = recorded
  const lastOf = <A>(column: ReadonlyArray<A>) => column[column.length - 1]
  const rpmLimit = lastOf(series.rpmLimit) ?? null
  const tpmLimit = lastOf(series.tpmLimit) ?? null
  const tokens = totals.promptTokens + totals.completionTokens
  const faults = Object.values(totals.faultsByKind).reduce((sum, count) => sum + count, 0)
  const faultKinds = Object.entries(totals.faultsByKind)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ")
  const tile = (label: string, value: string, note = "") =>
    `<div class="tile"><div class="label">${escapeHtml(label)}</div><div class="value">${escapeHtml(value)}</div>${
      note === "" ? "" : `<div class="note">${escapeHtml(note)}</div>`
    }</div>`
  const ms = (value: number | null) => (value === null ? "–" : `${compact(value)} ms`)
  /** The live line's rate at its highest, against the limit: the whole run when it was under a minute. */
  const busiest = (amount: number, limit: number | null, what = "") =>
    `${what === "" ? "" : `${what} `}${totals.elapsedMillis < 60_000 ? `in the whole run (${seconds(totals.elapsedMillis)})` : "in the busiest 60 s"}: ${compact(amount)}${
      limit === null ? "" : ` of ${compact(limit)} a minute (${Math.round((amount / limit) * 100)}%)`
    }`
  const tiles = [
    tile(
      "lines",
      `${compact(totals.succeeded)} ok`,
      `${totals.failed} failed · ${totals.skipped} skipped · ${totals.malformed} malformed`
    ),
    tile("elapsed", seconds(totals.elapsedMillis)),
    tile("requests sent", compact(totals.requests), busiest(totals.busiestRequestsPerMinute, rpmLimit)),
    tile(
      "tokens",
      compact(tokens),
      `${compact(totals.promptTokens)} prompt · ${compact(totals.completionTokens)} completion; ${busiest(totals.busiestTokensPerMinute, tpmLimit, "charged")}`
    ),
    tile(
      "limits",
      rpmLimit === null && tpmLimit === null ? "none known" : `${rpmLimit === null ? "–" : compact(rpmLimit)} rpm`,
      tpmLimit === null ? "" : `${compact(tpmLimit)} tpm`
    ),
    tile("429s", compact(totals.rateLimited)),
    tile("retries", compact(totals.retries)),
    tile("faults", compact(faults), faultKinds === "" ? "none" : faultKinds),
    tile(
      "attempt latency",
      `p50 ${ms(totals.latency.p50)}`,
      `p95 ${ms(totals.latency.p95)} · p99 ${ms(totals.latency.p99)}`
    )
  ].join("")
  const card = (id: string, title: string, what: string, empty?: string) =>
    `<section class="card"><h2>${escapeHtml(title)}</h2><p class="what">${escapeHtml(what)}</p>${
      empty === undefined ? `<div id="${id}"></div>` : `<div class="empty">${escapeHtml(empty)}</div>`
    }</section>`
  const groups = Object.keys(series.requestsBy)
  const cards = [
    card(
      "chart-rpm",
      "Requests per minute",
      "HTTP requests sent in the last 60 s (retries included; early in the run, since the start: never extrapolated), as the live line shows them, against the requests-per-minute limit in force"
    ),
    card(
      "chart-tpm",
      "Tokens per minute",
      "Tokens in the last 60 s as the provider counts them (prompt + max_tokens for OpenAI; early in the run, since the start), as the live line shows them, against the tokens-per-minute limit in force"
    ),
    card(
      "chart-sent",
      "Requests sent",
      `HTTP requests put on the wire in each ${seconds(series.intervalMillis)} interval`
    ),
    card(
      "chart-errors",
      "429s, retries and faults",
      `Per ${seconds(series.intervalMillis)} interval. Faults: failed attempts other than a 429 (5xx, resets, timeouts); refused: attempts an open breaker turned away`
    ),
    card(
      "chart-latency",
      "Attempt latency",
      `p50 / p95 / p99 of the attempts that ended in each interval (time on the wire, not time queued)`
    ),
    card(
      "chart-queue",
      "Queue depth",
      "Requests waiting (queued or for rate and token admission) and requests being sent, sampled each interval"
    ),
    recorded.hasBreaker || Object.keys(series.breakers).length > 0
      ? Object.keys(series.breakers).length > 0
        ? card("chart-breaker", "Circuit breaker", "Each breaker's state: closed, half-open (probing) or open")
        : card(
            "chart-breaker",
            "Circuit breaker",
            "Each breaker's state: closed, half-open (probing) or open",
            "Closed the whole run"
          )
      : card("chart-breaker", "Circuit breaker", "Each breaker's state", "No circuit breaker in this run"),
    card("chart-lines", "Lines done", "Lines with a result in the output so far"),
    ...(groups.length > 1
      ? [card("chart-groups", "Requests by provider / key", "HTTP requests sent in each interval, by executor and key")]
      : [])
  ].join("\n")
  const transitionTable =
    transitions.length === 0
      ? ""
      : `<section class="card" style="margin-top:14px"><h2>Breaker transitions</h2><table><tr><th>at</th><th>breaker</th><th>from</th><th>to</th></tr>${transitions
          .map(
            (t) =>
              `<tr><td>${t.at.toFixed(2)} s</td><td>${escapeHtml(t.breaker)}</td><td>${escapeHtml(t.from)}</td><td>${escapeHtml(t.to)}</td></tr>`
          )
          .join("")}</table></section>`
  const details = meta.details
    .map(([label, value]) => `${escapeHtml(label)} <code>${escapeHtml(value)}</code>`)
    .join(" · ")
  const data = JSON.stringify(recorded).replace(/</g, "\\u003c")
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(meta.title)}: report</title>
<style>${assets.stylesheet}</style>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(meta.title)}: report</h1>
<p class="sub">${details}</p>
<div class="tiles">${tiles}</div>
<div class="grid">
${cards}
</div>
${transitionTable}
<script id="sluice-data" type="application/json">${data}</script>
<script>${inScript(assets.script)}</script>
<script>${inScript(DRAW)}</script>
</body>
</html>
`
}

/** Writes the page to `path`. */
export const write = (
  path: string,
  recorded: RunSeries.Recorded,
  meta: Meta
): Effect.Effect<void, PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const assets = yield* loadAssets
    yield* fs.writeFileString(path, render(recorded, meta, assets))
  })
