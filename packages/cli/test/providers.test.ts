/**
 * The providers file of `sluice run --providers`: decoded by its Schema; every error names the file, the
 * entry and the field; a key variable not set is named, never a value.
 */

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Providers from "../src/internal/providers.js"

const FILE = "providers.json"

const failureOf = (text: string) => Effect.flip(Providers.parse(FILE, text))

describe("the providers file", () => {
  it.effect("decodes every field", () =>
    Effect.gen(function* () {
      const entries = yield* Providers.parse(
        FILE,
        JSON.stringify([
          {
            name: "openai",
            baseUrl: "https://api.openai.com/v1",
            keyEnv: "OPENAI_API_KEY",
            domain: "org",
            weight: 2,
            tier: 1,
            contextWindow: 128_000,
            limits: { rpm: 500, tpm: 90_000 },
            concurrency: 8
          },
          { name: "local", baseUrl: "http://127.0.0.1:8080/v1" }
        ])
      )
      expect(entries.domains).toEqual({})
      expect(entries.providers).toEqual([
        {
          name: "openai",
          baseUrl: "https://api.openai.com/v1",
          keyEnv: "OPENAI_API_KEY",
          domain: "org",
          weight: 2,
          tier: 1,
          contextWindow: 128_000,
          limits: { rpm: 500, tpm: 90_000 },
          concurrency: 8
        },
        { name: "local", baseUrl: "http://127.0.0.1:8080/v1" }
      ])
    })
  )

  it.effect("the object form: shared domains with their limits, and the providers", () =>
    Effect.gen(function* () {
      const spec = yield* Providers.parse(
        FILE,
        JSON.stringify({
          domains: { org: { rpm: 600, tpm: 100_000 } },
          providers: [
            { name: "east", baseUrl: "https://east.example.com/v1", keyEnv: "KEY", domain: "org" },
            { name: "west", baseUrl: "https://west.example.com/v1", keyEnv: "KEY", domain: "org" },
            { name: "solo", baseUrl: "https://solo.example.com/v1", keyEnv: "KEY", limits: { tpm: 5 } }
          ]
        })
      )
      expect(spec.domains).toEqual({ org: { rpm: 600, tpm: 100_000 } })
      expect(spec.providers.map((entry) => [entry.name, entry.domain])).toEqual([
        ["east", "org"],
        ["west", "org"],
        ["solo", undefined]
      ])
      // The providers alone in an object: no domains.
      const bare = yield* Providers.parse(
        FILE,
        JSON.stringify({ providers: [{ name: "a", baseUrl: "http://127.0.0.1:1/v1" }] })
      )
      expect(bare.domains).toEqual({})
    })
  )

  it.effect("a domain's mistakes name the domain and the field; a member's own limits name the entry", () =>
    Effect.gen(function* () {
      const member = { name: "east", baseUrl: "https://east.example.com/v1", keyEnv: "KEY", domain: "org" }
      const withDomains = (domains: unknown, providers: ReadonlyArray<unknown> = [member]) =>
        failureOf(JSON.stringify({ domains, providers }))
      expect((yield* withDomains({ org: { tpm: -1 } })).message).toBe(
        `--providers ${FILE}: domain "org", field tpm: Expected a positive number, actual -1`
      )
      expect((yield* withDomains({ org: { tpm: 5, rps: 1 } })).message).toBe(
        `--providers ${FILE}: domain "org", field rps: is unexpected, expected: "rpm" | "tpm"`
      )
      expect((yield* withDomains({ org: {} })).message).toBe(
        `--providers ${FILE}: domain "org": give rpm or tpm (or both), the limits its members share`
      )
      expect((yield* withDomains({ org: { tpm: 5 }, orgg: { tpm: 5 } })).message).toBe(
        `--providers ${FILE}: domain "orgg": no provider names it in its domain field; a domain's limits are its members'`
      )
      expect((yield* withDomains({ org: { tpm: 5 } }, [{ ...member, limits: { tpm: 9 } }])).message).toBe(
        `--providers ${FILE}: entry 0 ("east"), field limits: a member of domain "org" draws on the domain's limits (domains.org); give them there, not on the provider`
      )
      expect((yield* withDomains([1])).message).toContain(`--providers ${FILE}: field domains: Expected `)
      const extra = yield* failureOf(JSON.stringify({ providers: [member], domain: {} }))
      expect(extra.message).toBe(
        `--providers ${FILE}: field domain: is not a field of the file; expected "domains" and "providers"`
      )
      expect((yield* failureOf(JSON.stringify({ providers: {} }))).message).toBe(
        `--providers ${FILE}: field providers: expected a JSON array of providers, one object per provider`
      )
    })
  )

  it.effect("names the file, the entry (index and name) and the field of each mistake", () =>
    Effect.gen(function* () {
      const error = yield* failureOf(
        JSON.stringify([
          { name: "a", baseUrl: "ftp://x" },
          { name: "b", baseUrl: "https://b.example.com", limits: { rpm: 0 }, weigth: 2 },
          { baseUrl: "https://c.example.com" }
        ])
      )
      expect(error.reason).toBe("Invalid")
      expect(error.message).toContain(`--providers ${FILE}: `)
      expect(error.message).toContain('entry 0 ("a"), field baseUrl: Expected an http:// or https:// URL')
      expect(error.message).toContain('entry 1 ("b"), field limits.rpm')
      // A misspelt field is named, not ignored.
      expect(error.message).toContain('entry 1 ("b"), field weigth')
      expect(error.message).toContain("entry 2, field name")
    })
  )

  it.effect("refuses two providers of one name, an empty list, not JSON, not an array", () =>
    Effect.gen(function* () {
      const twice = yield* failureOf(
        JSON.stringify([
          { name: "a", baseUrl: "https://a.example.com" },
          { name: "a", baseUrl: "https://b.example.com" }
        ])
      )
      expect(twice.message).toContain('entry 1 ("a"), field name: "a" is already the name of entry 0 ("a")')
      expect((yield* failureOf("[]")).message).toContain("Expected an array of at least 1 item")
      expect((yield* failureOf("{ nope")).message).toContain("not JSON")
      expect((yield* failureOf('{ "name": "a" }')).message).toContain("expected a JSON array of providers")
    })
  )

  it.effect("reads each key from its variable, Redacted; a variable not set is named, never a value", () =>
    Effect.gen(function* () {
      const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-providers-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
      const file = path.join(directory, FILE)
      fs.writeFileSync(
        file,
        JSON.stringify([
          { name: "a", baseUrl: "https://a.example.com", keyEnv: "KEY_A" },
          { name: "b", baseUrl: "https://b.example.com", keyEnv: "KEY_B" }
        ])
      )
      const withEnv = (env: Record<string, string>) =>
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      const loaded = yield* Providers.load(file, { allowInsecureHttp: false }).pipe(
        withEnv({ KEY_A: "sk-secret-a", KEY_B: "sk-secret-b" })
      )
      expect(loaded.providers.map((provider) => Redacted.value(provider.apiKey!))).toEqual([
        "sk-secret-a",
        "sk-secret-b"
      ])
      expect(JSON.stringify(loaded)).not.toContain("sk-secret")
      expect(String(loaded.providers[0]!.apiKey)).not.toContain("sk-secret")

      const missing = yield* Effect.flip(
        Providers.load(file, { allowInsecureHttp: false }).pipe(withEnv({ KEY_A: "sk-secret-a" }))
      )
      expect(missing.reason).toBe("KeyMissing")
      expect(missing.message).toBe(
        `--providers ${file}: entry 1 ("b"), field keyEnv: the environment variable KEY_B is not set`
      )

      // A host other than loopback without a keyEnv, and plain http:// to one: refused, naming the field.
      fs.writeFileSync(file, JSON.stringify([{ name: "a", baseUrl: "https://a.example.com" }]))
      const noKey = yield* Effect.flip(Providers.load(file, { allowInsecureHttp: false }))
      expect(noKey.message).toContain('entry 0 ("a"), field keyEnv: missing')
      fs.writeFileSync(file, JSON.stringify([{ name: "a", baseUrl: "http://a.example.com", keyEnv: "KEY_A" }]))
      const insecure = yield* Effect.flip(Providers.load(file, { allowInsecureHttp: false }))
      expect(insecure.message).toContain('entry 0 ("a"), field baseUrl: plain http://')
      const unreadable = yield* Effect.flip(
        Providers.load(path.join(directory, "none.json"), { allowInsecureHttp: false })
      )
      expect(unreadable.reason).toBe("Unreadable")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer))
  )

  it.effect("--provider and --domain flags: the file's fields as key=value, errors naming the occurrence and key", () =>
    Effect.gen(function* () {
      const spec = yield* Providers.fromFlags(
        [
          "name=east,base-url=https://east.example.com/v1,key-env=KEY,domain=org,weight=2,context-window=8000",
          "name=solo,base-url=http://127.0.0.1:1/v1,rpm=60,tpm=1000,tier=1,concurrency=4"
        ],
        ["name=org,tpm=100000"]
      )
      expect(spec.domains).toEqual({ org: { tpm: 100_000 } })
      expect(spec.providers).toEqual([
        {
          name: "east",
          baseUrl: "https://east.example.com/v1",
          keyEnv: "KEY",
          domain: "org",
          weight: 2,
          contextWindow: 8000
        },
        { name: "solo", baseUrl: "http://127.0.0.1:1/v1", limits: { rpm: 60, tpm: 1000 }, tier: 1, concurrency: 4 }
      ])
      const failure = (providers: ReadonlyArray<string>, domains: ReadonlyArray<string> = []) =>
        Effect.map(Effect.flip(Providers.fromFlags(providers, domains)), (error) => error.message)
      expect(yield* failure(["name=a,base-url=https://a.example.com,tpm=lots"])).toBe(
        '--provider #1 ("a"), field tpm: Expected number, actual "lots"'
      )
      expect(yield* failure(["name=a,base-url"])).toContain('--provider #1: "base-url" is not key=value')
      expect(yield* failure(["name=a,name=b"])).toBe("--provider #1, field name: given twice")
      expect(yield* failure(["name=a,base-url=https://a.example.com,domain=org,tpm=5"], ["name=org,tpm=9"])).toBe(
        '--provider #1 ("a"), field rpm/tpm: a member of domain "org" draws on the domain\'s limits (domains.org); give them there, not on the provider'
      )
      expect(yield* failure(["name=a,base-url=https://a.example.com,domain=org"], ["name=org,tpm=0"])).toBe(
        'domain "org", field tpm: Expected a positive number, actual 0'
      )
      expect(yield* failure(["name=a,base-url=https://a.example.com"], ["rpm=5"])).toContain(
        "--domain #1, field name: missing"
      )
    })
  )
})
