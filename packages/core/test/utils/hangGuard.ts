/**
 * A real-time guard for property runs under TestClock. A scenario that never
 * finishes (a waiter never served, a permit never returned: shutdown would
 * wait forever on virtual time) becomes a failure that fast-check can shrink,
 * instead of a test that times out with no counterexample. It asserts no
 * timing: it only bounds how long a run may hang.
 */
export const withHangGuard = <A>(promise: Promise<A>, what: string): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario did not finish: ${what}`)), 10_000)
  })
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer))
}
