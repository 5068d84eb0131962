-- A worker process died while running a chunk. Its restartable jobs go back to
-- queued (until the attempt cap), the others end `error` with the reason; then the
-- chunk is republished if anything in it is queued.
-- ARGV: 1 chunk key (tenant/first+count), 2 now, 3 dead worker, 4 max attempts,
--       5 reason, 6 retention, 7 inline limit, 8 lease member.
-- Returns {requeued, errored, republished (0/1)}.
local ck, now, dead = ARGV[1], ARGV[2], ARGV[3]
local max_att, reason = tonumber(ARGV[4]), ARGV[5]
local retention, inline_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local slash = string.find(ck, '/', 1, true)
local t = string.sub(ck, 1, slash - 1)
local first, count = chunk_range(string.sub(ck, slash + 1))

local requeued, errored = 0, 0
local restartable_of = {}
for jid = first, first + count - 1 do
  local jk = K.job(t, jid)
  local cur = redis.call('HMGET', jk, 'status', 'worker', 'att', 'opts')
  if cur[1] == 'processing' and cur[2] == dead then
    local oid = cur[4]
    if restartable_of[oid] == nil then
      local doc = redis.call('GET', K.options(t, oid))
      restartable_of[oid] = (not doc) or cjson.decode(doc).restartable ~= false
    end
    local att = tonumber(cur[3]) or 1
    if restartable_of[oid] and att < max_att then
      redis.call('HSET', jk, 'status', 'queued')
      redis.call('HDEL', jk, 'worker', 'warden', 'token', 'started')
      requeued = requeued + 1
    else
      local why = reason
      if restartable_of[oid] then why = reason .. ' (worker lost ' .. att .. ' times)' end
      fail_job(t, jid, 'error', why, now, retention, inline_limit)
      errored = errored + 1
    end
  end
end
if ARGV[8] ~= '' then redis.call('HDEL', K.leases(), ARGV[8]) end

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
  unledger(ck)
end
flush_notices()
return {requeued, errored, republished}
