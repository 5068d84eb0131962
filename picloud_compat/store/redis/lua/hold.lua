-- A client arms its notice hold before a blocking pop: see push_notices in lib.lua.
-- What an earlier hold kept aside is released first, so the count applies to notices
-- still to come (released ones end the pop at once).
-- A: tenant, cid, wanted (> 1), ttl_ms.
release_held(K.held_notices(A.tenant, A.cid), K.notices(A.tenant, A.cid))
redis.call('SET', K.notice_hold(A.tenant, A.cid), A.wanted, 'PX', A.ttl_ms)
return 1
