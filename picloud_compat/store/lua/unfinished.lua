-- Jids of the tenant's unfinished jobs (and tidy the chunk index on the way).
-- ARGV: 1 tenant.
return unfinished_jobs(ARGV[1])
