-- Move queued jobs of a chunk to processing for one runner, and lease the chunk.
-- A: tenant, now, worker (host:pid running the jobs), warden (who can kill that
--    process), token, lease (member), lease_until, first, count, start, max_jobs,
--    max_bytes, retention, inline_limit.
-- Returns {next index, kill generation of the worker, jid, attempt, spec id, args,
-- jid, ...}; big arguments (kept
-- in their own key) come back as nil and the caller fetches them with MGET: moving
-- megabytes through Lua strings costs several times a plain GET.
local t, now, token = A.tenant, A.now, A.token
local first, count = A.first, A.count
local i = A.start
local out = {0, tonumber(redis.call('GET', K.kill_generation(A.worker)) or '0')}
if redis.call('SISMEMBER', K.inactive_tenants(), t) == 1 then
  -- a deactivated key's queued jobs never run
  for jid = first + i, first + count - 1 do
    if redis.call('HGET', K.job(t, jid), 'status') == 'queued' then
      fail_job(t, jid, 'queued', 'error', 'API key deactivated', now, A.retention, A.inline_limit)
    end
  end
  flush_notices()
  out[1] = count
  return out
end
local taken, bytes = 0, 0
local refreshed = {}
-- Claiming renews the TTL of what the jobs need (spec, function) for another
-- retention period, so nothing expires under jobs that are about to run.
local function refresh(sid)
  if refreshed[sid] then return end
  refreshed[sid] = true
  local skey = K.options(t, sid)
  local doc = redis.call('GET', skey)
  if doc then
    redis.call('EXPIRE', skey, A.retention)
    local fn = cjson.decode(doc)[SPEC.fn]
    if fn then redis.call('EXPIRE', K['function'](t, fn), A.retention) end
  end
end
while i < count and taken < A.max_jobs and bytes < A.max_bytes do
  local jid = first + i
  local jk = K.job(t, jid)
  local cur = redis.call('HMGET', jk, 'status', 'opts', 'att', 'a', 'ax')
  if cur[1] == 'queued' then
    local att = (tonumber(cur[3]) or 0) + 1
    move(jk, jid, 'queued', 'processing', 'started', now, 'worker', A.worker,
         'warden', A.warden, 'token', token, 'att', att)
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
if taken > 0 then redis.call('HSET', K.leases(), A.lease, A.lease_until) end
return out
