-- Work stealing: a job process that finished its chunk takes jobs of an offered chunk
-- (see `offer` in lib.lua): the back half of the queued jobs of one another process is
-- working through (stuck behind a slow job), or all of a small one not started yet.
-- It claims the first of them here, like claim.lua would (the rest it claims from the
-- returned index like any runner, so a job the owner claims first is simply skipped).
-- A: types (compute types whose chunks the thief may run), whole (the most jobs an
--    unstarted chunk taken whole may have), probes (about how many jobs of a chunk are
--    looked at), and claim.lua's fields for the thief: now,
--    worker, warden, token, lease_until, max_bytes, retention, inline_limit; settle
--    (optional: below).
-- Returns {chunk key, claim.lua's reply...}; else 1 if offered jobs wait for their
-- chunk's message (a chunk too big to take whole, or beyond the offers looked at), or 0
-- if nothing offered is queued (new work will push a wake-up token). Offers with nothing
-- left to take, and chunks of an environment (run only by its executors), leave the set.
local function status(t, jid)
  return redis.call('HGET', K.job(t, jid), 'status')
end

-- The last run of queued jobs after the first job, as (start, end) indices, or nil.
-- Probes go back from the end at a stride that looks at about A.probes jobs, then
-- binary searches find the run's ends: a thief finds work in a chunk of thousands of
-- quick jobs without reading them all (it may miss a run shorter than the stride).
local function tail_run(t, first, count)
  local stride = math.max(1, math.ceil(count / A.probes))
  local p = count - 1
  while p >= 1 and status(t, first + p) ~= 'queued' do p = p - stride end
  if p < 1 then return nil end
  local lo, hi = p, math.min(count - 1, p + stride - 1)
  while lo < hi do  -- its end: the probe after p was not queued
    local mid = math.ceil((lo + hi) / 2)
    if status(t, first + mid) == 'queued' then lo = mid else hi = mid - 1 end
  end
  local run_end, s = lo, p
  while s - stride >= 1 and status(t, first + s - stride) == 'queued' do s = s - stride end
  lo, hi = math.max(1, s - stride + 1), s
  while lo < hi do  -- its start, within the last stride stepped over
    local mid = math.floor((lo + hi) / 2)
    if status(t, first + mid) == 'queued' then hi = mid else lo = mid + 1 end
  end
  return lo, run_end
end

-- Where the thief starts in chunk (t, first, count), or nil and whether the offer is
-- spent, and whether its queued jobs wait for its message. A runner claims from the
-- front, so an unstarted chunk has its first job queued.
local function start_of(t, first, count, ck)
  if status(t, first) == 'queued' then
    -- Small and unstarted: taken whole (its message, when it comes, finds nothing to
    -- run), which spares few slow jobs a trip through Celery. A bigger one is left to
    -- its message: its jobs are many and quick, the trip is a small part of its run,
    -- and the message would then scan every job for nothing.
    if count <= A.whole then return 0, false end
    return nil, false, true
  end
  local lo, hi = tail_run(t, first, count)
  if lo then return lo + math.floor((hi - lo + 1) / 2), false end
  -- nothing found: spent if every job was looked at, or the chunk is over
  return nil, count <= A.probes or redis.call('HEXISTS', K.ledger(), ck) == 0, false
end

-- A.settle: the thief's previous chunk, settled in this round trip (its last outcomes,
-- ARGV[2..] as in finish.lua, then its end), so a thief pays one trip between chunks.
if A.settle then
  local S = A.settle
  S.now, S.retention, S.inline_limit = A.now, A.retention, A.inline_limit
  record_outcomes(S)
  end_chunk(S.tenant, S.first, S.count, S.lease, S.ran_all)
  flush_notices()  -- now: were the steal to fail, no waiter would miss these outcomes
end

local function parse(ck)
  local t, first, count = string.match(ck, '^(.*)/(%d+)%+(%d+)$')
  return t, tonumber(first), tonumber(count)
end

-- Rather than split the started chunk offers[i], take whole a small chunk offered at
-- the same moment (the same map's next chunk) that nobody has started: the processes
-- woken for a map then each run a chunk of their own. `offers` is ZRANGE WITHSCORES's.
local function unstarted_twin(offers, i)
  for j = i + 2, #offers - 1, 2 do
    if offers[j + 1] ~= offers[i + 1] then return nil end
    local t, first, count = parse(offers[j])
    if count <= A.whole and status(t, first) == 'queued' then
      return offers[j], t, first, count
    end
  end
  return nil
end

local OFFERS_LOOKED_AT = 8
local pending = 0
for _, queue in ipairs(A.types) do
  local skey = K.stealable(queue)
  local offers = redis.call('ZRANGE', skey, 0, OFFERS_LOOKED_AT - 1, 'WITHSCORES')
  if #offers == 2 * OFFERS_LOOKED_AT then pending = 1 end  -- there may be more behind
  for i = 1, #offers - 1, 2 do
    local ck = offers[i]
    local t, first, count = parse(ck)
    local start, spent, waits = start_of(t, first, count, ck)
    if waits then pending = 1 end
    if start and start > 0 then
      local twin, tt, tfirst, tcount = unstarted_twin(offers, i)
      if twin then ck, t, first, count, start, spent = twin, tt, tfirst, tcount, 0, false end
    end
    if start then
      local opts = redis.call('HGET', K.job(t, first + start), 'opts')
      local doc = opts and redis.call('GET', K.options(t, opts))
      local env = doc and cjson.decode(doc)[SPEC.env]
      if env == nil or env == cjson.null then
        local claim = claim_jobs({
          tenant = t, now = A.now, worker = A.worker, warden = A.warden, token = A.token,
          lease = ck .. '|' .. A.worker, lease_until = A.lease_until, first = first,
          count = count, start = start, max_jobs = 1, max_bytes = A.max_bytes,
          retention = A.retention, inline_limit = A.inline_limit,
        })
        table.insert(claim, 1, ck)
        flush_notices()
        return claim
      end
      spent = true  -- an environment's: never ours (its executors' message is coming)
      pending = 1
    end
    if spent then redis.call('ZREM', skey, ck) end
  end
end
flush_notices()
return pending
