-- Record job outcomes (first writer wins: only the attempt holding the job's token),
-- then release or stall dependents and notify waiters.
-- A: tenant, now, retention, inline_limit, output_limit, ending (0, or 1: the runner
--    ends the chunk, or 2: ends it having run every job of it itself), lease (member),
--    first, count.
-- ARGV[2..]: per outcome 13 values: jid, token, status, result, exception, stdout,
--    stderr, profile, runtime, CPU user seconds, CPU system seconds, peak memory bytes
--    (0: not measured), memory limit hits.
-- Results up to the inline limit are kept in the job hash (field r), bigger ones in
-- their own key (flag rx).
local t, now, retention = A.tenant, A.now, A.retention
local inline_limit, output_limit = A.inline_limit, A.output_limit

local USAGE_JOBS, USAGE_CPU = 0, 0
local n = (#ARGV - 1) / 13
for k = 0, n - 1 do
  local b = 1 + k * 13
  local jid, token, status = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local jk = K.job(t, jid)
  local cur = redis.call('HMGET', jk, 'status', 'token', 'cid', 'kids', 'w', 'ax')
  if cur[1] == 'processing' and cur[2] == token then
    local result = ARGV[b + 4]
    if result == '' then
      move(jk, jid, 'processing', status, 'finished', now, 'runtime', ARGV[b + 9])
    elseif #result <= inline_limit then
      move(jk, jid, 'processing', status, 'finished', now, 'runtime', ARGV[b + 9], 'r', result)
    else
      move(jk, jid, 'processing', status, 'finished', now, 'runtime', ARGV[b + 9], 'rx', 1)
      redis.call('SET', K.result(t, jid), result, 'EX', retention)
    end
    local runtime = tonumber(ARGV[b + 9]) or 0
    local bucket = #RUNTIME_BUCKETS + 1
    for i, bound in ipairs(RUNTIME_BUCKETS) do
      if runtime <= bound then bucket = i break end
    end
    tally('runtime:' .. bucket, 1)
    USAGE_JOBS = USAGE_JOBS + 1
    USAGE_CPU = USAGE_CPU + (tonumber(ARGV[b + 10]) or 0) + (tonumber(ARGV[b + 11]) or 0)
    STATS_SUM = STATS_SUM + runtime
    redis.call('HSET', jk, 'cu', ARGV[b + 10], 'cs', ARGV[b + 11])
    if ARGV[b + 12] ~= '0' then redis.call('HSET', jk, 'mm', ARGV[b + 12], 'mf', ARGV[b + 13]) end
    if ARGV[b + 5] ~= '' then redis.call('HSET', jk, 'exc', ARGV[b + 5]) end
    append_capped(K.stdout(t, jid), ARGV[b + 6], output_limit, retention)
    append_capped(K.stderr(t, jid), ARGV[b + 7], output_limit, retention)
    if ARGV[b + 8] ~= '' then
      redis.call('SET', K.profile(t, jid), ARGV[b + 8], 'EX', retention)
    end
    finalize(t, jid, retention, cur[6] and true or false)
    if result == '' then result = nil end
    notify(t, jid, status, result, inline_limit, cur[3] or false, cur[5])
    if cur[4] then propagate(t, jid, status, now, retention, inline_limit) end
  end
end

if USAGE_JOBS > 0 then
  local uk = K.usage(t)
  redis.call('HINCRBY', uk, A.day .. ':jobs', USAGE_JOBS)
  redis.call('HINCRBYFLOAT', uk, A.day .. ':cpu', USAGE_CPU)
end

if A.ending ~= 0 then
  redis.call('HDEL', K.leases(), A.lease)
  local ck = t .. '/' .. A.first .. '+' .. A.count
  local entry = redis.call('HGET', K.ledger(), ck)
  -- "ran all" can be trusted only if the chunk was never republished (generation 0):
  -- after a recovery another worker may hold some of its jobs again.
  local trusted = A.ending == 2 and (not entry or cmsgpack.unpack(entry)[3] == 0)
  if trusted or chunk_finished(t, A.first, A.count) then
    unledger(ck, entry)
    redis.call('SREM', K.unfinished(t), A.first .. '+' .. A.count)
  end
end
flush_notices()
return n
