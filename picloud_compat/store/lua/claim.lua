-- Move queued jobs of a chunk to processing for one runner, and lease the chunk.
-- ARGV: 1 tenant, 2 now, 3 worker (host:pid running the jobs), 4 warden (who can
--       kill that process), 5 token, 6 lease member, 7 lease expiry, 8 first,
--       9 count, 10 start index, 11 max jobs, 12 max argument bytes, 13 retention,
--       14 inline limit.
-- Returns {next index, jid, attempt, options id, args, jid, ...}; big arguments (kept
-- in their own key) come back as nil and the caller fetches them with MGET: moving
-- megabytes through Lua strings costs several times a plain GET.
local t, now, worker, warden, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local first, count = tonumber(ARGV[8]), tonumber(ARGV[9])
local i, max_jobs, max_bytes = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local out = {0}
if redis.call('SISMEMBER', K.inactive_tenants(), t) == 1 then
  -- a deactivated key's queued jobs never run
  for jid = first + i, first + count - 1 do
    if redis.call('HGET', K.job(t, jid), 'status') == 'queued' then
      fail_job(t, jid, 'error', 'API key deactivated', now, tonumber(ARGV[13]), tonumber(ARGV[14]))
    end
  end
  flush_notices()
  out[1] = count
  return out
end
local taken, bytes = 0, 0
local refreshed = {}
-- Claiming renews the TTL of what the jobs need (options, function) for another
-- retention period, so nothing expires under jobs that are about to run.
local function refresh(oid)
  if refreshed[oid] then return end
  refreshed[oid] = true
  local retention = tonumber(ARGV[13])
  local okey = K.options(t, oid)
  local doc = redis.call('GET', okey)
  if doc then
    redis.call('EXPIRE', okey, retention)
    local fn = cjson.decode(doc).fn
    if fn then redis.call('EXPIRE', K['function'](t, fn), retention) end
  end
end
while i < count and taken < max_jobs and bytes < max_bytes do
  local jid = first + i
  local jk = K.job(t, jid)
  local cur = redis.call('HMGET', jk, 'status', 'opts', 'att', 'a', 'ax')
  if cur[1] == 'queued' then
    local att = (tonumber(cur[3]) or 0) + 1
    redis.call('HSET', jk, 'status', 'processing', 'started', now, 'worker', worker,
               'warden', warden, 'token', token, 'att', att)
    refresh(cur[2])
    local a = cur[4]  -- false when the arguments live in their own key (big)
    if a then
      bytes = bytes + #a
    else
      bytes = bytes + redis.call('STRLEN', K.args(t, jid))
    end
    taken = taken + 1
    out[#out + 1] = jid
    out[#out + 1] = att
    out[#out + 1] = cur[2]
    out[#out + 1] = a
  end
  i = i + 1
end
out[1] = i
if taken > 0 then redis.call('HSET', K.leases(), ARGV[6], ARGV[7]) end
return out
