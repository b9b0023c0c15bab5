/**
 * A `redis-server` process of the test's own, on a free port, that the test
 * stops and starts again (the same port) to make an outage. Each start waits
 * for the server to answer, each stop for the process to exit, within
 * generous bounds; the scope stops it for good.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"

const freePort = () =>
  Effect.async<number>((resume) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resume(Effect.succeed(port)))
    })
  })

export interface RedisServer {
  readonly url: string
  readonly start: Effect.Effect<void>
  readonly stop: Effect.Effect<void>
  /** Runs one command on the server (e.g. `CLIENT PAUSE`). */
  readonly command: (...args: Array<string>) => Effect.Effect<unknown>
}

const answers = (port: number) =>
  Effect.promise(async () => {
    const probe = new Redis({
      port,
      host: "127.0.0.1",
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null
    })
    probe.on("error", () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === "PONG"
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  })

export const redisServer: Effect.Effect<RedisServer, never, Scope.Scope> = Effect.gen(function* () {
  const port = yield* freePort()
  let child: ChildProcess | undefined
  const start = Effect.gen(function* () {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore"
    })
    for (let tries = 0; !(yield* answers(port)); tries++) {
      if (tries > 600) return yield* Effect.dieMessage(`redis-server on port ${port} did not answer within 30 s`)
      yield* Effect.sleep("50 millis")
    }
  })
  const stop = Effect.suspend(() => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return Effect.void
    return Effect.async<void>((resume) => {
      running.once("exit", () => resume(Effect.void))
      running.kill("SIGKILL")
    })
  })
  yield* Effect.addFinalizer(() => stop)
  yield* start
  const command = (...args: Array<string>) =>
    Effect.promise(async () => {
      const redis = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1 })
      redis.on("error", () => {})
      try {
        return await redis.call(args[0]!, ...args.slice(1))
      } finally {
        redis.disconnect()
      }
    })
  return { url: `redis://127.0.0.1:${port}`, start, stop, command }
})
