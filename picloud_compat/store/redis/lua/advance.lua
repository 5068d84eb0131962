-- A runner's step between two slow jobs of a chunk, in one round trip: record the
-- outcomes it has (as finish.lua), then claim the chunk's next jobs (as claim.lua).
-- When nothing is left to claim (the rest finished, or is run by thieves), the chunk
-- ends here too, as finish.lua with ending 1 would end it.
-- A: finish.lua's fields (without ending) and claim.lua's; outcomes follow as in
--    finish.lua.
-- Returns claim.lua's reply.
record_outcomes(A)
flush_notices()  -- now: were the claim to fail, no waiter would miss these outcomes
local claim = claim_jobs(A)
if #claim == 2 then end_chunk(A.tenant, A.first, A.count, A.lease, false) end
flush_notices()
return claim
