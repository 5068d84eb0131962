-- Give back claimed jobs that never started; their attempt is not counted.
-- ARGV: 1 tenant, 2 token, then jids.
local t, token = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local jk = K.job(t, ARGV[i])
  local cur = redis.call('HMGET', jk, 'status', 'token')
  if cur[1] == 'processing' and cur[2] == token then
    redis.call('HSET', jk, 'status', 'queued')
    redis.call('HINCRBY', jk, 'att', -1)
    redis.call('HDEL', jk, 'worker', 'warden', 'token', 'started')
  end
end
return 'OK'
