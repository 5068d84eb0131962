-- Shared helpers, prepended (after the generated key builders `K`) to every script.
-- Job hash fields: status opts cid created att started worker warden token
--                  finished runtime exc parent;
--                  a / r: the sealed arguments / result when small (big ones live in
--                  their own keys, flagged by ax / rx), so the hot path touches one key;
--                  kids (a chunk waits on this job), w (watchers exist): flags that let
--                  finishing skip lookups.

local FINISHED = {done = true, error = true, killed = true, stalled = true}
local FINISHED_FIELD = {
  done = 'finished:done', error = 'finished:error', killed = 'finished:killed',
  stalled = 'finished:stalled',
}

-- A typed refusal: 'PCERR {"code": ..., fields}', decoded by scripts.raise_script_error.
local function refuse(code, fields)
  fields = fields or {}
  fields.code = code
  return redis.error_reply('PCERR ' .. cjson.encode(fields))
end

-- Every status change goes through here: the move must be in the transition table
-- (generated from picloud_compat.status), else the script stops before this write.
-- Redis does not roll back a script's earlier writes, so this is an assertion that no
-- caller ever passes an illegal move (the store contract suite checks every move), not
-- a validation of input.
-- Metrics counters are tallied during one script run and written once, with the
-- notices (every script that finishes jobs flushes those): a map's batch of outcomes
-- costs one HINCRBY per counter, not several per job.
local STATS, STATS_ORDER, STATS_SUM = {}, {}, 0
local function tally(field, n)
  if STATS[field] == nil then
    STATS[field] = 0
    STATS_ORDER[#STATS_ORDER + 1] = field
  end
  STATS[field] = STATS[field] + n
end

local function move(jk, jid, from, to, ...)
  if not (MOVES[from] and MOVES[from][to]) then
    error({err = 'PCERR ' .. cjson.encode({code = 'bad_move', jid = jid, from = from, to = to})})
  end
  redis.call('HSET', jk, 'status', to, ...)
  if FINISHED[to] then tally(FINISHED_FIELD[to], 1) end
end
local STALLED_MSG = 'Could not start due to dependency erroring'
local NOTICE_TTL = 3600

-- Notices are collected per client id during one script run, then pushed once each.
local NOTICES = {}
local NOTICE_ORDER = {}
-- notices key -> {hold key, held key, whether a notice is not 'done'}
local NOTICE_HOLDS = {}

-- tenant -> cid -> its notices key (a map's batch shares one client). By tenant too: one
-- script may notify two tenants (a steal settles one tenant's chunk, then claims
-- another's), and a cid is the client's own choice.
local NOTICE_KEYS = {}

local function add_notice(t, cid, jid, status, result)
  local keys_of_t = NOTICE_KEYS[t]
  if not keys_of_t then
    keys_of_t = {}
    NOTICE_KEYS[t] = keys_of_t
  end
  local key = keys_of_t[cid]
  if not key then
    key = K.notices(t, cid)
    keys_of_t[cid] = key
  end
  local list = NOTICES[key]
  if not list then
    list = {}
    NOTICES[key] = list
    NOTICE_ORDER[#NOTICE_ORDER + 1] = key
    NOTICE_HOLDS[key] = {K.notice_hold(t, cid), K.held_notices(t, cid), false}
  end
  list[#list + 1] = tonumber(jid)
  list[#list + 1] = status
  list[#list + 1] = result or false
  if status ~= 'done' then NOTICE_HOLDS[key][3] = true end
end

-- Everything held for a client goes onto its notices list, behind what is there.
local function release_held(held, key)
  if redis.call('EXISTS', held) == 0 then return end
  if redis.call('EXISTS', key) == 0 then
    redis.call('RENAME', held, key)
    return
  end
  while true do
    local batch = redis.call('LPOP', held, 1000)
    if not batch then return end
    redis.call('RPUSH', key, unpack(batch))
  end
end

-- A client waiting for many jobs (a map's result) may arm a hold: how many more
-- notices it needs before it wants waking. Until then batches of 'done' notices wait
-- on the side list; the batch that reaches the count, or one with a failure (which
-- ends most waits), releases them all. A few wake-ups per wait instead of one per
-- finished job: that client CPU otherwise lands on the vCPUs running the jobs. Plain
-- pops watch both lists, so a hold never delays another waiter's notice.
local function push_notices(key, packed, count)
  local hold, held, urgent = unpack(NOTICE_HOLDS[key])
  if redis.call('GET', hold) then
    if not urgent and redis.call('DECRBY', hold, count) > 0 then
      redis.call('RPUSH', held, packed)
      redis.call('EXPIRE', held, NOTICE_TTL)
      return
    end
    redis.call('DEL', hold)
    release_held(held, key)
  end
  redis.call('RPUSH', key, packed)
  redis.call('EXPIRE', key, NOTICE_TTL)
end

local function flush_notices()
  for _, key in ipairs(NOTICE_ORDER) do
    push_notices(key, cmsgpack.pack(NOTICES[key]), #NOTICES[key] / 3)
  end
  for _, field in ipairs(STATS_ORDER) do
    redis.call('HINCRBY', K.stats(), field, STATS[field])
  end
  if STATS_SUM > 0 then redis.call('HINCRBYFLOAT', K.stats(), 'runtime_sum', STATS_SUM) end
  -- emptied, so a script that flushes twice (advance.lua's claim may) sends each once
  NOTICES, NOTICE_ORDER, NOTICE_HOLDS = {}, {}, {}
  STATS, STATS_ORDER, STATS_SUM = {}, {}, 0
end

-- Tell the submitting client and any watchers that `jid` finished. `cid` and
-- `watched` may be passed in when the caller already read them.
local function notify(t, jid, status, result, inline_limit, cid, watched)
  local inline = false
  if result and #result <= inline_limit then inline = result end
  if cid == nil then
    local f = redis.call('HMGET', K.job(t, jid), 'cid', 'w')
    cid, watched = f[1], f[2]
  end
  if cid and cid ~= '' then add_notice(t, cid, jid, status, inline) end
  if not watched then return end
  local wkey = K.watchers(t, jid)
  local watchers = redis.call('SMEMBERS', wkey)
  if #watchers > 0 then
    for _, w in ipairs(watchers) do
      if w ~= cid then add_notice(t, w, jid, status, inline) end
    end
    redis.call('DEL', wkey)
  end
end

-- Bookkeeping shared by every move into a finished status. `external_args` is
-- nil when unknown (then the separate arguments key gets its TTL regardless).
local function finalize(t, jid, retention, external_args)
  redis.call('EXPIRE', K.job(t, jid), retention)
  if external_args ~= false then redis.call('EXPIRE', K.args(t, jid), retention) end
end

-- A published chunk is also offered to job processes that finish their own chunk
-- (work stealing, `steal.lua`), in the queue's order: priority step, then age. The offer
-- leaves the set with the chunk's ledger entry (`unledger`), or when a steal finds
-- nothing left in it.
local function queue_type(queue)
  local sep = string.find(queue, ':', 1, true)
  if not sep then return queue, 0 end
  return string.sub(queue, 1, sep - 1), tonumber(string.sub(queue, sep + 1))
end

local WAKE_TOKENS = 8  -- tokens kept on a wake-up list nobody waits on

local function offer(ck, queue, now)
  local ctype, step = queue_type(queue)
  redis.call('ZADD', K.stealable(ctype), step * 1e10 + now, ck)
  -- and wake a waiting pool process (a hint: the claims decide)
  local wake = K.wake(ctype)
  if redis.call('LPUSH', wake, 1) > WAKE_TOKENS then
    redis.call('LTRIM', wake, 0, WAKE_TOKENS - 1)
  end
end

local function publish(ck, queue, tpl, gen, now)
  local msg = string.gsub(tpl, '@TAG@', ck .. '#' .. gen)
  redis.call('LPUSH', queue, msg)
  redis.call('HSET', K.ledger(), ck, cmsgpack.pack({queue, tpl, gen, now}))
  redis.call('ZADD', K.ledger_times(), now, ck)
  offer(ck, queue, now)
end

-- The chunk left the ledger (`entry`: its ledger value): it is over, so no longer offered.
local function unledger(ck, entry)
  redis.call('HDEL', K.ledger(), ck)
  redis.call('ZREM', K.ledger_times(), ck)
  if entry then
    local ctype = queue_type(cmsgpack.unpack(entry)[1])
    redis.call('ZREM', K.stealable(ctype), ck)
  end
end

local function chunk_range(chunk)
  local plus = string.find(chunk, '+', 1, true)
  return tonumber(string.sub(chunk, 1, plus - 1)), tonumber(string.sub(chunk, plus + 1))
end

-- A waiting chunk's parents are all satisfied: queue its jobs and publish it.
local function release(t, chunk, wkey, now)
  local w = redis.call('HMGET', wkey, 'queue', 'tpl')
  redis.call('DEL', wkey)
  local first, count = chunk_range(chunk)
  local any = false
  for jid = first, first + count - 1 do
    local jk = K.job(t, jid)
    if redis.call('HGET', jk, 'status') == 'waiting' then
      move(jk, jid, 'waiting', 'queued')
      any = true
    end
  end
  if any then publish(t .. '/' .. chunk, w[1], w[2], 0, now) end
end

-- `jid` reached `status`: release or stall the chunks waiting on it, transitively.
-- Iterative (a work list, not recursion) so a 1,000-deep chain cannot overflow.
local function propagate(t, jid, status, now, retention, inline_limit)
  local work = {jid, status}
  while #work > 0 do
    local st = table.remove(work)
    local parent = table.remove(work)
    local kkey = K.dependents(t, parent)
    local kids = redis.call('LRANGE', kkey, 0, -1)
    if #kids > 0 then redis.call('DEL', kkey) end
    for _, chunk in ipairs(kids) do
      local wkey = K.waiting_chunk(t, chunk)
      local deperr = redis.call('HGET', wkey, 'deperr')
      if deperr then
        if st == 'done' or deperr == 'ignore' then
          if redis.call('HINCRBY', wkey, 'pending', -1) <= 0 then
            release(t, chunk, wkey, now)
          end
        else
          redis.call('DEL', wkey)
          local first, count = chunk_range(chunk)
          for child = first, first + count - 1 do
            local ck = K.job(t, child)
            if redis.call('HGET', ck, 'status') == 'waiting' then
              move(ck, child, 'waiting', 'stalled', 'finished', now, 'exc', STALLED_MSG)
              finalize(t, child, retention)
              notify(t, child, 'stalled', nil, inline_limit)
              work[#work + 1] = child
              work[#work + 1] = 'stalled'
            end
          end
        end
      end
    end
  end
end

-- Move one unfinished job (now `from`) to a failed status (killed / error) with its
-- consequences.
local function fail_job(t, jid, from, status, reason, now, retention, inline_limit)
  local jk = K.job(t, jid)
  local started = from == 'processing' and tonumber(redis.call('HGET', jk, 'started'))
  if started then
    -- killed or lost while it ran: its runtime is the time since its claim (a runner
    -- claims a few jobs ahead, so a job not begun yet may be counted from then)
    move(jk, jid, from, status, 'finished', now, 'exc', reason,
         'runtime', string.format('%.6f', math.max(0, now - started)))
  else
    move(jk, jid, from, status, 'finished', now, 'exc', reason)
  end
  finalize(t, jid, retention)
  -- output streamed while it ran (kill, lost worker) must not outlive the record
  redis.call('EXPIRE', K.stdout(t, jid), retention)
  redis.call('EXPIRE', K.stderr(t, jid), retention)
  notify(t, jid, status, nil, inline_limit)
  propagate(t, jid, status, now, retention, inline_limit)
end

-- Append to an output stream keeping only its last `limit` bytes.
local function append_capped(key, text, limit, retention)
  if text == '' then return end
  if redis.call('APPEND', key, text) > limit then
    redis.call('SET', key, redis.call('GETRANGE', key, -limit, -1))
  end
  if retention then redis.call('EXPIRE', key, retention) end
end

local function chunk_finished(t, first, count)
  for jid = first, first + count - 1 do
    local st = redis.call('HGET', K.job(t, jid), 'status')
    if st and not FINISHED[st] then return false end
  end
  return true
end

-- Unfinished jids of the tenant; chunks found fully finished leave the index.
local function unfinished_jobs(t)
  local out = {}
  local ukey = K.unfinished(t)
  for _, chunk in ipairs(redis.call('SMEMBERS', ukey)) do
    local first, count = chunk_range(chunk)
    local open = false
    for jid = first, first + count - 1 do
      local st = redis.call('HGET', K.job(t, jid), 'status')
      if st and not FINISHED[st] then
        out[#out + 1] = jid
        open = true
      end
    end
    if not open then redis.call('SREM', ukey, chunk) end
  end
  return out
end

-- Move queued jobs of a chunk to processing for one runner, and lease the chunk (the
-- body of claim.lua, shared with steal.lua and advance.lua). C: the fields claim.lua's
-- A documents. Jobs already processing under C.token come back as claimed again: a
-- claim retried after its reply was lost must not leave the jobs it took unstarted.
local function claim_jobs(C)
  local t, now, token = C.tenant, C.now, C.token
  local first, count = C.first, C.count
  local i = C.start
  local out = {0, tonumber(redis.call('GET', K.kill_generation(C.worker)) or '0')}
  if redis.call('SISMEMBER', K.inactive_tenants(), t) == 1 then
    -- a deactivated key's queued jobs never run
    for jid = first + i, first + count - 1 do
      if redis.call('HGET', K.job(t, jid), 'status') == 'queued' then
        fail_job(t, jid, 'queued', 'error', 'API key deactivated', now, C.retention, C.inline_limit)
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
      redis.call('EXPIRE', skey, C.retention)
      local fn = cjson.decode(doc)[SPEC.fn]
      if fn then redis.call('EXPIRE', K['function'](t, fn), C.retention) end
    end
  end
  while i < count and taken < C.max_jobs and bytes < C.max_bytes do
    local jid = first + i
    local jk = K.job(t, jid)
    local cur = redis.call('HMGET', jk, 'status', 'opts', 'att', 'a', 'ax', 'token')
    local again = cur[1] == 'processing' and cur[6] == token
    if cur[1] == 'queued' or again then
      local att = tonumber(cur[3]) or 0
      if not again then
        att = att + 1
        move(jk, jid, 'queued', 'processing', 'started', now, 'worker', C.worker,
             'warden', C.warden, 'token', token, 'att', att)
      end
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
  if taken > 0 then redis.call('HSET', K.leases(), C.lease, C.lease_until) end
  return out
end

-- Record job outcomes (first writer wins: only the attempt holding the job's token),
-- then release or stall dependents and queue notices for waiters (the body of
-- finish.lua, shared with advance.lua). R: the fields finish.lua's A documents; the
-- outcomes are ARGV[2..], 13 values each. Returns how many outcomes were given.
local function record_outcomes(R)
  local t, now, retention = R.tenant, R.now, R.retention
  local inline_limit, output_limit = R.inline_limit, R.output_limit
  local usage_jobs, usage_cpu = 0, 0
  local n = (#ARGV - 1) / 13
  for k = 0, n - 1 do
    local b = 1 + k * 13
    local jid, token, status = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    local jk = K.job(t, jid)
    local cur = redis.call('HMGET', jk, 'status', 'token', 'cid', 'kids', 'w', 'ax')
    if cur[1] == 'processing' and cur[2] == token then
      local result = ARGV[b + 4]
      local runtime_text, cu, cs = ARGV[b + 9], ARGV[b + 10], ARGV[b + 11]
      if result == '' then
        move(jk, jid, 'processing', status, 'finished', now, 'runtime', runtime_text,
             'cu', cu, 'cs', cs)
      elseif #result <= inline_limit then
        move(jk, jid, 'processing', status, 'finished', now, 'runtime', runtime_text,
             'cu', cu, 'cs', cs, 'r', result)
      else
        move(jk, jid, 'processing', status, 'finished', now, 'runtime', runtime_text,
             'cu', cu, 'cs', cs, 'rx', 1)
        redis.call('SET', K.result(t, jid), result, 'EX', retention)
      end
      local runtime = tonumber(runtime_text) or 0
      local bucket = #RUNTIME_BUCKETS + 1
      for i, bound in ipairs(RUNTIME_BUCKETS) do
        if runtime <= bound then bucket = i break end
      end
      tally(RUNTIME_FIELD[bucket], 1)
      usage_jobs = usage_jobs + 1
      usage_cpu = usage_cpu + (tonumber(cu) or 0) + (tonumber(cs) or 0)
      STATS_SUM = STATS_SUM + runtime
      if ARGV[b + 12] ~= '0' then
        redis.call('HSET', jk, 'mm', ARGV[b + 12], 'mf', ARGV[b + 13])
      end
      if ARGV[b + 5] ~= '' then redis.call('HSET', jk, 'exc', ARGV[b + 5]) end
      -- most jobs print nothing: no output keys to build then
      if ARGV[b + 6] ~= '' then
        append_capped(K.stdout(t, jid), ARGV[b + 6], output_limit, retention)
      end
      if ARGV[b + 7] ~= '' then
        append_capped(K.stderr(t, jid), ARGV[b + 7], output_limit, retention)
      end
      if ARGV[b + 8] ~= '' then
        redis.call('SET', K.profile(t, jid), ARGV[b + 8], 'EX', retention)
      end
      finalize(t, jid, retention, cur[6] and true or false)
      if result == '' then result = nil end
      notify(t, jid, status, result, inline_limit, cur[3] or false, cur[5])
      if cur[4] then propagate(t, jid, status, now, retention, inline_limit) end
    end
  end
  if usage_jobs > 0 then
    local uk = K.usage(t)
    redis.call('HINCRBY', uk, R.day .. ':jobs', usage_jobs)
    redis.call('HINCRBYFLOAT', uk, R.day .. ':cpu', usage_cpu)
  end
  return n
end

-- A runner is done with a chunk: drop its lease and, if every job of the chunk is
-- finished, the chunk's ledger entry and unfinished-index entry. `ran_all`: the runner
-- claimed every job itself, so none needs looking at.
local function end_chunk(t, first, count, lease, ran_all)
  redis.call('HDEL', K.leases(), lease)
  local ck = t .. '/' .. first .. '+' .. count
  local entry = redis.call('HGET', K.ledger(), ck)
  -- "ran all" can be trusted only if the chunk was never republished (generation 0):
  -- after a recovery another worker may hold some of its jobs again.
  local trusted = ran_all and (not entry or cmsgpack.unpack(entry)[3] == 0)
  if trusted or chunk_finished(t, first, count) then
    unledger(ck, entry)
    redis.call('SREM', K.unfinished(t), first .. '+' .. count)
  end
end
