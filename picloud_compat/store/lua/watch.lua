-- Register client `cid` to be notified when these jobs finish (for jobs another
-- client submitted). Atomic with the status read, so no completion slips between.
-- ARGV: 1 tenant, 2 cid, then jids. Returns each job's status ('' if unknown).
local t, cid = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
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
