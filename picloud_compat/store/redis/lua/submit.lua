-- Create jobs atomically: check dependencies, write records and arguments, then queue
-- each of their chunks (publish its Celery message), wait, or stall.
-- A: tenant, now, cid, first (false = allocate), count, chunks (the chunk sizes in jid
--    order, adding up to count), templates (each size's Celery message, by the size as
--    text), spec_id, spec, fn_sha, retention, queue (queue key), deperr, parent
--    (false = none), inline_limit, args_stored (the caller already SET the big
--    arguments, with a TTL, in the same MULTI; they are made persistent here).
-- ARGV[2]: the sealed function ('' = already stored; kept out of A so a big one is not
-- copied through msgpack); ARGV[3..]: the dependency jids, then (unless args_stored)
-- one sealed blob per job.
-- Returns the first jid; refuses no_function / no_job {jid} / inactive, writing nothing.
local t, now, cid, count = A.tenant, A.now, A.cid, A.count
local fn_blob = ARGV[2]
local ndeps = #ARGV - 2
if not A.args_stored then ndeps = ndeps - count end

-- A refusal leaves nothing behind: not even big arguments the caller SET beforehand
-- (their jids, allocated by the caller, stay unused).
local function refused(code, fields)
  if A.args_stored then
    for i = 0, count - 1 do redis.call('DEL', K.args(t, A.first + i)) end
  end
  return refuse(code, fields)
end

if redis.call('SISMEMBER', K.inactive_tenants(), t) == 1 then return refused('inactive') end

local fkey = K['function'](t, A.fn_sha)
if fn_blob == '' and redis.call('EXISTS', fkey) == 0 then
  return refused('no_function', {sha = A.fn_sha})
end

-- Validate every dependency before writing anything.
local live, stalled = {}, false
for i = 1, ndeps do
  local dep = ARGV[2 + i]
  local st = redis.call('HGET', K.job(t, dep), 'status')
  if not st then return refused('no_job', {jid = tonumber(dep)}) end
  if st == 'error' or st == 'killed' or st == 'stalled' then
    if A.deperr ~= 'ignore' then stalled = true end
  elseif st ~= 'done' then
    live[#live + 1] = dep
  end
end

if fn_blob ~= '' then
  redis.call('SET', fkey, fn_blob, 'EX', A.retention)
else
  redis.call('EXPIRE', fkey, A.retention)
end
local skey = K.options(t, A.spec_id)
redis.call('SET', skey, A.spec, 'EX', A.retention)
if #live > 0 and not stalled then
  -- waiting jobs may wait longer than the retention: keep what they need until claimed
  redis.call('PERSIST', fkey)
  redis.call('PERSIST', skey)
end

local first = A.first
if not first then first = redis.call('INCRBY', K.jid_counter(t), count) - count + 1 end

local status = 'queued'
if stalled then status = 'stalled' elseif #live > 0 then status = 'waiting' end
local args_at = 2 + ndeps
for i = 0, count - 1 do
  local jid = first + i
  local jk = K.job(t, jid)
  if A.args_stored then
    redis.call('HSET', jk, 'status', status, 'opts', A.spec_id, 'cid', cid, 'created', now,
               'att', 0, 'ax', 1)
    redis.call('PERSIST', K.args(t, jid))
  else
    redis.call('HSET', jk, 'status', status, 'opts', A.spec_id, 'cid', cid, 'created', now,
               'att', 0, 'a', ARGV[args_at + 1 + i])
  end
  if A.parent then redis.call('HSET', jk, 'parent', A.parent) end
  if stalled then
    redis.call('HSET', jk, 'finished', now, 'exc', STALLED_MSG)
    finalize(t, jid, A.retention, A.args_stored)
    notify(t, jid, 'stalled', nil, A.inline_limit)
  end
end

if stalled then
  flush_notices()
  return first
end
local chunk_first = first
for _, size in ipairs(A.chunks) do
  local chunk = chunk_first .. '+' .. size
  redis.call('SADD', K.unfinished(t), chunk)
  local tpl = string.gsub(A.templates[tostring(size)], '@JID@', chunk_first)
  if status == 'waiting' then
    local wkey = K.waiting_chunk(t, chunk)
    redis.call('HSET', wkey, 'pending', #live, 'deperr', A.deperr, 'queue', A.queue, 'tpl', tpl)
    for _, dep in ipairs(live) do
      redis.call('RPUSH', K.dependents(t, dep), chunk)
    end
  else
    publish(t .. '/' .. chunk, A.queue, tpl, 0, now)
  end
  chunk_first = chunk_first + size
end
if status == 'waiting' then
  for _, dep in ipairs(live) do redis.call('HSET', K.job(t, dep), 'kids', 1) end
end
flush_notices()
return first
