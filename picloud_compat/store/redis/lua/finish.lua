-- Record job outcomes (first writer wins: only the attempt holding the job's token),
-- then release or stall dependents and notify waiters.
-- A: tenant, now, retention, inline_limit, output_limit, day, ending (0, or 1: the
--    runner ends the chunk, or 2: ends it having run every job of it itself), lease
--    (member), first, count.
-- ARGV[2..]: per outcome 13 values: jid, token, status, result, exception, stdout,
--    stderr, profile, runtime, CPU user seconds, CPU system seconds, peak memory bytes
--    (0: not measured), memory limit hits.
-- Results up to the inline limit are kept in the job hash (field r), bigger ones in
-- their own key (flag rx).
local n = record_outcomes(A)
if A.ending ~= 0 then end_chunk(A.tenant, A.first, A.count, A.lease, A.ending == 2) end
flush_notices()
return n
