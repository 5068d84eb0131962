-- Move queued jobs of a chunk to processing for one runner, and lease the chunk.
-- A: tenant, now, worker (host:pid running the jobs), warden (who can kill that
--    process), token, lease (member), lease_until, first, count, start, max_jobs,
--    max_bytes, retention, inline_limit.
-- Returns {next index, kill generation of the worker, jid, attempt, spec id, args,
-- jid, ...}; big arguments (kept in their own key) come back as nil and the caller
-- fetches them with MGET: moving megabytes through Lua strings costs several times a
-- plain GET.
return claim_jobs(A)
