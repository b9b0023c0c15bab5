/**
 * The Lua script behind every operation of the Redis CircuitBreakerStore: a
 * line for line port of `@sluice/core`'s `internal/circuitBreakerStoreMemory.ts`
 * (change one, change the other; the conformance suite runs both). One
 * script, dispatched on its first argument, so one SHA serves every operation.
 *
 * One key per breaker name and key (declared in KEYS, hash-tagged by the
 * caller): a hash with `st` (`OPEN` or `ISOLATED`; a CLOSED key holds
 * nothing and is deleted), `gen`, `deadline`, `openedFor`, `succ`, `trip` (the
 * JSON the breaker sent, kept as it is) and one field `h:<holder>` per probe
 * slot, valued with the end of its lease. HALF_OPEN is an OPEN past its
 * deadline, decided here on each call; an ended lease is dropped by the next
 * call that reads the key. The key expires `retention` after the later of its
 * deadline and its leases; an ISOLATED key does not expire (isolation holds
 * until `reset`, as it does in a breaker).
 *
 * Time: Redis `TIME` ("server"), or the caller's `now` ("caller", one clock
 * for every user: tests). Answers carry the open deadline as a duration from
 * now, so no caller sees the server's clock. Generations are Redis `TIME` in
 * microseconds, raised past the key's last one: they only go up, even across
 * the key's expiry, as long as the server's clock does. A key holding nothing
 * answers CLOSED in the generation "now", so no older notice wins over it.
 *
 * Every change is published on the channel (ARGV[4]) in the same step, as one
 * JSON object of strings (numbers as `%.17g`, never through cjson's 14 digits).
 *
 * @internal
 */
export const BREAKER_SCRIPT = `
local function fmt(x) if x == 0 then return '0' end return string.format('%.17g', x) end

local op = ARGV[1]
local callerNow = tonumber(ARGV[2])
local time = redis.call('TIME')
local micros = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = callerNow
if ARGV[3] == 'server' then now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000 end
local channel = ARGV[4]
local retention = tonumber(ARGV[7])
local key = KEYS[1]

-- The key's state, with ended leases dropped; nil for a key that holds nothing (CLOSED).
local function load()
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local e = { holders = {}, nholders = 0 }
  local ended = {}
  for i = 1, #flat, 2 do
    local f, v = flat[i], flat[i + 1]
    if string.sub(f, 1, 2) == 'h:' then
      local lease = tonumber(v)
      if lease <= now then
        ended[#ended + 1] = f
      else
        e.holders[string.sub(f, 3)] = lease
        e.nholders = e.nholders + 1
      end
    else
      e[f] = v
    end
  end
  if #ended > 0 then redis.call('HDEL', key, unpack(ended)) end
  if e.st == nil then return nil end
  e.gen = tonumber(e.gen)
  e.deadline = tonumber(e.deadline)
  e.openedFor = tonumber(e.openedFor)
  e.succ = tonumber(e.succ)
  return e
end

local function closed(gen) return { 'CLOSED', fmt(gen), '0', '0', '0', '0', '' } end

-- state, generation, openRemaining, openedFor, probes, successes, trip
local function view(e)
  if e == nil then return closed(micros) end
  local half = e.st == 'OPEN' and now >= e.deadline
  local state, remaining, probes, succ, trip = e.st, 0, 0, 0, ''
  if half then
    state = 'HALF_OPEN'
    probes = e.nholders
    succ = e.succ
  elseif e.st == 'OPEN' then
    remaining = e.deadline - now
  end
  if e.st == 'OPEN' then trip = e.trip end
  return { state, fmt(e.gen), fmt(remaining), fmt(e.openedFor), fmt(probes), fmt(succ), trip }
end

local function publish(v)
  redis.call('PUBLISH', channel, cjson.encode({
    b = ARGV[5], k = ARGV[6], s = v[1], g = v[2], r = v[3], o = v[4], p = v[5], c = v[6], t = v[7]
  }))
  return v
end

local function newGen(e)
  if e ~= nil and e.gen + 1 > micros then return e.gen + 1 end
  return micros
end

local function expire(e)
  if e.st == 'ISOLATED' then
    redis.call('PERSIST', key)
    return
  end
  local horizon = e.deadline
  for _, lease in pairs(e.holders) do if lease > horizon then horizon = lease end end
  redis.call('PEXPIRE', key, math.max(1, math.ceil(math.max(0, horizon - now) + retention)))
end

local function write(st, gen, deadline, openedFor, trip)
  redis.call('DEL', key)
  redis.call('HSET', key, 'st', st, 'gen', fmt(gen), 'deadline', fmt(deadline), 'openedFor', fmt(openedFor),
    'succ', '0', 'trip', trip)
  local e = { st = st, gen = gen, deadline = deadline, openedFor = openedFor, succ = 0, trip = trip,
    holders = {}, nholders = 0 }
  expire(e)
  return e
end

local function answer(v, granted)
  v[#v + 1] = granted
  return v
end

local e = load()
if op == 'get' then
  return view(e)
elseif op == 'open' then
  local openFor, trip, expected = tonumber(ARGV[8]), ARGV[9], ARGV[10]
  local v = view(e)
  if v[1] == 'ISOLATED' then return v end
  if expected ~= '' and tonumber(expected) ~= tonumber(v[2]) then return v end
  local deadline = now + openFor
  -- Deadlines only move later.
  if v[1] == 'OPEN' and e.deadline >= deadline then return v end
  return publish(view(write('OPEN', newGen(e), deadline, openFor, trip)))
elseif op == 'acquire' then
  local holder, probes, lease = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
  local v = view(e)
  if v[1] ~= 'HALF_OPEN' then return answer(v, '0') end
  if e.holders[holder] == nil then
    if e.nholders >= probes then return answer(v, '0') end
    e.nholders = e.nholders + 1
  end
  e.holders[holder] = now + lease
  redis.call('HSET', key, 'h:' .. holder, fmt(now + lease))
  expire(e)
  return answer(view(e), '1')
elseif op == 'settle' then
  local holder, gen, outcome, probes = ARGV[8], tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11])
  local v = view(e)
  if v[1] ~= 'HALF_OPEN' or tonumber(v[2]) ~= gen or e.holders[holder] == nil then return v end
  redis.call('HDEL', key, 'h:' .. holder)
  e.holders[holder] = nil
  e.nholders = e.nholders - 1
  if outcome == 'released' then return view(e) end
  e.succ = e.succ + 1
  if e.succ >= probes then
    redis.call('DEL', key)
    return publish(closed(newGen(e)))
  end
  redis.call('HSET', key, 'succ', fmt(e.succ))
  return view(e)
elseif op == 'isolate' then
  local v = view(e)
  if v[1] == 'ISOLATED' then return v end
  local openedFor = 0
  if e ~= nil then openedFor = e.openedFor end
  return publish(view(write('ISOLATED', newGen(e), 0, openedFor, '')))
elseif op == 'reset' then
  local v = view(e)
  if v[1] == 'CLOSED' then return v end
  redis.call('DEL', key)
  return publish(closed(newGen(e)))
end
return redis.error_reply('unknown operation ' .. tostring(op))
`
