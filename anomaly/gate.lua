-- A scan's enumeration gate on a Redis Cluster, for one set (a client's or an IP's
-- never-issued codes this hour), which lies in its own slot there; scan.lua does the
-- same for both sets itself on one server (see its count_in). The set stops growing at
-- the limit + 1. KEYS[1]: the set; ARGV: counting ("1": add the code), limit, code.
-- Returns 1 when the set is over the limit.
local c = redis.call('SCARD', KEYS[1])
local limit = tonumber(ARGV[2])
if ARGV[1] == '1' and c <= limit then
  if redis.call('SADD', KEYS[1], ARGV[3]) == 1 then
    c = c + 1
    if c == 1 then redis.call('PEXPIRE', KEYS[1], 3600000) end
  end
end
if c > limit then return 1 end
return 0
