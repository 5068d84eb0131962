-- Jids of the tenant's unfinished jobs (and tidy the chunk index on the way).
-- A: tenant.
return unfinished_jobs(A.tenant)
