-- Delete finished jobs' data. All-or-nothing: an unknown or unfinished jid aborts
-- the whole call before anything is removed.
-- A: tenant. ARGV[2..]: jids. Returns 'OK'; refuses no_job {jid} /
-- unfinished {jid, status}.
local t = A.tenant
for i = 2, #ARGV do
  local st = redis.call('HGET', K.job(t, ARGV[i]), 'status')
  if not st then return refuse('no_job', {jid = tonumber(ARGV[i])}) end
  if not FINISHED[st] then
    return refuse('unfinished', {jid = tonumber(ARGV[i]), status = st})
  end
end
for i = 2, #ARGV do
  local jid = ARGV[i]
  redis.call('DEL', K.job(t, jid), K.args(t, jid), K.result(t, jid), K.stdout(t, jid),
             K.stderr(t, jid), K.profile(t, jid), K.watchers(t, jid), K.dependents(t, jid))
end
return 'OK'
