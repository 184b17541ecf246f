-- One verify's scan in one round trip: record it, append its event to the stream, and
-- answer the code's state (see anomaly/state.py for the keys and the rules).
--
-- KEYS, ARGV and the reply are read and written by name only: anomaly/scripts.py
-- prepends `local K_<NAME> = KEYS[i]`, `local A_<NAME> = ARGV[i]` and `local R_<NAME> = i`
-- generated from ScanKeys, ScanArgs and ScanReply, so a field is added in one place.
-- Every value in ARGV is a string; numbers go through tonumber().
-- Resolving the code in this same call (one server; A_FIELD given): its record from the
-- code projection (cache/projection.py) and its group's verdict facts
-- ("verdict|package kg|product", written by the callers under the status generation and
-- China's day, cache.keys.facts), before anything is counted. A miss, or a group with no
-- facts under this key yet, returns at once with nothing done: the caller resolves the
-- code itself, or writes the facts, and calls again.
local verdict = A_VERDICT
local package_kg = A_PACKAGE_KG
local product_codes_key = K_PRODUCT_CODES
local resolved = ''
local function early(need, limited)
  local reply = {}
  reply[R_SCANS] = 0; reply[R_FIRST_MS] = 0; reply[R_FIRST_CITY] = ''; reply[R_DISTINCT] = 0
  reply[R_YOU] = ''; reply[R_THROTTLED] = 0; reply[R_DUPLICATE] = 0; reply[R_RECENT] = {}
  reply[R_FLAGS] = {}; reply[R_PRODUCT_CODES] = {}; reply[R_IDENTITIES] = 0; reply[R_FIRST_GENUINE] = 0
  reply[R_LIMITED] = limited; reply[R_RESOLVED] = resolved; reply[R_VERDICT] = ''; reply[R_NEED] = need
  return reply
end
if A_FIELD ~= '' then
  local value = redis.call('HGET', K_BUCKET, A_FIELD)
  if not value then return early('miss', 0) end
  resolved = value
  -- A read (GET of a code) records nothing: no verdict, tally or event needs the facts.
  if A_RECORD == '1' then
    local facts = redis.call('HGET', K_FACTS, A_FACTS_PREFIX .. string.match(value, '^[^,]*'))
    if not facts then return early('facts', 0) end
    local product
    verdict, package_kg, product = string.match(facts, '^([^|]*)|([^|]*)|(.*)$')
    product_codes_key = A_PRODUCT_PREFIX .. product
  end
end
-- The request's rate-limit windows first (the `limits` library's fixed windows: INCRBY,
-- and EXPIRE when the window opens): a request over any of them changes nothing else.
-- Every window is counted, refusals too (hammering through a 429 spends the hour).
if A_WINDOWS ~= '' then
  local over = 0
  for key, expiry, limit in string.gmatch(A_WINDOWS, '([^\n]+) (%d+) (%d+)') do
    local n = redis.call('INCRBY', key, 1)
    if n == 1 then redis.call('EXPIRE', key, tonumber(expiry)) end
    if n > tonumber(limit) then
      local ttl = redis.call('TTL', key)
      if ttl > over then over = ttl end
      if ttl < 1 and over < 1 then over = 1 end
    end
  end
  if over > 0 then return early('', over) end
end
local now = tonumber(A_NOW)
local scanner = A_SCANNER
local record = A_RECORD == '1'
local found = verdict ~= 'not_found'
local throttled = 0
local duplicate = 0
local quiet_repeat = false
local first_genuine = 0
local product_codes = {}
local gps = A_LAT ~= '' and A_HAS_COORDINATES == '1'
-- A code's first scan kept in its state (see `inline` below): its history entry in up to
-- four fields of at most 64 bytes, 'e1'…'e4', and its identity in 'n1'. Redis keeps a hash
-- whose values are all that short (hash-max-listpack-value, 64 by default) as one compact
-- listpack; a single longer value turns it into a hash table for good, ~3 times the bytes.
local CHUNK = 64
local INLINE = {'e1', 'e2', 'e3', 'e4', 'n1'}
-- The entry from HMGET's values for INLINE starting at v[i], and its time and scanner.
local function inline_first(v, i)
  local entry = (v[i] or '') .. (v[i + 1] or '') .. (v[i + 2] or '') .. (v[i + 3] or '')
  local t, first_scanner = string.match(entry, '^(-?%d+)|([^|]*)|')
  return entry, t, first_scanner
end
local function pv_count(pv)
  if pv == '' then return 0 end
  local _, bars = string.gsub(pv, '|', '')
  return bars + 1
end
-- Only events that come with their own ids (imports, redeliveries) can repeat.
if record and A_DEDUPE == '1' then
  if redis.call('SADD', K_EVENT_IDS, A_EVENT_ID) == 0 then duplicate = 1; record = false end
  redis.call('PEXPIRE', K_EVENT_IDS, A_TTL_MS)
end
-- Enumeration: distinct never-issued codes per client and per IP in a one-hour window.
-- A set stops growing at the limit + 1, so a guesser costs a bounded few hundred bytes.
-- On a cluster the sets lie in other slots: the gate counted them (A_GATE is its verdict).
local lookup = A_LOOKUP == '1'
local counting = (record or lookup) and not found
local client_over = false
local ip_over = false
if A_GATE ~= '' then
  client_over = string.sub(A_GATE, 1, 1) == '1'
  ip_over = string.sub(A_GATE, 2, 2) == '1'
else
  local has_ip = A_IP_HASH ~= ''
  local by_ip = has_ip and K_IP_GUESSES == K_CLIENT_GUESSES  -- no client id: the scanner is the IP
  local function count_in(key, limit)
    local c = redis.call('SCARD', key)
    if counting and c <= limit then
      if redis.call('SADD', key, A_CODE) == 1 then
        c = c + 1
        if c == 1 then redis.call('PEXPIRE', key, 3600000) end
      end
    end
    return c > limit
  end
  if scanner ~= '' and not by_ip then client_over = count_in(K_CLIENT_GUESSES, tonumber(A_ENUMERATION_PER_HOUR)) end
  if has_ip then
    if client_over then
      -- A refused client's guesses do not spend its neighbours' budget.
      ip_over = redis.call('SCARD', K_IP_GUESSES) > tonumber(A_ENUMERATION_IP_PER_HOUR)
    else
      ip_over = count_in(K_IP_GUESSES, tonumber(A_ENUMERATION_IP_PER_HOUR))
    end
  end
end
-- Refused (429): a guessing client, or a never-issued code from a guessing network.
-- A refused lookup records nothing; an issued code asked from a guessing network is
-- answered and recorded, but never as the code's first scan.
if client_over or (ip_over and not found) then
  throttled = 1
  record = false
end
local first_ok = not ip_over
-- What the answer reads of the state (`h`, as HMGET 'n', 'f', 'fc', 'pv', 'gm', 'lg', 'cap',
-- 'oo', 'dr' and INLINE give it), the scanner's own entry (`you`) and, for a state this scan made, the
-- distinct counts: a recorded scan of an issued code knows them from what it read and
-- wrote, so it reads nothing back (the reads below are for the other scans).
local h, you, distinct, idents = nil, nil, nil, nil
local fresh, inline = false, false
if record then
  local n = redis.call('HINCRBY', K_STATE, 'n', 1)
  -- Sliding retention, refreshed now and then rather than on every scan.
  local refresh = n == 1 or n % 16 == 0
  -- A state `n` has just made holds nothing else, and the code's other keys are new too
  -- unless one outlived an earlier state (one question for all five): then nothing of
  -- the code needs reading at all.
  fresh = n == 1 and redis.call('EXISTS', K_SCANNERS, K_SCANNER_LAST, K_IDENTITIES, K_RECENT, K_FLAGS) == 0
  local entry = table.concat({A_NOW, scanner, A_CITY, A_PROVINCE, A_LAT, A_LNG, A_TRUST, A_EVENT_ID}, '|')
  -- Most codes are scanned once: a fresh state of an issued code keeps that scan's
  -- scanner, identity and history entry in itself (INLINE), one key and one expiry
  -- instead of five (8 calls fewer, and four keys' memory, for every code scanned once);
  -- its second scan moves them out to their own keys (below).
  inline = fresh and found and #entry <= 4 * CHUNK and #A_IDENTITY <= CHUNK and tonumber(A_SCANNERS_MAX) >= 1
  -- Never-issued codes keep only a count (and their events): guessers must not fill
  -- memory.
  if found then
    -- The state's fields as read, then as this scan writes them (`put`, one HSET at the
    -- end).
    local st = {}
    local moved_late = false
    if n > 1 then
      local v = redis.call('HMGET', K_STATE, 'f', 'pv', 'gs', 'gm', 'tv', 'lt', 'fc', 'lg', 'cap', 'oo', 'dr', unpack(INLINE))
      st = {f = v[1], pv = v[2], gs = v[3], gm = v[4], tv = v[5], lt = v[6], fc = v[7], lg = v[8], cap = v[9], oo = v[10],
        dr = v[11]}
      if v[12] then
        -- The code's first scan kept in the state (INLINE): its scanner, identity and
        -- history entry move to their own keys now, as that scan would have written them,
        -- and this scan goes on as usual. Merged into what the keys hold, never
        -- overwriting it: an older release's script (a rolling upgrade, a rollback) may
        -- have made them since, not seeing what the state kept.
        local first_entry, t, first_scanner = inline_first(v, 12)
        if t and first_scanner ~= '' then
          if redis.call('HSETNX', K_SCANNERS, first_scanner, t .. ',1') == 0 then
            local first, cnt = string.match(redis.call('HGET', K_SCANNERS, first_scanner), '(-?%d+),(%d+)')
            redis.call('HSET', K_SCANNERS, first_scanner, math.min(tonumber(first), tonumber(t)) .. ',' .. (tonumber(cnt) + 1))
          end
          redis.call('ZADD', K_SCANNER_LAST, 'GT', t, first_scanner)
        end
        if t and v[16] then redis.call('ZADD', K_IDENTITIES, 'GT', t, v[16]) end
        -- Under later scans' entries (those writes), it is out of arrival order ('oo').
        moved_late = redis.call('LPUSH', K_RECENT, first_entry) > 1
        redis.call('HDEL', K_STATE, unpack(INLINE))
        refresh = true  -- the keys' retention starts now, and the state's with them
      end
    end
    local set = {}
    local function put(field, value)
      set[#set + 1] = field
      set[#set + 1] = value
      st[field] = value
    end
    if moved_late and not st.oo then put('oo', '1') end
    local f = tonumber(st.f or '0')
    if not st.tv then
      -- State from before the gate's fields were kept ('lg'): that code's history is
      -- always read, so no rule misses a scan recorded before the upgrade.
      put('tv', '2')
      if f ~= 0 then put('lg', '1') end
    elseif st.tv == '1' then
      -- State from before returns ('dr') and ties ('oo') were kept: as if its last day
      -- were full of returns, and ties possible once a scanner sent GPS.
      put('tv', '2')
      local seed = {}
      for i = 1, tonumber(A_VELOCITY_MIN) + 1 do seed[i] = st.lt or A_NOW end
      put('dr', table.concat(seed, ','))
      if st.gs and not st.oo then put('oo', '1') end
    end
    -- An event older than the newest one (an import out of time order): trimming the
    -- history by arrival then no longer drops the oldest scan, so pairs can appear
    -- later without GPS on the scan at hand ('oo' keeps the gate open for this code).
    -- Scans of one millisecond keep their arrival order among equals, so a tie does too.
    local latest = tonumber(st.lt or '0')
    if now > latest then put('lt', now)
    elseif not st.oo then put('oo', '1') end
    -- The product's codes seen on shelves, per package weight (a hash per certificate
    -- product), counted exactly once per code: at its first genuine scan.
    if first_ok and f == 0 then first_genuine = 1 end
    if first_ok and f == 0 and package_kg ~= '' then
      redis.call('HINCRBY', product_codes_key, package_kg, 1)
      redis.call('PEXPIRE', product_codes_key, A_TTL_MS)
      product_codes = redis.call('HGETALL', product_codes_key)
    end
    if first_ok and (f == 0 or now < f) then
      put('f', now)
      -- A place the client only claimed does not name the code's first place.
      if A_PLACE_SHOWN == '1' then
        put('fc', A_CITY); put('fp', A_PROVINCE)
      else
        put('fc', ''); put('fp', '')
      end
      -- A code looked up before it was issued got the short not-found lifetime: lengthen it.
      if f == 0 then refresh = true end
    end
    local has_identity = scanner ~= '' and A_IDENTITY ~= ''
    local identity_seen = false
    if has_identity and not fresh then identity_seen = redis.call('ZSCORE', K_IDENTITIES, A_IDENTITY) end
    local known_scanner = false
    you = ''
    if scanner ~= '' then
      local v = false
      if not fresh then v = redis.call('HGET', K_SCANNERS, scanner) end
      known_scanner = v ~= false
      if v then
        local first, cnt = string.match(v, '(%d+),(%d+)')
        you = math.min(tonumber(first), now) .. ',' .. (tonumber(cnt) + 1)
        redis.call('HSET', K_SCANNERS, scanner, you)
        local last = tonumber(redis.call('ZSCORE', K_SCANNER_LAST, scanner) or '0')
        if now > last then
          redis.call('ZADD', K_SCANNER_LAST, now, scanner)
        end
        -- The same scanner again within the hour, without GPS or any place: no rule can
        -- change (each folds a scanner's repeats, only GPS places make travel pairs, and
        -- a place could be this scanner's first for the province spread), so the history
        -- need not be read. The common case: a shopper checking twice.
        -- Not for an import older than the scanner's last scan: its windows reach further back.
        local recent_repeat = last >= now - 3600000 and last <= now
        if recent_repeat and A_LAT == '' and A_PROVINCE == '' then quiet_repeat = true end
        if not identity_seen or st.oo then quiet_repeat = false end
        -- Nor an identity back into the distinct window (its score moves to now).
        if identity_seen and tonumber(identity_seen) < now - tonumber(A_DISTINCT_WINDOW_MS) then
          quiet_repeat = false
        end
      else
        local count = 0
        if not fresh then count = redis.call('ZCARD', K_SCANNER_LAST) end
        if count < tonumber(A_SCANNERS_MAX) then
          you = now .. ',1'
          if not inline then
            redis.call('HSET', K_SCANNERS, scanner, you)
            redis.call('ZADD', K_SCANNER_LAST, now, scanner)
          end
          -- The keys' first member: their retention starts now, not at the next refresh.
          if count == 0 then refresh = true end
        else
          -- Past the cap the distinct count stops growing but the history still holds
          -- these scanners: the count no longer bounds the velocity rule.
          put('cap', '1')
        end
      end
    end
    -- The scanner's identity (its network, or its verified session), taken at its first
    -- scan: a shopper re-checking from other networks on a trip is still one identity.
    local identity_added = false
    if has_identity then
      if identity_seen then
        if now > tonumber(identity_seen) then redis.call('ZADD', K_IDENTITIES, now, A_IDENTITY) end
      else
        if not known_scanner then
          local count = 0
          if not fresh then count = redis.call('ZCARD', K_IDENTITIES) end
          if count < tonumber(A_SCANNERS_MAX) then
            if inline then put('n1', A_IDENTITY) else redis.call('ZADD', K_IDENTITIES, now, A_IDENTITY) end
            identity_added = true
            if count == 0 then refresh = true end
          end
        end
        -- A scan whose identity the set does not hold (a scanner back from another
        -- network): the velocity rule counts each scanner's identity at its first scan in
        -- the window, so this one may add to it. 'dr' keeps the times of the newest
        -- velocity_min + 1 of them, and the gate counts those within a day (the rule's
        -- longest window): an older one dropped is outnumbered by the kept ones.
        if not identity_added then
          local times = {}
          for t in string.gmatch(st.dr or '', '%d+') do times[#times + 1] = tonumber(t) end
          times[#times + 1] = now
          table.sort(times, function(a, b) return a > b end)
          local kept = {}
          for i = 1, math.min(#times, tonumber(A_VELOCITY_MIN) + 1) do kept[i] = string.format('%d', times[i]) end
          put('dr', table.concat(kept, ','))
        end
      end
    end
    -- What the history gate below needs without reading the history: the first few
    -- provinces seen (up to the spread threshold) and whether two scanners sent GPS.
    if A_PROVINCE ~= '' and scanner ~= '' then
      local pv = st.pv or ''
      local seen = string.find('|' .. pv .. '|', '|' .. A_PROVINCE .. '|', 1, true)
      if pv_count(pv) < tonumber(A_PROVINCES) and not seen then
        if pv == '' then pv = A_PROVINCE else pv = pv .. '|' .. A_PROVINCE end
        put('pv', pv)
      end
    end
    if gps and scanner ~= '' then
      if not st.gs then put('gs', scanner)
      elseif not st.gm and st.gs ~= scanner then put('gm', '1') end
    end
    if inline then
      for i = 1, 4 do
        local part = string.sub(entry, (i - 1) * CHUNK + 1, i * CHUNK)
        if part == '' then break end
        put(INLINE[i], part)
      end
    end
    if #set > 0 then redis.call('HSET', K_STATE, unpack(set)) end
    if not inline and redis.call('LPUSH', K_RECENT, entry) > tonumber(A_RECENT_MAX) then
      redis.call('LTRIM', K_RECENT, 0, tonumber(A_RECENT_MAX) - 1)
      -- A trim can make a scanner's later scan its first in a window (a new place, a new
      -- network, or the scanner itself back in the hour): not quiet.
      quiet_repeat = false
    end
    if refresh and not inline then
      for _, k in ipairs({K_SCANNERS, K_RECENT, K_SCANNER_LAST, K_IDENTITIES}) do redis.call('PEXPIRE', k, A_TTL_MS) end
    end
    h = {n, st.f, st.fc, st.pv, st.gm, st.lg, st.cap, st.oo, st.dr}
    if fresh then
      -- Only this scan's scanner and identity, both at `now`: inside any window.
      if you ~= '' then distinct = 1 else distinct = 0 end
      if identity_added then idents = distinct else idents = 0 end
    end
  end
  if fresh and not found then
    -- A never-issued code's first lookup (a guess, mostly): its count is all there is.
    h, distinct, idents, you = {n}, 0, 0, ''
  end
  if refresh then
    if found or n == 1 then
      redis.call('PEXPIRE', K_STATE, A_TTL_MS)
    else
      -- A code no longer issued (its record gone) keeps its state's retention: a not-found
      -- scan only lengthens it (GT), never cuts it to the not-found lifetime, since the
      -- state may hold the code's first scan (INLINE).
      redis.call('PEXPIRE', K_STATE, A_TTL_MS, 'GT')
    end
  end
  local event_json = A_EVENT_JSON
  if A_FIELD ~= '' then
    -- The caller's event carries an empty verdict ("v":""): the one resolved here goes in.
    local at = string.find(event_json, '"v":""', 1, true)
    event_json = string.sub(event_json, 1, at + 4) .. verdict .. string.sub(event_json, at + 5)
  end
  redis.call('XADD', K_STREAM, 'MAXLEN', '~', A_STREAM_MAXLEN, '*', 'e', event_json)
end
if not h then h = redis.call('HMGET', K_STATE, 'n', 'f', 'fc', 'pv', 'gm', 'lg', 'cap', 'oo', 'dr', unpack(INLINE)) end
-- A state still holding its first scan (INLINE, from h[10]) has no scanner keys yet.
local first_t, first_scanner = nil, nil
if h[10] then
  local _
  _, first_t, first_scanner = inline_first(h, 10)
end
if not distinct then
  if first_t then
    distinct, idents = 0, 0
    if first_scanner ~= '' and tonumber(first_t) >= now - tonumber(A_DISTINCT_WINDOW_MS) then
      distinct = 1
      if h[14] then idents = 1 end
    end
  else
    distinct = redis.call('ZCOUNT', K_SCANNER_LAST, now - tonumber(A_DISTINCT_WINDOW_MS), '+inf')
    idents = math.min(distinct, redis.call('ZCOUNT', K_IDENTITIES, now - tonumber(A_DISTINCT_WINDOW_MS), '+inf'))
  end
end
if not you then
  you = ''
  if scanner ~= '' and first_t then
    if first_scanner == scanner then you = first_t .. ',1' end
  elseif scanner ~= '' then
    you = redis.call('HGET', K_SCANNERS, scanner) or ''
  end
end
local flags = {}
if not fresh then flags = redis.call('HGETALL', K_FLAGS) end
-- The history is read (and the rules run) only when some rule could raise or escalate a
-- flag on this scan; each test below is an upper bound of what its rule needs, and a rule
-- already at "suspicious" cannot change. Not for a quiet repeat either.
local rank = {}
for i = 1, #flags, 2 do
  if string.sub(flags[i + 1], 1, 11) == 'suspicious|' then rank[flags[i]] = 2 else rank[flags[i]] = 1 end
end
local recent = {}
if record and found and distinct >= 2 and not quiet_repeat then
  -- Raising a rule to `warn` needs scanners; to `suspicious`, identities (and, for
  -- travel, a verified session's place on this scan).
  local want = 0
  if distinct >= tonumber(A_DISTINCT_WARN) then want = 1 end
  if idents >= tonumber(A_DISTINCT_SUSPICIOUS) then want = 2 end
  local velocity = rank['velocity'] or 0
  local returns = 0
  for t in string.gmatch(h[9] or '', '%d+') do
    if tonumber(t) >= now - 86400000 then returns = returns + 1 end
  end
  local travel = rank['impossible_travel'] or 0
  local open = (rank['distinct_scanners'] or 0) < want
    or (distinct > tonumber(A_VELOCITY_MIN) and velocity < 1)
    -- Identities the set missed ('dr', within the day) may each add one.
    or (idents + returns > tonumber(A_VELOCITY_MIN) and velocity < 2)
    or (gps and h[5] == '1' and (travel < 1 or (travel < 2 and A_WECHAT_PLACE == '1')))
    or (pv_count(h[4] or '') >= tonumber(A_PROVINCES) and (rank['province_spread'] or 0) < 2)
    -- Past the scanner cap the distinct counts no longer bound the velocity rule (the
    -- others' bounds hold: the distinct rule reads the counts, the spread its provinces).
    or (h[7] == '1' and velocity < 2)
    -- Out of time order, trimming by arrival can leave a new travel pair.
    or (h[8] == '1' and travel < 2)
    -- A state from before these fields were kept: its history may hold anything.
    or (h[6] == '1' and not (velocity == 2 and travel == 2 and (rank['distinct_scanners'] or 0) == 2
      and (rank['province_spread'] or 0) == 2))
  if open then recent = redis.call('LRANGE', K_RECENT, 0, -1) end
end
local reply = {}
reply[R_SCANS] = tonumber(h[1] or '0')
reply[R_FIRST_MS] = tonumber(h[2] or '0')
reply[R_FIRST_CITY] = h[3] or ''
reply[R_DISTINCT] = distinct
reply[R_YOU] = you
reply[R_THROTTLED] = throttled
reply[R_DUPLICATE] = duplicate
reply[R_RECENT] = recent
reply[R_FLAGS] = flags
reply[R_PRODUCT_CODES] = product_codes
reply[R_IDENTITIES] = idents
reply[R_FIRST_GENUINE] = first_genuine
reply[R_LIMITED] = 0
reply[R_RESOLVED] = resolved
reply[R_VERDICT] = verdict
reply[R_NEED] = ''
return reply
