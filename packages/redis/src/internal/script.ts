/**
 * The Lua script behind every operation of the Redis RateLimiterStore: a line
 * for line port of `@sluice/core`'s `internal/gcra.ts` and memory store (same
 * formulas, same order, same float comparisons), so both stores answer the
 * same calls alike. One script, dispatched on its first argument, so one SHA
 * serves every operation.
 *
 * Keys (all declared in KEYS, all with one hash tag, so one call touches one
 * cluster slot): per bucket of the call, a hash (`tat`, `blk`, `cred`, `gen`,
 * `adm`, `logged`) and a list, its sliding log of admissions (entries
 * "time chargedAt cost"; an entry's admission number is its place counted back
 * from `adm`, since the log holds consecutive numbers). A bucket's two keys
 * expire when it is idle again (full, unblocked, its log empty) plus a margin.
 *
 * Time: the store's time is Redis `TIME` ("server") or the caller's `now`
 * ("caller", one clock for every user: tests). Every absolute time in the
 * arguments is shifted by (store time - now) on the way in, every one in the
 * answer back on the way out. Numbers travel as strings: in through `tonumber`
 * (strtod, exact), out through `%.17g` (exact), never through cjson's 14 digits.
 *
 * Fairness across processes (`hold`): a caller that is not due yet may leave a
 * hold: its costs and when it will be due. Every other caller then computes
 * its readiness as if the holds ahead of it were already charged at their due
 * times (a reservation of the future, as GCRA does), so a large cost is not
 * starved by a stream of small ones from other processes; its own holder
 * ignores it, and its charge clears it. A hold that is not taken up by its
 * due time plus `holdGrace` is dropped (a holder that went away).
 *
 * @internal
 */
export const SCRIPT = `
local EPSILON = 1e-6
local DUE_SLACK = 2e-6
local function fmt(x) if x == 0 then return '0' end return string.format('%.17g', x) end

local op = ARGV[1]
local callerNow = tonumber(ARGV[2])
local time = redis.call('TIME')
local generation = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = callerNow
if ARGV[3] == 'server' then now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000 end
local offset = now - callerNow
local expiryMargin = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local holder = ARGV[6]
local holdGrace = tonumber(ARGV[7])
-- One argument per bucket: "capacity emission interval windowMargin windowLimit".
local specs = {}
local a = 8
for i = 1, n do
  local capacity, emission, interval, windowMargin, windowLimit = string.match(ARGV[a], '(%S+) (%S+) (%S+) (%S+) (%S+)')
  specs[i] = {
    capacity = tonumber(capacity), emission = tonumber(emission), interval = tonumber(interval),
    windowMargin = tonumber(windowMargin), windowLimit = tonumber(windowLimit)
  }
  specs[i].window = specs[i].interval + specs[i].windowMargin
  a = a + 1
end

-- ---- bucket state ----------------------------------------------------------

local function parseEntry(s)
  local t, c, k = string.match(s, '(%S+) (%S+) (%S+)')
  return { time = tonumber(t), chargedAt = tonumber(c), cost = tonumber(k) }
end
local function entryString(e) return fmt(e.time) .. ' ' .. fmt(e.chargedAt) .. ' ' .. fmt(e.cost) end

-- The bucket's state, or nil when it has none (a fresh bucket) and create is false.
local function load(i, create)
  local v = redis.call('HMGET', KEYS[2 * i - 1], 'tat', 'blk', 'cred', 'gen', 'adm', 'logged', 'holds')
  if not v[4] then
    if not create then return nil end
    return { i = i, tat = -math.huge, blk = 0, cred = 0, gen = generation, adm = 0, logged = 0, loglen = 0,
      holds = {}, fresh = true }
  end
  local holds = {}
  if v[7] then
    for h, at, costs, expires in string.gmatch(v[7], '([^;]+);([^ ;]+) ([^ ;]+) ([^ ;]+);') do
      holds[#holds + 1] = { holder = h, at = tonumber(at), cost = tonumber(costs), expires = tonumber(expires) }
    end
  end
  return {
    i = i, tat = v[1] and tonumber(v[1]) or -math.huge, blk = tonumber(v[2]), cred = tonumber(v[3]),
    gen = tonumber(v[4]), adm = tonumber(v[5]), logged = tonumber(v[6]), loglen = redis.call('LLEN', KEYS[2 * i]),
    holds = holds, saved = { blk = v[2], cred = v[3], holds = v[7] or '' }
  }
end

local function entryAt(b, index)
  local s = redis.call('LINDEX', KEYS[2 * b.i], index)
  if not s then return nil end
  return parseEntry(s)
end

local function setEntry(b, index, e) redis.call('LSET', KEYS[2 * b.i], index, entryString(e)) end

-- Where the log holds admission id (-1 if it has left the log, or was never taken here).
local function indexOf(b, id)
  if b.loglen == 0 then return -1 end
  local index = id - (b.adm - b.loglen + 1)
  if index < 0 or index >= b.loglen or index % 1 ~= 0 then return -1 end
  return index
end

-- Writes the bucket back and sets its keys to expire once it is idle again (plus the margin).
local function save(b)
  local spec = specs[b.i]
  local hash = KEYS[2 * b.i - 1]
  local held = {}
  for _, h in ipairs(b.holds) do held[#held + 1] = h.holder .. ';' .. fmt(h.at) .. ' ' .. fmt(h.cost) .. ' ' .. fmt(h.expires) .. ';' end
  -- Only what changed (a fresh bucket writes everything): less to format and to write per call.
  local fields = { 'adm', fmt(b.adm), 'logged', fmt(b.logged) }
  if b.tat ~= -math.huge then fields[#fields + 1] = 'tat'; fields[#fields + 1] = fmt(b.tat) end
  local saved = b.saved or {}
  local blk, cred, holds = fmt(b.blk), fmt(b.cred), table.concat(held)
  if b.fresh or blk ~= saved.blk then fields[#fields + 1] = 'blk'; fields[#fields + 1] = blk end
  if b.fresh or cred ~= saved.cred then fields[#fields + 1] = 'cred'; fields[#fields + 1] = cred end
  if b.fresh then fields[#fields + 1] = 'gen'; fields[#fields + 1] = fmt(b.gen) end
  if b.fresh or holds ~= saved.holds then fields[#fields + 1] = 'holds'; fields[#fields + 1] = holds end
  redis.call('HSET', hash, unpack(fields))
  local idleAt = math.max(b.tat, b.blk)
  for _, h in ipairs(b.holds) do idleAt = math.max(idleAt, h.expires) end
  if b.loglen > 0 then
    -- The last entry's time: known when this call took it, else read.
    local lastTime = b.lastTime
    if lastTime == nil then lastTime = entryAt(b, -1).time end
    idleAt = math.max(idleAt, lastTime + spec.window)
  end
  local ttl = math.ceil(math.max(0, idleAt - now) + expiryMargin)
  redis.call('PEXPIRE', hash, ttl)
  if b.loglen > 0 then redis.call('PEXPIRE', KEYS[2 * b.i], ttl) end
end

-- ---- gcra.ts -------------------------------------------------------------------

local function forget(b, now)
  local spec = specs[b.i]
  while b.loglen > 0 do
    local first = entryAt(b, 0)
    if first.time + spec.window > now then return end
    redis.call('LPOP', KEYS[2 * b.i])
    b.loglen = b.loglen - 1
    b.logged = b.logged - first.cost
  end
  b.logged = 0
end

local function blockingAdmission(b, cost, now)
  local spec = specs[b.i]
  forget(b, now)
  local excess = b.logged + cost - spec.windowLimit
  if excess <= EPSILON then return nil end
  local entries = redis.call('LRANGE', KEYS[2 * b.i], 0, -1)
  for _, s in ipairs(entries) do
    local e = parseEntry(s)
    excess = excess - e.cost
    if excess <= EPSILON then return e end
  end
  return nil
end

-- The bucket's tat as this caller sees it: with the holds ahead of it charged at their due times.
local function tatFor(b, now)
  local spec = specs[b.i]
  local tat = b.tat
  for _, h in ipairs(b.holds) do
    if h.holder == holder then break end
    if h.expires > now then tat = math.max(tat, h.at) + h.cost * spec.emission end
  end
  return tat
end

local function readyAt(b, cost, now, ready)
  local spec = specs[b.i]
  local byLevel = math.max(b.blk, tatFor(b, now) - (spec.capacity - cost) * spec.emission)
  if byLevel > ready.chargeAt then ready.chargeAt = byLevel end
  if byLevel > ready.dueAt then ready.dueAt = byLevel end
  local blocking = blockingAdmission(b, cost, now)
  if blocking == nil then return end
  local scheduled = blocking.chargedAt + spec.window
  if scheduled > ready.chargeAt then ready.chargeAt = scheduled end
  local left = blocking.time + spec.window - spec.windowMargin / 2
  if left > ready.dueAt then ready.dueAt = left end
  if ready.chargeAt > ready.dueAt then ready.dueAt = ready.chargeAt end
end

local function isDue(at, now) return at - now < DUE_SLACK end

local function take(b, cost, at, now)
  local spec = specs[b.i]
  b.tat = math.max(b.tat, at) + cost * spec.emission
  b.adm = b.adm + 1
  redis.call('RPUSH', KEYS[2 * b.i], entryString({ time = now, chargedAt = at, cost = cost }))
  b.loglen = b.loglen + 1
  b.lastTime = now
  b.logged = b.logged + cost
  return { fmt(b.tat), fmt(b.cred), fmt(b.gen), fmt(b.adm) }
end

-- Drops this caller's hold and every hold whose holder went away; with one to leave, leaves it.
local function setHold(b, at, cost, now)
  local kept = {}
  local placed = false
  for _, h in ipairs(b.holds) do
    if h.holder == holder then
      if at ~= nil then
        h.at = at
        h.cost = cost
        h.expires = at + holdGrace
        kept[#kept + 1] = h
        placed = true
      end
    elseif h.expires > now then
      kept[#kept + 1] = h
    end
  end
  if at ~= nil and not placed then
    kept[#kept + 1] = { holder = holder, at = at, cost = cost, expires = at + holdGrace }
  end
  b.holds = kept
end

local function receiptAt(a)
  if ARGV[a] == '' then return nil, a + 1 end
  return { paidUntil = tonumber(ARGV[a]), credited = tonumber(ARGV[a + 1]), generation = tonumber(ARGV[a + 2]),
    admission = tonumber(ARGV[a + 3]) }, a + 4
end

-- ---- operations ------------------------------------------------------------

if op == 'reserve' then
  local mode = ARGV[a]
  local notBefore = tonumber(ARGV[a + 1]) + offset
  local hold = ARGV[a + 2] == '1'
  local costs = {}
  for i = 1, n do costs[i] = tonumber(ARGV[a + 2 + i]) end
  local ready = { chargeAt = notBefore, dueAt = notBefore }
  local buckets = {}
  for i = 1, n do
    if costs[i] > 0 then
      buckets[i] = load(i, true)
      readyAt(buckets[i], costs[i], now, ready)
    end
  end
  if not isDue(ready.dueAt, now) then
    for i = 1, n do
      local b = buckets[i]
      if b ~= nil then
        if hold and mode == 'ifDue' then setHold(b, ready.chargeAt, costs[i], now) end
        if not b.fresh or (hold and mode == 'ifDue') then save(b) end
      end
    end
    local chargeAt = ''
    if ready.chargeAt < ready.dueAt then chargeAt = fmt(ready.chargeAt - offset) end
    -- How long the key is blocked (penalize, sync), for the caller to know without asking again.
    local blocked = 0
    for i = 1, n do
      if buckets[i] ~= nil and buckets[i].blk > blocked then blocked = buckets[i].blk end
    end
    local blockedAnswer = ''
    if blocked > now then blockedAnswer = fmt(blocked - offset) end
    return { '0', fmt(ready.dueAt - offset), chargeAt, blockedAnswer }
  end
  local at = math.min(ready.chargeAt, now)
  if mode == 'peek' then
    for i = 1, n do
      if buckets[i] ~= nil and not buckets[i].fresh then save(buckets[i]) end
    end
    return { '0', fmt(at - offset), '', '' }
  end
  local answer = { '1', fmt(at - offset), '', '' }
  for i = 1, n do
    local b = buckets[i]
    if b ~= nil then
      local receipt = take(b, costs[i], at, now)
      setHold(b, nil, 0, now)
      save(b)
      for _, v in ipairs(receipt) do answer[#answer + 1] = v end
    else
      for _ = 1, 4 do answer[#answer + 1] = '' end
    end
  end
  return answer
elseif op == 'charge' then
  for i = 1, n do
    local amount = tonumber(ARGV[a + i - 1])
    if amount > 0 then
      local b = load(i, true)
      b.tat = math.max(b.tat, now) + amount * specs[i].emission
      save(b)
    end
  end
  return {}
elseif op == 'refund' then
  local answer = {}
  local r = a + n
  for i = 1, n do
    local amount = tonumber(ARGV[a + i - 1])
    local receipt
    receipt, r = receiptAt(r)
    local given = 0
    local b = load(i, false)
    if b ~= nil and receipt ~= nil and amount > 0 and receipt.generation == b.gen then
      local spec = specs[i]
      forget(b, now)
      local index = indexOf(b, receipt.admission)
      if index >= 0 then
        local e = entryAt(b, index)
        if e.cost > 0 then
          local unused = math.min(amount, e.cost)
          e.cost = e.cost - unused
          b.logged = b.logged - unused
          setEntry(b, index, e)
        end
      end
      local frontier = receipt.paidUntil - (b.cred - receipt.credited)
      local unrefilled = math.max(0, frontier - now) / spec.emission
      given = math.min(amount, unrefilled)
      if given <= 0 then
        given = 0
      else
        b.tat = b.tat - given * spec.emission
        b.cred = b.cred + given * spec.emission
      end
      save(b)
    end
    answer[i] = fmt(given)
  end
  return answer
elseif op == 'began' then
  local r = a
  for i = 1, n do
    local receipt
    receipt, r = receiptAt(r)
    local b = load(i, false)
    if b ~= nil and receipt ~= nil and receipt.generation == b.gen then
      local index = indexOf(b, receipt.admission)
      if index >= 0 then
        local e = entryAt(b, index)
        if now > e.time then
          local nextEntry = entryAt(b, index + 1)
          if nextEntry == nil then e.time = now else e.time = math.max(e.time, math.min(now, nextEntry.time)) end
          setEntry(b, index, e)
          save(b)
        end
      end
    end
  end
  return {}
elseif op == 'sync' then
  local remaining = tonumber(ARGV[a])
  local resetAfter = nil
  if ARGV[a + 1] ~= '' then resetAfter = tonumber(ARGV[a + 1]) end
  local b = load(1, true)
  local spec = specs[1]
  local tatForRemaining = now + (spec.capacity - math.max(0, remaining)) * spec.emission
  b.tat = math.max(b.tat, tatForRemaining)
  if remaining <= 0 and resetAfter ~= nil then
    -- gcra.ts's sync: blocked until the oldest logged admission leaves a window, or the reset if sooner.
    forget(b, now)
    local blockTo = now + resetAfter
    if b.loglen > 0 then blockTo = math.min(blockTo, entryAt(b, 0).time + spec.window) end
    b.blk = math.max(b.blk, blockTo)
  end
  save(b)
  return { fmt(b.blk - offset) }
elseif op == 'block' then
  local untilTime = tonumber(ARGV[a]) + offset
  for i = 1, n do
    local b = load(i, true)
    b.blk = math.max(b.blk, untilTime)
    save(b)
  end
  return {}
elseif op == 'inspect' then
  local answer = {}
  for i = 1, n do
    local b = load(i, false)
    local spec = specs[i]
    if b == nil then
      answer[#answer + 1] = fmt(spec.capacity)
      answer[#answer + 1] = '0'
    else
      answer[#answer + 1] = fmt(spec.capacity - math.max(0, b.tat - now) / spec.emission)
      if b.blk == 0 then answer[#answer + 1] = '0' else answer[#answer + 1] = fmt(b.blk - offset) end
    end
  end
  return answer
end
return redis.error_reply('unknown operation ' .. tostring(op))
`
