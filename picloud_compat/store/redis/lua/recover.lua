-- A worker process died while running a chunk. Its restartable jobs go back to
-- queued (until the attempt cap), the others end `error` with the reason; then the
-- chunk is republished if anything in it is queued.
-- A: tenant, first, count, now, dead (worker), max_attempts, reason, retention,
--    inline_limit, lease (member, '' = none).
-- Returns {requeued, errored, republished (0/1)}.
local t, first, count, now, dead = A.tenant, A.first, A.count, A.now, A.dead
local ck = t .. '/' .. first .. '+' .. count

local requeued, errored = 0, 0
local restartable_of = {}
for jid = first, first + count - 1 do
  local jk = K.job(t, jid)
  local cur = redis.call('HMGET', jk, 'status', 'worker', 'att', 'opts')
  if cur[1] == 'processing' and cur[2] == dead then
    local sid = cur[4]
    if restartable_of[sid] == nil then
      local doc = redis.call('GET', K.options(t, sid))
      restartable_of[sid] = (not doc) or cjson.decode(doc)[SPEC.restartable] ~= false
    end
    local att = tonumber(cur[3]) or 1
    if restartable_of[sid] and att < A.max_attempts then
      move(jk, jid, 'processing', 'queued')
      redis.call('HDEL', jk, 'worker', 'warden', 'token', 'started')
      requeued = requeued + 1
    else
      local why = A.reason
      if restartable_of[sid] then why = A.reason .. ' (worker lost ' .. att .. ' times)' end
      fail_job(t, jid, 'processing', 'error', why, now, A.retention, A.inline_limit)
      errored = errored + 1
    end
  end
end
if A.lease ~= '' then redis.call('HDEL', K.leases(), A.lease) end
if requeued > 0 then tally('requeued', requeued) end
if errored > 0 then tally('lost', errored) end
if requeued + errored > 0 then  -- were it alive after all, its runner must notice
  redis.call('INCR', K.kill_generation(dead))
  redis.call('EXPIRE', K.kill_generation(dead), 86400)
end

local any_queued, any_open = false, false
for jid = first, first + count - 1 do
  local st = redis.call('HGET', K.job(t, jid), 'status')
  if st == 'queued' then any_queued = true end
  if st and not FINISHED[st] then any_open = true end
end
local republished = 0
local entry = redis.call('HGET', K.ledger(), ck)
if any_queued and entry then
  local e = cmsgpack.unpack(entry)
  publish(ck, e[1], e[2], e[3] + 1, now)
  republished = 1
elseif not any_open then
  unledger(ck, entry)
end
flush_notices()
return {requeued, errored, republished}
