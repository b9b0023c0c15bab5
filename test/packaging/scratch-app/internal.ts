/**
 * The packaging check's proof that internal modules are out of reach: each type below must fail to
 * resolve (under NodeNext and Bundler alike), or its `@ts-expect-error` is unused and tsc fails.
 */
export type Unreachable = [
  // @ts-expect-error internal modules are not exported
  typeof import("@sluice/core/internal/executor"),
  // @ts-expect-error internal modules are not exported
  typeof import("@sluice/http/internal/apiClient"),
  // @ts-expect-error the cli's program modules are not exported
  typeof import("@sluice/cli/Cli")
]
