/**
 * A provider that lies: a real local HTTP server on 127.0.0.1 answering each
 * hostile case the ApiClient must survive (test utility, not a library module).
 *
 * Routes:
 * - `GET /ok`: 200 `{"answer":"42"}`;
 * - `GET /answer?status=429&h.<name>=<value>&body=<text>`: the status, every
 *   `h.`-prefixed query parameter as a response header, the body as given;
 * - `GET /echo?status=401`: echoes the credentials it received in every form
 *   (raw, decoded Basic `user:password`, base64, JSON-escaped, URL-encoded) in
 *   its body and in its response headers (`x-echo-authorization`,
 *   `www-authenticate`, `set-cookie`, rate-limit headers);
 * - `GET /reset`: destroys the connection before answering;
 * - `GET /big?bytes=N&length=0|1`: a 200 whose body is N bytes, with or
 *   without a `content-length`.
 *
 * Every request is recorded (method, path, headers) so a test can check that
 * nothing was sent.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
}

export interface HostileServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly seen: Array<Seen>
}

/** Every secret the request carried: a bearer token, an API key, a Basic pair and its password. */
export const credentialsOf = (headers: Http.IncomingHttpHeaders): Array<string> => {
  const found: Array<string> = []
  const authorization = headers.authorization
  if (typeof authorization === "string") {
    const [scheme, value] = authorization.split(" ", 2)
    if (scheme === "Basic" && value !== undefined) {
      const decoded = Buffer.from(value, "base64").toString("utf8")
      found.push(decoded, decoded.slice(decoded.indexOf(":") + 1))
    } else if (value !== undefined) found.push(value)
  }
  for (const name of ["x-api-key", "x-goog-api-key", "api-key"]) {
    const value = headers[name]
    if (typeof value === "string") found.push(value)
  }
  return found
}

/** Every form a careless server echoes a secret in. */
export const formsOf = (secret: string): Array<string> => [
  secret,
  Buffer.from(secret).toString("base64"),
  // JSON-escaped: each character that is not a letter or digit as \uXXXX (`sk\u002d...`).
  secret.replace(/[^A-Za-z0-9]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`),
  // Every character escaped.
  [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""),
  encodeURIComponent(secret),
  [...secret].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`).join("")
]

const echo = (request: Http.IncomingMessage, response: Http.ServerResponse, status: number) => {
  const credentials = credentialsOf(request.headers)
  const forms = credentials.flatMap(formsOf)
  const raw = credentials[0] ?? ""
  // Headers may only carry Latin-1: the raw form and the encoded ones.
  response.setHeader("x-echo-authorization", String(request.headers.authorization ?? raw))
  response.setHeader("www-authenticate", `Bearer realm="api", error="invalid_token", token="${raw}"`)
  response.setHeader("set-cookie", [`session=${encodeURIComponent(raw)}`, `key=${raw}`])
  response.setHeader("x-ratelimit-limit-requests", raw)
  response.setHeader("x-request-id", `req-${Buffer.from(raw).toString("base64")}`)
  response.setHeader("content-type", "application/json")
  response.statusCode = status
  const body = `{"error":{"message":"Incorrect API key provided: ${forms.join(" or ")}","escaped":"${formsOf(raw)[2]}","url":"https://x.test/?key=${encodeURIComponent(raw)}"}}`
  response.end(body)
}

const big = (response: Http.ServerResponse, bytes: number, withLength: boolean) => {
  response.statusCode = 200
  response.setHeader("content-type", "application/json")
  if (withLength) response.setHeader("content-length", String(bytes))
  const chunk = Buffer.alloc(64 * 1024, 0x20)
  let left = bytes
  const write = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left)
      left -= piece.length
      if (!response.write(piece)) {
        response.once("drain", write)
        return
      }
    }
    response.end()
  }
  response.on("error", () => {})
  write()
}

const handle = (request: Http.IncomingMessage, response: Http.ServerResponse) => {
  const url = new URL(request.url ?? "/", "http://127.0.0.1")
  const status = Number(url.searchParams.get("status") ?? "200")
  switch (url.pathname) {
    case "/ok":
      response.setHeader("content-type", "application/json")
      response.end('{"answer":"42"}')
      return
    case "/answer": {
      response.statusCode = status
      for (const [name, value] of url.searchParams) {
        if (name.startsWith("h.")) response.setHeader(name.slice(2), value)
      }
      response.setHeader("content-type", "application/json")
      response.end(url.searchParams.get("body") ?? '{"error":"hostile"}')
      return
    }
    case "/echo":
      echo(request, response, url.searchParams.has("status") ? status : 401)
      return
    case "/reset":
      request.socket.destroy()
      return
    case "/big":
      big(response, Number(url.searchParams.get("bytes") ?? "0"), url.searchParams.get("length") !== "0")
      return
    default:
      response.statusCode = 404
      response.end('{"error":"no such case"}')
  }
}

/** The server, listening on an ephemeral port of 127.0.0.1 until the scope closes. */
export const make: Effect.Effect<HostileServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.async<{ server: Http.Server; hostile: HostileServer }>((resume) => {
    const seen: Array<Seen> = []
    const server = Http.createServer((request, response) => {
      seen.push({ method: request.method ?? "", url: request.url ?? "", headers: request.headers })
      // Drain any body before answering.
      request.on("data", () => {})
      request.on("end", () => handle(request, response))
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ server, hostile: { url: `http://127.0.0.1:${port}`, seen } }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ hostile }) => hostile))
