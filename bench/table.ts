/**
 * Plain-text tables for the benchmark report: a title, a header row, aligned
 * columns (text left, numbers right) and optional notes under the table.
 * Also the number formatting every table shares.
 */

export interface Column {
  readonly header: string
  readonly align?: "left" | "right" | undefined
}

export interface Table {
  readonly title: string
  readonly columns: ReadonlyArray<Column>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  readonly notes?: ReadonlyArray<string> | undefined
}

const pad = (text: string, width: number, align: "left" | "right") =>
  align === "right" ? text.padStart(width) : text.padEnd(width)

export const render = (table: Table): string => {
  const widths = table.columns.map((column, i) =>
    Math.max(column.header.length, ...table.rows.map((row) => (row[i] ?? "").length))
  )
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((cell, i) => pad(cell, widths[i]!, table.columns[i]!.align ?? "left"))
      .join("  ")
      .trimEnd()
  const header = line(table.columns.map((column) => column.header))
  const rule = widths.map((width) => "-".repeat(width)).join("  ")
  const out = [table.title, "=".repeat(table.title.length), header, rule, ...table.rows.map(line)]
  for (const note of table.notes ?? []) out.push(`  ${note}`)
  return `${out.join("\n")}\n`
}

export const print = (table: Table): void => {
  process.stdout.write(`\n${render(table)}`)
}

/** 1234567.8 -> "1,234,568" */
export const int = (value: number): string =>
  Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : String(value)

/** A number with fixed decimals. */
export const fixed = (value: number, digits: number): string =>
  Number.isFinite(value) ? value.toFixed(digits) : String(value)

export const megabytes = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`

export const passOrMiss = (ok: boolean): string => (ok ? "PASS" : "MISS")
