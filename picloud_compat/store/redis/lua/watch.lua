-- Register client `cid` to be notified when these jobs finish (for jobs another
-- client submitted). Atomic with the status read, so no completion slips between.
-- A: tenant, cid. ARGV[2..]: jids. Returns each job's status ('' if unknown).
local t, cid = A.tenant, A.cid
local out = {}
for i = 2, #ARGV do
  local st = redis.call('HGET', K.job(t, ARGV[i]), 'status')
  if st and not FINISHED[st] then
    local wkey = K.watchers(t, ARGV[i])
    redis.call('SADD', wkey, cid)
    redis.call('EXPIRE', wkey, 86400)
    redis.call('HSET', K.job(t, ARGV[i]), 'w', 1)
  end
  out[#out + 1] = st or ''
end
return out
