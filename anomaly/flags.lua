-- Raise or escalate flags atomically: two verifies racing must not let a "warn" computed
-- a moment earlier overwrite a "suspicious", nor a raise reopen a confirmed flag.
-- Names as in scan.lua, generated from FlagKeys, FlagArgs and FlagReply (anomaly/scripts.py);
-- FLAG_ARGS (the number of fixed arguments before the per-flag ones) and SEVERITY_RANK
-- (domain.scans) are generated too.
local written = {}
-- After the fixed arguments: one (rule, severity, raised ms, payload) quadruple per flag.
for i = FLAG_ARGS + 1, #ARGV, 4 do
  local rule, severity, raised, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local old = redis.call('HGET', K_FLAGS, rule)
  local old_sev, old_status = nil, nil
  if old then old_sev, old_status = string.match(old, '^(%a+)|%d+|(%a+)$') end
  if not old or SEVERITY_RANK[severity] > (SEVERITY_RANK[old_sev] or 0) then
    local status = 'open'
    if old_status == 'confirmed' then status = 'confirmed' end
    redis.call('HSET', K_FLAGS, rule, severity .. '|' .. raised .. '|' .. status)
    redis.call('XADD', K_FLAG_STREAM, 'MAXLEN', '~', A_STREAM_MAXLEN, '*', 'flag', payload)
    written[#written + 1] = rule
  end
end
redis.call('PEXPIRE', K_FLAGS, A_TTL_MS)
local reply = {}
reply[R_WRITTEN] = written
reply[R_FLAGS] = redis.call('HGETALL', K_FLAGS)
return reply
