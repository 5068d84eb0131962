-- Delete finished jobs' data. All-or-nothing: an unknown or unfinished jid aborts
-- the whole call before anything is removed.
-- ARGV: 1 tenant, then jids. Returns 'OK' or an error reply 'NOJOB <jid>' /
-- 'UNFINISHED <jid> <status>'.
local t = ARGV[1]
for i = 2, #ARGV do
  local st = redis.call('HGET', K.job(t, ARGV[i]), 'status')
  if not st then return redis.error_reply('NOJOB ' .. ARGV[i]) end
  if not FINISHED[st] then return redis.error_reply('UNFINISHED ' .. ARGV[i] .. ' ' .. st) end
end
for i = 2, #ARGV do
  local jid = ARGV[i]
  redis.call('DEL', K.job(t, jid), K.args(t, jid), K.result(t, jid), K.stdout(t, jid),
             K.stderr(t, jid), K.profile(t, jid), K.watchers(t, jid), K.dependents(t, jid))
end
return 'OK'
