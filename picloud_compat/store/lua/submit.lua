-- Create one chunk of jobs atomically: check dependencies, write records and
-- arguments, then queue (publish the Celery message), wait, or stall.
-- ARGV: 1 tenant, 2 now, 3 cid, 4 first ('' = allocate), 5 count, 6 options id,
--       7 options json, 8 fn sha, 9 fn blob ('' = already stored), 10 retention,
--       11 queue key, 12 message template, 13 depends_on_errors, 14 n deps,
--       15 parent jid ('' = none), 16 inline limit, 17 args stored ('1' = the caller
--       already SET them, with a TTL, in the same MULTI; they are made persistent here),
--       then n deps jids, then `count` sealed argument blobs (none if 17 is '1').
-- Returns the first jid, or an error reply 'NOFN' / 'NOJOB <jid>' / 'INACTIVE'.
local t, now, cid = ARGV[1], ARGV[2], ARGV[3]
local count = tonumber(ARGV[5])
local oid, fn_sha, fn_blob = ARGV[6], ARGV[8], ARGV[9]
local retention = tonumber(ARGV[10])
local queue, tpl, deperr = ARGV[11], ARGV[12], ARGV[13]
local ndeps = tonumber(ARGV[14])
local parent, inline_limit = ARGV[15], tonumber(ARGV[16])

if redis.call('SISMEMBER', K.inactive_tenants(), t) == 1 then
  return redis.error_reply('INACTIVE API key deactivated')
end

local fkey = K['function'](t, fn_sha)
if fn_blob == '' and redis.call('EXISTS', fkey) == 0 then
  return redis.error_reply('NOFN function blob missing')
end

-- Validate every dependency before writing anything.
local live, stalled = {}, false
for i = 1, ndeps do
  local dep = ARGV[17 + i]
  local st = redis.call('HGET', K.job(t, dep), 'status')
  if not st then return redis.error_reply('NOJOB ' .. dep) end
  if st == 'error' or st == 'killed' or st == 'stalled' then
    if deperr ~= 'ignore' then stalled = true end
  elseif st ~= 'done' then
    live[#live + 1] = dep
  end
end

if fn_blob ~= '' then
  redis.call('SET', fkey, fn_blob, 'EX', retention)
else
  redis.call('EXPIRE', fkey, retention)
end
redis.call('SET', K.options(t, oid), ARGV[7], 'EX', retention)
if #live > 0 and not stalled then
  -- waiting jobs may wait longer than the retention: keep what they need until claimed
  redis.call('PERSIST', fkey)
  redis.call('PERSIST', K.options(t, oid))
end

local first
if ARGV[4] == '' then
  first = redis.call('INCRBY', K.jid_counter(t), count) - count + 1
else
  first = tonumber(ARGV[4])
end

local status = 'queued'
if stalled then status = 'stalled' elseif #live > 0 then status = 'waiting' end
local args_at = 17 + ndeps
local stored = ARGV[17] == '1'
for i = 0, count - 1 do
  local jid = first + i
  local jk = K.job(t, jid)
  if stored then
    redis.call('HSET', jk, 'status', status, 'opts', oid, 'cid', cid, 'created', now,
               'att', 0, 'ax', 1)
    redis.call('PERSIST', K.args(t, jid))
  else
    redis.call('HSET', jk, 'status', status, 'opts', oid, 'cid', cid, 'created', now,
               'att', 0, 'a', ARGV[args_at + 1 + i])
  end
  if parent ~= '' then redis.call('HSET', jk, 'parent', parent) end
  if stalled then
    redis.call('HSET', jk, 'finished', now, 'exc', STALLED_MSG)
    finalize(t, jid, retention, stored)
    notify(t, jid, 'stalled', nil, inline_limit)
  end
end

local chunk = first .. '+' .. count
if not stalled then redis.call('SADD', K.unfinished(t), chunk) end
tpl = string.gsub(tpl, '@JID@', first)
if status == 'waiting' then
  local wkey = K.waiting_chunk(t, chunk)
  redis.call('HSET', wkey, 'pending', #live, 'deperr', deperr, 'queue', queue, 'tpl', tpl)
  for _, dep in ipairs(live) do
    redis.call('RPUSH', K.dependents(t, dep), chunk)
    redis.call('HSET', K.job(t, dep), 'kids', 1)
  end
elseif status == 'queued' then
  publish(t .. '/' .. chunk, queue, tpl, 0, now)
end
flush_notices()
return first
