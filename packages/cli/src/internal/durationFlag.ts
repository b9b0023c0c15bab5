/**
 * Durations on the command line: `500ms`, `30s`, `2m`, `1h`, or a bare
 * number of seconds (`30`, `1.5`).
 */
import * as Duration from "effect/Duration"

const UNITS: Record<string, (value: number) => Duration.Duration> = {
  ms: Duration.millis,
  s: Duration.seconds,
  m: Duration.minutes,
  h: Duration.hours,
  "": Duration.seconds
}

export const parse = (text: string): Duration.Duration | undefined => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text)
  if (match === null) return undefined
  const value = Number(match[1])
  if (!Number.isFinite(value) || value <= 0) return undefined
  return UNITS[match[2] ?? ""]!(value)
}
