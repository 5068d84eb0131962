-- Kill unfinished jobs: they become `killed`, dependents stall, waiters are told.
-- Jobs that were processing get a kill request pushed to the warden of their worker
-- process, which stops that process (only if it still runs that attempt), and bump
-- that process's kill generation, which its runner watches before starting jobs.
-- A: tenant, now, retention, inline_limit, reason, all (true: every unfinished job
--    of the tenant). ARGV[2..]: jids.
-- Returns the jids that were killed.
local t, now = A.tenant, A.now
local jids = {}
if A.all then
  jids = unfinished_jobs(t)
else
  for i = 2, #ARGV do jids[#jids + 1] = ARGV[i] end
end
local killed = {}
for _, jid in ipairs(jids) do
  local jk = K.job(t, jid)
  local cur = redis.call('HMGET', jk, 'status', 'worker', 'warden', 'token')
  local st = cur[1]
  if st == 'waiting' or st == 'queued' or st == 'processing' then
    if st == 'processing' and cur[3] then
      redis.call('RPUSH', K.kill_queue(cur[3]), cmsgpack.pack({t, tonumber(jid), cur[2], cur[4]}))
      redis.call('EXPIRE', K.kill_queue(cur[3]), 3600)
    end
    if st == 'processing' and cur[2] then  -- claimed jobs not started yet must not start
      redis.call('INCR', K.kill_generation(cur[2]))
      redis.call('EXPIRE', K.kill_generation(cur[2]), 86400)
    end
    fail_job(t, jid, st, 'killed', A.reason, now, A.retention, A.inline_limit)
    killed[#killed + 1] = tonumber(jid)
  end
end
flush_notices()
return killed
