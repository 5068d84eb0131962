-- Give back claimed jobs that never started; their attempt is not counted.
-- A: tenant, token. ARGV[2..]: jids.
for i = 2, #ARGV do
  local jk = K.job(A.tenant, ARGV[i])
  local cur = redis.call('HMGET', jk, 'status', 'token')
  if cur[1] == 'processing' and cur[2] == A.token then
    move(jk, ARGV[i], 'processing', 'queued')
    redis.call('HINCRBY', jk, 'att', -1)
    redis.call('HDEL', jk, 'worker', 'warden', 'token', 'started')
  end
end
return 'OK'
