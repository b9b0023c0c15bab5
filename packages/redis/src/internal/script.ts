/**
 * The Lua script behind every operation of the Redis RateLimiterStore: a line
 * for line port of `@sluice/core`'s `internal/gcra.ts` and memory store (same
 * formulas, same order, same float comparisons), so both stores answer the
 * same calls alike. One script, dispatched on its first argument, so one SHA
 * serves every operation.
 *
 * What it costs is what Redis does per call, so the script does only the work
 * the operation needs, in as few commands as it can: an admission over two
 * limits is `TIME`, one `HMGET` and one `HSET` (the chunked log below adds a
 * list command per bucket once every `CHUNK` admissions, and the expiry a
 * `PEXPIRE` about once per `expiryMargin`). Numbers never go through text:
 * they travel and are stored as IEEE doubles (Lua's `struct`, C code), exact
 * both ways, where `%.17g` and `tonumber` cost microseconds each.
 *
 * Keys (all declared in KEYS, all with one hash tag, so one call touches one
 * cluster slot): KEYS[1] is the key's hash, KEYS[1 + i] the chunk list of the
 * call's bucket i. The hash holds, per bucket (field: its encoded name), one
 * string: the bucket's numbers packed (`FIXED`), then the oldest entries of
 * its sliding log (`head`), then the newest (`recent`); `<name>:h` holds the
 * bucket's holds (text, rare); `:exp` when the hash expires (Redis time, ms).
 * (Encoded names hold no `:`, so no field name collides.)
 *
 * The sliding log (one entry per admission: time, chargedAt, cost; 24 bytes)
 * is a deque in three parts, oldest first: `head` (in the hash), full chunks
 * of `CHUNK` entries (the list), `recent` (in the hash). An admission appends
 * to `recent`; a full `recent` becomes the head if the rest is empty, else is
 * pushed onto the list; a spent head is refilled from the list (or from
 * `recent`). An entry's admission number is its place counted back from `adm`
 * (the log holds consecutive numbers), so a receipt finds it by subtraction.
 *
 * Expiry: the hash lives until every bucket in it is idle again (full,
 * unblocked, its log empty) plus `expiryMargin`, and at most one more margin
 * (`:exp` says until when it lives; it is extended, by a margin beyond what is
 * needed, only when a call needs more: not on every call). A chunk list lives
 * at least until its own bucket is idle plus the margin, so a list that has
 * expired held only entries that have left the window, as have all that came
 * after them. A bucket made afresh (its state expired) deletes any list left
 * from its earlier life before it pushes one.
 *
 * Time: the store's time is Redis `TIME` ("server") or the caller's `now`
 * ("caller", one clock for every user: tests). Every absolute time in the
 * arguments is shifted by (store time - now) on the way in, every one in the
 * answer back on the way out.
 *
 * Fairness across processes (`hold`): a caller that is not due yet may leave a
 * hold: its costs and when it will be due. Every other caller then computes
 * its readiness as if the holds ahead of it were already charged at their due
 * times (a reservation of the future, as GCRA does), so a large cost is not
 * starved by a stream of small ones from other processes; its own holder
 * ignores it, and its charge clears it. A hold that is not taken up by its
 * due time plus `holdGrace` is dropped (a holder that went away).
 *
 * Arguments: ARGV[1] the operation; ARGV[2] packed doubles: now, 1 for server
 * time, expiryMargin, holdGrace, then the operation's own numbers; ARGV[3]
 * the holder ('' without fairness); ARGV[3 + i] bucket i's field name;
 * ARGV[3 + n + i] its spec, packed (capacity, emission, interval,
 * windowMargin, windowLimit). The answer: packed doubles, NaN for "none".
 *
 * @internal
 */
export const SCRIPT = `
local EPSILON = 1e-6
local DUE_SLACK = 2e-6
local NAN = 0 / 0
-- Entries per chunk of the sliding log.
local CHUNK = 16
local ENTRY = 24
-- tat, blk, cred, gen, adm, logged, hc (entries in head), chunks, rc (entries in recent), lt (the last entry's
-- time), lexp (when the chunk list expires, Redis time), clean (1 once no list of an earlier life can be left).
local FIXED = '<dddddddddddd'
local FIXED_BYTES = 96
local spack, sunpack = struct.pack, struct.unpack
local call = redis.call

local op = ARGV[1]
local numbers = ARGV[2]
local callerNow, serverTime, expiryMargin, holdGrace = sunpack('<dddd', numbers)
local holder = ARGV[3]
local n = #KEYS - 1
local time = call('TIME')
local redisNow = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local generation = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = callerNow
if serverTime == 1 then now = redisNow end
local offset = now - callerNow

-- The operation's own numbers (after the four of the header), unpacked at once.
local args = { sunpack('<' .. string.rep('d', (#numbers - 32) / 8), numbers, 33) }

local specs = {}
for i = 1, n do
  local capacity, emission, interval, windowMargin, windowLimit = sunpack('<ddddd', ARGV[3 + n + i])
  specs[i] = { capacity = capacity, emission = emission, windowMargin = windowMargin, windowLimit = windowLimit,
    window = interval + windowMargin }
end

-- Every field of the call's buckets, and the hash's expiry, in one read.
local names = {}
for i = 1, n do
  names[2 * i - 1] = ARGV[3 + i]
  names[2 * i] = ARGV[3 + i] .. ':h'
end
names[2 * n + 1] = ':exp'
local stored = call('HMGET', KEYS[1], unpack(names))

-- ---- bucket state ----------------------------------------------------------

-- Bucket i's state, or nil when it has none (a fresh bucket) and create is false.
local function load(i, create)
  local v = stored[2 * i - 1]
  local b
  if not v then
    if not create then return nil end
    b = { tat = -math.huge, blk = 0, cred = 0, gen = generation, adm = 0, logged = 0, hc = 0, chunks = 0, rc = 0,
      lt = 0, lexp = 0, clean = 0, head = '', hpos = 1, recent = '', fresh = true, dirty = true }
  else
    local tat, blk, cred, gen, adm, logged, hc, chunks, rc, lt, lexp, clean = sunpack(FIXED, v)
    b = { tat = tat, blk = blk, cred = cred, gen = gen, adm = adm, logged = logged, hc = hc, chunks = chunks, rc = rc,
      lt = lt, lexp = lexp, clean = clean, hpos = 1, fresh = false, dirty = false }
    b.head = string.sub(v, FIXED_BYTES + 1, FIXED_BYTES + ENTRY * hc)
    b.recent = string.sub(v, FIXED_BYTES + ENTRY * hc + 1)
  end
  b.i = i
  b.spec = specs[i]
  b.list = KEYS[1 + i]
  b.heldText = stored[2 * i] or ''
  return b
end

-- The holds, parsed when first needed (most buckets have none).
local function holdsOf(b)
  if b.holds == nil then
    local holds = {}
    for h, at, costs, expires in string.gmatch(b.heldText, '([^;]+);([^ ;]+) ([^ ;]+) ([^ ;]+);') do
      holds[#holds + 1] = { holder = h, at = tonumber(at), cost = tonumber(costs), expires = tonumber(expires) }
    end
    b.holds = holds
  end
  return b.holds
end

-- ---- the sliding log: head (hash), chunks (list), recent (hash), oldest first ----------

local function logLength(b) return b.hc + CHUNK * b.chunks + b.rc end

-- Makes the head hold the oldest entry, if there is one: from the list, else from recent.
local function refill(b)
  if b.hc > 0 then return true end
  if b.chunks > 0 then
    local chunk = call('LPOP', b.list)
    b.chunks = b.chunks - 1
    b.chunkPlace = nil
    b.dirty = true
    if b.chunks == 0 then b.lexp = 0 end
    if chunk then
      b.head, b.hpos, b.hc = chunk, 1, CHUNK
      return true
    end
    -- The list expired: its entries, and every later one, had left the window (see the expiry).
    b.chunks, b.lexp = 0, 0
  end
  if b.rc > 0 then
    b.head, b.hpos, b.hc, b.recent, b.rc = b.recent, 1, b.rc, '', 0
    b.dirty = true
    return true
  end
  return false
end

-- Where entry index (0 = the oldest) is: its string (and list place), and its byte offset there.
local function locate(b, index)
  if index < b.hc then return b.head, nil, b.hpos + ENTRY * index end
  index = index - b.hc
  if index < CHUNK * b.chunks then
    local place = math.floor(index / CHUNK)
    -- A scan reads each chunk once.
    if b.chunkPlace ~= place then b.chunkPlace, b.chunk = place, call('LINDEX', b.list, place) end
    return b.chunk, place, 1 + ENTRY * (index % CHUNK)
  end
  index = index - CHUNK * b.chunks
  if index < b.rc then return b.recent, nil, 1 + ENTRY * index end
  return nil
end

-- Entry index as time, chargedAt, cost (nil past the end).
local function entryAt(b, index)
  local s, _, at = locate(b, index)
  if not s then return nil end
  return sunpack('<ddd', s, at)
end

local function setEntry(b, index, t, c, k)
  local s, place, at = locate(b, index)
  local changed = string.sub(s, 1, at - 1) .. spack('<ddd', t, c, k) .. string.sub(s, at + ENTRY)
  if index < b.hc then
    b.head = changed
  elseif place ~= nil then
    call('LSET', b.list, place, changed)
    b.chunk = changed
  else
    b.recent = changed
  end
  if index == logLength(b) - 1 then b.lt = t end
  b.dirty = true
end

local function push(b, t, c, k)
  b.recent = b.recent .. spack('<ddd', t, c, k)
  b.rc = b.rc + 1
  b.lt = t
  if b.rc < CHUNK then return end
  if b.hc == 0 and b.chunks == 0 then
    b.head, b.hpos, b.hc = b.recent, 1, b.rc
  else
    if b.clean == 0 then
      call('DEL', b.list)
      b.clean = 1
    end
    call('RPUSH', b.list, b.recent)
    b.chunks = b.chunks + 1
  end
  b.recent, b.rc = '', 0
end

-- ---- gcra.ts -------------------------------------------------------------------

-- Where the log holds admission id (-1 if it has left the log, or was never taken here).
local function indexOf(b, id)
  local length = logLength(b)
  if length == 0 then return -1 end
  local index = id - (b.adm - length + 1)
  if index < 0 or index >= length or index % 1 ~= 0 then return -1 end
  return index
end

local function forget(b, now)
  while refill(b) do
    local t, _, k = sunpack('<ddd', b.head, b.hpos)
    if t + b.spec.window > now then return end
    b.hpos, b.hc = b.hpos + ENTRY, b.hc - 1
    b.logged = b.logged - k
    b.dirty = true
  end
  if b.logged ~= 0 then
    b.logged = 0
    b.dirty = true
  end
end

-- The admission that must leave the window before cost fits in it, as its time and chargedAt (nil if it fits now).
local function blockingAdmission(b, cost, now)
  forget(b, now)
  local excess = b.logged + cost - b.spec.windowLimit
  if excess <= EPSILON then return nil end
  for index = 0, logLength(b) - 1 do
    local t, c, k = entryAt(b, index)
    excess = excess - k
    if excess <= EPSILON then return t, c end
  end
  return nil
end

-- The bucket's tat as this caller sees it: with the holds ahead of it charged at their due times.
local function tatFor(b, now)
  local tat = b.tat
  if b.heldText == '' then return tat end
  for _, h in ipairs(holdsOf(b)) do
    if h.holder == holder then break end
    if h.expires > now then tat = math.max(tat, h.at) + h.cost * b.spec.emission end
  end
  return tat
end

local function readyAt(b, cost, now, ready)
  local spec = b.spec
  local byLevel = math.max(b.blk, tatFor(b, now) - (spec.capacity - cost) * spec.emission)
  if byLevel > ready.chargeAt then ready.chargeAt = byLevel end
  if byLevel > ready.dueAt then ready.dueAt = byLevel end
  local blockingTime, blockingChargedAt = blockingAdmission(b, cost, now)
  if blockingTime == nil then return end
  local scheduled = blockingChargedAt + spec.window
  if scheduled > ready.chargeAt then ready.chargeAt = scheduled end
  local left = blockingTime + spec.window - spec.windowMargin / 2
  if left > ready.dueAt then ready.dueAt = left end
  if ready.chargeAt > ready.dueAt then ready.dueAt = ready.chargeAt end
end

local function isDue(at, now) return at - now < DUE_SLACK end

local function take(b, cost, at, now)
  b.tat = math.max(b.tat, at) + cost * b.spec.emission
  b.adm = b.adm + 1
  push(b, now, at, cost)
  b.logged = b.logged + cost
  b.dirty = true
end

-- Drops this caller's hold and every hold whose holder went away; with one to leave, leaves it.
local function setHold(b, at, cost, now)
  if b.heldText == '' and at == nil then return end
  local kept = {}
  local placed = false
  for _, h in ipairs(holdsOf(b)) do
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
  b.holdsChanged = true
end

local function receiptAt(k)
  local paidUntil = args[k]
  if paidUntil ~= paidUntil then return nil end
  return { paidUntil = paidUntil, credited = args[k + 1], generation = args[k + 2], admission = args[k + 3] }
end

-- ---- writing back ----------------------------------------------------------

local function fmt(x) if x == 0 then return '0' end return string.format('%.17g', x) end

-- When the bucket is idle again (full, unblocked, its log empty).
local function idleAt(b)
  local at = math.max(b.tat, b.blk)
  if b.heldText ~= '' or b.holds ~= nil then
    for _, h in ipairs(holdsOf(b)) do at = math.max(at, h.expires) end
  end
  if logLength(b) > 0 then at = math.max(at, b.lt + b.spec.window) end
  return at
end

-- Writes the buckets that changed in one HSET, and extends the expiries that must live longer.
local function save(buckets)
  local writes = {}
  local keyNeeds = 0
  for i = 1, n do
    local b = buckets[i]
    if b ~= nil and (b.dirty or b.holdsChanged) then
      -- How long past now its keys must live (ms).
      local needs = math.max(0, idleAt(b) - now) + expiryMargin
      if needs > keyNeeds then keyNeeds = needs end
      if b.chunks > 0 and redisNow + needs > b.lexp then
        call('PEXPIRE', b.list, math.ceil(needs + expiryMargin))
        b.lexp = redisNow + needs + expiryMargin
      end
      local head = ''
      if b.hc > 0 then head = string.sub(b.head, b.hpos, b.hpos + ENTRY * b.hc - 1) end
      writes[#writes + 1] = ARGV[3 + i]
      writes[#writes + 1] = spack(FIXED, b.tat, b.blk, b.cred, b.gen, b.adm, b.logged, b.hc, b.chunks, b.rc, b.lt,
        b.lexp, b.clean) .. head .. b.recent
      if b.holdsChanged then
        local held = {}
        for _, h in ipairs(b.holds) do
          held[#held + 1] = h.holder .. ';' .. fmt(h.at) .. ' ' .. fmt(h.cost) .. ' ' .. fmt(h.expires) .. ';'
        end
        local text = table.concat(held)
        if text ~= b.heldText then
          writes[#writes + 1] = ARGV[3 + i] .. ':h'
          writes[#writes + 1] = text
        end
      end
    end
  end
  if #writes == 0 then return end
  local expires = stored[2 * n + 1]
  local extend = not expires or redisNow + keyNeeds > sunpack('<d', expires)
  if extend then
    -- A margin beyond what is needed, so that a busy key is not given a new expiry on every call.
    local slack = keyNeeds + expiryMargin
    writes[#writes + 1] = ':exp'
    writes[#writes + 1] = spack('<d', redisNow + slack)
    call('HSET', KEYS[1], unpack(writes))
    call('PEXPIRE', KEYS[1], math.ceil(slack))
  else
    call('HSET', KEYS[1], unpack(writes))
  end
end

-- ---- operations ------------------------------------------------------------

local buckets = {}

if op == 'reserve' then
  local mode = args[1]
  local peek = mode == 1
  local notBefore = args[2] + offset
  local hold = args[3] == 1
  local costs = {}
  for i = 1, n do costs[i] = args[3 + i] end
  local ready = { chargeAt = notBefore, dueAt = notBefore }
  for i = 1, n do
    if costs[i] > 0 then
      buckets[i] = load(i, true)
      readyAt(buckets[i], costs[i], now, ready)
    end
  end
  if not isDue(ready.dueAt, now) then
    local blocked = 0
    for i = 1, n do
      local b = buckets[i]
      if b ~= nil then
        if hold and not peek then setHold(b, ready.chargeAt, costs[i], now) end
        -- A fresh bucket stays unwritten unless it takes a hold.
        if b.fresh and not b.holdsChanged then buckets[i] = nil end
        if b.blk > blocked then blocked = b.blk end
      end
    end
    save(buckets)
    local chargeAt = NAN
    if ready.chargeAt < ready.dueAt then chargeAt = ready.chargeAt - offset end
    -- How long the key is blocked (penalize, sync), for the caller to know without asking again.
    local blockedAnswer = NAN
    if blocked > now then blockedAnswer = blocked - offset end
    return spack('<dddd', 0, ready.dueAt - offset, chargeAt, blockedAnswer)
  end
  local at = math.min(ready.chargeAt, now)
  if peek then
    for i = 1, n do
      if buckets[i] ~= nil and buckets[i].fresh then buckets[i] = nil end
    end
    save(buckets)
    return spack('<dddd', 0, at - offset, NAN, NAN)
  end
  local answer = { 1, at - offset, NAN, NAN }
  for i = 1, n do
    local b = buckets[i]
    if b ~= nil then
      take(b, costs[i], at, now)
      setHold(b, nil, 0, now)
      answer[#answer + 1] = b.tat
      answer[#answer + 1] = b.cred
      answer[#answer + 1] = b.gen
      answer[#answer + 1] = b.adm
    else
      for _ = 1, 4 do answer[#answer + 1] = NAN end
    end
  end
  save(buckets)
  return spack('<' .. string.rep('d', #answer), unpack(answer))
elseif op == 'charge' then
  for i = 1, n do
    local amount = args[i]
    if amount > 0 then
      local b = load(i, true)
      b.tat = math.max(b.tat, now) + amount * b.spec.emission
      b.dirty = true
      buckets[i] = b
    end
  end
  save(buckets)
  return ''
elseif op == 'refund' then
  local given = {}
  for i = 1, n do
    local amount = args[i]
    local receipt = receiptAt(n + 1 + 4 * (i - 1))
    given[i] = 0
    local b = load(i, false)
    if b ~= nil and receipt ~= nil and amount > 0 and receipt.generation == b.gen then
      local spec = b.spec
      forget(b, now)
      local index = indexOf(b, receipt.admission)
      if index >= 0 then
        local t, c, k = entryAt(b, index)
        if k > 0 then
          local unused = math.min(amount, k)
          b.logged = b.logged - unused
          setEntry(b, index, t, c, k - unused)
        end
      end
      local frontier = receipt.paidUntil - (b.cred - receipt.credited)
      local unrefilled = math.max(0, frontier - now) / spec.emission
      local back = math.min(amount, unrefilled)
      if back > 0 then
        b.tat = b.tat - back * spec.emission
        b.cred = b.cred + back * spec.emission
        b.dirty = true
        given[i] = back
      end
      buckets[i] = b
    end
  end
  save(buckets)
  return spack('<' .. string.rep('d', n), unpack(given))
elseif op == 'began' then
  for i = 1, n do
    local receipt = receiptAt(1 + 4 * (i - 1))
    local b = load(i, false)
    if b ~= nil and receipt ~= nil and receipt.generation == b.gen then
      local index = indexOf(b, receipt.admission)
      if index >= 0 then
        local t, c, k = entryAt(b, index)
        if now > t then
          local nextTime = entryAt(b, index + 1)
          if nextTime == nil then t = now else t = math.max(t, math.min(now, nextTime)) end
          setEntry(b, index, t, c, k)
          buckets[i] = b
        end
      end
    end
  end
  save(buckets)
  return ''
elseif op == 'sync' then
  local remaining = args[1]
  local resetAfter = args[2]
  local b = load(1, true)
  local spec = b.spec
  local tatForRemaining = now + (spec.capacity - math.max(0, remaining)) * spec.emission
  b.tat = math.max(b.tat, tatForRemaining)
  b.dirty = true
  if remaining <= 0 and resetAfter == resetAfter then
    -- gcra.ts's sync: blocked until the oldest logged admission leaves a window, or the reset if sooner.
    forget(b, now)
    local blockTo = now + resetAfter
    local oldest = entryAt(b, 0)
    if oldest ~= nil then blockTo = math.min(blockTo, oldest + spec.window) end
    b.blk = math.max(b.blk, blockTo)
  end
  buckets[1] = b
  save(buckets)
  return spack('<d', b.blk - offset)
elseif op == 'block' then
  local untilTime = args[1] + offset
  for i = 1, n do
    local b = load(i, true)
    b.blk = math.max(b.blk, untilTime)
    b.dirty = true
    buckets[i] = b
  end
  save(buckets)
  return ''
elseif op == 'inspect' then
  local answer = {}
  for i = 1, n do
    local b = load(i, false)
    local spec = specs[i]
    if b == nil then
      answer[2 * i - 1] = spec.capacity
      answer[2 * i] = 0
    else
      answer[2 * i - 1] = spec.capacity - math.max(0, b.tat - now) / spec.emission
      if b.blk == 0 then answer[2 * i] = 0 else answer[2 * i] = b.blk - offset end
    end
  end
  return spack('<' .. string.rep('d', 2 * n), unpack(answer))
end
return redis.error_reply('unknown operation ' .. tostring(op))
`
