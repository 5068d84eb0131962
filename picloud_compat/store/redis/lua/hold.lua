-- A client arms its notice hold before a blocking pop, or drops it (wanted <= 1): see
-- push_notices in lib.lua. What was held is released first, so the count applies to
-- notices still to come (released ones end the pop at once).
-- A: tenant, cid, wanted, ttl_ms.
local hold = K.notice_hold(A.tenant, A.cid)
release_held(K.held_notices(A.tenant, A.cid), K.notices(A.tenant, A.cid))
if A.wanted > 1 then
  redis.call('SET', hold, A.wanted, 'PX', A.ttl_ms)
else
  redis.call('DEL', hold)
end
return 1
